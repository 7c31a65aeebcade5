//! The writing side of a reconcile: a step's writes, in order, each entry's
//! requests concurrently; every answer is remembered as this controller's
//! own write (see [`own_writes`](super::own_writes)). No decisions are made
//! here: a create of an object that exists is fine (names are
//! deterministic), a delete of one that is gone is fine, anything else stops
//! the reconcile with its error and it is retried.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::context::{Context, ControllerError, FIELD_MANAGER};
use super::step::{Note, Write};
use crate::api::{CategoryRun, TestLayerRun};

/// Writes sent to the apiserver at once.
const CONCURRENT_WRITES: usize = 32;

/// Applies `writes` for `run`, in order.
pub async fn apply(
    ctx: &Context,
    run: &TestLayerRun,
    writes: Vec<Write>,
) -> Result<(), ControllerError> {
    let ns = run.namespace().unwrap_or_default();
    for w in writes {
        match w {
            Write::RunStatus(status) => {
                let api: Api<TestLayerRun> = Api::namespaced(ctx.client.clone(), &ns);
                let stored = patch_status(&api, &run.name_any(), &*status).await?;
                ctx.own.runs.remember(stored, false);
            }
            Write::CreatePlan(cm) => {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
                create_all(&api, vec![*cm], "ConfigMap").await?;
            }
            Write::CreateCategoryRuns(crs) => {
                let api: Api<CategoryRun> = Api::namespaced(ctx.client.clone(), &ns);
                for cr in create_all(&api, crs, "CategoryRun").await? {
                    ctx.own.category_runs.remember(cr, true);
                }
            }
            Write::CreatePods(pods) => {
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                for p in create_all(&api, pods, "Pod").await? {
                    ctx.own.pods.remember(p, true);
                }
            }
            Write::CategoryRunStatuses(statuses) => {
                let api: Api<CategoryRun> = Api::namespaced(ctx.client.clone(), &ns);
                let futs = statuses.into_iter().map(|(name, st)| {
                    let api = api.clone();
                    async move { patch_status(&api, &name, &st).await }
                });
                let results: Vec<_> = futures::stream::iter(futs)
                    .buffer_unordered(CONCURRENT_WRITES)
                    .collect()
                    .await;
                for r in results {
                    ctx.own.category_runs.remember(r?, false);
                }
            }
            Write::DeletePods(names) => {
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                for p in delete_all(&api, names, "pod", None)
                    .await?
                    .into_iter()
                    .flatten()
                {
                    ctx.own.pods.remember(p, false);
                }
            }
            Write::DeleteCategoryRuns(names) => {
                let api: Api<CategoryRun> = Api::namespaced(ctx.client.clone(), &ns);
                let run_name = run.name_any();
                ctx.own
                    .category_runs
                    .forget(&ns, &|cr| cr.spec.run_name == run_name);
                ctx.own.pods.forget(&ns, &|p| {
                    p.labels().get(super::build::LABEL_RUN) == Some(&run_name)
                });
                delete_all(
                    &api,
                    names,
                    "CategoryRun",
                    Some(PropagationPolicy::Background),
                )
                .await?;
            }
            Write::DeleteRun => {
                let api: Api<TestLayerRun> = Api::namespaced(ctx.client.clone(), &ns);
                delete_all(
                    &api,
                    vec![run.name_any()],
                    "finished TestLayerRun",
                    Some(PropagationPolicy::Background),
                )
                .await?;
            }
            Write::Event(n) => publish(ctx, n).await,
        }
    }
    Ok(())
}

/// Server-side apply of a whole status (with apiVersion and kind, as apply
/// requires) under the controller's field manager; the object as stored.
async fn patch_status<K>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<K, ControllerError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(ControllerError::kube(format!(
        "updating the status of {} {name}",
        K::kind(&())
    )))
}

/// Creates objects, [`CONCURRENT_WRITES`] at a time; ones that exist already
/// are fine. Returns the objects it created.
async fn create_all<K>(api: &Api<K>, objs: Vec<K>, kind: &str) -> Result<Vec<K>, ControllerError>
where
    K: Resource
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let futs = objs.into_iter().map(|o| {
        let api = api.clone();
        async move {
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&pp, &o).await {
                Ok(created) => Ok(Some(created)),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
                Err(e) => Err(ControllerError::Kube {
                    what: format!("creating {kind} {}", o.name_any()),
                    source: e,
                }),
            }
        }
    });
    let results: Vec<Result<Option<K>, ControllerError>> = futures::stream::iter(futs)
        .buffer_unordered(CONCURRENT_WRITES)
        .collect()
        .await;
    let mut created = Vec::new();
    for r in results {
        created.extend(r?);
    }
    Ok(created)
}

/// Deletes objects by name; ones that are gone are fine. Returns what the
/// apiserver answered for each (the object while it terminates).
async fn delete_all<K>(
    api: &Api<K>,
    names: Vec<String>,
    kind: &str,
    propagation: Option<PropagationPolicy>,
) -> Result<Vec<Option<K>>, ControllerError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let dp = DeleteParams {
        propagation_policy: propagation,
        ..DeleteParams::default()
    };
    let futs = names.into_iter().map(|name| {
        let (api, dp) = (api.clone(), dp.clone());
        async move {
            match api.delete(&name, &dp).await {
                Ok(either) => Ok(either.left()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
                Err(e) => Err(ControllerError::Kube {
                    what: format!("deleting {kind} {name}"),
                    source: e,
                }),
            }
        }
    });
    let results: Vec<_> = futures::stream::iter(futs)
        .buffer_unordered(CONCURRENT_WRITES)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn publish(ctx: &Context, n: Note) {
    let ev = Event {
        type_: if n.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: n.reason,
        note: Some(n.note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &n.regarding).await {
        tracing::warn!(error = %e, "cannot publish an event");
    }
}
