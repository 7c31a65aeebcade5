//! The Kubernetes operator: TestLayerRuns and CategoryRuns reconciled into
//! Pods, driven by the same planner as the local executor.
//!
//! The pure parts (building objects, reading Pods, bookkeeping of attempts,
//! conditions) live in their own modules and are tested exhaustively; the
//! reconciler and the runner are thin drivers over them.

pub mod attempts;
pub mod build;
pub mod context;
pub mod gates;
pub mod metrics;
pub mod observe;
pub mod reconcile;
pub mod runner;
pub mod server;
pub mod status;

pub use runner::{ControllerOptions, LeaderElection, RunError, run};
