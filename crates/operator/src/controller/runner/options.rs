//! How the controller runs, and why it stopped.

use std::net::SocketAddr;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: SocketAddr,
    /// Watch one namespace only (default: all).
    pub namespace: Option<String>,
    /// Runs reconciled at once.
    pub concurrency: u16,
    /// This replica's name (events name it as their reporting instance).
    pub identity: String,
    /// Act only while holding this Lease (for more than one replica).
    pub leader_election: Option<LeaderElection>,
    /// Serve the shared resources of every namespace's runs from the
    /// TestLayerResources (and grants) of this namespace, in one line; by
    /// default each namespace has its own.
    pub resources_namespace: Option<String>,
}

/// Leader election through a `coordination.k8s.io` Lease.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// Seconds a leader holds the Lease without renewing it.
    pub lease_seconds: u64,
    /// Seconds before expiry at which the leader renews.
    pub grace_seconds: u64,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The Lease could not be used.
    #[error("leader election through Lease {namespace}/{name}: {source}")]
    Lease {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        source: kube_lease_manager::LeaseManagerError,
    },
    /// Another replica took the Lease over.
    #[error("lost the leadership (Lease {0}); stopping so that only the leader acts")]
    LostLeadership(String),
    /// One line across namespaces needs a controller of every namespace.
    #[error(
        "--resources-namespace {resources} serves the runs of every namespace in one line, but this controller watches only namespace {watched}; drop --namespace, or use --resources-namespace {watched}"
    )]
    ResourcesNamespace {
        /// The namespace of the resources.
        resources: String,
        /// The one namespace watched.
        watched: String,
    },
    /// The health endpoint could not be served.
    #[error("cannot serve {addr}: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}
