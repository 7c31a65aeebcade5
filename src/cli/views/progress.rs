//! The lines a followed run prints as it goes (`submit --wait`, `wait`):
//! each category that changes phase or attempt, or, for a run too large to
//! list its categories, its counts; and why it is stalled, once.

use std::collections::BTreeMap;

use crate::api::TestLayerRunStatus;
use crate::plan::Phase;

/// What was printed so far, so that only changes are printed.
#[derive(Debug, Default)]
pub struct Progress {
    seen: BTreeMap<String, (Phase, u32)>,
    last_progress: Option<String>,
    last_stall: Option<String>,
}

impl Progress {
    /// The lines `st` adds to what was printed.
    pub fn lines(&mut self, st: &TestLayerRunStatus) -> Vec<String> {
        let mut out = Vec::new();
        for c in &st.categories {
            let prev = self.seen.insert(c.name.clone(), (c.phase, c.attempts));
            if prev != Some((c.phase, c.attempts)) && (prev.is_some() || c.phase != Phase::Pending)
            {
                let counts = c
                    .counts
                    .map(|n| {
                        format!(
                            " — {} passed, {} failed, {} skipped",
                            n.passed, n.failed, n.skipped
                        )
                    })
                    .unwrap_or_default();
                let reason = c
                    .reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                out.push(format!("{}: {}{reason}{counts}", c.name, c.phase));
            }
        }
        if st.categories.is_empty() {
            // A large run lists no category in its status: its counts say
            // how far it got.
            if let Some(line) = counts_line(st).filter(|l| self.last_progress.as_ref() != Some(l)) {
                out.push(line.clone());
                self.last_progress = Some(line);
            }
        }
        // A run that cannot go on by itself (shared resources that runs
        // waiting for each other keep, a Pod the apiserver refuses) says
        // why, once.
        let stall = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled" && c.status == "True")
            .map(|c| format!("stalled ({}): {}", c.reason, c.message));
        if let Some(line) = stall
            .as_ref()
            .filter(|l| self.last_stall.as_ref() != Some(*l))
        {
            out.push(line.clone());
        }
        self.last_stall = stall;
        out
    }
}

/// `done/all done: N running, N passed, ...` from a run's counts per phase.
pub fn counts_line(st: &TestLayerRunStatus) -> Option<String> {
    let p = st.phases?;
    let parts: Vec<String> = [
        (p.running, "running"),
        (p.succeeded, "passed"),
        (p.failed, "failed"),
        (p.timed_out, "timed out"),
        (p.cancelled, "cancelled"),
        (p.skipped, "skipped"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, w)| format!("{n} {w}"))
    .collect();
    Some(format!(
        "{}/{} done{}{}",
        p.finished(),
        p.total(),
        if parts.is_empty() { "" } else { ": " },
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(v: serde_json::Value) -> TestLayerRunStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_changes_are_printed_and_a_stall_once() {
        let mut p = Progress::default();
        let pending = status(json!({"categories": [
            {"name": "unit", "phase": "Pending", "attempts": 0},
            {"name": "api", "phase": "Running", "attempts": 1}]}));
        assert_eq!(p.lines(&pending), ["api: Running"]);
        assert!(p.lines(&pending).is_empty());
        let stalled = status(json!({
            "categories": [
                {"name": "unit", "phase": "Running", "attempts": 1},
                {"name": "api", "phase": "Failed", "attempts": 1, "reason": "TestsFailed",
                 "counts": {"passed": 3, "failed": 1, "skipped": 0}}],
            "conditions": [{"type": "Stalled", "status": "True", "reason": "PodCreateFailed",
                "message": "quota", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}));
        assert_eq!(
            p.lines(&stalled),
            [
                "unit: Running",
                "api: Failed (TestsFailed) — 3 passed, 1 failed, 0 skipped",
                "stalled (PodCreateFailed): quota"
            ]
        );
        assert!(p.lines(&stalled).is_empty());
    }

    #[test]
    fn a_run_without_categories_in_its_status_shows_its_counts() {
        let mut p = Progress::default();
        let st = status(json!({"phases": {"pending": 6, "running": 2, "succeeded": 2}}));
        assert_eq!(p.lines(&st), ["2/10 done: 2 running, 2 passed"]);
        assert!(p.lines(&st).is_empty());
    }
}
