//! Grants the garbage collector deletes (their holder, a run or a
//! CategoryRun, was deleted) keep their unit until the holder's Pods have
//! stopped running: their finalizer is removed here once no Pod of theirs
//! runs, which a look at the caches twice a second decides.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::build::LABEL_RUN;
use super::context::Context;
use super::step::shared::release_when_stopped;

/// How often deleted grants are looked at.
const EVERY: Duration = Duration::from_millis(500);

/// Lets deleted grants go once their holders' Pods have stopped; runs
/// until aborted.
pub async fn sweep(ctx: Arc<Context>) {
    super::runner::synced(&ctx.grants).await;
    super::runner::synced(&ctx.pods).await;
    loop {
        for grant in ctx.grants.state() {
            if grant.metadata.deletion_timestamp.is_none() {
                continue;
            }
            let ns = grant.namespace().unwrap_or_default();
            let run = grant.labels().get(LABEL_RUN).cloned().unwrap_or_default();
            let pods = ctx.pods.state();
            let of_run: Vec<_> = pods
                .iter()
                .filter(|p| {
                    p.namespace().as_deref() == Some(&ns) && p.labels().get(LABEL_RUN) == Some(&run)
                })
                .map(|p| p.as_ref())
                .collect();
            if !release_when_stopped(&grant, &of_run) {
                continue;
            }
            let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &ns);
            let patch = json!({"metadata": {"finalizers": null}});
            match api
                .patch(
                    &grant.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(grant = %grant.name_any(), namespace = %ns, "a deleted holder's Pods stopped; its grant goes")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(error = %e, grant = %grant.name_any(), "cannot let a deleted grant go")
                }
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}
