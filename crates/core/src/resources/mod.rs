//! Shared resources (a staging database, a licence-limited sandbox) that
//! categories of different runs must not use beyond their capacity: which
//! waiting claims to grant now, pure.
//!
//! The rules:
//! - a claim gets every unit it wants at once, or nothing (no one holds part
//!   of what it needs while waiting for the rest, so claims cannot deadlock
//!   each other through their grants);
//! - waiting claims are served in order: higher priority first, then the
//!   earlier (the run's creation), then by key; for each resource a claim is
//!   granted only when no claim before it still waits for that resource, so
//!   a large claim is never overtaken for ever by small ones;
//! - a claim that can never be granted (more units than the capacity, or a
//!   resource not declared) is named, never waited for.
//!
//! A holder that keeps its units until its whole run ends (a layer's own
//! `uses`) while that run's categories wait for more can deadlock with
//! another such run: [`deadlock`] finds the runs that can never go on.

mod allocate;
mod deadlock;

pub use allocate::{Allocation, Claim, allocate};
pub use deadlock::{Serving, StuckRun, Waiter, deadlock, describe_deadlock};
