//! The tree of `testlayer get RUN`: the run, each category under it (phase,
//! reason, duration, counts), each attempt under its category (how it
//! ended, how long, its Pod) and the tests that failed.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::age::ran;
use super::line::Lines;
use crate::api::{AttemptStatus, CategoryRun, TestLayerRun};
use crate::words::AttemptReason;

/// Failing tests shown per category; the rest are counted.
const SHOWN_FAILURES: usize = 10;

/// The tree of `run` and its CategoryRuns `crs` (in any order) at `now`;
/// a category waiting for shared resources shows its place in `lines`.
pub fn render(run: &TestLayerRun, crs: &[CategoryRun], lines: &Lines, now: Timestamp) -> String {
    let st = run.status.clone().unwrap_or_default();
    let mut head = vec![
        format!(
            "TestLayerRun {}/{}",
            run.namespace().unwrap_or_default(),
            run.name_any()
        ),
        format!("layer {}", run.spec.layer),
        st.phase.unwrap_or_default().as_str().to_string(),
        ran(st.start_time.as_ref(), st.completion_time.as_ref(), now),
    ];
    if let Some(c) = st.counts {
        head.push(counts(c.passed, c.failed, c.skipped));
    }
    let mut out = head.join("  ");
    out.push('\n');
    if let Some(m) = st.message.as_deref().filter(|m| !m.is_empty()) {
        out.push_str(&format!("  {m}\n"));
    }
    let mut crs: Vec<&CategoryRun> = crs.iter().collect();
    crs.sort_by_key(|c| c.spec.index);
    for (i, cr) in crs.iter().enumerate() {
        let last = i + 1 == crs.len();
        let (branch, under) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        out.push_str(branch);
        out.push_str(&category_line(cr, now));
        out.push('\n');
        for line in children(cr, lines, now) {
            out.push_str(under);
            out.push_str(&line);
            out.push('\n');
        }
    }
    if crs.is_empty() && !st.categories.is_empty() {
        // The CategoryRuns are gone (or not made yet): what the run recorded.
        for (i, c) in st.categories.iter().enumerate() {
            let branch = if i + 1 == st.categories.len() {
                "└── "
            } else {
                "├── "
            };
            let reason = c
                .reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            out.push_str(&format!("{branch}{}  {}{reason}\n", c.name, c.phase));
        }
    }
    out
}

fn counts(passed: u64, failed: u64, skipped: u64) -> String {
    format!("{passed} passed, {failed} failed, {skipped} skipped")
}

fn category_line(cr: &CategoryRun, now: Timestamp) -> String {
    let st = cr.status.clone().unwrap_or_default();
    let phase = st.phase.map_or("Pending".to_string(), |p| p.to_string());
    let reason = st
        .reason
        .as_ref()
        .filter(|r| r.is_notable())
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let mut parts = vec![
        cr.spec.category.clone(),
        format!("{phase}{reason}"),
        ran(st.start_time.as_ref(), st.completion_time.as_ref(), now),
    ];
    if let Some(c) = st.counts {
        parts.push(counts(c.passed, c.failed, c.skipped));
    }
    if st.flaky {
        parts.push("flaky".to_string());
    }
    parts.join("  ")
}

/// The lines under a category: its attempts, its place in the lines of
/// the shared resources it waits for, then its failing tests.
fn children(cr: &CategoryRun, lines: &Lines, now: Timestamp) -> Vec<String> {
    let st = cr.status.clone().unwrap_or_default();
    let mut items: Vec<String> = st.attempts.iter().map(|a| attempt_line(a, now)).collect();
    if let Some(claim) = &st.resource_claim {
        let ns = cr.namespace().unwrap_or_default();
        let places = lines.places(&cr.name_any(), &ns, claim);
        let what = if places.is_empty() {
            crate::controller::shared::claims::describe_claim(claim)
        } else {
            format!("waiting for shared resources: {}", places.join(", "))
        };
        items.push(what);
    }
    let failed = &st.failed_tests;
    for t in failed.listed.iter().take(SHOWN_FAILURES) {
        let message = if t.message.is_empty() {
            String::new()
        } else {
            format!(" — {}", t.message)
        };
        items.push(format!("✗ {}{message}", t.id));
    }
    let more = failed.listed.len().saturating_sub(SHOWN_FAILURES) as u64 + failed.more;
    if more > 0 {
        items.push(format!("… and {more} more failing tests"));
    }
    let n = items.len();
    items
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{}{s}",
                if i + 1 == n {
                    "└── "
                } else {
                    "├── "
                }
            )
        })
        .collect()
}

fn attempt_line(a: &AttemptStatus, now: Timestamp) -> String {
    let state = match (&a.completion_time, &a.reason) {
        (None, Some(AttemptReason::PodCreateFailed)) => "PodCreateFailed".to_string(),
        (None, _) if a.start_time.is_none() => "Pending".to_string(),
        (None, _) => "Running".to_string(),
        (Some(_), Some(r)) => r.describe(),
        (Some(_), None) => match a.exit_code {
            Some(c) => format!("exit code {c}"),
            None => "ended".to_string(),
        },
    };
    let mut parts = vec![
        format!("attempt {}", a.number),
        state,
        ran(a.start_time.as_ref(), a.completion_time.as_ref(), now),
        format!("pod {}", a.pod_name),
    ];
    if a.infrastructure {
        parts.push("infrastructure".to_string());
    }
    if let Some(m) = a.message.as_deref().filter(|m| !m.is_empty()) {
        parts.push(m.lines().next().unwrap_or_default().to_string());
    }
    parts.join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_run_shows_as_a_tree_of_categories_attempts_and_failing_tests() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let run: TestLayerRun = serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": "r", "namespace": "ci"},
            "spec": {"layer": "fast", "config": {"inline": "layers: {}"}},
            "status": {"phase": "Failed", "startTime": "2026-01-01T00:00:00Z",
                "completionTime": "2026-01-01T00:01:00Z",
                "counts": {"passed": 5, "failed": 1, "skipped": 0}}
        }))
        .unwrap();
        let cr = |index: u32, name: &str, status: serde_json::Value| -> CategoryRun {
            serde_json::from_value(json!({
                "apiVersion": "testlayer.dev/v1alpha1", "kind": "CategoryRun",
                "metadata": {"name": format!("r-{name}"), "namespace": "ci"},
                "spec": {"runName": "r", "layer": "fast", "category": name, "index": index,
                    "image": "busybox", "command": "true", "timeoutSeconds": 60},
                "status": status
            }))
            .unwrap()
        };
        let crs = vec![
            cr(
                1,
                "api",
                json!({"phase": "Failed", "reason": "TestsFailed",
                "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:30Z",
                "counts": {"passed": 2, "failed": 1, "skipped": 0},
                "failedTests": {"listed": [{"id": "shop.cart::test_total", "message": "assert 1 == 2", "attempt": 2}]},
                "attempts": [
                    {"number": 1, "podName": "r-api-1", "exitCode": 1, "reason": "ExitCode1",
                     "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:12Z"},
                    {"number": 2, "podName": "r-api-2", "exitCode": 1, "reason": "ExitCode1",
                     "startTime": "2026-01-01T00:00:15Z", "completionTime": "2026-01-01T00:00:30Z"}]}),
            ),
            cr(
                0,
                "unit",
                json!({"phase": "Succeeded", "reason": "Passed",
                "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:20Z",
                "counts": {"passed": 3, "failed": 0, "skipped": 0},
                "attempts": [{"number": 1, "podName": "r-unit-1", "exitCode": 0, "reason": "Completed",
                    "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:20Z"}]}),
            ),
            cr(
                2,
                "e2e",
                json!({"phase": "Skipped", "reason": "DependencyFailed"}),
            ),
        ];
        let shown = render(&run, &crs, &Lines::default(), now);
        let want = "\
TestLayerRun ci/r  layer fast  Failed  60s  5 passed, 1 failed, 0 skipped
├── unit  Succeeded  20s  3 passed, 0 failed, 0 skipped
│   └── attempt 1  Completed  20s  pod r-unit-1
├── api  Failed (TestsFailed)  30s  2 passed, 1 failed, 0 skipped
│   ├── attempt 1  exit code 1  12s  pod r-api-1
│   ├── attempt 2  exit code 1  15s  pod r-api-2
│   └── ✗ shop.cart::test_total — assert 1 == 2
└── e2e  Skipped (DependencyFailed)  -
";
        assert_eq!(shown, want, "\n{shown}");
    }

    #[test]
    fn a_category_waiting_for_a_shared_resource_shows_its_place_in_line() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let run: TestLayerRun = serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": "r", "namespace": "ci"},
            "spec": {"layer": "e2e", "config": {"inline": "layers: {}"}},
            "status": {"phase": "Running", "startTime": "2026-01-01T00:59:00Z"}
        }))
        .unwrap();
        let cr: CategoryRun = serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "CategoryRun",
            "metadata": {"name": "r-db", "namespace": "ci"},
            "spec": {"runName": "r", "layer": "e2e", "category": "db", "index": 0,
                "image": "busybox", "command": "true", "timeoutSeconds": 60},
            "status": {"phase": "Pending", "reason": "WaitingForResource",
                "resourceClaim": {"attempt": 1, "since": "2026-01-01T00:59:00Z",
                    "wants": [{"resource": "staging-db", "units": 1}]}}
        }))
        .unwrap();
        let mut lines = Lines::default();
        lines.0.insert(
            "staging-db".into(),
            serde_json::from_value(json!({"inUse": 1, "waiting": 2,
                "next": [{"holder": "o-x", "run": "o", "units": 1},
                         {"holder": "r-db", "run": "r", "units": 1}]}))
            .unwrap(),
        );
        let shown = render(&run, std::slice::from_ref(&cr), &lines, now);
        assert!(
            shown.ends_with(
                "└── db  Pending (WaitingForResource)  -\n    └── waiting for shared resources: staging-db: 2nd in line\n"
            ),
            "\n{shown}"
        );
        // Without the resource's status: what the claim says.
        let shown = render(&run, &[cr], &Lines::default(), now);
        assert!(
            shown.ends_with("    └── waiting for shared resources: staging-db\n"),
            "\n{shown}"
        );
    }
}
