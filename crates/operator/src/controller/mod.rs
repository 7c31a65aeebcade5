//! The Kubernetes operator: TestLayerRuns and CategoryRuns reconciled into
//! Pods, driven by the same planner as the local executor.
//!
//! The decision for a run is one pure function, [`step::step`], over what was
//! observed (with the pure builders of objects in [`build`] and the reading
//! of Pods in [`observe`]); the reconciler reads ([`read`]), steps and
//! writes ([`apply`]), and the runner wires the watches and caches.

pub(crate) mod apply;
pub mod build;
pub mod context;
pub mod frozen_plan;
mod grant_sweep;
pub mod grant_writes;
pub mod metrics;
pub mod node_health;
pub mod observe;
mod own_writes;
mod pod_sweep;
pub(crate) mod read;
pub mod reconcile;
mod refused;
mod resource_status;
pub mod runner;
pub mod schedule;
pub mod server;
pub mod step;
pub mod trigger;

pub use runner::{ControllerOptions, LeaderElection, RunError, run};
