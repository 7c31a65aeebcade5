//! Grants the garbage collector deletes (their holder, a run or a
//! CategoryRun, was deleted) keep their unit until the holder's Pods have
//! stopped running: their finalizer is removed here once no Pod of theirs
//! runs, which a look at the caches twice a second decides and the
//! apiserver confirms (a cache may lag behind a Pod's start).
//!
//! A grant held from another namespace (one line serves every namespace)
//! can have no owner reference, so no garbage collector deletes it: it is
//! deleted here once its holder is gone from the caches.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};

use crate::api::names::{LABEL_ATTEMPT, LABEL_RUN};
use crate::api::{CategoryRun, TestLayerRun};
use crate::controller::kit::context::Context;
use crate::controller::shared::claims::{Grant, GrantRef, release_when_stopped};
use crate::controller::shared::writes::{delete_grant, unfinalize};

/// How often deleted grants are looked at.
const EVERY: Duration = Duration::from_millis(500);

/// Lets deleted grants go once their holders' Pods have stopped; runs
/// until aborted.
pub async fn sweep(ctx: Arc<Context>) {
    crate::controller::kit::cache::synced(&ctx.grants).await;
    crate::controller::kit::cache::synced(&ctx.pods).await;
    crate::controller::kit::cache::synced(&ctx.runs).await;
    crate::controller::kit::cache::synced(&ctx.category_runs).await;
    loop {
        for grant in ctx.grants.state() {
            let ns = grant.namespace().unwrap_or_default();
            if grant.metadata.deletion_timestamp.is_none() {
                if orphaned(&ctx, &grant) && holder_gone(&ctx, &grant).await {
                    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &ns);
                    match delete_grant(&api, &GrantRef::of(&grant)).await {
                        Ok(_) => {
                            tracing::info!(grant = %grant.name_any(), namespace = %ns, "the holder of a grant from another namespace is gone; its grant goes")
                        }
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
            if !release_when_stopped(&grant, &of_run) || !pods_stopped(&ctx, &g).await {
                continue;
            }
            let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &ns);
            match unfinalize(&api, &GrantRef::of(&grant)).await {
                Ok(()) => {
                    tracing::info!(grant = %grant.name_any(), namespace = %ns, "a deleted holder's Pods stopped; its grant goes")
                }
                Err(e) => {
                    tracing::warn!(error = %e, grant = %grant.name_any(), "cannot let a deleted grant go")
                }
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Whether the API server confirms that no Pod that keeps `g` may still
/// run (the cache may not show a Pod made a moment ago, or by another
/// controller; any doubt keeps the grant).
async fn pods_stopped(ctx: &Context, g: &Grant) -> bool {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &g.run_namespace);
    let mut selector = format!("{LABEL_RUN}={}", g.run);
    if g.attempt > 0 {
        selector += &format!(",{LABEL_ATTEMPT}={}", g.attempt);
    }
    match api.list(&ListParams::default().labels(&selector)).await {
        Ok(pods) => {
            let pods: Vec<&Pod> = pods.items.iter().collect();
            let kept = g.kept_by(&pods);
            if kept {
                tracing::debug!(grant = %g.name, "the cache shows no Pod that keeps this grant, the apiserver does");
            }
            !kept
        }
        Err(e) => {
            tracing::debug!(error = %e, grant = %g.name, "cannot list the Pods that keep a grant");
            false
        }
    }
}

/// Whether the API server confirms that the holder of `grant` is gone (a
/// holder just made may not be in the caches yet; any doubt keeps it).
async fn holder_gone(ctx: &Context, grant: &Lease) -> bool {
    let Some(g) = Grant::from_lease(grant) else {
        return false;
    };
    let uid = if g.attempt == 0 {
        Api::<TestLayerRun>::namespaced(ctx.client.clone(), &g.run_namespace)
            .get_metadata_opt(&g.holder)
            .await
            .map(|o| o.map(|m| m.metadata.uid))
    } else {
        Api::<CategoryRun>::namespaced(ctx.client.clone(), &g.run_namespace)
            .get_metadata_opt(&g.holder)
            .await
            .map(|o| o.map(|m| m.metadata.uid))
    };
    match uid {
        Ok(None) => true,
        Ok(Some(uid)) => uid.as_deref() != Some(g.holder_uid.as_str()),
        Err(e) => {
            tracing::debug!(error = %e, grant = %grant.name_any(), "cannot look up the holder of a grant");
            false
        }
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
