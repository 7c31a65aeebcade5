//! Pure bookkeeping of attempts: what a CategoryRun's status records,
//! brought up to date with its Pods, and turned into the planner's
//! observations; the one place where recorded words become planner values.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::observed::NodeDown;
use crate::api::{AttemptStatus, AttemptStop, CategoryRunStatus};
use crate::controller::run::pod_state::{PodState, finished_at, pod_state, stopped_at};
use crate::layer::LayerPlan;
use crate::plan::{AttemptObs, AttemptOutcome, CategoryObs, Cause, Phase, Stop, Terminal};
use crate::words::{AttemptReason, Reason};

/// What syncing found that needs a fact only a request gives.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncNeeds {
    /// Attempts that ended just now: their logs are read.
    pub ended: Vec<u32>,
    /// Attempts whose Pod is not in the cache: the apiserver is asked before
    /// they are called lost.
    pub missing: Vec<u32>,
    /// Attempts that ended while their Pod may still start its container
    /// (an image that cannot be pulled): their Pods are deleted, so nothing
    /// runs outside the parallel limit and the budget when it can.
    pub delete: Vec<u32>,
    /// When a Pod that stays Terminating is next due to be called lost.
    pub wake: Option<Duration>,
}

/// When an attempt whose node stopped answering is given up.
#[derive(Debug, Clone, Copy)]
pub struct LostBounds<'a> {
    /// How long a Pod may stay Terminating past its deletion time
    /// (`terminationBoundSeconds`).
    pub terminating: Duration,
    /// How long a Pod's node may be not Ready before its attempt ends
    /// `NodeLost` (`nodeLostSeconds`).
    pub node_not_ready: Duration,
    /// The nodes that are not Ready, by name.
    pub down: &'a BTreeMap<String, NodeDown>,
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

/// Brings the recorded attempts up to date with the Pods of the category
/// (by attempt number): Pods the status does not know yet are added as
/// running, attempts whose Pod ended are completed. An attempt whose Pod the
/// apiserver refused (reason `PodCreateFailed`) has no Pod and is not lost
/// while it is not stopped (its Pod is being created); once its Pod exists
/// the refusal is over.
///
/// A Pod deleted by someone else (not stopped by the controller) that ends
/// is an infrastructure failure (`PodDeleted`), whatever its exit code; a
/// Pod that stays Terminating `bounds.terminating` past its deletion time
/// (its node does not answer) ends its attempt: as its stop says, or as
/// `NodeLost`. An attempt not stopped whose Pod's node has not been Ready
/// for `bounds.node_not_ready` ends `NodeLost` too, and its Pod is deleted
/// (the kubelet stops it if the node comes back).
pub fn sync_attempts(
    status: &mut CategoryRunStatus,
    pods: &BTreeMap<u32, &Pod>,
    now: &Time,
    bounds: LostBounds<'_>,
) -> SyncNeeds {
    let terminating_bound = bounds.terminating;
    let mut needs = SyncNeeds::default();
    let mut node_lost = Vec::new();
    let mut node_down = Vec::new();
    let known = status.attempts.iter().map(|a| a.number).max().unwrap_or(0);
    for (&n, pod) in pods.range(known + 1..) {
        status.attempts.push(AttemptStatus::new(
            n,
            pod.metadata.name.clone().unwrap_or_default(),
            pod.metadata
                .creation_timestamp
                .clone()
                .unwrap_or_else(|| now.clone()),
        ));
    }
    for a in status
        .attempts
        .iter_mut()
        .filter(|a| a.completion_time.is_none())
    {
        let refused = a.reason == Some(AttemptReason::PodCreateFailed);
        match pods.get(&a.number) {
            Some(pod) => {
                if refused {
                    // Created at last: the refusal is over.
                    a.reason = None;
                    a.message = None;
                }
                let deleting = pod.metadata.deletion_timestamp.as_ref();
                match pod_state(pod) {
                    PodState::Ended(e) => {
                        a.exit_code = e.exit_code;
                        a.reason = Some(e.reason);
                        a.message = e.message;
                        a.infrastructure =
                            matches!(e.outcome, AttemptOutcome::Failed { infra: true });
                        if deleting.is_some()
                            && a.stop.is_none()
                            && matches!(e.outcome, AttemptOutcome::Failed { infra: false })
                        {
                            // Deleted by someone else, killed on the way out.
                            a.reason = Some(AttemptReason::PodDeleted);
                            a.message = Some(format!(
                                "pod {} was deleted by someone else before it finished{}",
                                a.pod_name,
                                e.exit_code
                                    .map(|c| format!(" (exit code {c})"))
                                    .unwrap_or_default()
                            ));
                            a.infrastructure = true;
                        }
                        a.completion_time = Some(finished_at(pod).unwrap_or_else(|| now.clone()));
                        needs.ended.push(a.number);
                        if deleting.is_none() && !finished_phase(pod) {
                            needs.delete.push(a.number);
                        }
                    }
                    PodState::Pending | PodState::Running => {
                        // Behind a scheduling gate (a Kueue queue's
                        // admission), the timeout does not run; it counts
                        // from when the gate is seen gone.
                        let gated = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.scheduling_gates.as_ref())
                            .is_some_and(|g| !g.is_empty());
                        if gated {
                            a.gated = true;
                        } else if a.gated {
                            a.gated = false;
                            a.admitted_time.get_or_insert_with(|| now.clone());
                        }
                        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
                        let down = node.and_then(|n| bounds.down.get_key_value(n));
                        // Stopped and kept: its kubelet is due to end it
                        // within its grace period, as for a deletion.
                        let kept_by = stopped_at(pod).map(|at| {
                            let grace = (pod.spec.as_ref())
                                .and_then(|s| s.termination_grace_period_seconds)
                                .unwrap_or(30);
                            at + Duration::from_secs(grace.max(0).unsigned_abs())
                        });
                        let wait = if let Some(gone_by) = deleting.map(stored).or(kept_by) {
                            let past = offset(&gone_by, &now.0);
                            if past >= terminating_bound {
                                node_lost.push(a.number);
                                if deleting.is_none() {
                                    needs.delete.push(a.number);
                                }
                                None
                            } else {
                                Some(terminating_bound - past)
                            }
                        } else if let Some((node, d)) = down.filter(|_| a.stop.is_none()) {
                            let past = offset(&d.since, &now.0);
                            if past >= bounds.node_not_ready {
                                node_down.push((a.number, node.clone(), d.clone(), past));
                                None
                            } else {
                                Some(bounds.node_not_ready - past)
                            }
                        } else {
                            None
                        };
                        if let Some(wait) = wait {
                            needs.wake = Some(needs.wake.map_or(wait, |w| w.min(wait)));
                        }
                    }
                }
            }
            None if refused && a.stop.is_none() => {}
            None => needs.missing.push(a.number),
        }
    }
    for n in node_lost {
        complete_node_lost(status, n, now, terminating_bound);
    }
    for (n, node, down, past) in node_down {
        if let Some(a) = status.attempts.iter_mut().find(|a| a.number == n) {
            a.reason = Some(AttemptReason::from("NodeLost"));
            a.message = Some(format!(
                "node {node} has not been Ready for {} (Ready={}{}): the attempt is lost with it",
                crate::plan::describe::human_duration(past),
                down.status,
                down.message
                    .as_deref()
                    .map(|m| format!(": {}", one_line(m)))
                    .unwrap_or_default()
            ));
            a.infrastructure = true;
            a.completion_time = Some(now.clone());
            needs.delete.push(n);
        }
    }
    status.attempt_count = status.attempts.len() as u32;
    needs
}

/// `text` on one line, at most 200 characters.
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::controller::status::conditions::bounded(&line, 200)
}

/// Whether the Pod itself has ended (it runs nothing any more).
fn finished_phase(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Completes an attempt whose Pod stayed Terminating `bound` past its
/// deletion time: its node does not answer. A stopped attempt ends as its
/// stop said; any other is lost with its node (an infrastructure failure).
/// A node that comes back may briefly run the old container beside the
/// attempt that replaces it.
fn complete_node_lost(status: &mut CategoryRunStatus, number: u32, now: &Time, bound: Duration) {
    let stopped = status
        .attempts
        .iter()
        .any(|a| a.number == number && a.stop.is_some());
    if stopped {
        complete_lost(status, number, now);
        return;
    }
    if let Some(a) = status
        .attempts
        .iter_mut()
        .find(|a| a.number == number && a.completion_time.is_none())
    {
        a.reason = Some(AttemptReason::from("NodeLost"));
        a.message = Some(format!(
            "pod {} stayed Terminating {} past its grace period: its node does not answer",
            a.pod_name,
            crate::plan::describe::human_duration(bound)
        ));
        a.infrastructure = true;
        a.completion_time = Some(now.clone());
    }
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
        match &a.stop {
            None => {
                a.reason = Some(AttemptReason::PodDeleted);
                a.message = Some(format!("pod {} was deleted before it finished", a.pod_name));
                a.infrastructure = true;
            }
            Some(stop) => {
                let reason = match stop.reason {
                    Reason::DeadlineExceeded => AttemptReason::DeadlineExceeded,
                    _ => AttemptReason::Stopped,
                };
                a.reason.get_or_insert(reason);
            }
        }
        a.completion_time = Some(now.clone());
    }
}

/// The planner's outcome of a completed attempt as its Pod ended it (a
/// recorded stop decides what that means for the category, not this; but
/// a container that exited 0 on its own is a pass, which the planner
/// counts where the stop was a timeout decided after it, on a stale view).
pub fn outcome(a: &AttemptStatus) -> AttemptOutcome {
    if a.stop.is_some() && a.reason != Some(AttemptReason::Completed) {
        return AttemptOutcome::Stopped;
    }
    match a.reason {
        Some(AttemptReason::Completed) => AttemptOutcome::Succeeded,
        // Every failing test quarantined (checked when its report was read).
        Some(AttemptReason::ExitCode(_)) if a.passed_by_quarantine => AttemptOutcome::Succeeded,
        Some(AttemptReason::DeadlineExceeded) => AttemptOutcome::TimedOut,
        _ => AttemptOutcome::Failed {
            infra: a.infrastructure,
        },
    }
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

/// The record of a stop, as the status keeps it.
pub fn stop_record(layer: &LayerPlan, stop: Stop) -> AttemptStop {
    match stop {
        Stop::End(t) => AttemptStop {
            phase: Some(t.phase),
            reason: Reason::from(t.cause),
            caused_by: caused_by(layer, t.cause),
        },
        Stop::Interrupt => AttemptStop {
            phase: None,
            reason: Reason::Interrupted,
            caused_by: None,
        },
    }
}

/// The stop a record says; `None` when it does not name one this layer has
/// (then the attempt counts as interrupted and the category starts again).
pub fn stop_of(layer: &LayerPlan, r: &AttemptStop) -> Option<Stop> {
    match r.phase {
        None => Some(Stop::Interrupt),
        Some(phase) => terminal(layer, phase, &r.reason, r.caused_by.as_deref()).map(Stop::End),
    }
}

/// The terminal that a phase, a reason and a `causedBy` record.
pub fn terminal(
    layer: &LayerPlan,
    phase: Phase,
    reason: &Reason,
    caused_by: Option<&str>,
) -> Option<Terminal> {
    let by = caused_by.and_then(|n| layer.index_of(n));
    Some(Terminal {
        phase,
        cause: reason.cause(by)?,
    })
}

/// The planner's view of one category, from its status, at `now`. An
/// attempt whose Pod waits behind a scheduling gate counts as starting now
/// (its timeout does not run), and one admitted past its gate as started
/// when it was.
pub fn category_obs(
    layer: &LayerPlan,
    status: &CategoryRunStatus,
    run_start: &Timestamp,
    now: &Timestamp,
) -> CategoryObs {
    let attempts = status
        .attempts
        .iter()
        .map(|a| AttemptObs {
            started_at: if a.gated && a.completion_time.is_none() {
                offset(run_start, now)
            } else {
                a.admitted_time
                    .as_ref()
                    .or(a.start_time.as_ref())
                    .map_or(Duration::ZERO, |t| offset(run_start, &stored(t)))
            },
            stop: a.stop.as_ref().and_then(|r| stop_of(layer, r)),
            ended: a
                .completion_time
                .as_ref()
                .map(|t| (offset(run_start, &stored(t)), outcome(a))),
        })
        .collect();
    let terminal = status.phase.filter(|p| p.is_terminal()).and_then(|phase| {
        terminal(
            layer,
            phase,
            status.reason.as_ref()?,
            status.caused_by.as_deref(),
        )
    });
    CategoryObs {
        attempts,
        terminal,
        granted: false,
    }
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
        let needs = sync_attempts(&mut st, &pods, &t(125), BOUND);
        assert_eq!(
            needs,
            SyncNeeds {
                ended: vec![1],
                ..SyncNeeds::default()
            }
        );
        assert_eq!(st.attempt_count, 2);
        let a1 = &st.attempts[0];
        assert_eq!(
            (a1.exit_code, a1.reason.clone(), a1.completion_time.clone()),
            (Some(2), Some(AttemptReason::ExitCode(2)), Some(t(110)))
        );
        assert_eq!(outcome(a1), AttemptOutcome::Failed { infra: false });
        // Idempotent: a second sync changes nothing.
        let before = st.clone();
        assert_eq!(
            sync_attempts(&mut st, &pods, &t(130), BOUND),
            SyncNeeds::default()
        );
        assert_eq!(st, before);
        // On the run's clock (started at 90 s, as stored: whole seconds read
        // as the end of their second, like the attempts' times).
        let obs = category_obs(&layer(), &st, &stored(&t(90)), &stored(&t(90)));
        assert_eq!(
            obs.attempts[0],
            AttemptObs {
                started_at: Duration::from_secs(10),
                stop: None,
                ended: Some((
                    Duration::from_secs(20),
                    AttemptOutcome::Failed { infra: false }
                ))
            }
        );
        assert_eq!(
            obs.attempts[1],
            AttemptObs::running(Duration::from_secs(30))
        );
        assert_eq!(obs.terminal, None);
    }

    #[test]
    fn stored_whole_seconds_are_read_as_late_as_they_may_be() {
        assert_eq!(stored(&t(5)), Timestamp::from_millisecond(5_999).unwrap());
        let precise = Time(Timestamp::from_millisecond(5_250).unwrap());
        assert_eq!(stored(&precise), precise.0);
    }

    const NONE_DOWN: BTreeMap<String, NodeDown> = BTreeMap::new();
    const BOUND: LostBounds<'static> = LostBounds {
        terminating: Duration::from_secs(60),
        node_not_ready: Duration::from_secs(60),
        down: &NONE_DOWN,
    };

    fn deleted(mut p: Pod, at: i64) -> Pod {
        p.metadata.deletion_timestamp = Some(t(at));
        p
    }

    #[test]
    fn a_pod_deleted_by_someone_else_is_an_infrastructure_failure() {
        let mut st = CategoryRunStatus::default();
        let p = pod(1, "1970-01-01T00:00:10Z", json!({"phase": "Running"}));
        sync_attempts(&mut st, &BTreeMap::from([(1, &p)]), &t(20), BOUND);
        let killed = deleted(
            pod(
                1,
                "1970-01-01T00:00:10Z",
                json!({"phase": "Failed", "containerStatuses": [{"name": "test", "image": "i", "imageID": "",
                    "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 143, "reason": "Error"}}}]}),
            ),
            40,
        );
        let needs = sync_attempts(&mut st, &BTreeMap::from([(1, &killed)]), &t(31), BOUND);
        assert_eq!(needs.ended, vec![1]);
        assert!(needs.delete.is_empty());
        let a = &st.attempts[0];
        assert_eq!(a.reason, Some(AttemptReason::PodDeleted));
        assert_eq!(a.exit_code, Some(143));
        assert_eq!(outcome(a), AttemptOutcome::Failed { infra: true });

        // Stopped by the controller, the same end is the stop's.
        let mut st = CategoryRunStatus::default();
        sync_attempts(&mut st, &BTreeMap::from([(1, &p)]), &t(20), BOUND);
        st.attempts[0].stop = Some(stop_record(&layer(), Stop::Interrupt));
        sync_attempts(&mut st, &BTreeMap::from([(1, &killed)]), &t(31), BOUND);
        assert_eq!(outcome(&st.attempts[0]), AttemptOutcome::Stopped);
        assert_eq!(st.attempts[0].reason, Some(AttemptReason::ExitCode(143)));
    }

    #[test]
    fn an_image_that_cannot_be_pulled_ends_the_attempt_and_its_pod() {
        let mut st = CategoryRunStatus::default();
        let pull = pod(
            1,
            "1970-01-01T00:00:10Z",
            json!({"phase": "Pending", "containerStatuses": [{"name": "test", "image": "i", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
        );
        let needs = sync_attempts(&mut st, &BTreeMap::from([(1, &pull)]), &t(20), BOUND);
        assert_eq!((needs.ended, needs.delete), (vec![1], vec![1]));
        assert_eq!(
            outcome(&st.attempts[0]),
            AttemptOutcome::Failed { infra: true }
        );
    }

    #[test]
    fn a_pod_that_stays_terminating_is_lost_after_the_bound() {
        let running = pod(1, "1970-01-01T00:00:10Z", json!({"phase": "Running"}));
        let stuck = deleted(running.clone(), 30);
        // Not yet: the step looks again when the bound is reached.
        let mut st = CategoryRunStatus::default();
        sync_attempts(&mut st, &BTreeMap::from([(1, &running)]), &t(20), BOUND);
        let needs = sync_attempts(&mut st, &BTreeMap::from([(1, &stuck)]), &t(60), BOUND);
        // (A deletion time in whole seconds is read as late as it may be.)
        assert_eq!(needs.wake, Some(Duration::from_millis(30_999)));
        assert!(st.attempts[0].completion_time.is_none());
        // Past it: lost with its node.
        sync_attempts(&mut st, &BTreeMap::from([(1, &stuck)]), &t(91), BOUND);
        let a = &st.attempts[0];
        assert_eq!(
            a.reason.as_ref().map(|r| r.to_string()).as_deref(),
            Some("NodeLost")
        );
        assert_eq!(outcome(a), AttemptOutcome::Failed { infra: true });
        assert_eq!(a.completion_time, Some(t(91)));
        // A stopped attempt ends as its stop said.
        let mut st = CategoryRunStatus::default();
        sync_attempts(&mut st, &BTreeMap::from([(1, &running)]), &t(20), BOUND);
        let timeout = Stop::End(Terminal {
            phase: Phase::TimedOut,
            cause: Cause::Timeout,
        });
        st.attempts[0].stop = Some(stop_record(&layer(), timeout));
        sync_attempts(&mut st, &BTreeMap::from([(1, &stuck)]), &t(91), BOUND);
        assert_eq!(outcome(&st.attempts[0]), AttemptOutcome::Stopped);
        assert_eq!(st.attempts[0].reason, Some(AttemptReason::DeadlineExceeded));
    }

    #[test]
    fn an_attempt_on_a_node_not_ready_past_the_bound_is_lost_and_its_pod_deleted() {
        let mut on_node = pod(1, "1970-01-01T00:00:10Z", json!({"phase": "Running"}));
        on_node.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some("n1".into()),
            ..Default::default()
        });
        let down = BTreeMap::from([(
            "n1".to_string(),
            NodeDown {
                since: Timestamp::from_second(40).unwrap(),
                status: "Unknown".into(),
                message: Some("Kubelet stopped\nposting node status.".into()),
            },
        )]);
        let bounds = LostBounds {
            down: &down,
            ..BOUND
        };
        let mut st = CategoryRunStatus::default();
        // Another node down changes nothing.
        let other = BTreeMap::from([("n2".to_string(), down["n1"].clone())]);
        let needs = sync_attempts(
            &mut st,
            &BTreeMap::from([(1, &on_node)]),
            &t(200),
            LostBounds {
                down: &other,
                ..BOUND
            },
        );
        assert_eq!((needs.wake, needs.delete.len()), (None, 0));
        // Not yet: the step looks again when the bound is reached.
        let needs = sync_attempts(&mut st, &BTreeMap::from([(1, &on_node)]), &t(70), bounds);
        assert_eq!(needs.wake, Some(Duration::from_secs(30)));
        assert!(st.attempts[0].completion_time.is_none());
        // At the bound: lost, its Pod deleted, no log read from a dead node.
        let needs = sync_attempts(&mut st, &BTreeMap::from([(1, &on_node)]), &t(100), bounds);
        assert_eq!((needs.delete, needs.ended), (vec![1], vec![]));
        let a = &st.attempts[0];
        assert_eq!(
            a.reason.as_ref().map(|r| r.to_string()).as_deref(),
            Some("NodeLost")
        );
        assert_eq!(outcome(a), AttemptOutcome::Failed { infra: true });
        assert_eq!(
            a.message.as_deref(),
            Some(
                "node n1 has not been Ready for 1m (Ready=Unknown: Kubelet stopped posting node status.): the attempt is lost with it"
            )
        );
        // A stopped attempt is left to its stop (and the Terminating bound).
        let mut st = CategoryRunStatus::default();
        sync_attempts(&mut st, &BTreeMap::from([(1, &on_node)]), &t(20), BOUND);
        st.attempts[0].stop = Some(stop_record(&layer(), Stop::Interrupt));
        let needs = sync_attempts(&mut st, &BTreeMap::from([(1, &on_node)]), &t(100), bounds);
        assert!(needs.delete.is_empty() && st.attempts[0].completion_time.is_none());
    }

    #[test]
    fn lost_pods_and_stops() {
        let mut st = CategoryRunStatus::default();
        let p = pod(1, "1970-01-01T00:00:10Z", json!({"phase": "Running"}));
        sync_attempts(&mut st, &BTreeMap::from([(1, &p)]), &t(20), BOUND);
        let needs = sync_attempts(&mut st, &BTreeMap::new(), &t(30), BOUND);
        assert_eq!(needs.missing, vec![1]);
        complete_lost(&mut st, 1, &t(30));
        assert_eq!(
            outcome(&st.attempts[0]),
            AttemptOutcome::Failed { infra: true }
        );
        assert_eq!(st.attempts[0].reason, Some(AttemptReason::PodDeleted));

        // A stop recorded by the controller round-trips to what the planner asked.
        let l = layer();
        for stop in [
            Stop::End(Terminal {
                phase: Phase::Cancelled,
                cause: Cause::FailFast(0),
            }),
            Stop::End(Terminal {
                phase: Phase::TimedOut,
                cause: Cause::Timeout,
            }),
            Stop::Interrupt,
        ] {
            let mut st = CategoryRunStatus::default();
            let p = pod(1, "1970-01-01T00:00:10Z", json!({"phase": "Running"}));
            sync_attempts(&mut st, &BTreeMap::from([(1, &p)]), &t(20), BOUND);
            st.attempts[0].stop = Some(stop_record(&l, stop));
            complete_lost(&mut st, 1, &t(25));
            assert_eq!(outcome(&st.attempts[0]), AttemptOutcome::Stopped);
            let obs = category_obs(&l, &st, &t(0).0, &t(0).0);
            assert_eq!(obs.attempts[0].stop, Some(stop));
            let expected = match stop {
                Stop::End(t) if t.cause == Cause::Timeout => AttemptReason::DeadlineExceeded,
                _ => AttemptReason::Stopped,
            };
            assert_eq!(st.attempts[0].reason, Some(expected));
        }
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
                reason: Some(Reason::from(cause)),
                caused_by: caused_by(&l, cause),
                ..CategoryRunStatus::default()
            };
            assert_eq!(
                category_obs(&l, &st, &t(0).0, &t(0).0).terminal,
                Some(Terminal { phase, cause })
            );
        }
    }
}
