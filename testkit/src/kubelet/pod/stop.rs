//! Stopping a Pod's container: on deletion (SIGTERM, then SIGKILL when the
//! grace period runs out), on drain or preemption (SIGKILL), and before it
//! ever started.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::ending::{Ending, Halt, Stop};
use super::status::condition;
use super::worker::PodWorker;
use crate::kubelet::KubeletEventKind;
use crate::kubelet::KubeletNoteKind;
use crate::kubelet::script::OnSigterm;

/// Default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The grace period the apiserver gave this deletion.
fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    Duration::from_secs(secs.max(0).unsigned_abs())
}

impl PodWorker {
    /// Runs the container until it ends as scripted, or is stopped; returns
    /// how and when it ended.
    pub(super) async fn run_container(
        &mut self,
        natural: Option<Instant>,
    ) -> Result<(Ending, Instant), Halt> {
        match self.until(natural).await {
            None => Ok((Ending::Natural, Instant::now())),
            Some(Stop::Preempted) => {
                self.note(KubeletNoteKind::Sigkill);
                Ok((Ending::Killed, Instant::now()))
            }
            Some(Stop::Gone) => {
                // Deleted with no grace: the container is killed; nobody to
                // tell.
                self.note(KubeletNoteKind::Sigkill);
                self.record(KubeletEventKind::Terminated(137), Instant::now());
                Err(Halt::Gone)
            }
            Some(Stop::Deleted) => self.terminate(natural).await,
            // As for a deletion, but the Pod stays.
            Some(Stop::Deadline) => self.terminate(natural).await,
        }
    }

    /// The Pod was deleted while its container ran: SIGTERM, and SIGKILL
    /// when the grace period runs out.
    async fn terminate(&mut self, natural: Option<Instant>) -> Result<(Ending, Instant), Halt> {
        // A dead kubelet sends no signal; the container runs on.
        self.wait_up().await?;
        if let Some(n) = natural
            && n <= Instant::now()
        {
            return Ok((Ending::Natural, n));
        }
        let drained = self
            .sh
            .drains
            .lock()
            .map(|d| d.contains(&self.uid))
            .unwrap_or(false);
        if drained {
            self.note(KubeletNoteKind::Sigkill);
            return Ok((Ending::Killed, Instant::now()));
        }
        let grace = grace_of(&self.pod);
        self.note(KubeletNoteKind::Sigterm {
            grace_seconds: i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
        });
        let signalled = Instant::now();
        let mut kill_at = signalled + grace;
        let exit = match self.script.sigterm {
            OnSigterm::Exit { after, code } => Some((signalled + after, code)),
            OnSigterm::Ignore => None,
        };
        loop {
            let mut next = (kill_at, Ending::Killed);
            if let Some((at, code)) = exit
                && at < next.0
            {
                next = (at, Ending::Term(code));
            }
            if let Some(n) = natural
                && n <= next.0
            {
                next = (n, Ending::Natural);
            }
            let woke = tokio::time::timeout_at(next.0.into(), async {
                tokio::select! {
                    r = self.pod_rx.changed() => Ok(r.is_ok()),
                    c = self.cmd_rx.recv() => Err(c.is_some()),
                }
            })
            .await;
            match woke {
                Err(_elapsed) => {
                    if next.1 == Ending::Killed {
                        self.note(KubeletNoteKind::Sigkill);
                    }
                    return Ok((next.1, next.0));
                }
                Ok(Ok(true)) => {
                    self.take_pod(true);
                    // A new deletion may shorten the grace period.
                    kill_at = kill_at.min(Instant::now() + grace_of(&self.pod));
                }
                Ok(Ok(false)) | Ok(Err(false)) => {
                    self.note(KubeletNoteKind::Sigkill);
                    self.record(KubeletEventKind::Terminated(137), Instant::now());
                    return Err(Halt::Gone);
                }
                Ok(Err(true)) => {
                    self.note(KubeletNoteKind::Sigkill);
                    return Ok((Ending::Killed, Instant::now()));
                }
            }
        }
    }

    /// Stopped before the container ran.
    pub(super) async fn stopped_before_start(&mut self, stop: Stop) -> Result<(), Halt> {
        match stop {
            Stop::Gone => Err(Halt::Gone),
            // Nothing runs yet: the deletion is finished at once.
            Stop::Deleted => self.finish().await,
            Stop::Preempted | Stop::Deadline => {
                // Never started: a kubelet reports it as it cannot find it.
                let uid = self.uid.clone();
                let statuses: Vec<_> = self
                    .containers
                    .iter()
                    .map(|(c, image)| json!({"name": c, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
                        "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                            "message": "The container could not be located when the pod was terminated",
                            "containerID": format!("test://{uid}-{c}")}}}))
                    .collect();
                let mut status = json!({"phase": "Failed",
                    "conditions": [condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", false), condition("Ready", false)],
                    "containerStatuses": statuses});
                if self.deadline_hit {
                    status["reason"] = json!("DeadlineExceeded");
                    status["message"] =
                        json!("Pod was active on the node longer than the specified deadline");
                }
                self.set_status(status).await?;
                self.record(KubeletEventKind::Terminated(137), Instant::now());
                self.finish().await
            }
        }
    }
}
