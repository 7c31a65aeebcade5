//! The frozen plan: the config is read once, a deleted CategoryRun comes back
//! from the plan's ConfigMap, and the run's status stays small however large
//! the run.

use super::*;
use crate::api::{MAX_LISTED_CATEGORIES, TestLayerRunStatus};

const SEQ: &str = "layers:\n  seq:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n      - name: b\n        timeout_seconds: 30\n      - name: c\n        timeout_seconds: 30\n        retries: 1\n";

/// A sequential run of a, b, c from ConfigMap `layers`.
fn from_config_map() -> World {
    let mut w = World::new(
        "seq",
        "",
        json!({"command": "run {category}", "config": {"configMapRef": {"name": "layers"}}}),
    )
    .scripts(|_, _| Script::pass(5.0, "1 passed in 0.1s"));
    w.config_maps.insert("layers".into(), SEQ.into());
    w
}

fn config_reads(w: &World) -> usize {
    w.questions
        .iter()
        .filter(|q| matches!(q, Question::Config))
        .count()
}

#[test]
fn a_deleted_category_run_comes_back_from_the_frozen_plan_not_the_config() {
    let mut w = from_config_map();
    w.run_until(LONG, |w| w.cat_phase("a") == Some(Phase::Running));
    let plan = w.run.status.clone().unwrap().plan.unwrap();
    let reference = plan
        .frozen
        .clone()
        .expect("the plan is frozen at acceptance");
    assert!(w.plans.contains_key(&reference.config_map));
    assert_eq!(w.plans[&reference.config_map].immutable, Some(true));
    assert!(plan.categories.is_empty() && plan.category_count == 3);
    let c_before = w.category("c").clone();

    // The config goes bad, then away; a CategoryRun is deleted by hand.
    w.config_maps
        .insert("layers".into(), "layers: [unclosed".into());
    w.reconcile();
    w.config_maps.clear();
    w.crs.retain(|_, c| c.spec.category != "c");
    w.run_to_end(LONG);

    let st = w.run.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Succeeded), "{st:#?}");
    let c = w.category("c");
    assert_eq!(c.spec, c_before.spec, "recreated as it was");
    assert_eq!(c.metadata.labels, c_before.metadata.labels);
    assert_eq!(
        c.metadata.owner_references,
        c_before.metadata.owner_references
    );
    assert_eq!(
        config_reads(&w),
        1,
        "the config is read once: {:?}",
        w.questions
    );
    assert!(w.questions.contains(&Question::FrozenPlan));
    assert!(w.events.iter().any(|e| e.reason == "Recreated"));
}

#[test]
fn a_lost_frozen_plan_changes_nothing_until_a_category_run_is_missing_too() {
    let mut w = from_config_map();
    w.run_until(LONG, |w| w.cat_phase("a") == Some(Phase::Running));
    w.plans.clear();
    w.config_maps.clear();
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert!(!w.questions.contains(&Question::FrozenPlan));

    // With the plan gone, a deleted CategoryRun cannot come back: the run
    // fails and says why, rather than guess from the config.
    let mut w = from_config_map();
    w.run_until(LONG, |w| w.cat_phase("a") == Some(Phase::Running));
    w.plans.clear();
    w.crs.retain(|_, c| c.spec.category != "b");
    w.run_to_end(LONG);
    let st = w.run.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    let stalled = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "PlanLost")
    );
    assert!(stalled.message.contains("not found"), "{}", stalled.message);
    assert_eq!(config_reads(&w), 1);
}

/// A run accepted by a controller before the frozen plan: the category
/// names in `status.plan`, no plan ConfigMap.
fn as_older_controller_left_it(w: &mut World) {
    let st = w.run.status.as_mut().unwrap();
    let plan = st.plan.as_mut().unwrap();
    plan.categories = vec!["a".into(), "b".into(), "c".into()];
    plan.category_count = 0;
    plan.frozen = None;
    w.plans.clear();
}

#[test]
fn a_run_of_an_older_controller_freezes_its_plan_and_goes_on() {
    let mut w = from_config_map();
    w.run_until(LONG, |w| w.cat_phase("a") == Some(Phase::Running));
    as_older_controller_left_it(&mut w);
    w.reconcile();
    let plan = w.run.status.clone().unwrap().plan.unwrap();
    let reference = plan.frozen.expect("frozen from its CategoryRuns");
    assert!(w.plans.contains_key(&reference.config_map));
    assert_eq!((plan.category_count, plan.categories.len()), (3, 0));
    // From then on it needs the config no more.
    w.config_maps.clear();
    w.crs.retain(|_, c| c.spec.category != "c");
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert_eq!(config_reads(&w), 1);
    assert_eq!(w.category("a").status.clone().unwrap().attempts.len(), 1);

    // One that misses a CategoryRun before its plan is frozen has only the
    // config left to recreate it from.
    let mut w = from_config_map();
    w.run_until(LONG, |w| w.cat_phase("a") == Some(Phase::Running));
    as_older_controller_left_it(&mut w);
    w.crs.retain(|_, c| c.spec.category != "c");
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert_eq!(config_reads(&w), 2);
}

fn long_names(n: usize) -> String {
    let mut c = String::from("layers:\n  big:\n    execution_mode: parallel\n    categories:\n");
    for i in 0..n {
        c.push_str(&format!(
            "      - name: \"{i:04}-{}\"\n        timeout_seconds: 60\n        retries: 0\n        infra_retries: 0\n",
            "integration-suite-".repeat(5)
        ));
    }
    c
}

fn status_bytes(st: &TestLayerRunStatus) -> usize {
    serde_json::to_vec(st).unwrap().len()
}

#[test]
fn the_status_of_a_thousand_failing_categories_with_long_names_stays_small() {
    let config = long_names(1000);
    let mut w = World::new("big", &config, json!({"command": "exit 1"}))
        .scripts(|_, _| Script::fail(0.5, 1, "1 failed in 0.1s"));
    w.run_until(LONG, |w| {
        // Checked after every reconcile, not only at the end.
        let size = w.run.status.as_ref().map_or(0, status_bytes);
        assert!(size < 64 * 1024, "status of {size} bytes");
        w.phase().is_some_and(LayerPhase::is_terminal)
    });
    let st = w.run.status.clone().unwrap();
    let size = status_bytes(&st);
    assert!(size < 16 * 1024, "status of {size} bytes at the end");
    assert!(
        w.category(&format!("0999-{}", "integration-suite-".repeat(5)))
            .spec
            .category
            .len()
            >= 95
    );
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    assert!(
        st.categories.is_empty(),
        "no per-category list at this size"
    );
    let phases = st.phases.unwrap();
    assert_eq!((phases.failed, phases.total()), (1000, 1000));
    assert_eq!(st.progress.as_deref(), Some("1000/1000"));
    assert_eq!(st.failed_categories.len(), 10);
    let message = st.message.clone().unwrap();
    assert!(message.contains("and 990 more"), "{message}");
    assert!(message.len() < 2048, "{message}");
}

#[test]
fn small_runs_list_every_category_and_large_ones_count_them() {
    let mut w = World::new(
        "wide",
        &wide(MAX_LISTED_CATEGORIES, "", ""),
        json!({"command": "true"}),
    );
    w.run_to_end(LONG);
    let st = w.run.status.clone().unwrap();
    assert_eq!(st.categories.len(), MAX_LISTED_CATEGORIES);
    assert_eq!(st.phases.unwrap().succeeded as usize, MAX_LISTED_CATEGORIES);
    let mut w = World::new(
        "wide",
        &wide(MAX_LISTED_CATEGORIES + 1, "", ""),
        json!({"command": "true"}),
    );
    w.run_to_end(LONG);
    let st = w.run.status.clone().unwrap();
    assert!(st.categories.is_empty());
    assert_eq!(
        st.phases.unwrap().succeeded as usize,
        MAX_LISTED_CATEGORIES + 1
    );
    assert!(st.failed_categories.is_empty());
}
