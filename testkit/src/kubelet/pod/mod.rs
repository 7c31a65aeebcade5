//! One Pod's worker, as a kubelet's pod worker: binds the Pod, starts its
//! container (after image pull failures, if scripted), runs it, stops it on
//! deletion (SIGTERM, then SIGKILL when the grace period runs out), preemption
//! or drain, writes its end to the Pod status, and finishes its deletion.
//!
//! Every write waits while the Pod's node is down; the container itself runs
//! on (as under a dead kubelet), and its end is reported when the node is
//! back.
//!
//! This file holds the worker's lifecycle (waiting, binding, finishing the
//! deletion); `worker` the worker's state and orders; `ending` how a wait,
//! the worker and the container end; `status` the status writes; `stop` how
//! a running or not yet started container is stopped.

mod ending;
mod status;
mod stop;
mod worker;

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams, Preconditions};
use tokio::sync::{mpsc, watch};

use super::script::{PodEnd, PodScript};
use super::shared::Shared;
use super::{KubeletEventKind, KubeletNoteKind};
use ending::{Halt, Stop};
pub(crate) use worker::Cmd;
use worker::PodWorker;

/// What the loop gives a worker.
pub(crate) struct WorkerInput {
    pub pod: Pod,
    pub node: String,
    pub ip: String,
    pub script: PodScript,
    pub pod_rx: watch::Receiver<Pod>,
    pub cmd_rx: mpsc::UnboundedReceiver<Cmd>,
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
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
            started_at: None,
            deadline_hit: false,
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

    /// When the Pod's `activeDeadlineSeconds` runs out, if it has one and
    /// has started (and has not run out already).
    fn deadline(&self) -> Option<Instant> {
        if self.deadline_hit {
            return None;
        }
        let secs = self.pod.spec.as_ref()?.active_deadline_seconds?;
        Some(self.started_at? + std::time::Duration::from_secs(secs.max(0).unsigned_abs()))
    }

    /// Waits for the next thing that stops what the worker is doing.
    async fn interrupt(&mut self) -> Stop {
        loop {
            if self.deleting() && !self.deletion_seen {
                self.deletion_seen = true;
                return Stop::Deleted;
            }
            let deadline = self.deadline();
            if deadline.is_some_and(|d| d <= Instant::now()) {
                self.deadline_hit = true;
                return Stop::Deadline;
            }
            let until_deadline = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let changed = tokio::select! {
                r = self.pod_rx.changed() => Ok(r.is_ok()),
                c = self.cmd_rx.recv() => Err(c),
                _ = until_deadline => continue,
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
        // Tried again while the apiserver does not answer or turns the write
        // away for now (a restart, etcd away), for up to a minute.
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let r: Result<serde_json::Value, kube::Error> = self
                .sh
                .pods
                .create_subresource("binding", &self.name, &PostParams::default(), &binding)
                .await;
            match r {
                Ok(_) => break,
                Err(kube::Error::Api(e)) if e.code < 500 && e.code != 429 => {
                    return Err(kube::Error::Api(e).into());
                }
                Err(e) if Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            }
        }
        self.record(KubeletEventKind::Bound, Instant::now());
        Ok(())
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
