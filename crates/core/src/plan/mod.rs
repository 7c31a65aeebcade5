//! Planning: what to start, stop, retry, skip or cancel next. Pure code over
//! plain data, shared by the Kubernetes and the local executor.

pub mod describe;
pub mod gate;
mod planner;
mod resource_wait;
pub mod sim;
mod state;
pub mod suite;
#[cfg(test)]
mod tests;

pub use planner::{failure_allowed, plan};
pub use resource_wait::ResourceWait;
pub use state::{
    Action, AttemptObs, AttemptOutcome, CategoryObs, Cause, Decision, LayerObs, LayerOutcome,
    Phase, Stop, Terminal, WaitReason,
};
