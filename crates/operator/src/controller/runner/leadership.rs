//! Leader election: waiting for the Lease before anything is watched, and
//! noticing when it is lost.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::options::{LeaderElection, RunError};
use crate::controller::kit::context::FIELD_MANAGER;

/// The Lease this replica holds.
pub(super) struct Leadership {
    /// Whether it still leads.
    channel: watch::Receiver<bool>,
    /// The task that keeps the Lease.
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    /// The Lease's name.
    lease: String,
}

/// Waits until this replica (`identity`) holds the Lease `le` names.
pub(super) async fn lead(
    client: &Client,
    le: &LeaderElection,
    identity: &str,
) -> Result<Leadership, RunError> {
    let opts_identity = identity;
    let lease_err = |source| RunError::Lease {
        namespace: le.namespace.clone(),
        name: le.lease_name.clone(),
        source,
    };
    // The apiserver may not answer yet (a control plane that
    // restarts): try again rather than exit.
    let manager = loop {
        let built = LeaseManagerBuilder::new(client.clone(), &le.lease_name)
            .with_namespace(&le.namespace)
            .with_identity(opts_identity)
            .with_duration(le.lease_seconds)
            .with_grace(le.grace_seconds)
            .with_field_manager(format!("{FIELD_MANAGER}-lease"))
            .build()
            .await;
        match built {
            Ok(m) => break m,
            Err(e) => {
                tracing::warn!(error = %lease_err(e), "cannot use the Lease yet; trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let (mut channel, task) = manager.watch().await;
    tracing::info!(lease = %le.lease_name, identity = %opts_identity, "waiting for the leadership");
    while !*channel.borrow_and_update() {
        if channel.changed().await.is_err() {
            let err = match task.await {
                Ok(Err(e)) => lease_err(e),
                _ => RunError::LostLeadership(le.lease_name.clone()),
            };
            return Err(err);
        }
    }
    tracing::info!(lease = %le.lease_name, identity = %opts_identity, "leading");
    Ok(Leadership {
        channel,
        task,
        lease: le.lease_name.clone(),
    })
}

impl Leadership {
    /// Resolves when another replica has taken the Lease over.
    pub(super) async fn lost(&mut self) -> RunError {
        loop {
            if self.channel.changed().await.is_err() || !*self.channel.borrow_and_update() {
                return RunError::LostLeadership(self.lease.clone());
            }
        }
    }

    /// Gives the Lease up (closing the channel makes the manager release
    /// it) and waits for that.
    pub(super) async fn release(self) {
        drop(self.channel);
        let _ = self.task.await;
    }
}
