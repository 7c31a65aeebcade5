//! How to start a [`TestKubelet`](super::TestKubelet): [`KubeletOptions`]
//! and the [`ScriptFn`] that decides each Pod's script.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::script::{LogServing, PodScript};

/// Decides the script of each Pod.
pub type ScriptFn = Arc<dyn Fn(&Pod) -> PodScript + Send + Sync>;

/// How to start a [`TestKubelet`](super::TestKubelet).
#[derive(Clone)]
pub struct KubeletOptions {
    /// How many Nodes it registers (at least 1).
    pub nodes: usize,
    /// The script of each Pod (default [`PodScript::from_pod`]).
    pub script: ScriptFn,
    /// Whether new Pods are bound to nodes that are down (default true: the
    /// test kubelet binds round-robin without looking).
    pub bind_to_not_ready_nodes: bool,
    /// How `pods/log` is answered for Pods whose script does not say
    /// (default [`LogServing::Prompt`]).
    pub log_serving: LogServing,
}

impl KubeletOptions {
    /// `nodes` Nodes, everything else by default.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            script: Arc::new(PodScript::from_pod),
            bind_to_not_ready_nodes: true,
            log_serving: LogServing::Prompt,
        }
    }

    /// With this script.
    pub fn script(mut self, script: ScriptFn) -> Self {
        self.script = script;
        self
    }

    /// Binding new Pods to nodes that are down, or not.
    pub fn bind_to_not_ready_nodes(mut self, yes: bool) -> Self {
        self.bind_to_not_ready_nodes = yes;
        self
    }

    /// With this kubelet-wide [`LogServing`].
    pub fn log_serving(mut self, serving: LogServing) -> Self {
        self.log_serving = serving;
        self
    }
}

impl std::fmt::Debug for KubeletOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletOptions")
            .field("nodes", &self.nodes)
            .field("bind_to_not_ready_nodes", &self.bind_to_not_ready_nodes)
            .field("log_serving", &self.log_serving)
            .finish_non_exhaustive()
    }
}
