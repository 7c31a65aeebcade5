//! Disrupting a Pod from outside its script: preemption
//! ([`TestKubelet::preempt_pod`]) and drain through the Eviction API
//! ([`TestKubelet::drain_pod`]).

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{EvictParams, Patch, PatchParams};
use serde_json::json;

use super::control::Control;
use super::handle::TestKubelet;
use super::record::KubeletNoteKind;
use super::shared::now;
use crate::TestkitError;

impl TestKubelet {
    /// A Pod of the namespace on one of its nodes.
    async fn own_pod(&self, name: &str) -> Result<(Pod, String), TestkitError> {
        let pod = self
            .shared
            .pods
            .get(name)
            .await
            .map_err(TestkitError::kube(format!("reading pod {name}")))?;
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let uid = pod.uid();
        match (node, uid) {
            (Some(n), Some(uid)) if self.nodes.contains(&n) => Ok((pod, uid)),
            (n, _) => Err(TestkitError::Kubelet {
                problem: format!("pod {name} is not bound to one of its nodes (node {n:?})"),
            }),
        }
    }

    /// Preempts the Pod `name` as the scheduler would for a higher priority
    /// Pod: writes its `DisruptionTarget` condition (reason
    /// `PreemptionByScheduler`), then the kubelet kills its container (exit
    /// 137) and ends it `Failed`. The Pod is not deleted.
    pub async fn preempt_pod(&self, name: &str) -> Result<(), TestkitError> {
        let (pod, uid) = self.own_pod(name).await?;
        let scheduler = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.clone())
            .unwrap_or_else(|| "default-scheduler".into());
        let patch = json!({"metadata": {"uid": uid}, "status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
            "reason": "PreemptionByScheduler", "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": now()}]}});
        self.shared
            .pods
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map_err(TestkitError::kube(format!("marking pod {name} preempted")))?;
        self.shared.note(
            name,
            KubeletNoteKind::DisruptionTarget("PreemptionByScheduler".into()),
        );
        let _ = self.control.send(Control::Preempt(uid));
        Ok(())
    }

    /// Drains the Pod `name` as `kubectl drain` does: evicts it through the
    /// Eviction API with the kubelet's client (the apiserver adds the
    /// `DisruptionTarget` condition, reason `EvictionByEvictionAPI`, and
    /// deletes the Pod gracefully; a PodDisruptionBudget may refuse, which is
    /// returned as the error). The kubelet then kills the container at once
    /// (exit 137), ends the Pod `Failed` and finishes the deletion. A refusal
    /// is a 429, which kube's default client retries for minutes: start the
    /// kubelet with a client without retries
    /// ([`crate::ControlPlane::admin_client_without_retries`]) to see it at
    /// once.
    pub async fn drain_pod(&self, name: &str) -> Result<(), TestkitError> {
        let (_, uid) = self.own_pod(name).await?;
        if let Ok(mut d) = self.shared.drains.lock() {
            d.insert(uid.clone());
        }
        match self.shared.pods.evict(name, &EvictParams::default()).await {
            Ok(_) => {
                self.shared.note(name, KubeletNoteKind::EvictionRequested);
                Ok(())
            }
            Err(e) => {
                if let Ok(mut d) = self.shared.drains.lock() {
                    d.remove(&uid);
                }
                Err(TestkitError::Kube {
                    what: format!("evicting pod {name}"),
                    source: e,
                })
            }
        }
    }
}
