//! The Kubernetes operator: TestLayerRuns and CategoryRuns reconciled into
//! Pods, driven by the same planner as the local executor.
//!
//! In layers, each importing only from those below it:
//! - [`status`]: the pure vocabulary of every resource's status;
//! - [`kit`]: what every reconciler shares (context, errors and retries,
//!   caches, the guard around a reconcile, status writes, Events, metrics);
//! - one folder per resource, siblings: [`run`] (TestLayerRuns and their
//!   CategoryRuns and Pods: read → the pure [`run::step`] → apply),
//!   [`shared`] (shared resources: the pure rules of claims, their I/O),
//!   [`schedule`] and [`trigger`];
//! - [`notify`]: notifications of a run's outcome: the pure decision the
//!   run step records, and the task that sends what was recorded;
//! - [`runner`]: the wiring of watches, caches and reconcilers.

pub mod kit;
pub mod launch;
pub mod notify;
pub mod run;
pub mod runner;
pub mod schedule;
pub mod shared;
pub mod status;
pub mod trigger;

pub use runner::{ControllerOptions, LeaderElection, RunError, run};
