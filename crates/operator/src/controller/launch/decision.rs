//! The shape of a schedule's or a trigger's decision: runs to cancel,
//! create and delete, the status, Events, and when to look again; and the
//! decision of one that cannot work.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{TestLayerRun, TestLayerScheduleStatus};
use crate::controller::launch::ticks::Problem;
use crate::controller::status::conditions::Stall;
use crate::controller::status::conditions::stalled_conditions;

/// How often a stalled schedule looks again (its ConfigMap may be fixed
/// without a change to the schedule itself).
pub const STALLED_POLL: Duration = Duration::from_secs(10);

/// Longest wait for a far tick: it is reached by looking again.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// An Event about the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleNote {
    /// A warning rather than a normal event.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What happened.
    pub note: String,
}

/// What to do for a schedule (or a trigger, with its status `S`), in this
/// order.
#[derive(Debug, Clone, Default)]
pub struct ScheduleStep<S = TestLayerScheduleStatus> {
    /// Runs to cancel (`spec.cancel`), for Replace.
    pub cancel: Vec<String>,
    /// Runs to create, in dependency order.
    pub create: Vec<TestLayerRun>,
    /// Runs of ticks past the history limits to delete.
    pub delete: Vec<String>,
    /// The new status, when it changed.
    pub status: Option<S>,
    /// Events to publish.
    pub events: Vec<ScheduleNote>,
    /// When to look again if nothing else happens first.
    pub requeue: Option<Duration>,
}

/// How long from `now` until `at`, bounded to `(0, LONGEST_WAIT]`.
pub fn wait_until(now: Timestamp, at: Timestamp) -> Duration {
    let d = at.duration_since(now);
    Duration::try_from(d)
        .unwrap_or(Duration::ZERO)
        .clamp(Duration::from_millis(50), LONGEST_WAIT)
}

/// The step of a schedule or trigger that cannot work (`reason`, `p`): its
/// status as `status` makes it from the stalled conditions and the message,
/// a Warning Event when the message is new, and a look again in
/// [`STALLED_POLL`]; no write when nothing changed. `previous`: the stored
/// conditions and message.
pub fn stalled_step<S: PartialEq>(
    stored: Option<&S>,
    previous: (&[Condition], Option<&str>),
    (reason, p): (&str, &Problem),
    generation: Option<i64>,
    now: Timestamp,
    status: impl FnOnce(Vec<Condition>, String) -> S,
) -> ScheduleStep<S> {
    let stall = Stall {
        reason: reason.into(),
        message: p.to_string(),
    };
    let conditions = stalled_conditions(previous.0, &stall, generation, &Time(now));
    let status = status(conditions, stall.message.clone());
    let mut out = ScheduleStep {
        cancel: Vec::new(),
        create: Vec::new(),
        delete: Vec::new(),
        status: None,
        events: Vec::new(),
        requeue: Some(STALLED_POLL),
    };
    if Some(&status) != stored {
        if previous.1 != Some(stall.message.as_str()) {
            out.events.push(ScheduleNote {
                warning: true,
                reason: reason.into(),
                note: stall.message.chars().take(1000).collect(),
            });
        }
        out.status = Some(status);
    }
    out
}
