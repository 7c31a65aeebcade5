//! The runs that wait for shared resources, to wake when a grant or a
//! TestLayerResource changes.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use tokio_util::task::AbortOnDropHandle;

use crate::api::names::{LABEL_HOLDER_NAMESPACE, LABEL_RESOURCE, LABEL_RUN};
use crate::api::{CategoryRun, Decoded, TestLayerResource, TestLayerRun};
use crate::controller::kit::by_run::ByRun;

/// The runs whose claims wait for shared resources, to wake when a grant
/// or a TestLayerResource changes.
#[derive(Clone)]
pub(super) struct Waiting {
    pub(super) category_runs: reflector::Store<Decoded<CategoryRun>>,
    pub(super) runs: reflector::Store<Decoded<TestLayerRun>>,
    /// The names of each run's CategoryRuns in `category_runs`.
    pub(super) by_run: ByRun<Decoded<CategoryRun>>,
    /// One line for every namespace: a change in `ns` wakes runs of all.
    pub(super) across: bool,
}

impl Waiting {
    /// The runs served by the line of `ns` with a claim on `resource` (on
    /// any, when `None`).
    pub(super) fn runs(
        &self,
        ns: &str,
        resource: Option<&str>,
    ) -> Vec<ObjectRef<Decoded<TestLayerRun>>> {
        let wants = |c: &crate::api::ResourceClaim| {
            resource.is_none_or(|r| c.wants.iter().any(|w| w.resource == r))
        };
        let served = |of: Option<String>| self.across || of.as_deref() == Some(ns);
        let mut names = std::collections::BTreeSet::new();
        // Only runs that still work wait; their CategoryRuns are found
        // through the index, not by walking every CategoryRun.
        for r in self.runs.state() {
            let Some(r) = r.valid().filter(|r| served(r.namespace())) else {
                continue;
            };
            let status = r.status.as_ref();
            if status
                .and_then(|s| s.phase)
                .is_some_and(|p| p.is_terminal())
            {
                continue;
            }
            let run_ns = r.namespace().unwrap_or_default();
            let name = r.name_any();
            let waits = status
                .and_then(|s| s.resource_claim.as_ref())
                .is_some_and(wants)
                || self.by_run.names(&run_ns, &name).iter().any(|n| {
                    self.category_runs
                        .get(&ObjectRef::new(n).within(&run_ns))
                        .and_then(|cr| {
                            let claim = cr.valid()?.status.as_ref()?.resource_claim.as_ref()?;
                            Some(wants(claim))
                        })
                        .unwrap_or(false)
                });
            if waits {
                names.insert((run_ns, name));
            }
        }
        names
            .into_iter()
            .map(|(ns, n)| ObjectRef::new(&n).within(&ns))
            .collect()
    }
}

/// Wakes the runs that wait for shared resources when a grant (`grants`)
/// or a TestLayerResource (`resources`) changes, through `wake`, from tasks
/// of their own.
pub(super) fn wakes(
    waiting: Waiting,
    grants: impl futures::Stream<Item = Result<Lease, watcher::Error>> + Send + 'static,
    resources: impl futures::Stream<Item = Result<Decoded<TestLayerResource>, watcher::Error>>
    + Send
    + 'static,
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<Decoded<TestLayerRun>>>,
) -> (AbortOnDropHandle<()>, AbortOnDropHandle<()>) {
    // Grants and TestLayerResources wake the runs that wait for them
    // through a channel, from tasks of their own, rather than as streams
    // of the run controller: so joined, they were seen to leave the
    // controller blind to Pod changes for a minute after an etcd restart.
    let grant_wakes = AbortOnDropHandle::new(tokio::spawn({
        let (waiting, wake) = (waiting.clone(), wake.clone());
        grants.for_each(move |grant| {
            if let Ok(grant) = grant {
                // Its holder's run, and every run whose claims wait for a
                // unit of the resource.
                let ns = grant.namespace().unwrap_or_default();
                let labels = grant.labels();
                let holder_ns = labels.get(LABEL_HOLDER_NAMESPACE).unwrap_or(&ns);
                let own = labels
                    .get(LABEL_RUN)
                    .map(|r| ObjectRef::<Decoded<TestLayerRun>>::new(r).within(holder_ns));
                let resource = labels.get(LABEL_RESOURCE).cloned().unwrap_or_default();
                for r in own.into_iter().chain(waiting.runs(&ns, Some(&resource))) {
                    let _ = wake.unbounded_send(r);
                }
            }
            futures::future::ready(())
        })
    }));
    let resource_wakes = AbortOnDropHandle::new(tokio::spawn(resources.for_each(move |r| {
        if let Ok(r) = r {
            let ns = r.namespace().unwrap_or_default();
            for run in waiting.runs(&ns, None) {
                let _ = wake.unbounded_send(run);
            }
        }
        futures::future::ready(())
    })));
    (grant_wakes, resource_wakes)
}
