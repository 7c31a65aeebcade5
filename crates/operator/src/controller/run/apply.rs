//! The writing side of a reconcile: a step's writes, in order, each entry's
//! requests concurrently; every answer is remembered as this controller's
//! own write (see [`own_writes`](crate::controller::kit::own_writes)). No decisions are made
//! here: a create of an object that exists is fine (names are
//! deterministic), a delete of one that is gone is fine, a Pod the apiserver
//! refuses (400, 403, 422: admission, quota, validation) or that exists
//! already (the run's own, or another owner's: the step tells) is
//! remembered as a fact for the next step (see [`refused`](crate::controller::kit::refused)) and the step's
//! later writes are left to it, anything else (a conflict, a 5xx, a
//! timeout) stops the reconcile with its error and it is retried.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Resource, ResourceExt};

use crate::controller::kit::context::{Context, FIELD_MANAGER};
use crate::controller::kit::error::ControllerError;
use crate::controller::run::step::Write;
use crate::controller::shared::writes::{create_grants, given_back, release_grants};
use crate::controller::status::note::Note;

use crate::api::{CategoryRun, Decoded, TestLayerRun};
use crate::controller::kit::events::send;
use crate::controller::kit::patch::merge_conditions;
use crate::controller::kit::patch::patch_status;

/// Writes sent to the apiserver at once.
const CONCURRENT_WRITES: usize = 32;

/// What applying a step's writes came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Every write was made.
    All,
    /// The apiserver refused a Pod create, that of write number `at`; the
    /// writes after it were not made (the next step decides them knowing
    /// of the refusal).
    PodRefused {
        /// The index of the write that created the Pods.
        at: usize,
    },
}

/// Whether an error answer to a create is the apiserver refusing the object
/// (bad request, forbidden by admission or a quota, invalid), rather than a
/// failure that passes (a conflict, too many requests, a 5xx, a timeout).
fn is_refusal(code: u16) -> bool {
    matches!(code, 400 | 403 | 422)
}

/// Applies `writes` for the run `run_name` in `ns`, in order.
pub async fn apply(
    ctx: &Context,
    ns: &str,
    run_name: &str,
    writes: Vec<Write>,
) -> Result<Applied, ControllerError> {
    let ns = ns.to_string();
    for (at, w) in writes.into_iter().enumerate() {
        match w {
            Write::RunStatus(status) => {
                let api: Api<TestLayerRun> = Api::namespaced(ctx.client.clone(), &ns);
                let stored = patch_status(&api, run_name, &*status).await?;
                ctx.own.runs.remember(stored, false);
            }
            Write::RecordNotifications { status, read_at } => {
                // A conflict fails the reconcile: the next step decides
                // again on the run as it is.
                let api: Api<TestLayerRun> = Api::namespaced(ctx.client.clone(), &ns);
                let stored = crate::controller::kit::patch::patch_status_read_at(
                    &api,
                    run_name,
                    read_at.as_deref(),
                    &*status,
                )
                .await?;
                ctx.own.runs.remember(stored, false);
            }
            Write::CreatePlan(cm) => {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
                create_all(&api, vec![*cm], "ConfigMap", trim_config_map)
                    .await
                    .1?;
            }
            Write::CreateTestCases(cms) => {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
                let (created, failed) = create_all(&api, cms, "ConfigMap", trim_config_map).await;
                failed?;
                for c in created {
                    if let Created::Refused { error, obj } = c {
                        // The results are in the status; only the full
                        // list of test cases is lost.
                        tracing::warn!(configmap = %obj.name_any(), code = error.code, message = %error.message, "the apiserver refused a ConfigMap of test cases");
                    }
                }
            }
            Write::CreateCategoryRuns(crs) => {
                let api: Api<CategoryRun> = Api::namespaced(ctx.client.clone(), &ns);
                // Every create that succeeded is remembered, even when
                // another failed: the next step must not make it again.
                let (created, failed) =
                    create_all(&api, crs, "CategoryRun", trim_category_run).await;
                for c in created {
                    match c {
                        Created::New(cr) => ctx.own.category_runs.remember(cr, true),
                        Created::Existed(_) => {}
                        Created::Refused { error, obj } => {
                            return Err(ControllerError::Kube {
                                what: format!("creating CategoryRun {}", obj.name_any()),
                                source: kube::Error::Api(error),
                            });
                        }
                    }
                }
                failed?;
            }
            Write::CreatePods(pods) => {
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                let mut refused = false;
                let (created, failed) =
                    create_all(&api, pods, "Pod", crate::controller::kit::cache::trim_pod).await;
                for c in created {
                    match c {
                        Created::New(p) => {
                            ctx.own.refused.created(&ns, &p.name_any());
                            ctx.own.pods.remember(p, true);
                        }
                        Created::Existed(ours) => {
                            // The run's own (a create whose answer was
                            // lost) or another owner's: the step tells,
                            // knowing the create met it; the step's later
                            // writes are left to it.
                            ctx.own.refused.met_existing(
                                &ns,
                                &controller_uid(&ours).unwrap_or_default(),
                                &ours.name_any(),
                                Timestamp::now(),
                            );
                            refused = true;
                        }
                        Created::Refused { error, obj } => {
                            let name = obj.name_any();
                            tracing::info!(pod = %name, code = error.code, message = %error.message, "the apiserver refused a pod");
                            let owner = controller_uid(&obj).unwrap_or_default();
                            ctx.own.refused.record(
                                &ns,
                                &owner,
                                &name,
                                &error.message,
                                Timestamp::now(),
                            );
                            refused = true;
                        }
                    }
                }
                failed?;
                if refused {
                    return Ok(Applied::PodRefused { at });
                }
            }
            Write::CategoryRunStatuses(statuses) => {
                let api: Api<CategoryRun> = Api::namespaced(ctx.client.clone(), &ns);
                // Each answer is trimmed as it comes in: thousands of
                // whole objects must not wait for the last one.
                let futs = statuses.into_iter().map(|(name, st)| {
                    let api = api.clone();
                    async move {
                        let mut cr = patch_status(&api, &name, &st).await?;
                        trim_category_run(&mut cr);
                        Ok::<_, ControllerError>(cr)
                    }
                });
                let results: Vec<_> = futures::stream::iter(futs)
                    .buffer_unordered(CONCURRENT_WRITES)
                    .collect()
                    .await;
                for r in results {
                    ctx.own.category_runs.remember(r?, false);
                }
            }
            Write::CreateGrants(leases) => {
                // Grants live with their resources, maybe not in the run's
                // namespace.
                let home = leases
                    .first()
                    .and_then(|l| l.namespace())
                    .unwrap_or_else(|| ns.clone());
                create_grants(ctx, &home, leases).await?
            }
            Write::DeleteGrants(home, grants) => {
                tracing::info!(run = %run_name, namespace = %home, grants = ?grants, "giving back grants");
                let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &home);
                given_back(&ctx.own.grants, &home, &grants);
                release_grants(&api, grants).await?;
            }
            Write::StopPods(stops) => {
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                let (stopped, refused) = stop_all(&api, stops).await?;
                for mut p in stopped {
                    crate::controller::kit::cache::trim_pod(&mut p);
                    ctx.own.pods.remember(p, false);
                }
                // A Pod that cannot take the change is stopped by deletion.
                for mut p in delete_all(&api, refused, "pod", None)
                    .await?
                    .into_iter()
                    .flatten()
                {
                    crate::controller::kit::cache::trim_pod(&mut p);
                    ctx.own.pods.remember(p, false);
                }
            }
            Write::DeletePods(names) => {
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                for mut p in delete_all(&api, names, "pod", None)
                    .await?
                    .into_iter()
                    .flatten()
                {
                    crate::controller::kit::cache::trim_pod(&mut p);
                    ctx.own.pods.remember(p, false);
                }
            }
            Write::DeleteCategoryRuns(names) => {
                let api: Api<CategoryRun> = Api::namespaced(ctx.client.clone(), &ns);
                ctx.own
                    .category_runs
                    .forget(&ns, &|cr| cr.spec.run_name == run_name);
                ctx.own.pods.forget(&ns, &|p| {
                    p.labels()
                        .get(crate::api::names::LABEL_RUN)
                        .map(String::as_str)
                        == Some(run_name)
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
                    vec![run_name.to_string()],
                    "finished TestLayerRun",
                    Some(PropagationPolicy::Background),
                )
                .await?;
            }
            Write::RunConditions(conditions) => {
                let api: Api<Decoded<TestLayerRun>> = Api::namespaced(ctx.client.clone(), &ns);
                merge_conditions(&api, run_name, conditions).await?;
            }
            Write::CategoryRunConditions(marks) => {
                let api: Api<Decoded<CategoryRun>> = Api::namespaced(ctx.client.clone(), &ns);
                for (name, conditions) in marks {
                    merge_conditions(&api, &name, conditions).await?;
                }
            }
            Write::Event(n) => publish(ctx, n).await,
        }
    }
    Ok(Applied::All)
}

/// What became of one create.
enum Created<K> {
    /// Created: the object as stored.
    New(K),
    /// One of this name exists already (this one, as it was to be created).
    Existed(K),
    /// The apiserver refused it ([`is_refusal`]).
    Refused {
        /// The object.
        obj: K,
        /// The apiserver's answer.
        error: Box<kube::core::Status>,
    },
}

/// The uid of an object's controller.
fn controller_uid(obj: &impl Resource) -> Option<String> {
    obj.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
}

/// What is kept of a created ConfigMap: its metadata.
fn trim_config_map(cm: &mut ConfigMap) {
    cm.metadata.managed_fields = None;
    cm.data = None;
    cm.binary_data = None;
}

/// What is kept of a created CategoryRun: all but its managedFields.
fn trim_category_run(cr: &mut CategoryRun) {
    cr.metadata.managed_fields = None;
}

/// Creates objects, [`CONCURRENT_WRITES`] at a time; ones that exist already
/// are fine. Returns what became of each create that was answered, every
/// object passed through `trim` as soon as its answer is in (a batch of
/// thousands of Pods must not be held whole until its last create), and
/// the first failure, if any (a create that failed tells nothing of the
/// others, which are still to be remembered).
async fn create_all<K>(
    api: &Api<K>,
    objs: Vec<K>,
    kind: &str,
    trim: fn(&mut K),
) -> (Vec<Created<K>>, Result<(), ControllerError>)
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
            let mut o = o;
            let created = api.create(&pp, &o).await;
            trim(&mut o);
            match created {
                Ok(mut created) => {
                    trim(&mut created);
                    Ok(Created::New(created))
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Created::Existed(o)),
                Err(kube::Error::Api(e)) if is_refusal(e.code) => {
                    Ok(Created::Refused { obj: o, error: e })
                }
                Err(e) => Err(ControllerError::Kube {
                    what: format!("creating {kind} {}", o.name_any()),
                    source: e,
                }),
            }
        }
    });
    let results: Vec<Result<Created<K>, ControllerError>> = futures::stream::iter(futs)
        .buffer_unordered(CONCURRENT_WRITES)
        .collect()
        .await;
    let mut created = Vec::with_capacity(results.len());
    let mut failed = Ok(());
    for r in results {
        match r {
            Ok(c) => created.push(c),
            Err(e) => {
                tracing::debug!(error = %e, "a create failed");
                if failed.is_ok() {
                    failed = Err(e);
                }
            }
        }
    }
    (created, failed)
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

/// Stops each Pod of `stops` and keeps it (see [`Write::StopPods`]):
/// the Pods patched, and the names of those the apiserver would not change
/// (to delete instead). A Pod that is gone is left out of both.
async fn stop_all(
    api: &Api<Pod>,
    stops: Vec<crate::controller::run::step::PodStop>,
) -> Result<(Vec<Pod>, Vec<String>), ControllerError> {
    use crate::api::names::ANNOTATION_STOPPED_AT;
    let futs = stops.into_iter().map(|s| {
        let api = api.clone();
        async move {
            let patch = serde_json::json!({
                "metadata": {"annotations": {ANNOTATION_STOPPED_AT: s.at}},
                "spec": {"activeDeadlineSeconds": s.deadline_seconds},
            });
            match api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(p) => Ok((Some(p), None)),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok((None, None)),
                // Refused (or not allowed: RBAC without `patch` on Pods):
                // stopped the other way.
                Err(kube::Error::Api(e)) if e.code == 422 || e.code == 403 => {
                    tracing::info!(pod = %s.name, code = e.code, message = %e.message, "a pod cannot be stopped and kept; deleting it");
                    Ok((None, Some(s.name)))
                }
                Err(e) => Err(ControllerError::Kube {
                    what: format!("stopping pod {}", s.name),
                    source: e,
                }),
            }
        }
    });
    let results: Vec<Result<_, ControllerError>> = futures::stream::iter(futs)
        .buffer_unordered(CONCURRENT_WRITES)
        .collect()
        .await;
    let (mut stopped, mut refused) = (Vec::new(), Vec::new());
    for r in results {
        let (p, name) = r?;
        stopped.extend(p);
        refused.extend(name);
    }
    Ok((stopped, refused))
}

async fn publish(ctx: &Context, n: Note) {
    send(&ctx.recorder, n, "Reconcile").await;
}

#[cfg(test)]
mod tests {
    use super::is_refusal;

    #[test]
    fn only_a_refusal_is_a_fact_for_the_step_and_transient_failures_stay_errors() {
        for code in [400, 403, 422] {
            assert!(is_refusal(code), "{code}");
        }
        for code in [401, 404, 408, 409, 429, 500, 503, 504] {
            assert!(!is_refusal(code), "{code}");
        }
    }
}
