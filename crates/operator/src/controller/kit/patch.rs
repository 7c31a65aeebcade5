//! Status writes every reconciler makes: a whole status by server-side
//! apply, or only the conditions of an object that may not decode.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::api::Decoded;
use crate::controller::kit::context::FIELD_MANAGER;
use crate::controller::kit::error::ControllerError;

/// Server-side apply of a whole status (with apiVersion and kind, as apply
/// requires) under the controller's field manager; the object as stored.
pub async fn patch_status<K>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<K, ControllerError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    apply_status(api, name, None, status).await
}

/// Server-side apply of a whole status computed from the object as read at
/// `resource_version`: the apiserver refuses it (409, tried again soon) if
/// the object changed since, so a status derived from a stale cache never
/// overwrites a newer one (a reconcile woken by the runs it created can see
/// them before the status that recorded them).
pub async fn patch_status_read_at<K>(
    api: &Api<K>,
    name: &str,
    resource_version: Option<&str>,
    status: &impl serde::Serialize,
) -> Result<K, ControllerError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    apply_status(api, name, Some(resource_version), status).await
}

/// The status apply of both: with `read_at`, the resourceVersion the
/// status was computed from as a precondition.
async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    read_at: Option<Option<&str>>,
    status: &impl serde::Serialize,
) -> Result<K, ControllerError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut patch =
        json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
    if let Some(rv) = read_at {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
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

/// A JSON merge patch of the conditions of an object's status (which may
/// not decode, so its whole status cannot be applied).
pub async fn merge_conditions<K>(
    api: &Api<Decoded<K>>,
    name: &str,
    conditions: Vec<Condition>,
) -> Result<(), ControllerError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"status": {"conditions": conditions}});
    api.patch_status(
        name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .map_err(ControllerError::kube(format!(
        "marking {} {name} stalled",
        K::kind(&())
    )))?;
    Ok(())
}
