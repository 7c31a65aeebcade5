//! Notifications of a finished run: recorded once per outcome, after the
//! status that ended the run and before anything is sent; a stale view
//! never records them again; the TTL waits while they are sent; mistakes
//! in `spec.notify` stall the run before anything starts.

use std::sync::Arc;

use super::*;
use crate::api::{NotificationState, TestLayerRun};
use crate::controller::run::step::step;

const ONE: &str = "layers:\n  one:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n";

fn targets() -> serde_json::Value {
    let slack =
        |when: &str| json!({"when": when, "slack": {"urlFrom": {"name": "s", "key": "url"}}});
    json!([slack("OnFailure"), slack("Always"), slack("OnChange")])
}

/// An earlier run of the layer that ended `phase`.
fn earlier(phase: &str) -> TestLayerRun {
    serde_json::from_value(json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "metadata": {"name": "before", "namespace": "ns", "uid": "before-uid",
                     "creationTimestamp": "2000-01-01T00:00:00Z"},
        "spec": {"layer": "one", "config": {"inline": ONE}},
        "status": {"phase": phase},
    }))
    .expect("run")
}

fn failing(extra: serde_json::Value) -> World {
    World::new("one", ONE, extra).scripts(|_, _| Script::fail(0.5, 1, "1 failed in 0.1s"))
}

fn states(w: &World) -> Vec<NotificationState> {
    w.run
        .status
        .as_ref()
        .map(|s| s.notifications.iter().map(|n| n.state).collect())
        .unwrap_or_default()
}

#[test]
fn a_finished_run_records_its_notifications_once_after_the_status_that_ended_it() {
    let mut w = failing(json!({"notify": targets()}));
    w.others.push(earlier("Failed"));
    w.run_to_end(LONG);
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    use NotificationState::{Pending, Skipped};
    // OnFailure and Always fire; OnChange does not (the run before failed too).
    assert_eq!(states(&w), vec![Pending, Pending, Skipped]);
    let recorded: Vec<usize> = w
        .writes
        .iter()
        .enumerate()
        .filter(|(_, x)| *x == "record notifications")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(recorded.len(), 1, "{:?}", w.writes);
    let last_status = w
        .writes
        .iter()
        .rposition(|x| x == "run status")
        .expect("a status");
    assert!(last_status < recorded[0], "{:?}", w.writes);
    // Every entry names its outcome; nothing secret or sent yet.
    let st = w.run.status.clone().unwrap_or_default();
    assert!(
        st.notifications
            .iter()
            .all(|n| n.outcome == LayerPhase::Failed && n.attempts == 0)
    );
}

#[test]
fn a_stale_view_never_records_them_again() {
    let mut w = failing(json!({"notify": targets()}));
    w.run_to_end(LONG);
    w.run_for(Duration::from_secs(5));
    let stale = {
        let mut o = w.observed(Answers::default());
        let mut old = (*o.run).clone();
        if let Some(s) = old.status.as_mut() {
            s.notifications.clear();
        }
        old.metadata.resource_version = Some("2".into());
        o.run = Arc::new(old);
        o
    };
    // The sender moved them on meanwhile.
    if let Some(s) = w.run.status.as_mut() {
        for n in &mut s.notifications {
            n.state = NotificationState::Sent;
        }
    }
    let s = step(&stale, w.now);
    assert!(
        s.writes
            .iter()
            .any(|x| matches!(x, Write::RecordNotifications { .. })),
        "the stale view decides to record: {:?}",
        s.writes
    );
    w.writes.clear();
    w.apply(s.writes);
    assert!(
        w.writes.iter().any(|x| x == "notifications conflict"),
        "{:?}",
        w.writes
    );
    assert!(
        states(&w).iter().all(|s| *s == NotificationState::Sent),
        "{:?}",
        states(&w)
    );
}

#[test]
fn the_ttl_waits_while_notifications_are_being_sent() {
    let mut w = failing(json!({"notify": targets(), "ttlSecondsAfterFinished": 0}));
    w.run_to_end(LONG);
    w.run_for(Duration::from_secs(60));
    assert!(
        !w.run_deleted,
        "deleted while its notifications wait: {:?}",
        w.writes
    );
    if let Some(s) = w.run.status.as_mut() {
        for n in &mut s.notifications {
            n.state = NotificationState::Sent;
        }
    }
    w.run_for(Duration::from_secs(10));
    assert!(w.run_deleted, "{:?}", w.writes);
}

#[test]
fn mistakes_in_notify_stall_the_run_before_anything_starts() {
    let mut w = World::new(
        "one",
        ONE,
        json!({"notify": [{"when": "Always"}, {"webhook": {"url": "ftp://x"}}]}),
    );
    w.run_for(Duration::from_secs(10));
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    assert!(
        !w.writes.iter().any(|x| x.starts_with("create")),
        "{:?}",
        w.writes
    );
    let st = w.run.status.clone().unwrap_or_default();
    let stalled = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled");
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled
            .message
            .contains("spec.notify[0]: set exactly one of webhook, slack and githubStatus"),
        "{}",
        stalled.message
    );
    assert!(
        stalled
            .message
            .contains("spec.notify[1].webhook.url: the scheme must be http or https"),
        "{}",
        stalled.message
    );
    assert!(st.notifications.is_empty());
    assert!(
        w.events
            .iter()
            .any(|e| e.warning && e.note.contains("spec.notify[1]")),
        "{:?}",
        w.events
    );
}

/// `spec.notify` edited into a mistake after the run was accepted (the
/// check runs at acceptance, and notify is no part of what restarts a run):
/// at the end nothing is sent, each entry is recorded Failed saying why,
/// and an Event names the mistake.
#[test]
fn a_notify_edited_into_a_mistake_after_acceptance_sends_nothing_and_says_why() {
    let mut w = failing(json!({"notify": targets(), "command": "false"}));
    w.run_until(LONG, |w| w.count("create pod") > 0);
    // A Slack target that names no Secret.
    w.run.spec.notify = serde_json::from_value(json!([{"when": "Always", "slack": {}}]))
        .expect("a target of the right shape");
    w.run_to_end(LONG);
    w.run_for(Duration::from_secs(30));
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    let entries = w.run.status.clone().unwrap().notifications;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].state, NotificationState::Failed);
    let why = entries[0].last_error.clone().unwrap_or_default();
    assert!(
        why.starts_with(
            "spec.notify was changed after the run was accepted and is not valid (spec.notify[0]"
        ),
        "{why}"
    );
    assert!(
        w.events
            .iter()
            .any(|e| e.reason == "NotificationNotSent" && e.note.contains("spec.notify[0]")),
        "{:#?}",
        w.events
    );
}
