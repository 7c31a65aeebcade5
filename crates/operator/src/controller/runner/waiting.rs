//! The runs that wait for shared resources, to wake when a grant or a
//! TestLayerResource changes.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio_util::task::AbortOnDropHandle;

use crate::api::names::{LABEL_HOLDER_NAMESPACE, LABEL_RUN};
use crate::api::{Decoded, TestLayerResource, TestLayerRun};
use crate::controller::kit::context::Context;
use crate::controller::run::read::shared_view;
use crate::controller::shared::claims::{may_be_stalled, served_now};

/// The runs whose claims the line of a namespace serves now, to wake when
/// a grant or a TestLayerResource changes. Only those (and, on a
/// resource's change while a run keeps units for its whole run, the runs
/// that may be stalled): every other waiting run would step only to find
/// it still waits, and with hundreds of claims in line such steps of every
/// waiting run on every grant (three changes of a Lease each) delay the
/// one run that has a unit to take.
#[derive(Clone)]
pub(super) struct Waiting {
    pub(super) ctx: Arc<Context>,
}

impl Waiting {
    /// The runs whose claims the line of the shared resources of `ns` (or
    /// of every namespace's line, held in `ns`) grants now.
    pub(super) fn runs(&self, ns: &str) -> Vec<ObjectRef<Decoded<TestLayerRun>>> {
        refs(served_now(&shared_view(&self.ctx, ns)))
    }

    /// [`runs`](Self::runs), and while some run keeps units for its whole
    /// run, every run whose claims wait: a line that changed may have
    /// closed a cycle that each of its runs must see to say it is stalled.
    pub(super) fn runs_or_stalled(&self, ns: &str) -> Vec<ObjectRef<Decoded<TestLayerRun>>> {
        let view = shared_view(&self.ctx, ns);
        let mut runs = served_now(&view);
        runs.extend(may_be_stalled(&view));
        refs(runs)
    }
}

fn refs(
    runs: std::collections::BTreeSet<(String, String)>,
) -> Vec<ObjectRef<Decoded<TestLayerRun>>> {
    runs.into_iter()
        .map(|(ns, n)| ObjectRef::new(&n).within(&ns))
        .collect()
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
                // Its holder's run, and the runs the line serves now.
                let ns = grant.namespace().unwrap_or_default();
                let labels = grant.labels();
                let holder_ns = labels.get(LABEL_HOLDER_NAMESPACE).unwrap_or(&ns);
                let own = labels
                    .get(LABEL_RUN)
                    .map(|r| ObjectRef::<Decoded<TestLayerRun>>::new(r).within(holder_ns));
                for r in own.into_iter().chain(waiting.runs(&ns)) {
                    let _ = wake.unbounded_send(r);
                }
            }
            futures::future::ready(())
        })
    }));
    let resource_wakes = AbortOnDropHandle::new(tokio::spawn(resources.for_each(move |r| {
        if let Ok(r) = r {
            let ns = r.namespace().unwrap_or_default();
            for run in waiting.runs_or_stalled(&ns) {
                let _ = wake.unbounded_send(run);
            }
        }
        futures::future::ready(())
    })));
    (grant_wakes, resource_wakes)
}
