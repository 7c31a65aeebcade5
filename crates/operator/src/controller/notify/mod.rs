//! Notifications of a run's outcome (`spec.notify`): a webhook, a Slack
//! message, a GitHub commit status; each at most once per outcome.
//!
//! The pure part, which the run step uses: [`check`] (the spec's mistakes,
//! named by field), [`history`] (whose outcome a run tells: its own or its
//! suite's, and the previous one), [`decide`] (which targets fire; their
//! entries are recorded in the run's status before anything is sent),
//! [`body`] (what each kind of target is sent), [`sign`], [`mask`] and
//! [`retry`]. The I/O part: [`deliver`], a task beside the reconcilers
//! that sends what was recorded ([`prepare`], [`http`]) and records what
//! came of it ([`record`]).

pub mod body;
pub mod check;
pub mod decide;
pub mod deliver;
pub mod error;
pub mod history;
pub mod http;
pub mod mask;
pub mod prepare;
pub mod record;
pub mod retry;
pub mod sign;

#[cfg(test)]
mod tests;
