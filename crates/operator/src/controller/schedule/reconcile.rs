//! The TestLayerSchedule reconciler: read (the schedule's runs from the
//! cache, its layer config) → [`step`](super::step::step) → write what it
//! said, in its order. A schedule that does not decode, or whose reconcile
//! panics, is marked Stalled on its own.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};

use super::step::{ScheduleObserved, stalled, step};
use crate::api::names::LABEL_SCHEDULE;
use crate::api::{Decoded, TestLayerRun, TestLayerSchedule};
use crate::controller::kit::error::ControllerError;
use crate::controller::kit::events::send;
use crate::controller::kit::guard::guarded;
use crate::controller::kit::metrics::Metrics;
use crate::controller::kit::patch::patch_status_read_at;
use crate::controller::launch::apply::apply_runs;
use crate::controller::launch::decision::ScheduleNote;
use crate::controller::launch::ticks::Problem;
use crate::controller::run::read::source_text;
use crate::controller::run::step::ConfigAnswer;
use crate::controller::status::note::Note;

/// What every schedule reconcile shares.
pub struct ScheduleContext {
    /// API client.
    pub client: Client,
    /// The runs schedules created (labelled `testlayer.dev/schedule`).
    pub runs: Store<Decoded<TestLayerRun>>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

/// Reconciles one TestLayerSchedule as stored; a panic is caught and
/// reported on it.
pub async fn reconcile(
    obj: Arc<Decoded<TestLayerSchedule>>,
    ctx: Arc<ScheduleContext>,
) -> Result<Requeue, ControllerError> {
    // A tick decided on a cache still listing could miss the runs that
    // show it was already started.
    crate::controller::kit::cache::synced(&ctx.runs).await;
    let conditions = |s: &TestLayerSchedule| s.status.clone().unwrap_or_default().conditions;
    guarded(
        &obj,
        (&ctx.client, &ctx.recorder),
        "schedule",
        conditions,
        |s, ns| {
            let ctx = ctx.clone();
            async move { reconcile_schedule(&s, &ctx, &ns).await }
        },
    )
    .await
}

/// The runs `s` created, from the cache.
fn own_runs(ctx: &ScheduleContext, s: &TestLayerSchedule, ns: &str) -> Vec<Arc<TestLayerRun>> {
    let uid = s.uid();
    ctx.runs
        .state()
        .iter()
        .filter_map(|r| r.valid().cloned())
        .filter(|r| r.namespace().as_deref() == Some(ns))
        .filter(|r| r.labels().get(LABEL_SCHEDULE) == Some(&s.name_any()))
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect()
}

async fn reconcile_schedule(
    s: &Arc<TestLayerSchedule>,
    ctx: &ScheduleContext,
    ns: &str,
) -> Result<Requeue, ControllerError> {
    let owner = format!(
        "TestLayerSchedule {ns}/{} spec.template.spec.config",
        s.name_any()
    );
    let config = match source_text(&ctx.client, &s.spec.template.spec.0.config, ns, &owner).await? {
        ConfigAnswer::Found { text, origin } => Ok((text, origin)),
        ConfigAnswer::Missing(m) => Err(Problem::new("spec.template.spec.config", m)),
    };
    let observed = ScheduleObserved {
        schedule: s.clone(),
        runs: own_runs(ctx, s, ns),
        config,
    };
    let now = Timestamp::now();
    let decided = step(&observed, now);
    let decided = match apply_runs(&ctx.client, ns, &decided).await? {
        None => decided,
        // The apiserver refused a run (admission, quota, validation): the
        // schedule cannot tick as it is.
        Some(p) => stalled(s, &s.status.clone().unwrap_or_default(), &p, now),
    };
    let api: Api<TestLayerSchedule> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(status) = &decided.status {
        patch_status_read_at(&api, &s.name_any(), s.resource_version().as_deref(), status).await?;
    }
    for n in &decided.events {
        ctx.metrics.tick("schedule", &n.reason);
        publish(ctx, s.as_ref(), n).await;
    }
    Ok(match decided.requeue {
        Some(d) => Requeue::requeue(d),
        None => Requeue::await_change(),
    })
}

async fn publish(ctx: &ScheduleContext, s: &TestLayerSchedule, n: &ScheduleNote) {
    let note = Note {
        regarding: s.object_ref(&()),
        warning: n.warning,
        reason: n.reason.clone(),
        note: n.note.clone(),
    };
    send(&ctx.recorder, note, "Schedule").await;
}

/// How a failed schedule reconcile is retried.
pub fn error_policy(
    _obj: Arc<Decoded<TestLayerSchedule>>,
    err: &ControllerError,
    ctx: Arc<ScheduleContext>,
) -> Requeue {
    crate::controller::kit::error::requeue_after(&ctx.metrics, err, "schedule")
}
