//! TestLayerTriggers: runs created when a watched resource has finished
//! rolling out a new revision.
//!
//! Which revision a resource is at and whether its rollout finished is read
//! per kind in [`rollout`]; the decision is pure ([`step::step`]); the
//! reconcile reads the watched resources and writes like a schedule's; and
//! [`watches`] keeps one watch per watched kind, waking the triggers of
//! that kind when one of its objects changes. [`access`] names the resource
//! a trigger reads as the chart's admission policy does when it checks that
//! the trigger's author may read it.

pub mod access;
pub mod reconcile;
pub mod rollout;
pub mod step;
pub mod watches;

#[cfg(test)]
mod tests;
