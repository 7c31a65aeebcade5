//! What every reconciler shares: the context, the error and when it is
//! retried, the caches, the guard around a reconcile, status writes,
//! Events and metrics. Imports nothing of the reconcilers above it.

pub mod context;
pub mod metrics;
pub(crate) mod own_writes;
pub(crate) mod refused;
pub mod server;
