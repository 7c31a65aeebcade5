//! [`NodeStates`]: whether each of the kubelet's nodes is up, watched by
//! its Pods' workers and its log endpoint.

use std::collections::HashMap;

use tokio::sync::watch;

/// Whether each node is up (`true`) or down.
pub(crate) struct NodeStates(HashMap<String, watch::Sender<bool>>);

impl NodeStates {
    pub(super) fn new(names: &[String]) -> Self {
        Self(
            names
                .iter()
                .map(|n| (n.clone(), watch::Sender::new(true)))
                .collect(),
        )
    }

    /// Whether `node` is up (unknown nodes count as up).
    pub(crate) fn is_up(&self, node: &str) -> bool {
        self.0.get(node).is_none_or(|s| *s.borrow())
    }

    pub(super) fn set(&self, node: &str, up: bool) {
        if let Some(s) = self.0.get(node) {
            s.send_replace(up);
        }
    }

    pub(super) fn subscribe(&self, node: &str) -> Option<watch::Receiver<bool>> {
        self.0.get(node).map(|s| s.subscribe())
    }
}
