//! A Pod's worker: [`PodWorker`], what it holds, and [`Cmd`], the orders
//! the kubelet gives it. Its lifecycle is in the module's root, its status
//! writes in `status`, stopping its container in `stop`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::{mpsc, watch};

use crate::kubelet::script::PodScript;
use crate::kubelet::shared::Shared;

/// Orders for a worker from the kubelet.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Kill the container now (exit 137) and end the Pod `Failed`: the Pod
    /// was preempted (its DisruptionTarget condition is written).
    Preempt,
}

/// A Pod's worker: plays one Pod until it is gone.
pub(crate) struct PodWorker {
    pub(super) sh: Arc<Shared>,
    pub(super) name: String,
    pub(super) uid: String,
    pub(super) node: String,
    pub(super) ip: String,
    pub(super) script: PodScript,
    pub(super) up: watch::Receiver<bool>,
    pub(super) pod_rx: watch::Receiver<Pod>,
    pub(super) cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    /// The newest Pod seen.
    pub(super) pod: Pod,
    /// Whether its deletion was seen.
    pub(super) deletion_seen: bool,
    /// Containers: (name, image).
    pub(super) containers: Vec<(String, String)>,
    /// When the container started (for its status).
    pub(super) started: Option<Time>,
    /// When the Pod started, for its `activeDeadlineSeconds`.
    pub(super) started_at: Option<std::time::Instant>,
    /// Its `activeDeadlineSeconds` passed (the end is written so).
    pub(super) deadline_hit: bool,
}
