//! The TestLayerTrigger reconciler: read (the trigger's runs from the
//! cache, its layer config, the resources it watches) → [`step`] → write
//! what it said, as a schedule's reconcile does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind, Selector};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;

use super::step::{TriggerObserved, step};
use crate::api::names::LABEL_TRIGGER;
use crate::api::{Decoded, TestLayerRun, TestLayerTrigger, WatchedResource};
use crate::controller::kit::error::ControllerError;
use crate::controller::kit::events::send;
use crate::controller::kit::guard::guarded;
use crate::controller::kit::metrics::Metrics;
use crate::controller::kit::patch::patch_status_read_at;
use crate::controller::launch::apply::apply_runs;
use crate::controller::launch::ticks::Problem;
use crate::controller::run::read::source_text;
use crate::controller::run::step::ConfigAnswer;
use crate::controller::status::conditions::{bounded, one_line};
use crate::controller::status::note::Note;

/// What every trigger reconcile shares.
pub struct TriggerContext {
    /// API client.
    pub client: Client,
    /// The runs triggers created (labelled `testlayer.dev/trigger`).
    pub runs: Store<Decoded<TestLayerRun>>,
    /// Every trigger (for the watches).
    pub triggers: Store<Decoded<TestLayerTrigger>>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Discovered kinds, by apiVersion and kind.
    pub kinds: Mutex<HashMap<(String, String), ApiResource>>,
}

/// The `GroupVersionKind` of what `w` names.
pub fn gvk(w: &WatchedResource) -> GroupVersionKind {
    let (group, version) = w
        .api_version
        .split_once('/')
        .unwrap_or(("", &w.api_version));
    GroupVersionKind::gvk(group, version, &w.kind)
}

/// The API resource of `w`'s kind, discovered once.
pub async fn api_resource(
    ctx: &TriggerContext,
    w: &WatchedResource,
) -> Result<ApiResource, Problem> {
    let key = (w.api_version.clone(), w.kind.clone());
    if let Ok(kinds) = ctx.kinds.lock()
        && let Some(ar) = kinds.get(&key)
    {
        return Ok(ar.clone());
    }
    let (ar, _) = kube::discovery::pinned_kind(&ctx.client, &gvk(w))
        .await
        .map_err(|e| {
            let served = format!(
                "this cluster serves no kind {} in apiVersion {}",
                w.kind, w.api_version
            );
            Problem::new(
                "spec.watch.kind",
                match e {
                    // The group or version is not served (the apiserver's
                    // 404 body is plain text, not worth repeating), or the
                    // kind is not in it.
                    kube::Error::Api(s) if s.code == 404 => served,
                    kube::Error::Discovery(_) => served,
                    other => format!(
                        "cannot look up kind {} in apiVersion {}: {}",
                        w.kind,
                        w.api_version,
                        bounded(&one_line(&other.to_string()), 200)
                    ),
                },
            )
        })?;
    if let Ok(mut kinds) = ctx.kinds.lock() {
        kinds.insert(key, ar.clone());
    }
    Ok(ar)
}

/// The resources trigger `t` watches in `ns`, as JSON, or why they cannot
/// be read (a kind the cluster does not serve, or the controller may not
/// read: a problem of the trigger's; anything else an error to retry).
async fn watched(
    ctx: &TriggerContext,
    t: &TestLayerTrigger,
    ns: &str,
) -> Result<Result<Vec<Value>, Problem>, ControllerError> {
    let w = &t.spec.watch;
    let ar = match api_resource(ctx, w).await {
        Ok(ar) => ar,
        Err(p) => return Ok(Err(p)),
    };
    // Only the resource whose reading the admission policy checked.
    if let Err(p) = super::access::served_as_checked(&ar.group, &w.kind, &ar.plural) {
        return Ok(Err(p));
    }
    let ns = w.namespace.as_deref().unwrap_or(ns);
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
    let read = match (&w.name, &w.selector) {
        (Some(name), _) => api.get_opt(name).await.map(|o| o.into_iter().collect()),
        (None, Some(sel)) => {
            let selector = match Selector::try_from(sel.clone()) {
                Ok(s) => s,
                Err(e) => return Ok(Err(Problem::new("spec.watch.selector", e.to_string()))),
            };
            api.list(&ListParams::default().labels_from(&selector))
                .await
                .map(|l| l.items)
        }
        (None, None) => Ok(Vec::new()),
    };
    match read {
        Ok(objects) => Ok(Ok(objects
            .iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect())),
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(Err(Problem::new(
            "spec.watch.kind",
            format!(
                "the controller may not read {} in namespace {ns}: {}; grant it (the chart grants the kinds in its value triggers.watch)",
                resource_name(&ar),
                e.message
            ),
        ))),
        Err(e) => Err(ControllerError::kube(format!(
            "reading the {} watched by TestLayerTrigger {ns}/{}",
            resource_name(&ar),
            t.name_any()
        ))(e)),
    }
}

fn resource_name(ar: &ApiResource) -> String {
    if ar.group.is_empty() {
        ar.plural.clone()
    } else {
        format!("{}.{}", ar.plural, ar.group)
    }
}

/// Reconciles one TestLayerTrigger as stored; a panic is caught and
/// reported on it.
pub async fn reconcile(
    obj: Arc<Decoded<TestLayerTrigger>>,
    ctx: Arc<TriggerContext>,
) -> Result<Requeue, ControllerError> {
    crate::controller::kit::cache::synced(&ctx.runs).await;
    let conditions = |t: &TestLayerTrigger| t.status.clone().unwrap_or_default().conditions;
    guarded(
        &obj,
        (&ctx.client, &ctx.recorder),
        "trigger",
        conditions,
        |t, ns| {
            let ctx = ctx.clone();
            async move { reconcile_trigger(&t, &ctx, &ns).await }
        },
    )
    .await
}

async fn reconcile_trigger(
    t: &Arc<TestLayerTrigger>,
    ctx: &TriggerContext,
    ns: &str,
) -> Result<Requeue, ControllerError> {
    let owner = format!(
        "TestLayerTrigger {ns}/{} spec.template.spec.config",
        t.name_any()
    );
    let config = match source_text(&ctx.client, &t.spec.template.spec.0.config, ns, &owner).await? {
        ConfigAnswer::Found { text, origin } => Ok((text, origin)),
        ConfigAnswer::Missing(m) => Err(Problem::new("spec.template.spec.config", m)),
    };
    let uid = t.uid();
    let runs = ctx
        .runs
        .state()
        .iter()
        .filter_map(|r| r.valid().cloned())
        .filter(|r| r.namespace().as_deref() == Some(ns))
        .filter(|r| r.labels().get(LABEL_TRIGGER) == Some(&t.name_any()))
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect();
    let observed = TriggerObserved {
        trigger: t.clone(),
        runs,
        config,
        watched: watched(ctx, t, ns).await?,
    };
    let now = Timestamp::now();
    let mut decided = step(&observed, now);
    if let Some(p) = apply_runs(&ctx.client, ns, &decided).await? {
        // Refused by the apiserver: stall, and record nothing as fired.
        let mut refused = observed.clone();
        refused.config = Err(p);
        decided = step(&refused, now);
    }
    let api: Api<TestLayerTrigger> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(status) = &decided.status {
        patch_status_read_at(&api, &t.name_any(), t.resource_version().as_deref(), status).await?;
    }
    for n in &decided.events {
        ctx.metrics.tick("trigger", &n.reason);
        let note = Note {
            regarding: t.object_ref(&()),
            warning: n.warning,
            reason: n.reason.clone(),
            note: n.note.clone(),
        };
        send(&ctx.recorder, note, "Trigger").await;
    }
    Ok(match decided.requeue {
        Some(d) => Requeue::requeue(d),
        None => Requeue::await_change(),
    })
}

/// How a failed trigger reconcile is retried.
pub fn error_policy(
    _obj: Arc<Decoded<TestLayerTrigger>>,
    err: &ControllerError,
    ctx: Arc<TriggerContext>,
) -> Requeue {
    crate::controller::kit::error::requeue_after(&ctx.metrics, err, "trigger")
}
