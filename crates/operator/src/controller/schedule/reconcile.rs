//! The TestLayerSchedule reconciler: read (the schedule's runs from the
//! cache, its layer config) → [`step`](super::step::step) → write what it
//! said, in its order. A schedule that does not decode, or whose reconcile
//! panics, is marked Stalled on its own.

use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::step::{ScheduleNote, ScheduleObserved, ScheduleStep, stalled, step};
use super::ticks::Problem;
use crate::api::names::LABEL_SCHEDULE;
use crate::api::{Decoded, TestLayerRun, TestLayerSchedule};
use crate::controller::kit::context::{ControllerError, FIELD_MANAGER};
use crate::controller::kit::metrics::Metrics;
use crate::controller::run::apply::{merge_conditions, patch_status, send};
use crate::controller::run::read::source_text;
use crate::controller::run::reconcile::caught;
use crate::controller::run::step::invalid::{
    CONTROLLER_ERROR, INVALID_SPEC, reference, with_stall,
};
use crate::controller::run::step::{ConfigAnswer, Note};
use crate::controller::status::conditions::Stall;

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
    crate::controller::runner::synced(&ctx.runs).await;
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

/// The reconcile of a schedule or trigger (`word`) around `valid`, its part
/// for an object that decoded: one that did not is marked Stalled with the
/// field named; a panic is caught and reported on the object (both with a
/// Warning Event); either way the others go on.
pub(crate) async fn guarded<K, Fut>(
    obj: &Decoded<K>,
    (client, recorder): (&Client, &Recorder),
    word: &str,
    conditions: impl Fn(&K) -> Vec<Condition>,
    valid: impl FnOnce(Arc<K>, String) -> Fut,
) -> Result<Requeue, ControllerError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    Fut: Future<Output = Result<Requeue, ControllerError>>,
{
    let Some(ns) = obj.namespace() else {
        return Err(ControllerError::Incomplete("namespace"));
    };
    let name = obj.name_any();
    let mut action: String = word.into();
    if let Some(first) = action.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let result = caught(async {
        match obj {
            Decoded::Valid(k) => valid(k.clone(), ns.clone()).await,
            Decoded::Invalid(u) => {
                let problem = format!(
                    "{}; the controller cannot use this {word} until it is fixed",
                    u.problem
                );
                let why = (INVALID_SPEC, problem.as_str());
                mark_stalled::<K>(client, recorder, &u.metadata, &u.conditions, why, &action)
                    .await?;
                Ok(Requeue::await_change())
            }
        }
    })
    .await;
    let panic = match result {
        Ok(r) => return r,
        Err(panic) => panic,
    };
    tracing::error!(namespace = %ns, name = %name, panic = %panic, "the reconcile of a {word} panicked");
    let problem =
        format!("the controller failed on this {word} ({panic}); it tries again in a minute");
    let (meta, previous) = match obj {
        Decoded::Valid(k) => (k.meta().clone(), conditions(k)),
        Decoded::Invalid(u) => (u.metadata.clone(), u.conditions.clone()),
    };
    let why = (CONTROLLER_ERROR, problem.as_str());
    if let Err(e) = mark_stalled::<K>(client, recorder, &meta, &previous, why, &action).await {
        tracing::warn!(error = %e, "cannot mark the {word} stalled");
    }
    Err(ControllerError::Panicked(panic))
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
        patch_status(&api, &s.name_any(), status).await?;
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

/// Cancels, creates and deletes the runs `decided` names, in that order;
/// a create the apiserver refuses is returned as the problem it is.
pub(crate) async fn apply_runs<S>(
    client: &Client,
    ns: &str,
    decided: &ScheduleStep<S>,
) -> Result<Option<Problem>, ControllerError> {
    let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), ns);
    for name in &decided.cancel {
        let patch = json!({"spec": {"cancel": true}});
        match runs
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(ControllerError::kube(format!(
                    "cancelling TestLayerRun {name}"
                ))(e));
            }
        }
    }
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    for run in &decided.create {
        let name = run.name_any();
        match runs.create(&pp, run).await {
            Ok(_) => tracing::info!(namespace = %ns, run = %name, "created a scheduled run"),
            // Created before (a restart at the tick): the same tick's run.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(kube::Error::Api(e)) if matches!(e.code, 400 | 403 | 422) => {
                return Ok(Some(Problem::new(
                    "spec.template",
                    format!("the apiserver refused TestLayerRun {name}: {}", e.message),
                )));
            }
            Err(e) => {
                return Err(ControllerError::kube(format!(
                    "creating TestLayerRun {name}"
                ))(e));
            }
        }
    }
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    for name in &decided.delete {
        match runs.delete(name, &dp).await {
            Ok(_) => {
                tracing::info!(namespace = %ns, run = %name, "deleted a run past the schedule's history limit")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(ControllerError::kube(format!(
                    "deleting TestLayerRun {name}"
                ))(e));
            }
        }
    }
    Ok(None)
}

/// Marks an object of kind `K` that cannot be used (it did not decode, or
/// its reconcile panicked) `Stalled=True` with `reason` and `problem`, and
/// publishes a Warning Event as done in `action`, when that is new.
pub(crate) async fn mark_stalled<K>(
    client: &Client,
    recorder: &Recorder,
    meta: &ObjectMeta,
    previous: &[Condition],
    (reason, problem): (&str, &str),
    action: &str,
) -> Result<(), ControllerError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let stall = Stall {
        reason: reason.into(),
        message: problem.into(),
    };
    let conditions = with_stall(
        previous,
        Some(&stall),
        meta.generation,
        &Time(Timestamp::now()),
    );
    if conditions == previous {
        return Ok(());
    }
    let name = meta.name.clone().unwrap_or_default();
    let ns = meta.namespace.clone().unwrap_or_default();
    let api: Api<Decoded<K>> = Api::namespaced(client.clone(), &ns);
    merge_conditions(&api, &name, conditions).await?;
    let n = Note {
        regarding: reference::<K>(meta),
        warning: true,
        reason: reason.into(),
        note: problem.chars().take(1000).collect(),
    };
    send(recorder, n, action).await;
    Ok(())
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
    crate::controller::runner::requeue_after(&ctx.metrics, err, "schedule")
}
