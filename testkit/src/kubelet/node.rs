//! The kubelet's Nodes: registering them, and failing and recovering them
//! ([`TestKubelet::fail_node`], [`TestKubelet::recover_node`]) with the
//! Ready condition and taints the node lifecycle controller would write.

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::control::Control;
use super::handle::TestKubelet;
use super::record::KubeletNoteKind;
use super::shared::now;
use crate::TestkitError;

/// How a node fails in [`TestKubelet::fail_node`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeFailure {
    /// Its kubelet stops posting status: `Ready=Unknown`, reason
    /// `NodeStatusUnknown`, taints `node.kubernetes.io/unreachable`.
    Unreachable,
    /// Its kubelet reports it not ready: `Ready=False`, reason
    /// `KubeletNotReady`, taints `node.kubernetes.io/not-ready`.
    NotReady,
}

impl TestKubelet {
    fn check_node(&self, node: &str) -> Result<(), TestkitError> {
        if self.nodes.iter().any(|n| n == node) {
            Ok(())
        } else {
            Err(TestkitError::Kubelet {
                problem: format!("{node} is not one of its nodes ({:?})", self.nodes),
            })
        }
    }

    /// Whether `node` is up (not failed by [`TestKubelet::fail_node`]).
    pub fn node_is_up(&self, node: &str) -> bool {
        self.shared.nodes.is_up(node)
    }

    /// Makes `node` dead: stops acting on its Pods at once, then marks its
    /// Node as `how` says (Ready condition and taints).
    pub async fn fail_node(&self, node: &str, how: NodeFailure) -> Result<(), TestkitError> {
        self.check_node(node)?;
        self.shared.nodes.set(node, false);
        self.shared.note(node, KubeletNoteKind::NodeDown);
        let (status, reason, message, taint) = match how {
            NodeFailure::Unreachable => (
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
                "node.kubernetes.io/unreachable",
            ),
            NodeFailure::NotReady => (
                "False",
                "KubeletNotReady",
                "container runtime is down",
                "node.kubernetes.io/not-ready",
            ),
        };
        set_ready(&self.client, node, status, reason, message, Some(taint)).await
    }

    /// Brings `node` back: marks its Node ready, removes the taints, and
    /// resumes its Pods (pending writes and deletions are made) and binding.
    pub async fn recover_node(&self, node: &str) -> Result<(), TestkitError> {
        self.check_node(node)?;
        set_ready(
            &self.client,
            node,
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
            None,
        )
        .await?;
        self.shared.nodes.set(node, true);
        self.shared.note(node, KubeletNoteKind::NodeUp);
        let _ = self.control.send(Control::NodeUp);
        Ok(())
    }
}

/// Sets the Ready condition of a Node and its failure taints (`None`: none).
async fn set_ready(
    client: &Client,
    name: &str,
    status: &str,
    reason: &str,
    message: &str,
    taint: Option<&str>,
) -> Result<(), TestkitError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = now();
    let mut ready = json!({"type": "Ready", "status": status, "reason": reason, "message": message,
        "lastTransitionTime": now});
    if status == "True" {
        ready["lastHeartbeatTime"] = json!(now);
    }
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Strategic(&json!({"status": {"conditions": [ready]}})),
        )
        .await
        .map_err(TestkitError::kube(format!(
            "setting the Ready condition of node {name}"
        )))?;
    set_taints(&nodes, name, taint).await
}

/// Taint keys the node lifecycle controller puts on failed nodes.
const FAILURE_TAINTS: [&str; 2] = [
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/not-ready",
];

async fn set_taints(nodes: &Api<Node>, name: &str, key: Option<&str>) -> Result<(), TestkitError> {
    let node = nodes
        .get(name)
        .await
        .map_err(TestkitError::kube(format!("reading node {name}")))?;
    let mut taints: Vec<serde_json::Value> = node
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !FAILURE_TAINTS.contains(&t.key.as_str()))
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect();
    if let Some(key) = key {
        taints.push(json!({"key": key, "effect": "NoSchedule"}));
        taints.push(json!({"key": key, "effect": "NoExecute", "timeAdded": now()}));
    }
    let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(TestkitError::kube(format!(
            "setting the taints of node {name}"
        )))?;
    Ok(())
}

pub(super) async fn register_node(
    client: &Client,
    name: &str,
    port: u16,
) -> Result<(), TestkitError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "testlayer.dev/test-node": "true"}},
    }))
    .map_err(|e| TestkitError::Kubeconfig { path: Default::default(), problem: e.to_string() })?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => {
            return Err(TestkitError::Kube {
                what: format!("registering node {name}"),
                source: e,
            });
        }
    }
    let now = now();
    let capacity = json!({"cpu": "64", "memory": "256Gi", "pods": "1000"});
    let status = json!({"status": {
        "capacity": capacity, "allocatable": capacity,
        // The apiserver reaches the log endpoint here (pods/log).
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test kubelet is ready",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "nodeInfo": {"kubeletVersion": "v1.34.4-test", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
                     "containerRuntimeVersion": "test://1", "kernelVersion": "", "osImage": "test", "machineID": "", "systemUUID": "", "bootID": ""},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(TestkitError::kube(format!(
            "setting the status of node {name}"
        )))?;
    // Failure taints a previous kubelet may have left.
    set_taints(&nodes, name, None).await
}
