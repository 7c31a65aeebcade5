//! Pods the apiserver refuses to create: shown at once, retried with
//! backoff, ended by their timeouts, over once a create goes through.

use super::*;
use crate::api::CategoryRunStatus;
use crate::controller::run::step::PodOwner;
use crate::controller::run::step::refusals;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

const QUOTA: &str = "pods \"r-a-1\" is forbidden: exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0";

/// Category `a` (timeout `timeout` s) whose Pods are refused, and `b`
/// beside it that runs.
fn refused(timeout: u32, layer_extra: &str) -> World {
    let config = format!(
        "layers:\n  q:\n    execution_mode: parallel\n{layer_extra}    categories:\n      - name: a\n        timeout_seconds: {timeout}\n      - name: b\n        timeout_seconds: 600\n"
    );
    let mut w = World::new("q", &config, json!({"command": "true"}))
        .scripts(|_, _| Script::pass(1.0, "1 passed in 0.1s"));
    w.refuse.insert("a".into(), QUOTA.into());
    w
}

fn a(w: &World) -> CategoryRunStatus {
    w.category("a").status.clone().unwrap_or_default()
}

fn stalled(conditions: &[Condition]) -> Option<&Condition> {
    conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
}

fn refusal_events(w: &World) -> usize {
    w.events
        .iter()
        .filter(|e| e.reason == "PodCreateFailed")
        .count()
}

#[test]
fn a_refused_pod_shows_pod_create_failed_and_stalls_the_run() {
    let mut w = refused(300, "");
    w.reconcile();
    // The run's clock is recorded before the first create.
    let clock = w.writes.iter().position(|x| x == "run status");
    let create = w
        .writes
        .iter()
        .position(|x| x.starts_with("refused pod r-a-1"));
    assert!(clock < create && clock.is_some(), "{:?}", w.writes);

    let st = a(&w);
    assert_eq!(st.reason, Some(Reason::PodCreateFailed), "{st:#?}");
    let message = st.message.clone().unwrap_or_default();
    assert!(
        message.contains("r-a-1") && message.contains("exceeded quota: no-pods"),
        "{message}"
    );
    assert_eq!(st.attempts.len(), 1);
    assert_eq!(st.attempts[0].reason, Some(AttemptReason::PodCreateFailed));
    assert_eq!(st.attempts[0].message.as_deref(), Some(QUOTA));
    assert!(st.attempts[0].start_time.is_some() && st.attempts[0].completion_time.is_none());
    let cat_stall = stalled(&st.conditions).expect("the category is stalled");
    assert_eq!(cat_stall.reason, "PodCreateFailed");

    let run = w.run.status.clone().unwrap();
    let stall = stalled(&run.conditions).expect("the run is stalled");
    assert_eq!(stall.reason, "PodCreateFailed");
    assert!(
        stall.message.contains("category \"a\"") && stall.message.contains("exceeded quota"),
        "{}",
        stall.message
    );
    let summary = run.categories.iter().find(|c| c.name == "a").unwrap();
    assert_eq!(summary.reason, Some(Reason::PodCreateFailed));
    assert!(run.start_time.is_some());

    let events: Vec<_> = w
        .events
        .iter()
        .filter(|e| e.reason == "PodCreateFailed")
        .collect();
    assert_eq!(events.len(), 1, "{:?}", w.events);
    assert!(events[0].warning && events[0].regarding.name.as_deref() == Some("r-a"));
    assert!(events[0].note.contains("exceeded quota"));

    // The other category is not held up.
    w.run_until(LONG, |w| w.cat_phase("b") == Some(Phase::Succeeded));
}

#[test]
fn creates_are_retried_with_a_growing_backoff_and_few_writes() {
    let mut w = refused(3000, "");
    w.run_until(LONG, |w| w.refusal_log.len() >= 9);
    let times: Vec<f64> = w.refusal_log.iter().map(|(t, _)| *t).collect();
    let gaps: Vec<u64> = times
        .windows(2)
        .map(|p| (p[1] - p[0]).round() as u64)
        .collect();
    assert_eq!(gaps, [2, 4, 8, 16, 32, 60, 60, 60], "refused at {times:?}");
    assert!(
        w.refusal_log.iter().all(|(_, p)| p == "r-a-1"),
        "one attempt, its Pod tried again"
    );
    // One status write and one Event when the refusal started, none per retry.
    assert_eq!(w.count("cr status r-a"), 1, "{:?}", w.writes);
    assert_eq!(refusal_events(&w), 1);
    let run_writes = w.count("run status");
    assert!(
        run_writes <= 4,
        "{run_writes} run status writes: {:?}",
        w.writes
    );
    assert!(stalled(&w.run.status.clone().unwrap().conditions).is_some());
}

#[test]
fn new_words_from_the_apiserver_are_a_new_state() {
    let mut w = refused(3000, "");
    w.run_until(LONG, |w| w.refusal_log.len() >= 2);
    w.refuse.insert(
        "a".into(),
        "pods \"r-a-1\" is forbidden: a webhook said no".into(),
    );
    let before = w.count("cr status r-a");
    w.run_until(LONG, |w| w.refusal_log.len() >= 5);
    assert_eq!(w.count("cr status r-a"), before + 1);
    assert_eq!(refusal_events(&w), 2);
    assert!(a(&w).message.unwrap().contains("a webhook said no"));
}

#[test]
fn a_created_pod_clears_the_stall_and_the_run_goes_on() {
    let mut w = refused(300, "");
    w.run_until(LONG, |w| w.refusal_log.len() >= 3);
    let refused_since = a(&w).attempts[0].start_time.clone();
    // The cause is lifted (the quota raised).
    w.refuse.clear();
    w.run_to_end(LONG);
    assert_eq!(
        w.phase(),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        w.run.status
    );
    let st = a(&w);
    assert_eq!(st.attempts.len(), 1, "the refused attempt ran: {st:#?}");
    assert_eq!(st.attempts[0].reason, Some(AttemptReason::Completed));
    assert_eq!(
        st.attempts[0].start_time, refused_since,
        "its clock ran from the first create"
    );
    assert!(stalled(&st.conditions).is_none());
    assert!(stalled(&w.run.status.clone().unwrap().conditions).is_none());
    assert_eq!(w.count("create pod r-a-1"), 1);
    assert!(w.refused.is_empty());
}

#[test]
fn the_stall_clears_as_soon_as_the_pod_exists() {
    let mut w = refused(300, "").scripts(|_, _| Script::forever());
    w.run_until(LONG, |w| w.refusal_log.len() >= 2);
    w.refuse.clear();
    w.run_until(LONG, |w| w.pods.contains_key("r-a-1"));
    let st = a(&w);
    assert_eq!(st.reason, Some(Reason::Running), "{st:#?}");
    assert_eq!(st.attempts[0].reason, None);
    assert!(stalled(&w.run.status.clone().unwrap().conditions).is_none());
}

#[test]
fn a_pod_that_is_never_created_times_out() {
    let mut w = refused(10, "");
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    let elapsed = w.now.duration_since(world::t0()).as_secs_f64();
    assert!((10.0..12.5).contains(&elapsed), "ended after {elapsed}s");
    let st = a(&w);
    assert_eq!(st.phase, Some(Phase::TimedOut), "{st:#?}");
    assert_eq!(st.reason, Some(Reason::DeadlineExceeded));
    let message = st.message.unwrap();
    assert!(
        message.contains("never created") && message.contains("exceeded quota"),
        "{message}"
    );
    assert_eq!(st.attempts.len(), 1);
    assert!(st.attempts[0].completion_time.is_some());
    assert!(stalled(&st.conditions).is_none());
    assert!(stalled(&w.run.status.clone().unwrap().conditions).is_none());
    assert_eq!(w.summary()["b"], Phase::Succeeded);
    assert_eq!(w.count("create pod r-a"), 0);

    // And the layer deadline ends it too.
    let mut w = refused(600, "    max_duration_minutes: 0.1\n");
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::TimedOut));
    let elapsed = w.now.duration_since(world::t0()).as_secs_f64();
    assert!((6.0..8.5).contains(&elapsed), "ended after {elapsed}s");
    assert_eq!(a(&w).reason, Some(Reason::LayerDeadlineExceeded));
}

#[test]
fn after_a_controller_restart_the_create_is_tried_at_once_and_nothing_is_rewritten() {
    let mut w = refused(300, "");
    w.run_until(LONG, |w| w.refusal_log.len() >= 4);
    let (tries, writes, events) = (w.refusal_log.len(), w.writes.len(), refusal_events(&w));
    // A new controller remembers no refusal; the status still shows it.
    w.refused.clear();
    w.reconcile();
    assert_eq!(w.refusal_log.len(), tries + 1, "tried again at once");
    assert_eq!(
        w.writes.len(),
        writes + 1,
        "only the create: {:?}",
        &w.writes[writes..]
    );
    assert_eq!(refusal_events(&w), events);
    // ... and backs off from 2 s again.
    let at = w.refusal_log.last().unwrap().0;
    w.run_until(LONG, |w| w.refusal_log.len() >= tries + 3);
    let next: Vec<f64> = w.refusal_log[tries + 1..]
        .iter()
        .map(|(t, _)| t - at)
        .collect();
    assert_eq!(next, [2.0, 6.0]);
}

#[test]
fn a_category_made_again_never_adopts_its_predecessors_pod_and_waits_for_it_to_go() {
    let config = "layers:\n  q:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 600\n";
    let mut w = World::new("q", config, json!({"command": "true"}))
        .scripts(|_, _| Script::pass(40.0, "1 passed in 0.1s"));
    w.run_until(LONG, |w| w.cat_phase("a") == Some(Phase::Running));
    let old = w.pods["r-a-1"].clone();
    let creates = |w: &World| w.writes.iter().filter(|x| *x == "create pod r-a-1").count();
    assert_eq!(creates(&w), 1);

    // Deleted by hand while its Pod runs: made again (a new object), its
    // first attempt's Pod name taken by the old one.
    w.crs.remove("r-a");
    w.run_for(Duration::from_secs(20));
    let a = a(&w);
    let new_uid = w.category("a").metadata.uid.clone();
    assert_ne!(new_uid, Some("uid-r-a".to_string()), "made again");
    assert_eq!(a.reason, Some(Reason::PodCreateFailed), "{a:#?}");
    let message = a.message.clone().unwrap_or_default();
    assert!(
        message.contains("belongs to another owner") && message.contains("uid-r-a"),
        "{message}"
    );
    assert_eq!(
        w.pods["r-a-1"].metadata.uid, old.metadata.uid,
        "not replaced"
    );
    // One create met the old Pod (409); none after while it is there.
    assert_eq!(
        creates(&w),
        2,
        "one create, then none while the old Pod is there"
    );
    // The cache showed whose it is: nothing to ask.
    assert!(!w.questions.contains(&Question::PodOwner("r-a-1".into())));
    assert_eq!(w.cat_phase("a"), Some(Phase::Running));

    // Once it is gone, the attempt's own Pod is created and the run ends.
    w.pods.remove("r-a-1");
    w.run_to_end(LONG);
    assert_eq!(
        w.phase(),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        w.run.status
    );
    assert_eq!(creates(&w), 3);
    let owner = &w.pods["r-a-1"].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(Some(&owner.uid), new_uid.as_ref());
}

#[test]
fn whose_a_pod_in_the_way_is_asked_when_the_cache_does_not_show_it() {
    let config = "layers:\n  q:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 600\n";
    let mut w = World::new("q", config, json!({"command": "true"}))
        .scripts(|_, _| Script::pass(40.0, "1 passed in 0.1s"));
    w.run_until(LONG, |w| w.cat_phase("a") == Some(Phase::Running));
    let mut o = w.observed(Answers::default());
    // A create of r-a-1 met a Pod of its name, which the cache (relisting
    // after an apiserver restart) does not show.
    o.existing.insert("r-a-1".into());
    o.pods.clear();
    let ours = w.category("a").metadata.uid.clone().unwrap();
    let owners = std::collections::BTreeSet::from([ours.as_str()]);
    let e = refusals::existing(&o, &owners, w.now);
    assert_eq!(e.questions, [Question::PodOwner("r-a-1".into())]);
    assert!(e.ours.is_empty() && e.refused.is_empty());

    // The run's own (its create's answer was lost): started, not made again.
    o.answers.pod_owners.insert(
        "r-a-1".into(),
        PodOwner::Of {
            uid: ours.clone(),
            described: format!("CategoryRun r-a with uid {ours}"),
        },
    );
    let e = refusals::existing(&o, &owners, w.now);
    assert!(e.questions.is_empty() && e.refused.is_empty());
    assert!(e.ours.contains("r-a-1"));

    // Another owner's: in the way, said so.
    o.answers.pod_owners.insert(
        "r-a-1".into(),
        PodOwner::Of {
            uid: "uid-old".into(),
            described: "CategoryRun r-a with uid uid-old".into(),
        },
    );
    let e = refusals::existing(&o, &owners, w.now);
    assert!(e.ours.is_empty());
    assert_eq!(
        e.refused["r-a-1"].message,
        "pod r-a-1 exists and belongs to another owner (CategoryRun r-a with uid uid-old); waiting for it to be removed"
    );

    // Gone: made again.
    o.answers.pod_owners.insert("r-a-1".into(), PodOwner::Gone);
    let e = refusals::existing(&o, &owners, w.now);
    assert!(e.questions.is_empty() && e.ours.is_empty() && e.refused.is_empty());
}
