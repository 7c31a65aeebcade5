//! Human-readable reasons, for status, events and reports.

use super::state::{Cause, Terminal, WaitReason};
use crate::layer::LayerPlan;

/// A sentence saying why a category ended as it did.
pub fn describe_terminal(layer: &LayerPlan, t: Terminal) -> String {
    let name = |i: usize| {
        layer
            .categories
            .get(i)
            .map_or_else(|| format!("#{i}"), |c| format!("{:?}", c.name))
    };
    match t.cause {
        Cause::Passed => "passed".into(),
        Cause::TestsFailed => "tests failed and no retries were left".into(),
        Cause::InfraFailed => "the infrastructure failed and no retries were left".into(),
        Cause::Timeout => "ran past its timeout".into(),
        Cause::LayerDeadline => match layer.settings.deadline {
            Some(d) => format!("the layer deadline of {} passed", human_duration(d)),
            None => "the layer deadline passed".into(),
        },
        Cause::DependencyFailed(d) => format!("dependency {} did not succeed", name(d)),
        Cause::FailFast(f) => format!("fail-fast: {} failed", name(f)),
        Cause::CancelRequested => "the run was cancelled".into(),
    }
}

/// The sentence a category's end is reported with, by both executors:
/// [`describe_terminal`], and for a failure the last attempt's reason and
/// the number of attempts (`tests failed and no retries were left (exit code
/// 1, 2 attempts)`).
pub fn describe_end(
    layer: &LayerPlan,
    t: Terminal,
    last_attempt: Option<&crate::words::AttemptReason>,
    attempts: usize,
) -> String {
    let base = describe_terminal(layer, t);
    match (t.cause, last_attempt) {
        (Cause::TestsFailed | Cause::InfraFailed, Some(why)) => {
            let n = if attempts == 1 { "attempt" } else { "attempts" };
            format!("{base} ({}, {attempts} {n})", why.describe())
        }
        _ => base,
    }
}

/// A sentence saying why a category waits.
pub fn describe_wait(layer: &LayerPlan, w: WaitReason) -> String {
    match w {
        WaitReason::Dependency(d) => format!(
            "waiting for {:?}",
            layer.categories.get(d).map_or("?", |c| c.name.as_str())
        ),
        WaitReason::Slot => "waiting for a free slot".into(),
        WaitReason::Budget => "waiting for CPU or memory budget".into(),
        WaitReason::Backoff(_) => "backing off before a retry".into(),
        WaitReason::Resource => "waiting for a shared resource".into(),
        WaitReason::Hold => "held".into(),
    }
}

/// `1h2m`, `3m4s`, `5.2s`, `120ms`.
pub fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s < 60 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    match (h, s) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{m}m{s}s"),
        (_, _) if m == 0 => format!("{h}h"),
        _ => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ends_name_the_last_attempt_of_a_failure() {
        let l = LayerPlan::new(
            crate::layer::LayerSettings::new("l", crate::layer::Strategy::Sequential, None),
            vec![crate::layer::CategoryPlan::new("a", Duration::from_secs(1))],
        )
        .unwrap();
        let failed = Terminal {
            phase: crate::plan::Phase::Failed,
            cause: Cause::TestsFailed,
        };
        let why = crate::words::AttemptReason::ExitCode(1);
        assert_eq!(
            describe_end(&l, failed, Some(&why), 2),
            "tests failed and no retries were left (exit code 1, 2 attempts)"
        );
        let passed = Terminal {
            phase: crate::plan::Phase::Succeeded,
            cause: Cause::Passed,
        };
        assert_eq!(describe_end(&l, passed, None, 1), "passed");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_millis(120)), "120ms");
        assert_eq!(human_duration(Duration::from_millis(5200)), "5.2s");
        assert_eq!(human_duration(Duration::from_secs(120)), "2m");
        assert_eq!(human_duration(Duration::from_secs(184)), "3m4s");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h2m");
    }
}
