//! The status of every TestLayerResource (units in use, holders, who is
//! next), from the caches of grants and claims once a second, written only
//! when it changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;

use crate::api::TestLayerResource;
use crate::controller::kit::context::Context;
use crate::controller::kit::patch::patch_status;
use crate::controller::run::read::shared_view;
use crate::controller::shared::claims::{SharedView, resource_status};

/// How often the statuses are looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Keeps the statuses of TestLayerResources; runs until aborted.
pub async fn keep(ctx: Arc<Context>) {
    crate::controller::kit::cache::synced(&ctx.resources).await;
    crate::controller::kit::cache::synced(&ctx.grants).await;
    crate::controller::kit::cache::synced(&ctx.category_runs).await;
    crate::controller::kit::cache::synced(&ctx.runs).await;
    loop {
        let mut views: BTreeMap<String, SharedView> = BTreeMap::new();
        for r in ctx.resources.state() {
            let Some(r) = r.valid() else { continue };
            let ns = r.namespace().unwrap_or_default();
            let view = views
                .entry(ns.clone())
                .or_insert_with(|| shared_view(&ctx, &ns));
            let next = resource_status(view, &r.name_any());
            if r.status.as_ref() == Some(&next) {
                continue;
            }
            let api: Api<TestLayerResource> = Api::namespaced(ctx.client.clone(), &ns);
            if let Err(e) = patch_status(&api, &r.name_any(), &next).await {
                tracing::warn!(error = %e, resource = %r.name_any(), namespace = %ns, "cannot update the status of a shared resource");
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}
