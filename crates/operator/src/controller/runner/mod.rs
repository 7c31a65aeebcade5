//! `testlayer controller`: the wiring of watches, caches and the
//! reconcilers ([`wiring`]), how it runs ([`options`]), and the pieces the
//! wiring joins: caches, leadership, the runs that wait for shared
//! resources, and the gauges.

mod background;
mod caches;
mod gauge;
mod launchers;
mod leadership;
pub mod options;
mod waiting;
pub mod wiring;

pub use options::{ControllerOptions, LeaderElection, RunError};
pub use wiring::run;
