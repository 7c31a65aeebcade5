//! Writing grants of shared resources. A unit's grant is a Lease named for
//! the unit, so a unit given back and granted again is a new Lease of the
//! same name: every give-back is conditioned on the uid of the Lease it was
//! decided on. Two controllers (or a reconcile that was retried) may give
//! the same grant back twice; the second must not remove the grant the
//! unit's next holder got in between.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use crate::controller::kit::context::{Context, FIELD_MANAGER};
use crate::controller::kit::error::ControllerError;
use crate::controller::kit::own_writes::OwnWrites;
use crate::controller::shared::claims::{Grant, GrantRef};

/// Grants written to the apiserver at once.
const CONCURRENT: usize = 32;

/// Creates grants, all or none: a unit held by another holder (a create
/// conflict: another run's reconcile, or another controller, was first)
/// gives back the ones made here and fails the reconcile, which is tried
/// again with a fresher view. A grant of the same holder that exists
/// already (made by an earlier pass whose answer was lost) is fine.
pub async fn create_grants(
    ctx: &Context,
    ns: &str,
    leases: Vec<Lease>,
) -> Result<(), ControllerError> {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), ns);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let mut made: Vec<GrantRef> = Vec::new();
    for lease in leases {
        let name = lease.name_any();
        let failed = match api.create(&pp, &lease).await {
            Ok(created) => {
                tracing::info!(grant = %name, holder = ?created.spec.as_ref().and_then(|s| s.holder_identity.as_deref()), "granted");
                made.push(GrantRef::of(&created));
                ctx.own.grants.remember(created, true);
                continue;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let theirs = api
                    .get_opt(&name)
                    .await
                    .map_err(ControllerError::kube(format!("reading grant {name}")))?;
                let holder = |l: &Lease| Grant::from_lease(l).map(|g| g.holder_uid);
                match theirs {
                    Some(t) if holder(&t) == holder(&lease) => {
                        ctx.own.grants.remember(t, true);
                        continue;
                    }
                    _ => kube::Error::Api(e),
                }
            }
            Err(e) => e,
        };
        if !made.is_empty() {
            given_back(&ctx.own.grants, ns, &made);
            release_grants(&api, made).await?;
        }
        return Err(ControllerError::Kube {
            what: format!("granting {name}"),
            source: failed,
        });
    }
    Ok(())
}

/// Marks `grants` of namespace `ns` as given back in this controller's
/// memory of its writes, before they are deleted: no later step may read
/// them as held from a cache that still shows them (it would start a Pod
/// on a unit that is free for others to take). Were a delete to fail, the
/// grant would only look free to this controller, whose create of it
/// again the apiserver refuses.
pub fn given_back(own: &OwnWrites<Lease>, ns: &str, grants: &[GrantRef]) {
    own.forget(ns, &|l| grants.iter().any(|g| g.is(l)));
    for g in grants {
        own.remember_deleted(ns, &g.name, &g.uid);
    }
}

/// Gives grants back: each deleted on the condition that it is still the
/// Lease of its uid (the step gives back only what no Pod that may run
/// keeps); a grant of an earlier version, which waits for its finalizer,
/// has it removed then. Gone already, or a Lease of another uid by now, is
/// fine.
pub async fn release_grants(
    api: &Api<Lease>,
    grants: Vec<GrantRef>,
) -> Result<(), ControllerError> {
    let futs = grants.into_iter().map(|g| {
        let api = api.clone();
        async move {
            if delete_grant(&api, &g).await? == Deleted::WaitsForFinalizer {
                unfinalize(&api, &g).await?;
            }
            Ok(())
        }
    });
    let results: Vec<_> = futures::stream::iter(futs)
        .buffer_unordered(CONCURRENT)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

/// What deleting a grant came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// It is gone.
    Gone,
    /// It is being deleted and waits for its finalizer (a grant made by an
    /// earlier version).
    WaitsForFinalizer,
    /// It was gone already, or the name is another Lease's by now.
    NotThere,
}

/// Deletes grant `g` on the condition that the Lease of its name still has
/// its uid.
pub async fn delete_grant(api: &Api<Lease>, g: &GrantRef) -> Result<Deleted, ControllerError> {
    let dp = DeleteParams {
        preconditions: (!g.uid.is_empty()).then(|| Preconditions {
            uid: Some(g.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&g.name, &dp).await {
        // The Lease back: it is still there, waiting for its finalizer.
        Ok(r)
            if r.as_ref()
                .left()
                .is_some_and(|l| !l.finalizers().is_empty()) =>
        {
            Ok(Deleted::WaitsForFinalizer)
        }
        Ok(_) => Ok(Deleted::Gone),
        // Gone, or the uid differs (a precondition failure is a conflict).
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(Deleted::NotThere),
        Err(e) => Err(ControllerError::Kube {
            what: format!("giving back grant {}", g.name),
            source: e,
        }),
    }
}

/// Removes the finalizer of grant `g` if the Lease of its name still has
/// its uid (a JSON patch that tests the uid first). Gone is fine.
pub async fn unfinalize(api: &Api<Lease>, g: &GrantRef) -> Result<(), ControllerError> {
    use json_patch::jsonptr::PointerBuf;
    use json_patch::{AddOperation, PatchOperation, TestOperation};
    let mut ops = Vec::new();
    if !g.uid.is_empty() {
        ops.push(PatchOperation::Test(TestOperation {
            path: PointerBuf::from_tokens(["metadata", "uid"]),
            value: json!(g.uid),
        }));
    }
    ops.push(PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(["metadata", "finalizers"]),
        value: json!([]),
    }));
    let patch = json_patch::Patch(ops);
    match api
        .patch(&g.name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        // The test failed: the name is another Lease's by now (ours went).
        Err(kube::Error::Api(e)) if e.code == 422 => match api.get_opt(&g.name).await {
            Ok(Some(l)) if g.is(&l) => Err(ControllerError::Kube {
                what: format!("letting grant {} go", g.name),
                source: kube::Error::Api(e),
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(ControllerError::Kube {
                what: format!("reading grant {}", g.name),
                source: e,
            }),
        },
        Err(e) => Err(ControllerError::Kube {
            what: format!("letting grant {} go", g.name),
            source: e,
        }),
    }
}
