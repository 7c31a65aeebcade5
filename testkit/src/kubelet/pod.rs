//! One Pod's worker, as a kubelet's pod worker: binds the Pod, starts its
//! container (after image pull failures, if scripted), runs it, stops it on
//! deletion (SIGTERM, then SIGKILL when the grace period runs out), preemption
//! or drain, writes its end to the Pod status, and finishes its deletion.
//!
//! Every write waits while the Pod's node is down; the container itself runs
//! on (as under a dead kubelet), and its end is reported when the node is
//! back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::logs::ContainerLog;
use super::script::{OnSigterm, PodEnd, PodScript};
use super::{KubeletEventKind, KubeletNoteKind, Shared, now};

/// Default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Orders for a worker from the kubelet.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Kill the container now (exit 137) and end the Pod `Failed`: the Pod
    /// was preempted (its DisruptionTarget condition is written).
    Preempt,
}

/// Why a worker stops waiting.
#[derive(Debug, PartialEq)]
enum Stop {
    /// The Pod's deletion was first seen.
    Deleted,
    /// The Pod is gone from the API (or the kubelet stopped).
    Gone,
    /// [`Cmd::Preempt`].
    Preempted,
}

/// Why a worker ends early.
#[derive(Debug)]
pub(crate) enum Halt {
    /// The Pod (this uid) is gone, or the kubelet stopped.
    Gone,
    /// An API call failed.
    Api(kube::Error),
}

impl From<kube::Error> for Halt {
    fn from(e: kube::Error) -> Self {
        match &e {
            // Gone, replaced by a Pod of the same name, or no longer ours.
            kube::Error::Api(a) if a.code == 404 || a.code == 409 || a.code == 422 => Halt::Gone,
            _ => Halt::Api(e),
        }
    }
}

/// How the container ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    /// As scripted.
    Natural,
    /// It exited on SIGTERM with this code.
    Term(i32),
    /// Killed (SIGKILL: grace period over, drain, preemption).
    Killed,
}

/// What the loop gives a worker.
pub(crate) struct WorkerInput {
    pub pod: Pod,
    pub node: String,
    pub ip: String,
    pub script: PodScript,
    pub pod_rx: watch::Receiver<Pod>,
    pub cmd_rx: mpsc::UnboundedReceiver<Cmd>,
}

pub(crate) struct PodWorker {
    sh: Arc<Shared>,
    name: String,
    uid: String,
    node: String,
    ip: String,
    script: PodScript,
    up: watch::Receiver<bool>,
    pod_rx: watch::Receiver<Pod>,
    cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    /// The newest Pod seen.
    pod: Pod,
    /// Whether its deletion was seen.
    deletion_seen: bool,
    /// Containers: (name, image).
    containers: Vec<(String, String)>,
    /// When the container started (for its status).
    started: Option<Time>,
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

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

fn condition(t: &str, ok: bool) -> serde_json::Value {
    json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now()})
}

impl PodWorker {
    pub(crate) fn new(sh: Arc<Shared>, up: watch::Receiver<bool>, input: WorkerInput) -> Self {
        let containers = input
            .pod
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            sh,
            name: input.pod.name_any(),
            uid: input.pod.metadata.uid.clone().unwrap_or_default(),
            node: input.node,
            ip: input.ip,
            script: input.script,
            up,
            pod_rx: input.pod_rx,
            cmd_rx: input.cmd_rx,
            deletion_seen: input.pod.metadata.deletion_timestamp.is_some(),
            pod: input.pod,
            containers,
            started: None,
        }
    }

    /// Plays the Pod until it is gone.
    pub(crate) async fn run(mut self) {
        match self.play().await {
            Ok(()) | Err(Halt::Gone) => {}
            Err(Halt::Api(e)) => {
                tracing::warn!(pod = %self.name, error = %e, "test kubelet could not drive a pod")
            }
        }
    }

    fn record(&self, kind: KubeletEventKind, at: Instant) {
        self.sh.record_at(&self.name, kind, at);
    }

    fn note(&self, kind: KubeletNoteKind) {
        self.sh.note(&self.name, kind);
    }

    fn deleting(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }

    /// Takes the newest Pod; false if it is gone.
    fn take_pod(&mut self, changed: bool) -> bool {
        if changed {
            self.pod = self.pod_rx.borrow_and_update().clone();
        }
        changed
    }

    /// Waits for the next thing that stops what the worker is doing.
    async fn interrupt(&mut self) -> Stop {
        loop {
            if self.deleting() && !self.deletion_seen {
                self.deletion_seen = true;
                return Stop::Deleted;
            }
            let changed = tokio::select! {
                r = self.pod_rx.changed() => Ok(r.is_ok()),
                c = self.cmd_rx.recv() => Err(c),
            };
            match changed {
                Ok(changed) => {
                    if !self.take_pod(changed) {
                        return Stop::Gone;
                    }
                }
                Err(Some(Cmd::Preempt)) => return Stop::Preempted,
                Err(None) => return Stop::Gone,
            }
        }
    }

    /// Sleeps until `deadline` (`None`: for ever) unless stopped first.
    async fn until(&mut self, deadline: Option<Instant>) -> Option<Stop> {
        match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), self.interrupt())
                .await
                .ok(),
            None => Some(self.interrupt().await),
        }
    }

    /// Waits while the node is down, keeping the newest Pod.
    async fn wait_up(&mut self) -> Result<(), Halt> {
        loop {
            if *self.up.borrow_and_update() {
                return Ok(());
            }
            let pod = tokio::select! {
                r = self.up.changed() => r.map(|_| false).map_err(|_| Halt::Gone),
                r = self.pod_rx.changed() => r.map(|_| true).map_err(|_| Halt::Gone),
            }?;
            self.take_pod(pod);
        }
    }

    async fn set_status(&mut self, status: serde_json::Value) -> Result<(), Halt> {
        self.wait_up().await?;
        // A strategic merge keeps conditions the kubelet does not own
        // (DisruptionTarget); the uid makes a write to a new Pod of the same
        // name fail.
        let patch = json!({"metadata": {"uid": self.uid}, "status": status});
        self.sh
            .pods
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await?;
        Ok(())
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

    async fn play(&mut self) -> Result<(), Halt> {
        if terminal(&self.pod) {
            return self.finish().await;
        }
        let bound = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        if !bound {
            self.bind().await?;
        }
        if self.deleting() {
            return self.stopped_before_start(Stop::Deleted).await;
        }
        self.wait_up().await?;
        if let Some(stop) = self
            .until(Some(Instant::now() + self.script.start_delay))
            .await
        {
            return self.stopped_before_start(stop).await;
        }
        if !self.script.pull_fails_for.is_zero()
            && let Some(stop) = self.pull_failures().await?
        {
            return self.stopped_before_start(stop).await;
        }
        if self.script.end == PodEnd::ImagePullError {
            self.write_waiting("ErrImagePull").await?;
            let stop = self.interrupt().await;
            return self.stopped_before_start(stop).await;
        }
        self.start_container().await?;
        let natural = match self.script.end {
            PodEnd::RunForever => None,
            _ => Some(Instant::now() + self.script.run_for),
        };
        let (ending, at) = self.run_container(natural).await?;
        self.write_end(ending, at).await?;
        self.finish().await
    }

    async fn bind(&mut self) -> Result<(), Halt> {
        let binding = Binding {
            metadata: kube::api::ObjectMeta {
                name: Some(self.name.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some(self.node.clone()),
                api_version: Some("v1".into()),
                ..Default::default()
            },
        };
        let _: serde_json::Value = self
            .sh
            .pods
            .create_subresource("binding", &self.name, &PostParams::default(), &binding)
            .await?;
        self.record(KubeletEventKind::Bound, Instant::now());
        Ok(())
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

    async fn write_waiting(&mut self, reason: &str) -> Result<(), Halt> {
        let status = self.waiting_status(reason);
        self.set_status(status).await?;
        self.note(KubeletNoteKind::ImagePull(reason.to_string()));
        Ok(())
    }

    /// `ErrImagePull`, then `ImagePullBackOff` with growing back-offs, until
    /// the pull succeeds.
    async fn pull_failures(&mut self) -> Result<Option<Stop>, Halt> {
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

    async fn start_container(&mut self) -> Result<(), Halt> {
        self.wait_up().await?;
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
        self.record(KubeletEventKind::Running, Instant::now());
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

    /// Runs the container until it ends as scripted, or is stopped; returns
    /// how and when it ended.
    async fn run_container(&mut self, natural: Option<Instant>) -> Result<(Ending, Instant), Halt> {
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

    /// The termination message: the scripted one, or the log tail for
    /// `FallbackToLogsOnError`.
    fn message(&self, code: i32) -> Option<String> {
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
                    let text = lines.join("\n");
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
    async fn write_end(&mut self, ending: Ending, at: Instant) -> Result<(), Halt> {
        let evicted = ending == Ending::Natural && self.script.end == PodEnd::Evicted;
        let (code, reason) = match (ending, &self.script.end) {
            (Ending::Natural, PodEnd::Exit(0)) => (0, "Completed"),
            (Ending::Natural, PodEnd::Exit(c)) => (*c, "Error"),
            (Ending::Natural, PodEnd::OomKilled) => (137, "OOMKilled"),
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
            "phase": if code == 0 && !evicted { "Succeeded" } else { "Failed" },
            "conditions": [condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", false), condition("Ready", false)],
            "containerStatuses": terminated,
        });
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

    /// Stopped before the container ran.
    async fn stopped_before_start(&mut self, stop: Stop) -> Result<(), Halt> {
        match stop {
            Stop::Gone => Err(Halt::Gone),
            // Nothing runs yet: the deletion is finished at once.
            Stop::Deleted => self.finish().await,
            Stop::Preempted => {
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
                self.set_status(json!({"phase": "Failed",
                    "conditions": [condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", false), condition("Ready", false)],
                    "containerStatuses": statuses}))
                .await?;
                self.record(KubeletEventKind::Terminated(137), Instant::now());
                self.finish().await
            }
        }
    }

    /// The Pod is terminal (or never ran): finishes its deletion when it
    /// comes, then waits until it is gone.
    async fn finish(&mut self) -> Result<(), Halt> {
        loop {
            if self.deleting() {
                self.deletion_seen = true;
                self.wait_up().await?;
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(self.uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match self.sh.pods.delete(&self.name, &dp).await {
                    Ok(_) => self.record(KubeletEventKind::Deleted, Instant::now()),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(Halt::Api(e)),
                }
                // Finalizers may keep it a while; nothing more to do.
                while self.interrupt().await != Stop::Gone {}
                return Ok(());
            }
            if let Stop::Gone = self.interrupt().await {
                return Ok(());
            }
        }
    }
}

/// Starts a worker for a Pod.
pub(crate) fn spawn(
    sh: Arc<Shared>,
    up: watch::Receiver<bool>,
    input: WorkerInput,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(PodWorker::new(sh, up, input).run())
}
