//! Pods of a run that is gone are stopped at once, not when the garbage
//! collector gets to them. Deleting a TestLayerRun leaves its CategoryRuns
//! and their Pods to the garbage collector, which deletes the CategoryRuns
//! first and their Pods after, tens of seconds later on a busy cluster:
//! meanwhile the tests go on running. The controller knows each Pod's run
//! from its caches, so a look at them twice a second finds the Pods whose
//! run was deleted and deletes them (with their grace period, as a cancel
//! does).
//!
//! When the controller is down or restarting at the deletion, the garbage
//! collector stops the Pods as before, and the first look after the caches
//! are synced stops those it has not reached yet.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};

use crate::api::names::LABEL_RUN;
use crate::controller::kit::context::Context;

/// How often the caches are looked at.
const EVERY: Duration = Duration::from_millis(500);

/// What the caches say of the objects a Pod hangs from.
pub(crate) trait Owners {
    /// The uid of the run that owns the CategoryRun of uid `uid`: `None`
    /// when the cache has no such CategoryRun, `Some(None)` when it has
    /// one that names no owner.
    fn run_of_category_run(&self, uid: &str) -> Option<Option<String>>;
    /// The uid of the run `name` in `namespace`, if the cache has it.
    fn run_uid(&self, namespace: &str, name: &str) -> Option<String>;
}

/// Whether `pod`'s run is gone: the run its labels name is not in the
/// cache, or is another run of the same name than the one that owns the
/// Pod's CategoryRun. A Pod whose CategoryRun the cache does not hold yet
/// (a cache behind the controller's own writes) is its run's while that
/// run is there.
pub(crate) fn orphaned(pod: &Pod, owners: &impl Owners) -> bool {
    let (Some(ns), Some(run)) = (pod.namespace(), pod.labels().get(LABEL_RUN)) else {
        return false;
    };
    let Some(current) = owners.run_uid(&ns, run) else {
        return true;
    };
    let category_run = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone());
    match category_run.and_then(|uid| owners.run_of_category_run(&uid)) {
        Some(Some(owner)) => owner != current,
        Some(None) | None => false,
    }
}

/// The caches of a running controller, as one look sees them: each
/// CategoryRun's run by uid, built once a look so that a look costs one
/// pass over the caches, however many Pods there are.
struct Cached<'a> {
    ctx: &'a Context,
    category_runs: HashMap<String, Option<String>>,
}

impl<'a> Cached<'a> {
    fn look(ctx: &'a Context) -> Self {
        let category_runs = ctx
            .category_runs
            .state()
            .iter()
            .filter_map(|c| {
                let owner = c
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true))
                    .map(|o| o.uid.clone());
                c.uid().map(|uid| (uid, owner))
            })
            .collect();
        Cached { ctx, category_runs }
    }
}

impl Owners for Cached<'_> {
    fn run_of_category_run(&self, uid: &str) -> Option<Option<String>> {
        self.category_runs.get(uid).cloned()
    }

    fn run_uid(&self, namespace: &str, name: &str) -> Option<String> {
        let key = kube::runtime::reflector::ObjectRef::new(name).within(namespace);
        self.ctx.runs.get(&key).and_then(|r| r.uid())
    }
}

/// Deletes the Pods of runs that are gone; runs until aborted.
pub async fn sweep(ctx: Arc<Context>) {
    crate::controller::kit::cache::synced(&ctx.pods).await;
    crate::controller::kit::cache::synced(&ctx.runs).await;
    crate::controller::kit::cache::synced(&ctx.category_runs).await;
    // Pods asked to stop, while the cache still shows them running.
    let mut asked: BTreeSet<String> = BTreeSet::new();
    loop {
        let pods = ctx.pods.state();
        asked.retain(|uid| pods.iter().any(|p| p.uid().as_deref() == Some(uid)));
        let owners = Cached::look(&ctx);
        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            let Some(uid) = pod.uid() else { continue };
            if asked.contains(&uid) || !orphaned(pod, &owners) {
                continue;
            }
            asked.insert(uid.clone());
            let ns = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&pod.name_any(), &dp).await {
                Ok(_) => {
                    tracing::info!(namespace = %ns, pod = %pod.name_any(), "the run of a Pod is gone; the Pod is stopped");
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => {
                    asked.remove(pod.uid().as_deref().unwrap_or_default());
                    tracing::warn!(error = %e, namespace = %ns, pod = %pod.name_any(), "cannot stop a Pod whose run is gone");
                }
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// CategoryRun uid → its run's uid; (namespace, run name) → run uid.
    #[derive(Default)]
    struct World {
        category_runs: BTreeMap<String, Option<String>>,
        runs: BTreeMap<(String, String), String>,
    }

    impl Owners for World {
        fn run_of_category_run(&self, uid: &str) -> Option<Option<String>> {
            self.category_runs.get(uid).cloned()
        }
        fn run_uid(&self, namespace: &str, name: &str) -> Option<String> {
            self.runs
                .get(&(namespace.to_string(), name.to_string()))
                .cloned()
        }
    }

    fn pod(run: Option<&str>, category_run_uid: Option<&str>) -> Pod {
        let mut v =
            serde_json::json!({"metadata": {"name": "p", "namespace": "ns", "uid": "pod-1"}});
        if let Some(r) = run {
            v["metadata"]["labels"] = serde_json::json!({ LABEL_RUN: r });
        }
        if let Some(uid) = category_run_uid {
            v["metadata"]["ownerReferences"] = serde_json::json!([{
                "apiVersion": "testlayer.dev/v1alpha1", "kind": "CategoryRun",
                "name": "cr", "uid": uid, "controller": true
            }]);
        }
        serde_json::from_value(v).unwrap()
    }

    fn world(runs: &[(&str, &str)], crs: &[(&str, Option<&str>)]) -> World {
        World {
            runs: runs
                .iter()
                .map(|(n, u)| (("ns".to_string(), n.to_string()), u.to_string()))
                .collect(),
            category_runs: crs
                .iter()
                .map(|(c, r)| (c.to_string(), r.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn a_pod_of_a_run_that_is_there_stays() {
        let w = world(&[("r", "run-1")], &[("cr-1", Some("run-1"))]);
        assert!(!orphaned(&pod(Some("r"), Some("cr-1")), &w));
    }

    #[test]
    fn a_pod_whose_run_is_gone_is_orphaned_whether_or_not_its_category_run_is_left() {
        let left = world(&[], &[("cr-1", Some("run-1"))]);
        assert!(orphaned(&pod(Some("r"), Some("cr-1")), &left));
        let gone = world(&[], &[]);
        assert!(orphaned(&pod(Some("r"), Some("cr-1")), &gone));
    }

    #[test]
    fn a_pod_of_an_earlier_run_of_the_same_name_is_orphaned() {
        let w = world(&[("r", "run-2")], &[("cr-1", Some("run-1"))]);
        assert!(orphaned(&pod(Some("r"), Some("cr-1")), &w));
    }

    #[test]
    fn a_pod_whose_category_run_the_cache_lacks_yet_stays_while_its_run_is_there() {
        let w = world(&[("r", "run-1")], &[]);
        assert!(!orphaned(&pod(Some("r"), Some("cr-new")), &w));
        let ownerless = world(&[("r", "run-1")], &[("cr-1", None)]);
        assert!(!orphaned(&pod(Some("r"), Some("cr-1")), &ownerless));
    }

    #[test]
    fn a_pod_without_a_run_label_is_none_of_the_sweeps_business() {
        assert!(!orphaned(&pod(None, Some("cr-1")), &world(&[], &[])));
    }
}
