//! Publishing the Events the steps decide.

use kube::runtime::events::{Event, EventType, Recorder};

use crate::controller::status::conditions::event_note;
use crate::controller::status::note::Note;

/// Publishes `n` through `recorder` as done in `action`; a failure is only
/// logged (an Event is never worth a retry).
pub async fn send(recorder: &Recorder, n: Note, action: &str) {
    let ev = Event {
        type_: if n.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: n.reason,
        note: Some(event_note(&n.note)),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &n.regarding).await {
        tracing::warn!(error = %e, "cannot publish an event");
    }
}
