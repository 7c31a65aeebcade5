//! Pure reading of a Pod: is its attempt still going, and if not, how did it
//! end (exit code, reason, test or infrastructure failure)?

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::names::CONTAINER;
use crate::plan::AttemptOutcome;
use crate::words::AttemptReason;

/// Container waiting reasons that mean the attempt cannot start: an
/// infrastructure failure, retried as such.
const FATAL_WAITING: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Pod-level failure reasons that are the node's or the cluster's doing.
const INFRA_POD_REASONS: [&str; 8] = [
    "Evicted",
    "NodeLost",
    "Terminated",
    "Shutdown",
    "NodeShutdown",
    "UnexpectedAdmissionError",
    "OutOfcpu",
    "OutOfmemory",
];

/// How an attempt ended, as read from its Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEnd {
    /// For the planner.
    pub outcome: AttemptOutcome,
    /// Exit code of the test container, when it ran and exited.
    pub exit_code: Option<i32>,
    /// Why: `Completed`, `ExitCode1`, `OOMKilled`, `Evicted`,
    /// `DeadlineExceeded`, `ImagePullBackOff`, ...
    pub reason: AttemptReason,
    /// The termination message, or the Pod's status message.
    pub message: Option<String>,
}

/// Where an attempt's Pod stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Created, not running yet.
    Pending,
    /// The test container runs.
    Running,
    /// It ended.
    Ended(PodEnd),
}

/// The termination of the test container, once it ended.
pub fn terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let st = statuses
        .iter()
        .find(|s| s.name == CONTAINER)
        .or_else(|| statuses.first())?;
    st.state.as_ref()?.terminated.as_ref()
}

/// When the test container ended, as the kubelet recorded it.
pub fn finished_at(pod: &Pod) -> Option<Time> {
    terminated(pod)?.finished_at.clone()
}

/// When the test container started running, while it runs.
pub fn running_since(pod: &Pod) -> Option<Time> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let st = statuses.iter().find(|s| s.name == CONTAINER)?;
    st.state.as_ref()?.running.as_ref()?.started_at.clone()
}

fn fatal_waiting(pod: &Pod) -> Option<(String, Option<String>)> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|s| {
        let w = s.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.clone()?;
        FATAL_WAITING
            .contains(&reason.as_str())
            .then(|| (reason, w.message.clone()))
    })
}

/// The Pod's `DisruptionTarget` condition, when it is True: the reason of
/// the attempt's end (`Preempted`, `Evicted`, `NodeLost`, `Disrupted`) and
/// its message.
fn disruption(pod: &Pod) -> Option<(&'static str, Option<String>)> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")?;
    let reason = match c.reason.as_deref() {
        Some("PreemptionByScheduler" | "PreemptionByKubeScheduler") => "Preempted",
        Some("EvictionByEvictionAPI" | "TerminationByKubelet") => "Evicted",
        Some("DeletionByTaintManager" | "DeletionByPodGC") => "NodeLost",
        _ => "Disrupted",
    };
    Some((reason, nonempty(c.message.clone())))
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|m| !m.trim().is_empty())
}

/// Reads the state of an attempt from its Pod.
pub fn pod_state(pod: &Pod) -> PodState {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let pod_reason = status.and_then(|s| s.reason.clone());
    let pod_message = nonempty(status.and_then(|s| s.message.clone()));
    match phase {
        // The runtime marks a container OOMKilled when the kernel killed any
        // of its processes for memory: a child killed while the command went
        // on to exit 0 is not a pass the tests earned.
        "Succeeded" if terminated(pod).and_then(|t| t.reason.as_deref()) == Some("OOMKilled") => {
            let code = terminated(pod).map_or(0, |t| t.exit_code);
            PodState::Ended(PodEnd {
                outcome: AttemptOutcome::Failed { infra: false },
                exit_code: Some(code),
                reason: AttemptReason::OomKilled,
                message: Some(format!(
                    "a process of the test container was killed for memory (over its limit) \
                     while the command went on and exited {code}: raise the memory limit \
                     or find what used it"
                )),
            })
        }
        "Succeeded" => PodState::Ended(PodEnd {
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(terminated(pod).map_or(0, |t| t.exit_code)),
            reason: AttemptReason::Completed,
            message: terminated(pod).and_then(|t| nonempty(t.message.clone())),
        }),
        "Failed" => {
            if let Some(r) = pod_reason.as_deref() {
                if r == "DeadlineExceeded" {
                    return PodState::Ended(PodEnd {
                        outcome: AttemptOutcome::TimedOut,
                        exit_code: terminated(pod).map(|t| t.exit_code),
                        reason: AttemptReason::DeadlineExceeded,
                        message: pod_message,
                    });
                }
                if INFRA_POD_REASONS.contains(&r) {
                    return PodState::Ended(PodEnd {
                        outcome: AttemptOutcome::Failed { infra: true },
                        exit_code: terminated(pod).map(|t| t.exit_code),
                        reason: AttemptReason::from(r),
                        message: pod_message,
                    });
                }
            }
            if let Some((reason, message)) = disruption(pod) {
                // Preempted, drained, evicted or removed with its node: the
                // cluster's doing, whatever the container's exit code.
                return PodState::Ended(PodEnd {
                    outcome: AttemptOutcome::Failed { infra: true },
                    exit_code: terminated(pod).map(|t| t.exit_code),
                    reason: AttemptReason::from(reason),
                    message: message.or(pod_message),
                });
            }
            match terminated(pod) {
                Some(t) => {
                    let container_reason = t.reason.clone().unwrap_or_default();
                    let (infra, reason) = match container_reason.as_str() {
                        "OOMKilled" => (false, AttemptReason::OomKilled),
                        "ContainerStatusUnknown" | "ContainerCannotRun" | "StartError" => {
                            (true, AttemptReason::from(container_reason.as_str()))
                        }
                        _ => (false, AttemptReason::ExitCode(t.exit_code)),
                    };
                    PodState::Ended(PodEnd {
                        outcome: AttemptOutcome::Failed { infra },
                        exit_code: Some(t.exit_code),
                        reason,
                        message: nonempty(t.message.clone()).or(pod_message),
                    })
                }
                None => PodState::Ended(PodEnd {
                    outcome: AttemptOutcome::Failed { infra: true },
                    exit_code: None,
                    reason: AttemptReason::from(pod_reason.as_deref().unwrap_or("PodFailed")),
                    message: pod_message,
                }),
            }
        }
        "Running" => PodState::Running,
        _ => match fatal_waiting(pod) {
            Some((reason, message)) => PodState::Ended(PodEnd {
                outcome: AttemptOutcome::Failed { infra: true },
                exit_code: None,
                reason: AttemptReason::from(reason.as_str()),
                message: nonempty(message),
            }),
            None => PodState::Pending,
        },
    }
}

/// Whether the controller stopped `pod` already: deleted, or stopped and
/// kept ([`ANNOTATION_STOPPED_AT`](crate::api::names::ANNOTATION_STOPPED_AT)).
pub fn stopping(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() || stopped_at(pod).is_some()
}

/// When the controller stopped `pod` and kept it.
pub fn stopped_at(pod: &Pod) -> Option<Timestamp> {
    pod.annotations()
        .get(crate::api::names::ANNOTATION_STOPPED_AT)?
        .parse()
        .ok()
}

/// The `activeDeadlineSeconds` that stops `pod` at `now` while keeping it
/// (and its log): the whole seconds since its kubelet started it, at least
/// 1, never more than it has (the apiserver refuses a longer one). `None`
/// when only a delete stops it: no kubelet has it yet (not scheduled,
/// held by a scheduling gate, no start time), or its container ended.
pub fn keep_on_stop(pod: &Pod, now: Timestamp) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    spec.node_name.as_ref()?;
    let status = pod.status.as_ref()?;
    let started = status.start_time.as_ref()?.0;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let active = now.duration_since(started).as_secs().max(1);
    let before = spec.active_deadline_seconds.unwrap_or(i64::MAX);
    Some(active.min(before).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    fn ended(p: &Pod) -> PodEnd {
        match pod_state(p) {
            PodState::Ended(e) => e,
            other => panic!("expected an end, got {other:?}"),
        }
    }

    fn term(code: i32, reason: &str, message: Option<&str>) -> serde_json::Value {
        json!([{"name": "test", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": reason, "message": message}}}])
    }

    #[test]
    fn running_and_pending() {
        assert_eq!(
            pod_state(&pod(json!({"phase": "Running"}))),
            PodState::Running
        );
        assert_eq!(
            pod_state(&pod(json!({"phase": "Pending"}))),
            PodState::Pending
        );
        assert_eq!(pod_state(&pod(json!(null))), PodState::Pending);
        let creating = json!({"phase": "Pending", "containerStatuses": [{"name": "test", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]});
        assert_eq!(pod_state(&pod(creating)), PodState::Pending);
    }

    #[test]
    fn success_and_test_failures() {
        let ok = ended(&pod(
            json!({"phase": "Succeeded", "containerStatuses": term(0, "Completed", None)}),
        ));
        assert_eq!(
            (ok.outcome, ok.exit_code, ok.reason.to_string().as_str()),
            (AttemptOutcome::Succeeded, Some(0), "Completed")
        );
        let failed = ended(&pod(
            json!({"phase": "Failed", "containerStatuses": term(3, "Error", Some("1 failed"))}),
        ));
        assert_eq!(failed.outcome, AttemptOutcome::Failed { infra: false });
        assert_eq!(
            (
                failed.exit_code,
                failed.reason.to_string().as_str(),
                failed.message.as_deref()
            ),
            (Some(3), "ExitCode3", Some("1 failed"))
        );
        // A child killed for memory while the command exits 0: the runtime
        // says OOMKilled, the kubelet says Succeeded.
        let child = ended(&pod(
            json!({"phase": "Succeeded", "containerStatuses": term(0, "OOMKilled", None)}),
        ));
        assert_eq!(
            (
                child.outcome,
                child.exit_code,
                child.reason.to_string().as_str()
            ),
            (
                AttemptOutcome::Failed { infra: false },
                Some(0),
                "OOMKilled"
            )
        );
        assert!(
            child
                .message
                .as_deref()
                .is_some_and(|m| m.contains("killed for memory")),
            "{child:?}"
        );
        let oom = ended(&pod(
            json!({"phase": "Failed", "containerStatuses": term(137, "OOMKilled", None)}),
        ));
        assert_eq!(
            (oom.outcome, oom.reason.to_string().as_str()),
            (AttemptOutcome::Failed { infra: false }, "OOMKilled")
        );
    }

    #[test]
    fn infrastructure_failures_and_deadlines() {
        let evicted = ended(&pod(
            json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
        ));
        assert_eq!(evicted.outcome, AttemptOutcome::Failed { infra: true });
        assert_eq!(
            (
                evicted.reason.to_string().as_str(),
                evicted.message.as_deref()
            ),
            ("Evicted", Some("low on memory"))
        );
        let deadline = ended(&pod(
            json!({"phase": "Failed", "reason": "DeadlineExceeded"}),
        ));
        assert_eq!(
            (deadline.outcome, deadline.reason.to_string().as_str()),
            (AttemptOutcome::TimedOut, "DeadlineExceeded")
        );
        let unknown = ended(&pod(
            json!({"phase": "Failed", "containerStatuses": term(137, "ContainerStatusUnknown", None)}),
        ));
        assert_eq!(unknown.outcome, AttemptOutcome::Failed { infra: true });
        let pull = json!({"phase": "Pending", "containerStatuses": [{"name": "test", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]});
        let pull = ended(&pod(pull));
        assert_eq!(
            (pull.outcome, pull.reason.to_string().as_str()),
            (AttemptOutcome::Failed { infra: true }, "ImagePullBackOff")
        );
        let preempted = ended(&pod(json!({"phase": "Failed",
            "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                            "message": "preempted by a higher priority pod"}],
            "containerStatuses": term(137, "Error", None)})));
        assert_eq!(
            (
                preempted.outcome,
                preempted.reason.to_string().as_str(),
                preempted.exit_code,
                preempted.message.as_deref()
            ),
            (
                AttemptOutcome::Failed { infra: true },
                "Preempted",
                Some(137),
                Some("preempted by a higher priority pod")
            )
        );
        let bare = ended(&pod(json!({"phase": "Failed"})));
        assert_eq!(
            (bare.outcome, bare.reason.to_string().as_str()),
            (AttemptOutcome::Failed { infra: true }, "PodFailed")
        );
    }
}
