//! The controller's decision for one TestLayerRun, as one pure function:
//! [`step`] takes what was [`Observed`] and the time, and returns a [`Step`]:
//! the writes to make, in order, and when to look again; or the questions
//! whose answers it needs first. No I/O and no clock reads happen here, so
//! every scenario is a fast unit test (`tests.rs`), and the reconciler is a
//! loop of read → step → ask or apply.
//!
//! The stages, each a function of its own: settle (a deleted, changed,
//! finished or stalled run) → freeze (the frozen plan: the config read
//! once, CategoryRuns created) → gate (layer dependencies, services) →
//! advance (each category brought up to date with its Pods, shared
//! resources, the planner, the status) → the writes in order. The rules
//! crash safety rests on live in [`order`] with their own tests: the run's
//! clock is recorded before its first Pod is created, a stop is recorded
//! before its Pod is deleted, and an attempt is recorded only after its Pod
//! exists (a Pod is found again by its name) or the apiserver refused it
//! (see [`refusals`]).

mod accepted;
mod advance;
mod attempts;
mod categories;
mod claims;
mod deadlock;
mod gates;
pub mod invalid;
mod log_results;
mod notifications;
pub mod observed;
pub mod order;
mod plan_freeze;
mod refusals;
mod rerun;
mod run_status;
mod settle;
mod spec;
pub mod writes;

#[cfg(test)]
mod tests;

use k8s_openapi::jiff::Timestamp;

pub use attempts::{offset, stored};
pub use observed::{
    Answers, AttemptLog, CaseList, ConfigAnswer, FrozenPlanAnswer, LogAnswer, NodeDown, Observed,
    PodOwner, Question, Refusal, ReportRead, RerunAnswer, RerunSource,
};
pub use spec::{resolve, spec_changed, spec_hash};
pub use writes::{Next, PodStop, Step, Write};

use plan_freeze::Frozen;

/// Decides what to do next for the run of `o` at `now`, in named stages:
/// [`settle`](settle::settle) (a deleted, changed, finished or stalled run)
/// → [`freeze`](plan_freeze::frozen) (the frozen plan) →
/// [`gate`](gates::gate) (dependencies and services, before the clock
/// starts) → [`advance`](advance::advance) (categories, shared resources,
/// the planner, the status) → the writes in [`order`](order::order).
pub fn step(o: &Observed, now: Timestamp) -> Step {
    let stored = o.run.status.clone().unwrap_or_default();
    let hash = spec_hash(&o.run);
    if let Some(settled) = settle::settle(o, &stored, &hash, now) {
        return settled;
    }
    let (layer, mut status) = match plan_freeze::frozen(o, stored, &hash, now) {
        Frozen::Ready(ready) => *ready,
        Frozen::Step(step) => return step,
    };
    let hold = match gates::gate(o, &layer, &mut status, now) {
        Ok(hold) => hold,
        Err(step) => return step,
    };
    advance::advance(o, &layer, status, hold, now)
}
