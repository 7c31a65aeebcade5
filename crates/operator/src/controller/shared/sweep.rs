//! Grants whose holder (a run or a CategoryRun) was deleted are given back
//! here, once the holder's Pods have stopped running: a grant has no owner
//! (the garbage collector would delete it with its holder, while the
//! holder's Pods may still run through their grace period), so a look at
//! the caches twice a second finds the grants whose holder is gone, and the
//! apiserver confirms both that the holder is gone and that no Pod of it
//! runs (a cache may lag behind) before the grant is deleted.
//!
//! Grants made by earlier versions were owned by their holder and carried
//! a finalizer: one the garbage collector deleted has its finalizer removed
//! here on the same condition.

use std::collections::HashSet;
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
use crate::controller::shared::writes::{Deleted, delete_grant, given_back, unfinalize};

/// How often grants are looked at.
const EVERY: Duration = Duration::from_millis(500);

/// Gives back the grants of deleted holders once their Pods have stopped;
/// runs until aborted.
pub async fn sweep(ctx: Arc<Context>) {
    crate::controller::kit::cache::synced(&ctx.grants).await;
    crate::controller::kit::cache::synced(&ctx.pods).await;
    crate::controller::kit::cache::synced(&ctx.runs).await;
    crate::controller::kit::cache::synced(&ctx.category_runs).await;
    loop {
        pass(&ctx).await;
        tokio::time::sleep(EVERY).await;
    }
}

/// One look at every grant.
async fn pass(ctx: &Context) {
    let grants = ctx.grants.state();
    if grants.is_empty() {
        return;
    }
    let holders = holder_uids(ctx);
    let pods = ctx.pods.state();
    for grant in grants {
        let Some(g) = Grant::from_lease(&grant) else {
            continue;
        };
        let of_run: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.namespace().as_deref() == Some(&g.run_namespace)
                    && p.labels().get(LABEL_RUN) == Some(&g.run)
            })
            .map(|p| p.as_ref())
            .collect();
        let ns = grant.namespace().unwrap_or_default();
        let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &ns);
        let name = grant.name_any();
        if grant.metadata.deletion_timestamp.is_some() {
            // An earlier version's grant, deleted with its holder.
            if release_when_stopped(&grant, &of_run) && pods_stopped(ctx, &g).await {
                match unfinalize(&api, &GrantRef::of(&grant)).await {
                    Ok(()) => {
                        tracing::info!(grant = %name, namespace = %ns, "a deleted holder's Pods stopped; its grant goes")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, grant = %name, "cannot let a deleted grant go")
                    }
                }
            }
            continue;
        }
        if holders.contains(g.holder_uid.as_str())
            || g.kept_by(&of_run)
            || !holder_gone(ctx, &g).await
            || !pods_stopped(ctx, &g).await
        {
            continue;
        }
        given_back(&ctx.own.grants, &ns, &[GrantRef::of(&grant)]);
        let gone = match delete_grant(&api, &GrantRef::of(&grant)).await {
            Ok(Deleted::WaitsForFinalizer) => unfinalize(&api, &GrantRef::of(&grant)).await,
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match gone {
            Ok(()) => {
                tracing::info!(grant = %name, namespace = %ns, holder = %g.holder, "the holder of a grant is gone and its Pods stopped; its grant goes")
            }
            Err(e) => {
                tracing::warn!(error = %e, grant = %name, "cannot give back the grant of a holder that is gone")
            }
        }
    }
}

/// The uids of every run and CategoryRun in the caches: the holders that
/// may hold grants.
fn holder_uids(ctx: &Context) -> HashSet<String> {
    let runs = ctx.runs.state();
    let crs = ctx.category_runs.state();
    runs.iter()
        .filter_map(|r| r.meta().uid.clone())
        .chain(crs.iter().filter_map(|c| c.meta().uid.clone()))
        .collect()
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

/// Whether the API server confirms that the holder of `g` is gone (a
/// holder just made may not be in the caches yet; any doubt keeps it).
async fn holder_gone(ctx: &Context, g: &Grant) -> bool {
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
            tracing::debug!(error = %e, grant = %g.name, "cannot look up the holder of a grant");
            false
        }
    }
}
