//! [`TestKubelet`] itself: what a running test kubelet holds, and stopping
//! it when dropped. Starting it and reading its record is in the module's
//! root, nodes in `node`, disruptions in `disruption`.

use std::sync::Arc;

use kube::Client;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::control::Control;
use super::logs::LogServer;
use super::script::LogServing;
use super::shared::Shared;

/// A running test kubelet. Dropping it stops it (Pods it was running stay as
/// they are).
pub struct TestKubelet {
    pub(super) task: JoinHandle<()>,
    pub(super) _logs: LogServer,
    pub(super) shared: Arc<Shared>,
    pub(super) nodes: Vec<String>,
    pub(super) client: Client,
    pub(super) control: mpsc::UnboundedSender<Control>,
    pub(super) log_serving: watch::Sender<LogServing>,
}

impl Drop for TestKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}
