//! What every reconciler shares: the context, the error and when it is
//! retried, the caches, the guard around a reconcile, status writes,
//! Events and metrics. Imports nothing of the reconcilers above it.

pub mod by_run;
pub mod cache;
pub mod context;
pub mod described;
pub mod error;
pub mod events;
pub mod guard;
pub mod metrics;
pub mod outcome_metrics;
pub(crate) mod own_writes;
pub mod patch;
pub(crate) mod refused;
pub mod server;
