//! The one guard around every reconcile: an object that does not decode is
//! marked Stalled with the field named, a panic is caught and reported on
//! the object (both with a Warning Event), and either way the other
//! objects go on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::Recorder;
use kube::{Client, Resource, ResourceExt};

use crate::api::Decoded;
use crate::controller::kit::error::ControllerError;
use crate::controller::kit::events::send;
use crate::controller::kit::patch::merge_conditions;
use crate::controller::status::conditions::Stall;
use crate::controller::status::invalid::{marked_stalled, panic_message, reference};
use crate::controller::status::note::Note;
use crate::controller::status::reasons::StallReason;

/// The output of `fut`, or the message of its panic.
pub async fn caught<T>(fut: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|payload| panic_message(payload.as_ref()))
}

/// The reconcile of a schedule or trigger (`word`) around `valid`, its part
/// for an object that decoded: one that did not is marked Stalled with the
/// field named; a panic is caught and reported on the object (both with a
/// Warning Event); either way the others go on.
pub async fn guarded<K, Fut>(
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
                let why = (StallReason::InvalidSpec.as_str(), problem.as_str());
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
    let why = (StallReason::ControllerError.as_str(), problem.as_str());
    if let Err(e) = mark_stalled::<K>(client, recorder, &meta, &previous, why, &action).await {
        tracing::warn!(error = %e, "cannot mark the {word} stalled");
    }
    Err(ControllerError::Panicked(panic))
}

/// Marks an object of kind `K` that cannot be used (it did not decode, or
/// its reconcile panicked) `Stalled=True` with `reason` and `problem`, and
/// publishes a Warning Event as done in `action`, when that is new.
pub async fn mark_stalled<K>(
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
    let Some(conditions) = marked_stalled(previous, &stall, meta.generation, Timestamp::now())
    else {
        return Ok(());
    };
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

#[cfg(test)]
mod tests {
    use super::caught;

    #[tokio::test]
    async fn a_panic_is_caught_with_its_message() {
        let index = 7;
        let fut = async move {
            let plan: Vec<u32> = Vec::new();
            plan[index]
        };
        let err = caught(fut).await.expect_err("the panic escaped");
        assert!(err.contains("index out of bounds"), "{err}");
        assert_eq!(caught(async { 3 }).await, Ok(3));
        let fmt = caught(async { panic!("run {} is odd", "r") }).await;
        assert_eq!(fmt, Err::<(), _>("run r is odd".into()));
    }
}
