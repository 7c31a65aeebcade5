//! Grants the garbage collector deletes (their holder, a run or a
//! CategoryRun, was deleted) keep their unit until the holder's Pods have
//! stopped running: their finalizer is removed here once no Pod of theirs
//! runs, which a look at the caches twice a second decides.
//!
//! A grant held from another namespace (one line serves every namespace)
//! can have no owner reference, so no garbage collector deletes it: it is
//! deleted here once its holder is gone from the caches.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::build::LABEL_RUN;
use super::context::Context;
use super::step::shared::{Grant, release_when_stopped};

/// How often deleted grants are looked at.
const EVERY: Duration = Duration::from_millis(500);

/// Lets deleted grants go once their holders' Pods have stopped; runs
/// until aborted.
pub async fn sweep(ctx: Arc<Context>) {
    super::runner::synced(&ctx.grants).await;
    super::runner::synced(&ctx.pods).await;
    super::runner::synced(&ctx.runs).await;
    super::runner::synced(&ctx.category_runs).await;
    loop {
        for grant in ctx.grants.state() {
            let ns = grant.namespace().unwrap_or_default();
            if grant.metadata.deletion_timestamp.is_none() {
                if orphaned(&ctx, &grant) {
                    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &ns);
                    match api
                        .delete(&grant.name_any(), &DeleteParams::default())
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(grant = %grant.name_any(), namespace = %ns, "the holder of a grant from another namespace is gone; its grant goes")
                        }
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => {
                            tracing::warn!(error = %e, grant = %grant.name_any(), "cannot delete the grant of a holder that is gone")
                        }
                    }
                }
                continue;
            }
            let Some(g) = Grant::from_lease(&grant) else {
                continue;
            };
            let pods = ctx.pods.state();
            let of_run: Vec<_> = pods
                .iter()
                .filter(|p| {
                    p.namespace().as_deref() == Some(&g.run_namespace)
                        && p.labels().get(LABEL_RUN) == Some(&g.run)
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

/// Whether `grant` has no owner (it is held from another namespace) and
/// its holder, run or CategoryRun, is no longer in the caches.
fn orphaned(ctx: &Context, grant: &Lease) -> bool {
    if grant
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| !o.is_empty())
    {
        return false;
    }
    let Some(g) = Grant::from_lease(grant) else {
        return false;
    };
    let uid = Some(g.holder_uid.as_str());
    let is_holder = |meta: &kube::api::ObjectMeta| meta.uid.as_deref() == uid;
    !ctx.runs.state().iter().any(|r| is_holder(r.meta()))
        && !ctx
            .category_runs
            .state()
            .iter()
            .any(|c| is_holder(c.meta()))
}
