//! Writes of one notification's entry in its run's status: read fresh from
//! the apiserver, changed, and written only if the run did not change since
//! (a conflict reads again), so that two writers never both take a
//! notification from Pending to Sending.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use super::error::NotifyError;
use crate::api::{NotificationStatus, TestLayerRun};
use crate::controller::kit::context::Context;
use crate::controller::kit::error::ControllerError;
use crate::controller::kit::patch::patch_status_read_at;

/// Tries of one write (conflicts, and an apiserver that does not answer).
const TRIES: usize = 10;
/// Wait between tries after an apiserver that did not answer.
const PAUSE: Duration = Duration::from_secs(1);

/// `now` as a status keeps it (whole seconds).
pub fn now() -> Time {
    let t = Timestamp::now();
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// Reads the run `name` fresh.
pub async fn read(
    api: &Api<TestLayerRun>,
    name: &str,
) -> Result<Option<TestLayerRun>, NotifyError> {
    api.get_opt(name).await.map_err(|source| NotifyError::Kube {
        what: format!("reading TestLayerRun {name}"),
        source,
    })
}

/// Applies `change` to the entry of target `target` of run `name`, as
/// stored now; writes it only when `change` says it changed something.
/// The run as stored after, or `None` when nothing was written (no such
/// entry, or `change` declined).
pub async fn update(
    ctx: &Context,
    api: &Api<TestLayerRun>,
    name: &str,
    target: u32,
    change: impl Fn(&mut NotificationStatus) -> bool,
) -> Result<Option<TestLayerRun>, NotifyError> {
    let mut last = None;
    for _ in 0..TRIES {
        let run = match read(api, name).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) if e.passes() => {
                last = Some(e);
                tokio::time::sleep(PAUSE).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut status = run.status.clone().unwrap_or_default();
        let Some(entry) = status.notifications.iter_mut().find(|n| n.target == target) else {
            return Ok(None);
        };
        if !change(entry) {
            return Ok(None);
        }
        match patch_status_read_at(api, name, run.metadata.resource_version.as_deref(), &status)
            .await
        {
            Ok(stored) => {
                ctx.own.runs.remember(stored.clone(), false);
                return Ok(Some(stored));
            }
            Err(ControllerError::Kube { what, source }) => {
                let e = NotifyError::Kube { what, source };
                if !e.passes() {
                    return Err(e);
                }
                if !matches!(&e, NotifyError::Kube { source: kube::Error::Api(a), .. } if a.code == 409)
                {
                    tokio::time::sleep(PAUSE).await;
                }
                last = Some(e);
            }
            Err(e) => return Err(NotifyError::Target(e.to_string())),
        }
    }
    Err(last
        .unwrap_or_else(|| NotifyError::Target(format!("cannot record a notification of {name}"))))
}
