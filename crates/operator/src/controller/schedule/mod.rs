//! TestLayerSchedules: runs created from a template on a cron schedule.
//!
//! The decision is pure ([`step::step`], over [`ticks`](super::launch::ticks) and the cron core
//! of `testlayer_core::schedule`); [`reconcile`] reads the schedule's runs
//! from a cache and its layer config, steps, and writes.

pub mod reconcile;
pub mod step;

#[cfg(test)]
mod tests;
