//! Creating, cancelling and deleting the runs a schedule's or a trigger's
//! decision names.

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::TestLayerRun;
use crate::controller::kit::context::FIELD_MANAGER;
use crate::controller::kit::error::ControllerError;
use crate::controller::launch::decision::ScheduleStep;
use crate::controller::launch::ticks::Problem;

/// Cancels, creates and deletes the runs `decided` names, in that order;
/// a create the apiserver refuses is returned as the problem it is.
pub async fn apply_runs<S>(
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
