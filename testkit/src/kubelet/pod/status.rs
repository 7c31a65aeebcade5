//! What a Pod's worker writes to the Pod status: waiting on image pulls
//! (and the pull failures a script asks for), running, and the container's
//! end with the Pod's terminal phase.

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::ending::{Ending, Halt, Stop};
use super::worker::PodWorker;
use crate::kubelet::logs::ContainerLog;
use crate::kubelet::script::PodEnd;
use crate::kubelet::shared::now;
use crate::kubelet::{KubeletEventKind, KubeletNoteKind};

pub(super) fn condition(t: &str, ok: bool) -> serde_json::Value {
    json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now()})
}

impl PodWorker {
    pub(super) async fn set_status(&mut self, status: serde_json::Value) -> Result<(), Halt> {
        // A strategic merge keeps conditions the kubelet does not own
        // (DisruptionTarget); the uid makes a write to a new Pod of the same
        // name fail.
        let patch = json!({"metadata": {"uid": self.uid}, "status": status});
        // As a kubelet's status manager: a write the apiserver did not answer
        // (it restarts, etcd is away) or turned away for now (429: its
        // storage is initializing after an etcd restart) is tried again, for
        // up to a minute.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            // A node that stops answering writes nothing until it is back.
            self.wait_up().await?;
            let r = self
                .sh
                .pods
                .patch_status(
                    &self.name,
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await;
            match r {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code < 500 && e.code != 429 => {
                    return Err(kube::Error::Api(e).into());
                }
                Err(e) if std::time::Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            }
        }
    }

    fn host_ip(&self) -> String {
        format!(
            "10.1.0.{}",
            self.node
                .rsplit('-')
                .next()
                .and_then(|i| i.parse::<u32>().ok())
                .unwrap_or(0)
                % 250
                + 1
        )
    }

    fn waiting_status(&self, reason: &str) -> serde_json::Value {
        let statuses: Vec<_> = self
            .containers
            .iter()
            .map(|(c, image)| {
                let message = match reason {
                    "ImagePullBackOff" => format!("Back-off pulling image {image:?}"),
                    _ => format!("failed to pull image {image:?}: not found"),
                };
                json!({"name": c, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
                    "state": {"waiting": {"reason": reason, "message": message}}})
            })
            .collect();
        json!({"phase": "Pending", "hostIP": self.host_ip(), "startTime": now(),
            "conditions": [condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", false), condition("Ready", false)],
            "containerStatuses": statuses})
    }

    pub(super) async fn write_waiting(&mut self, reason: &str) -> Result<(), Halt> {
        let status = self.waiting_status(reason);
        self.set_status(status).await?;
        self.note(KubeletNoteKind::ImagePull(reason.to_string()));
        Ok(())
    }

    /// `ErrImagePull`, then `ImagePullBackOff` with growing back-offs, until
    /// the pull succeeds.
    pub(super) async fn pull_failures(&mut self) -> Result<Option<Stop>, Halt> {
        let succeeds = Instant::now() + self.script.pull_fails_for;
        let mut backoff = Duration::from_millis(500);
        loop {
            self.write_waiting("ErrImagePull").await?;
            let next = (Instant::now() + Duration::from_millis(300)).min(succeeds);
            if let Some(stop) = self.until(Some(next)).await {
                return Ok(Some(stop));
            }
            if Instant::now() >= succeeds {
                return Ok(None);
            }
            self.write_waiting("ImagePullBackOff").await?;
            let next = (Instant::now() + backoff).min(succeeds);
            if let Some(stop) = self.until(Some(next)).await {
                return Ok(Some(stop));
            }
            if Instant::now() >= succeeds {
                return Ok(None);
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    pub(super) async fn start_container(&mut self) -> Result<(), Halt> {
        self.wait_up().await?;
        // The container runs from here; its status is written below.
        let at = Instant::now();
        let started = now();
        let uid = self.uid.clone();
        let running: Vec<_> = self
            .containers
            .iter()
            .map(|(c, image)| json!({"name": c, "image": image, "imageID": format!("test://{image}"), "containerID": format!("test://{uid}-{c}"),
                "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": started}}}))
            .collect();
        let host_ip = self.host_ip();
        let ip = self.ip.clone();
        self.set_status(json!({"phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}], "startTime": started,
            "conditions": [condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", true), condition("Ready", true)],
            "containerStatuses": running}))
        .await?;
        self.started = Some(started);
        self.started_at.get_or_insert(at);
        self.record(KubeletEventKind::Running, at);
        if let (Ok(mut g), Some(ns)) = (self.sh.store.lock(), self.pod.metadata.namespace.clone()) {
            for (i, (c, _)) in self.containers.iter().enumerate() {
                g.insert(
                    (ns.clone(), self.name.clone(), c.clone()),
                    ContainerLog {
                        lines: if i == 0 {
                            self.script.logs.clone()
                        } else {
                            Vec::new()
                        },
                        serving: self.script.log_serving.clone(),
                        node: self.node.clone(),
                    },
                );
            }
        }
        Ok(())
    }

    /// The termination message: the scripted one, or the log tail for
    /// `FallbackToLogsOnError`.
    fn message(&self, code: i32) -> Option<String> {
        if let PodEnd::Refused(why) = &self.script.end {
            return Some(why.clone());
        }
        let fallback = (code != 0)
            .then(|| {
                let policy = self
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.termination_message_policy.clone());
                (policy.as_deref() == Some("FallbackToLogsOnError")).then(|| {
                    let lines = &self.script.logs[self.script.logs.len().saturating_sub(80)..];
                    let text = String::from_utf8_lossy(&lines.join(&b'\n')).into_owned();
                    let cut = text.len().saturating_sub(2048);
                    text[text
                        .char_indices()
                        .map(|(i, _)| i)
                        .find(|&i| i >= cut)
                        .unwrap_or(text.len())..]
                        .to_string()
                })
            })
            .flatten();
        self.script.message.clone().or(fallback)
    }

    /// Writes the container's end and the Pod's terminal phase.
    pub(super) async fn write_end(&mut self, ending: Ending, at: Instant) -> Result<(), Halt> {
        let evicted = ending == Ending::Natural && self.script.end == PodEnd::Evicted;
        let (code, reason) = match (ending, &self.script.end) {
            (Ending::Natural, PodEnd::Exit(0)) => (0, "Completed"),
            (Ending::Natural, PodEnd::Exit(c)) => (*c, "Error"),
            (Ending::Natural, PodEnd::OomKilled) => (137, "OOMKilled"),
            (Ending::Natural, PodEnd::Refused(_)) => (128, "StartError"),
            (Ending::Natural, _) => (137, "ContainerStatusUnknown"),
            (Ending::Term(0), _) => (0, "Completed"),
            (Ending::Term(c), _) => (c, "Error"),
            (Ending::Killed, _) => (137, "Error"),
        };
        if evicted {
            // The eviction manager marks the Pod before it ends it.
            self.set_status(json!({"conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                "message": "The node was low on resource: memory.", "lastTransitionTime": now()}]}))
            .await?;
            self.note(KubeletNoteKind::DisruptionTarget(
                "TerminationByKubelet".into(),
            ));
        }
        let message = self.message(code);
        let started = self.started.clone().unwrap_or_else(now);
        let finished = now();
        let uid = self.uid.clone();
        let terminated: Vec<_> = self
            .containers
            .iter()
            .enumerate()
            .map(|(i, (c, image))| {
                let mut t = json!({"exitCode": if i == 0 { code } else { 0 }, "reason": if i == 0 { reason } else { "Completed" },
                    "startedAt": started, "finishedAt": finished, "containerID": format!("test://{uid}-{c}")});
                if i == 0
                    && let Some(m) = &message
                {
                    t["message"] = json!(m);
                }
                json!({"name": c, "image": image, "imageID": format!("test://{image}"), "ready": false, "restartCount": 0, "started": false,
                    "state": {"terminated": t}})
            })
            .collect();
        let mut status = json!({
            "phase": if code == 0 && !evicted && !self.deadline_hit { "Succeeded" } else { "Failed" },
            "conditions": [condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", false), condition("Ready", false)],
            "containerStatuses": terminated,
        });
        if self.deadline_hit {
            status["reason"] = json!("DeadlineExceeded");
            status["message"] =
                json!("Pod was active on the node longer than the specified deadline");
        }
        if evicted {
            status["reason"] = json!("Evicted");
            status["message"] = json!(
                "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi."
            );
        }
        self.set_status(status).await?;
        self.record(
            if evicted {
                KubeletEventKind::Evicted
            } else {
                KubeletEventKind::Terminated(code)
            },
            at,
        );
        Ok(())
    }
}
