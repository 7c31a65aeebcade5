//! Pure bookkeeping of attempts: what a CategoryRun's status records, brought
//! up to date with its Pods, and turned into the planner's observations.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::observe::{PodState, pod_state};
use crate::api::{AttemptStatus, CategoryRunStatus};
use crate::layer::LayerPlan;
use crate::plan::{AttemptObs, AttemptOutcome, CategoryObs, Cause, Phase, Terminal};

/// `stop` value of an attempt interrupted by suspension (started again later).
pub const INTERRUPTED: &str = "Interrupted";

/// What syncing found that needs I/O.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncNeeds {
    /// Attempts that ended just now: read their logs.
    pub ended: Vec<u32>,
    /// Attempts whose Pod is not in the cache: confirm with the API server
    /// before calling them lost.
    pub missing: Vec<u32>,
}

/// A timestamp read back from a status. `metav1.Time` keeps whole seconds, so
/// a stored time may be up to a second before the moment it records; reading
/// a whole-second time as the end of its second makes timeouts, deadlines and
/// backoffs at most a second late, never early.
pub fn stored(t: &Time) -> Timestamp {
    if t.0.subsec_nanosecond() == 0 {
        t.0.checked_add(k8s_openapi::jiff::SignedDuration::from_millis(999))
            .unwrap_or(t.0)
    } else {
        t.0
    }
}

/// Time `t` on a run's clock that started at `start`.
pub fn offset(start: &Timestamp, t: &Timestamp) -> Duration {
    let d = t.duration_since(*start);
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

fn finished_at(pod: &Pod) -> Option<Time> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .first()?
        .state
        .as_ref()?
        .terminated
        .as_ref()?
        .finished_at
        .clone()
}

/// Brings the recorded attempts up to date with the Pods of the category
/// (by attempt number): Pods the status does not know yet are added as
/// running, attempts whose Pod ended are completed.
pub fn sync_attempts(
    status: &mut CategoryRunStatus,
    pods: &BTreeMap<u32, &Pod>,
    now: &Time,
) -> SyncNeeds {
    let mut needs = SyncNeeds::default();
    let known = status.attempts.iter().map(|a| a.number).max().unwrap_or(0);
    for (&n, pod) in pods.range(known + 1..) {
        status.attempts.push(AttemptStatus {
            number: n,
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            exit_code: None,
            reason: None,
            message: None,
            infrastructure: false,
            stop: None,
            start_time: pod
                .metadata
                .creation_timestamp
                .clone()
                .or_else(|| Some(now.clone())),
            completion_time: None,
        });
    }
    for a in status
        .attempts
        .iter_mut()
        .filter(|a| a.completion_time.is_none())
    {
        match pods.get(&a.number) {
            Some(pod) => match pod_state(pod) {
                PodState::Ended(e) => {
                    a.exit_code = e.exit_code;
                    a.reason = Some(e.reason);
                    a.message = e.message;
                    a.infrastructure = matches!(e.outcome, AttemptOutcome::Failed { infra: true });
                    a.completion_time = Some(finished_at(pod).unwrap_or_else(|| now.clone()));
                    needs.ended.push(a.number);
                }
                PodState::Pending | PodState::Running => {}
            },
            None => needs.missing.push(a.number),
        }
    }
    status.attempt_count = status.attempts.len() as u32;
    needs
}

/// Completes an attempt whose Pod is gone: as stopped when the controller
/// stopped it, else as an infrastructure failure (someone deleted it, or its
/// node vanished).
pub fn complete_lost(status: &mut CategoryRunStatus, number: u32, now: &Time) {
    if let Some(a) = status
        .attempts
        .iter_mut()
        .find(|a| a.number == number && a.completion_time.is_none())
    {
        if a.stop.is_none() {
            a.reason = Some("PodDeleted".into());
            a.message = Some(format!("pod {} was deleted before it finished", a.pod_name));
            a.infrastructure = true;
        } else if a.reason.is_none() {
            a.reason = a.stop.clone();
        }
        a.completion_time = Some(now.clone());
    }
}

/// The planner's outcome of a completed attempt.
pub fn outcome(a: &AttemptStatus) -> AttemptOutcome {
    match a.stop.as_deref() {
        Some("TimedOut") => return AttemptOutcome::TimedOut,
        Some(_) => return AttemptOutcome::Stopped,
        None => {}
    }
    match a.reason.as_deref() {
        Some("Completed") => AttemptOutcome::Succeeded,
        Some("DeadlineExceeded") => AttemptOutcome::TimedOut,
        _ => AttemptOutcome::Failed {
            infra: a.infrastructure,
        },
    }
}

/// The cause behind a recorded reason code (the inverse of
/// [`crate::plan::describe::reason_code`]).
pub fn cause_from(layer: &LayerPlan, reason: &str, caused_by: Option<&str>) -> Option<Cause> {
    let by = || caused_by.and_then(|n| layer.index_of(n));
    Some(match reason {
        "Passed" => Cause::Passed,
        "TestsFailed" => Cause::TestsFailed,
        "InfrastructureFailed" => Cause::InfraFailed,
        "DeadlineExceeded" => Cause::Timeout,
        "LayerDeadlineExceeded" => Cause::LayerDeadline,
        "DependencyFailed" => Cause::DependencyFailed(by()?),
        "FailFast" => Cause::FailFast(by()?),
        "Cancelled" => Cause::CancelRequested,
        _ => return None,
    })
}

/// The category named by a cause, for `causedBy`.
pub fn caused_by(layer: &LayerPlan, cause: Cause) -> Option<String> {
    match cause {
        Cause::DependencyFailed(i) | Cause::FailFast(i) => {
            layer.categories.get(i).map(|c| c.name.clone())
        }
        _ => None,
    }
}

/// The terminal a stopped attempt ends its category in, recorded when the
/// stop was asked for (`None` for an interruption).
pub fn stop_terminal(layer: &LayerPlan, status: &CategoryRunStatus) -> Option<Terminal> {
    let a = status.attempts.last()?;
    let phase = match a.stop.as_deref()? {
        "TimedOut" => Phase::TimedOut,
        "Cancelled" => Phase::Cancelled,
        "Failed" => Phase::Failed,
        _ => return None,
    };
    recorded_terminal(layer, status, phase)
}

/// The terminal `phase` with the cause the status records for it.
fn recorded_terminal(
    layer: &LayerPlan,
    status: &CategoryRunStatus,
    phase: Phase,
) -> Option<Terminal> {
    let cause = cause_from(
        layer,
        status.reason.as_deref()?,
        status.caused_by.as_deref(),
    )?;
    Some(Terminal { phase, cause })
}

/// The planner's view of one category, from its status.
pub fn category_obs(
    layer: &LayerPlan,
    status: &CategoryRunStatus,
    run_start: &Timestamp,
) -> CategoryObs {
    let attempts = status
        .attempts
        .iter()
        .map(|a| AttemptObs {
            started_at: a
                .start_time
                .as_ref()
                .map_or(Duration::ZERO, |t| offset(run_start, &stored(t))),
            ended: a
                .completion_time
                .as_ref()
                .map(|t| (offset(run_start, &stored(t)), outcome(a))),
        })
        .collect();
    let terminal = status
        .phase
        .filter(|p| p.is_terminal())
        .and_then(|phase| recorded_terminal(layer, status, phase));
    CategoryObs { attempts, terminal }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{CategoryPlan, LayerSettings, Strategy};
    use serde_json::json;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn pod(n: u32, created: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": format!("r-c-{n}"), "creationTimestamp": created}, "status": status})).unwrap()
    }

    fn layer() -> LayerPlan {
        let mut b = CategoryPlan::new("b", Duration::from_secs(10));
        b.dependencies = vec![0];
        LayerPlan::new(
            LayerSettings::new("l", Strategy::HybridSmart, None),
            vec![CategoryPlan::new("a", Duration::from_secs(10)), b],
        )
        .unwrap()
    }

    #[test]
    fn pods_become_attempts_and_ends_are_recorded() {
        let mut st = CategoryRunStatus::default();
        let p1 = pod(
            1,
            "1970-01-01T00:01:40Z",
            json!({"phase": "Failed", "containerStatuses": [{"name": "test", "image": "i", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 2, "reason": "Error", "finishedAt": "1970-01-01T00:01:50Z"}}}]}),
        );
        let p2 = pod(2, "1970-01-01T00:02:00Z", json!({"phase": "Running"}));
        let pods = BTreeMap::from([(1, &p1), (2, &p2)]);
        let needs = sync_attempts(&mut st, &pods, &t(125));
        assert_eq!(
            needs,
            SyncNeeds {
                ended: vec![1],
                missing: vec![]
            }
        );
        assert_eq!(st.attempt_count, 2);
        let a1 = &st.attempts[0];
        assert_eq!(
            (
                a1.exit_code,
                a1.reason.as_deref(),
                a1.completion_time.clone()
            ),
            (Some(2), Some("ExitCode2"), Some(t(110)))
        );
        assert_eq!(outcome(a1), AttemptOutcome::Failed { infra: false });
        // Idempotent: a second sync changes nothing.
        let before = st.clone();
        assert_eq!(sync_attempts(&mut st, &pods, &t(130)), SyncNeeds::default());
        assert_eq!(st, before);
        // On the run's clock (started at 90 s, as stored: whole seconds read
        // as the end of their second, like the attempts' times).
        let obs = category_obs(&layer(), &st, &stored(&t(90)));
        assert_eq!(
            obs.attempts[0],
            AttemptObs {
                started_at: Duration::from_secs(10),
                ended: Some((
                    Duration::from_secs(20),
                    AttemptOutcome::Failed { infra: false }
                ))
            }
        );
        assert_eq!(
            obs.attempts[1],
            AttemptObs {
                started_at: Duration::from_secs(30),
                ended: None
            }
        );
        assert_eq!(obs.terminal, None);
    }

    #[test]
    fn stored_whole_seconds_are_read_as_late_as_they_may_be() {
        assert_eq!(stored(&t(5)), Timestamp::from_millisecond(5_999).unwrap());
        let precise = Time(Timestamp::from_millisecond(5_250).unwrap());
        assert_eq!(stored(&precise), precise.0);
    }

    #[test]
    fn lost_pods_and_stops() {
        let mut st = CategoryRunStatus::default();
        let p = pod(1, "1970-01-01T00:00:10Z", json!({"phase": "Running"}));
        sync_attempts(&mut st, &BTreeMap::from([(1, &p)]), &t(20));
        let needs = sync_attempts(&mut st, &BTreeMap::new(), &t(30));
        assert_eq!(needs.missing, vec![1]);
        complete_lost(&mut st, 1, &t(30));
        assert_eq!(
            outcome(&st.attempts[0]),
            AttemptOutcome::Failed { infra: true }
        );
        assert_eq!(st.attempts[0].reason.as_deref(), Some("PodDeleted"));

        // A stop asked for by the controller ends the category as recorded.
        let l = layer();
        let mut st = CategoryRunStatus::default();
        let p = pod(1, "1970-01-01T00:00:10Z", json!({"phase": "Running"}));
        sync_attempts(&mut st, &BTreeMap::from([(1, &p)]), &t(20));
        st.attempts[0].stop = Some("Cancelled".into());
        st.reason = Some("FailFast".into());
        st.caused_by = Some("a".into());
        complete_lost(&mut st, 1, &t(25));
        assert_eq!(outcome(&st.attempts[0]), AttemptOutcome::Stopped);
        assert_eq!(
            stop_terminal(&l, &st),
            Some(Terminal {
                phase: Phase::Cancelled,
                cause: Cause::FailFast(0)
            })
        );
        st.attempts[0].stop = Some("TimedOut".into());
        st.reason = Some("DeadlineExceeded".into());
        assert_eq!(outcome(&st.attempts[0]), AttemptOutcome::TimedOut);
        assert_eq!(
            stop_terminal(&l, &st),
            Some(Terminal {
                phase: Phase::TimedOut,
                cause: Cause::Timeout
            })
        );
        st.attempts[0].stop = Some(INTERRUPTED.into());
        assert_eq!(stop_terminal(&l, &st), None);
    }

    #[test]
    fn recorded_terminals_round_trip() {
        let l = layer();
        for (phase, cause) in [
            (Phase::Succeeded, Cause::Passed),
            (Phase::Failed, Cause::TestsFailed),
            (Phase::Failed, Cause::InfraFailed),
            (Phase::TimedOut, Cause::Timeout),
            (Phase::TimedOut, Cause::LayerDeadline),
            (Phase::Skipped, Cause::DependencyFailed(0)),
            (Phase::Cancelled, Cause::FailFast(0)),
            (Phase::Cancelled, Cause::CancelRequested),
        ] {
            let st = CategoryRunStatus {
                phase: Some(phase),
                reason: Some(crate::plan::describe::reason_code(cause).into()),
                caused_by: caused_by(&l, cause),
                ..CategoryRunStatus::default()
            };
            assert_eq!(
                category_obs(&l, &st, &t(0).0).terminal,
                Some(Terminal { phase, cause })
            );
        }
    }
}
