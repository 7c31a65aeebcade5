//! The readiness of the nodes that run the controller's Pods, so that an
//! attempt whose node stopped answering ends within `nodeLostSeconds`
//! rather than when the cluster gets round to its Pod (on a one-node
//! cluster it never does: the node lifecycle controller stops evicting when
//! every node is lost). A cache of Nodes trimmed to their name and `Ready`
//! condition, the pure reading of it, and the task that wakes the runs with
//! Pods on a node that is not Ready.
//!
//! Reading Nodes needs `get`, `list` and `watch` on `nodes` (the chart
//! grants them); without them the cache stays empty and a lost node's
//! attempts end only by the Terminating bound.

use std::collections::BTreeMap;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::api::names::LABEL_RUN;
use crate::api::{Decoded, TestLayerRun};
use crate::controller::run::step::NodeDown;

/// What the Node cache keeps of a Node: its metadata without labels,
/// annotations and managed fields, and its `Ready` condition (no images,
/// no addresses, no capacity: a large cluster's Nodes are large).
pub fn trim_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.labels = None;
    node.metadata.annotations = None;
    node.spec = None;
    node.status = node.status.take().map(|s| {
        let ready = s
            .conditions
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.type_ == "Ready")
            .collect();
        k8s_openapi::api::core::v1::NodeStatus {
            conditions: Some(ready),
            ..Default::default()
        }
    });
}

/// Whether `node` is not Ready, and since when: its `Ready` condition is
/// `Unknown` or `False`. A node with no `Ready` condition yet (just
/// registered) or no transition time is not called down.
pub fn down(node: &Node) -> Option<NodeDown> {
    let ready = node
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if ready.status == "True" {
        return None;
    }
    Some(NodeDown {
        since: ready.last_transition_time.as_ref()?.0,
        status: ready.status.clone(),
        message: ready.message.clone().filter(|m| !m.trim().is_empty()),
    })
}

/// The nodes among `names` that are not Ready, as the cache has them.
pub fn nodes_down<'a>(
    nodes: &Store<Node>,
    names: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, NodeDown> {
    let mut out = BTreeMap::new();
    for name in names {
        if out.contains_key(name) {
            continue;
        }
        if let Some(d) = nodes.get(&ObjectRef::new(name)).as_deref().and_then(down) {
            out.insert(name.to_string(), d);
        }
    }
    out
}

/// Wakes the runs with Pods on each node that the watch shows not Ready
/// (their steps then know when the bound is reached). Says once when the
/// Nodes cannot be read (no RBAC for them), then only at debug level.
pub async fn wake_runs<S>(
    nodes: S,
    pods: Store<Pod>,
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<Decoded<TestLayerRun>>>,
) where
    S: Stream<Item = Result<Node, watcher::Error>>,
{
    let mut warned = false;
    futures::pin_mut!(nodes);
    while let Some(node) = nodes.next().await {
        let node = match node {
            Ok(n) => n,
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(error = %e, "cannot watch Nodes: attempts on a lost node end only by terminationBoundSeconds");
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "node watch error");
                continue;
            }
        };
        if down(&node).is_none() {
            continue;
        }
        let name = node.name_any();
        for pod in pods.state() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(&name) {
                continue;
            }
            if let (Some(run), Some(ns)) = (pod.labels().get(LABEL_RUN), pod.namespace()) {
                let _ = wake.unbounded_send(ObjectRef::new(run).within(&ns));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(conditions: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"a": "b"}},
            "status": {"conditions": conditions, "images": [{"names": ["big"], "sizeBytes": 1}],
                       "capacity": {"cpu": "2"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_node_is_down_when_ready_is_unknown_or_false() {
        let at = "2026-01-01T00:00:00Z";
        let ready = node(json!([{"type": "Ready", "status": "True", "lastTransitionTime": at}]));
        assert_eq!(down(&ready), None);
        let unknown = node(json!([
            {"type": "MemoryPressure", "status": "Unknown", "lastTransitionTime": at},
            {"type": "Ready", "status": "Unknown", "lastTransitionTime": at,
             "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}
        ]));
        let d = down(&unknown).unwrap();
        assert_eq!(
            (
                d.status.as_str(),
                d.since.to_string().as_str(),
                d.message.as_deref()
            ),
            ("Unknown", at, Some("Kubelet stopped posting node status."))
        );
        let not_ready = node(
            json!([{"type": "Ready", "status": "False", "lastTransitionTime": at, "message": " "}]),
        );
        assert_eq!(down(&not_ready).map(|d| d.message), Some(None));
        // Just registered: no Ready condition, or no time, is not down.
        assert_eq!(down(&node(json!([]))), None);
        assert_eq!(
            down(&node(json!([{"type": "Ready", "status": "Unknown"}]))),
            None
        );
    }

    #[test]
    fn the_cache_keeps_only_the_ready_condition() {
        let mut n = node(json!([
            {"type": "DiskPressure", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]));
        trim_node(&mut n);
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
        );
    }
}
