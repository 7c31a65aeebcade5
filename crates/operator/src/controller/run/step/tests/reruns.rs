//! Reruns of what did not pass (`spec.rerunOf`): the earlier run's frozen
//! plan, its passes carried over, the rest run again; a missing or
//! unfinished earlier run said so.

use super::*;
use crate::controller::status::reasons::StallReason;

/// The chain run to its end with `unit` failing: `e2e` is skipped.
fn failed_chain() -> World {
    let mut w = chain().scripts(|c, _| match c {
        "unit" => Script::fail(0.3, 1, "1 failed in 0.1s"),
        _ => Script::pass(0.5, "2 passed in 0.1s"),
    });
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    assert_eq!(w.cat_phase("e2e"), Some(Phase::Skipped));
    w
}

#[test]
fn a_rerun_runs_only_what_did_not_pass_from_the_earlier_plan() {
    let old = failed_chain();
    // The config is not read: the rerun's spec names none.
    let mut w = World::new("chain", "not: [a, config", json!({"rerunOf": "r"}))
        .named("r2")
        .scripts(|_, _| Script::pass(0.5, "3 passed in 0.1s"));
    w.run.spec.config = Default::default();
    w.rerun_source = Some(old.as_rerun_source());
    w.run_to_end(LONG);

    assert_eq!(
        w.phase(),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        w.run.status
    );
    assert!(
        !w.questions.contains(&Question::Config),
        "{:?}",
        w.questions
    );
    // Only unit and e2e ran again.
    let started: Vec<&str> = w
        .pod_log
        .iter()
        .filter(|(_, _, e)| *e == PodEvent::Created)
        .map(|(_, p, _)| p.as_str())
        .collect();
    assert_eq!(started, ["r2-unit-1", "r2-e2e-1"], "{:?}", w.pod_log);
    let smoke = w.category("smoke");
    assert_eq!(smoke.spec.passed_in.as_deref(), Some("r"));
    let st = smoke.status.clone().unwrap();
    assert_eq!(st.phase, Some(Phase::Succeeded));
    assert_eq!(
        st.message.as_deref(),
        Some("passed in run r; not run again")
    );
    assert_eq!(st.counts.map(|c| c.passed), Some(2), "its results kept");
    assert_eq!(w.cat_phase("e2e"), Some(Phase::Succeeded));
    let run = w.run.status.clone().unwrap();
    let rerun = run.rerun.clone().unwrap();
    assert_eq!((rerun.of.as_str(), rerun.carried, rerun.rerun), ("r", 2, 2));
    // The combined outcome: the carried passes count.
    assert_eq!(run.counts.map(|c| c.passed), Some(2 + 2 + 3 + 3));
    assert!(
        w.events.iter().any(|e| e.reason == "Accepted"
            && e.note
                .contains("rerun of r: 2 of its 4 categories passed there")),
        "{:?}",
        w.events
    );
}

#[test]
fn a_carried_category_whose_status_was_lost_still_counts_as_passed() {
    let old = failed_chain();
    let mut w = World::new("chain", "", json!({"rerunOf": "r"}))
        .named("r2")
        .scripts(|_, _| Script::pass(0.5, "1 passed in 0.1s"));
    w.rerun_source = Some(old.as_rerun_source());
    w.reconcile();
    // A crash right after the CategoryRuns were made: their statuses lost.
    for cr in w.crs.values_mut() {
        cr.status = None;
    }
    w.run_to_end(LAYER_END);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert_eq!(w.count("create pod r2-smoke"), 0, "{:?}", w.writes);
    assert_eq!(
        w.category("smoke")
            .status
            .clone()
            .unwrap()
            .message
            .as_deref(),
        Some("passed in run r; not run again")
    );
}

const LAYER_END: std::time::Duration = LONG;

#[test]
fn a_missing_or_unfinished_earlier_run_is_said() {
    let mut w = World::new("chain", "", json!({"rerunOf": "gone"})).named("r2");
    w.run_until(LONG, |w| w.phase().is_some());
    let st = w.run.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    let stalled = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", StallReason::RerunSourceNotFound.as_str())
    );
    assert!(
        stalled.message.contains("spec.rerunOf: run gone not found"),
        "{}",
        stalled.message
    );
    assert!(w.crs.is_empty(), "nothing created");

    // Still running: the rerun waits, then starts.
    let mut old = chain().scripts(|c, _| match c {
        "unit" => Script::fail(0.3, 1, "1 failed in 0.1s"),
        _ => Script::pass(0.5, "2 passed in 0.1s"),
    });
    old.reconcile();
    let mut w = World::new("chain", "", json!({"rerunOf": "r"})).named("r2");
    w.rerun_source = Some(RerunAnswer::Unfinished("Running".into()));
    w.reconcile();
    let st = w.run.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Pending));
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .contains("run r has not finished (Running)"),
        "{st:#?}"
    );
    assert!(
        st.conditions
            .iter()
            .any(|c| c.reason == StallReason::WaitingForRerunSource.as_str())
    );
    old.run_to_end(LONG);
    w.rerun_source = Some(old.as_rerun_source());
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));

    // Another layer: refused.
    let mut w = World::new("other", "", json!({"rerunOf": "r"})).named("r3");
    w.rerun_source = Some(old.as_rerun_source());
    w.run_until(LONG, |w| w.phase().is_some());
    let message = w.run.status.clone().unwrap().message.unwrap();
    assert!(
        message.contains("spec.layer: \"other\", but run r ran layer \"chain\""),
        "{message}"
    );
}
