//! What a step's writes make happen that the metrics count: a run or a
//! category ending, a wait in a queue ending, a notification decided
//! without sending. Pure: the status as observed against the status the
//! step writes. Counted once the writes are applied, so a write that fails
//! (and is made again by a later step) is counted once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{AttemptStatus, CategoryRunStatus, NotificationState, TestLayerRunStatus};
use crate::controller::kit::outcome_metrics::{Happened, Queue, Tests};
use crate::controller::run::step::{Observed, Write};

/// Seconds from `a` to `b` (none when `b` is before `a`).
fn seconds(a: &Time, b: &Time) -> Option<f64> {
    let s = b.0.duration_since(a.0).as_secs_f64();
    (s >= 0.0).then_some(s)
}

/// What `writes`, applied over `observed`, make happen (`now`: the step's
/// time, which ends a wait that has no recorded end).
pub fn happened(observed: &Observed, writes: &[Write], now: Timestamp) -> Vec<Happened> {
    let run = &observed.run;
    let namespace = run.namespace().unwrap_or_default();
    let layer = run.spec.layer.clone();
    let mut out = Vec::new();
    for w in writes {
        match w {
            Write::RunStatus(after) => {
                let before = run.status.clone().unwrap_or_default();
                run_changes(&namespace, &layer, &before, after, now, &mut out);
            }
            Write::CategoryRunStatuses(statuses) => {
                for (name, after) in statuses {
                    let cr = observed
                        .category_runs
                        .iter()
                        .find(|c| c.name_any() == *name);
                    let before = cr.and_then(|c| c.status.clone()).unwrap_or_default();
                    let category = cr.map_or_else(|| name.clone(), |c| c.spec.category.clone());
                    let at = (namespace.as_str(), layer.as_str(), category.as_str());
                    category_changes(at, &before, after, &mut out);
                }
            }
            _ => {}
        }
    }
    out
}

fn run_changes(
    namespace: &str,
    layer: &str,
    before: &TestLayerRunStatus,
    after: &TestLayerRunStatus,
    now: Timestamp,
    out: &mut Vec<Happened>,
) {
    let ended = |s: &TestLayerRunStatus| s.phase.is_some_and(|p| p.is_terminal());
    if let Some(phase) = after.phase.filter(|_| ended(after) && !ended(before)) {
        let seconds = after
            .start_time
            .as_ref()
            .zip(after.completion_time.as_ref())
            .and_then(|(a, b)| seconds(a, b));
        out.push(Happened::RunEnded {
            namespace: namespace.into(),
            layer: layer.into(),
            outcome: phase.as_str(),
            seconds,
        });
    }
    if let (Some(since), None) = (&before.resource_wait_since, &after.resource_wait_since)
        && let Some(s) = seconds(since, &Time(now))
    {
        out.push(Happened::Waited {
            namespace: namespace.into(),
            layer: layer.into(),
            queue: Queue::Resource,
            seconds: s,
        });
    }
    for n in &after.notifications {
        let was_final = before
            .notifications
            .iter()
            .any(|b| b.target == n.target && b.state.is_final());
        let result = match n.state {
            NotificationState::Skipped => "skipped",
            NotificationState::Failed => "failed",
            NotificationState::Sent => "sent",
            NotificationState::Pending | NotificationState::Sending => continue,
        };
        if !was_final {
            out.push(Happened::Notified {
                kind: n.kind.clone(),
                result,
            });
        }
    }
}

fn category_changes(
    (namespace, layer, category): (&str, &str, &str),
    before: &CategoryRunStatus,
    after: &CategoryRunStatus,
    out: &mut Vec<Happened>,
) {
    for a in &after.attempts {
        let admitted_before = before
            .attempts
            .iter()
            .any(|b| b.number == a.number && b.admitted_time.is_some());
        if !admitted_before && let Some(s) = admission_wait(a) {
            out.push(Happened::Waited {
                namespace: namespace.into(),
                layer: layer.into(),
                queue: Queue::Kueue,
                seconds: s,
            });
        }
    }
    let ended = |s: &CategoryRunStatus| s.phase.is_some_and(|p| p.is_terminal());
    let Some(phase) = after.phase.filter(|_| ended(after) && !ended(before)) else {
        return;
    };
    let counts = after.counts.unwrap_or_default();
    out.push(Happened::CategoryEnded {
        namespace: namespace.into(),
        layer: layer.into(),
        category: category.into(),
        outcome: phase.as_str(),
        seconds: after
            .start_time
            .as_ref()
            .zip(after.completion_time.as_ref())
            .and_then(|(a, b)| seconds(a, b)),
        tests: Tests {
            passed: counts.passed,
            failed: counts.failed,
            skipped: counts.skipped,
            quarantined: after.quarantined_tests.total(),
            flaky: after.flaky_tests.total(),
        },
    });
}

/// How long an admitted attempt's Pod waited behind its scheduling gate.
fn admission_wait(a: &AttemptStatus) -> Option<f64> {
    seconds(a.start_time.as_ref()?, a.admitted_time.as_ref()?)
}
