//! The notifications of a finished run, as the step decides them (see
//! [`notify::decide`](crate::controller::notify::decide)): their entries
//! recorded in the run's status, once per outcome, before the sender sends
//! any; an Event for each that cannot be sent at all; a suite's leader
//! looking again until the suite ended; and a run whose notifications are
//! still being sent kept until they are (its TTL waits).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::observed::Observed;
use super::writes::{Next, Step, Write, note, wall_clock};
use crate::api::TestLayerRunStatus;
use crate::controller::notify::decide::{Decision, decide, in_flight};

/// How often a suite's leader looks at the suite's other runs while they run.
const SUITE_POLL: Duration = Duration::from_secs(5);
/// How often a run whose TTL passed looks again while it notifies.
const SENDING_POLL: Duration = Duration::from_secs(2);

/// `finished`, the step of the finished run of `o` (`stored`: its status),
/// with its notifications decided: the step that records them first, when
/// they are due; else `finished`, looking again soon while a suite runs or
/// the run notifies.
pub fn with_notifications(
    o: &Observed,
    stored: &TestLayerRunStatus,
    finished: Step,
    now: Timestamp,
) -> Step {
    match decide(&o.run, &o.runs, &wall_clock(now)) {
        Decision::Record {
            entries,
            unsendable,
        } => {
            let mut status = stored.clone();
            status.notifications = entries;
            let mut writes = vec![Write::RecordNotifications {
                status: Box::new(status),
                read_at: o.run.metadata.resource_version.clone(),
            }];
            writes.extend(
                unsendable.iter().map(|why| {
                    Write::Event(note(o.run.as_ref(), true, "NotificationNotSent", why))
                }),
            );
            Step::write(writes, Next::Again)
        }
        Decision::WaitForSuite => sooner(finished, SUITE_POLL),
        Decision::Nothing if in_flight(&o.run) => {
            let deletes = finished
                .writes
                .iter()
                .any(|w| matches!(w, Write::DeleteRun));
            let mut s = finished;
            if deletes {
                s.writes.retain(|w| !matches!(w, Write::DeleteRun));
            }
            sooner(s, SENDING_POLL)
        }
        Decision::Nothing => finished,
    }
}

/// `s`, looking again after `d` at the latest.
fn sooner(mut s: Step, d: Duration) -> Step {
    s.next = match s.next {
        Next::After(e) if e < d => Next::After(e),
        Next::Again => Next::Again,
        _ => Next::After(d),
    };
    s
}
