//! What the metrics count of a run: each end once, with its outcome,
//! duration and tests, however many times the run is reconciled after.

use super::*;
use crate::controller::kit::outcome_metrics::{Happened, Queue, Tests};
use crate::controller::run::happened::happened;

/// The categories that ended, as (category, outcome, tests).
fn categories(w: &World) -> Vec<(String, &'static str, Tests)> {
    let mut v: Vec<_> = w
        .happened
        .iter()
        .filter_map(|h| match h {
            Happened::CategoryEnded {
                category,
                outcome,
                tests,
                namespace,
                layer,
                seconds,
            } => {
                assert_eq!(
                    (namespace.as_str(), layer.as_str()),
                    ("ns", w.run.spec.layer.as_str())
                );
                // Status times are whole seconds, so are durations.
                assert!(
                    *outcome == "Skipped" || seconds.is_some_and(|s| s >= 0.0 && s.fract() == 0.0),
                    "{category} ran but has no duration: {seconds:?}"
                );
                Some((category.clone(), *outcome, *tests))
            }
            _ => None,
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn runs(w: &World) -> Vec<(&'static str, Option<f64>)> {
    w.happened
        .iter()
        .filter_map(|h| match h {
            Happened::RunEnded {
                outcome, seconds, ..
            } => Some((*outcome, *seconds)),
            _ => None,
        })
        .collect()
}

fn passed(passed: u64, skipped: u64) -> Tests {
    Tests {
        passed,
        skipped,
        ..Tests::default()
    }
}

#[test]
fn a_run_that_passes_counts_its_end_and_each_category_once() {
    let mut w = chain();
    w.run_to_end(LONG);
    // Reconciled again and again after its end: nothing more is counted.
    for _ in 0..5 {
        w.reconcile();
    }
    let ended = runs(&w);
    assert_eq!(ended.len(), 1, "{:?}", w.happened);
    assert_eq!(ended[0].0, "Succeeded");
    let took = ended[0].1.expect("a duration");
    // smoke 0.5 s, unit 0.3 s, e2e 2 s in a chain, in whole seconds.
    assert!((2.0..=4.0).contains(&took), "{took}");
    assert_eq!(
        categories(&w),
        vec![
            ("API Tests".into(), "Succeeded", passed(3, 0)),
            ("e2e".into(), "Succeeded", passed(1, 0)),
            ("smoke".into(), "Succeeded", passed(2, 0)),
            ("unit".into(), "Succeeded", passed(5, 1)),
        ]
    );
}

#[test]
fn a_run_that_fails_counts_failed_and_skipped_categories() {
    let config = r#"
layers:
  failing:
    execution_mode: "parallel"
    categories:
      - name: "broken"
        timeout_seconds: 30
        retries: 1
        retry_backoff_seconds: 0.2
      - name: "after"
        timeout_seconds: 30
        dependencies: ["broken"]
      - name: "fine"
        timeout_seconds: 30
"#;
    let mut w = World::new("failing", config, json!({"command": "true"})).scripts(|c, _| match c {
        "broken" => Script::fail(0.1, 1, "2 passed, 1 failed in 0.1s"),
        _ => Script::pass(0.1, "4 passed in 0.1s"),
    });
    w.run_to_end(LONG);
    w.reconcile();
    assert_eq!(runs(&w).iter().map(|r| r.0).collect::<Vec<_>>(), ["Failed"]);
    let failed = Tests {
        passed: 2,
        failed: 1,
        ..Tests::default()
    };
    assert_eq!(
        categories(&w),
        vec![
            ("after".into(), "Skipped", Tests::default()),
            ("broken".into(), "Failed", failed),
            ("fine".into(), "Succeeded", passed(4, 0)),
        ]
    );
}

#[test]
fn a_wait_for_shared_resources_is_counted_when_it_ends() {
    let mut w = chain();
    let since = w.now;
    let mut waiting = w.run.status.clone().unwrap_or_default();
    waiting.resource_wait_since = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(since));
    w.run.status = Some(waiting.clone());
    let mut over = waiting.clone();
    over.resource_wait_since = None;
    let now = since + std::time::Duration::from_secs(90);
    let h = happened(
        &w.observed(Answers::default()),
        &[Write::RunStatus(Box::new(over))],
        now,
    );
    assert_eq!(
        h,
        vec![Happened::Waited {
            namespace: "ns".into(),
            layer: "chain".into(),
            queue: Queue::Resource,
            seconds: 90.0
        }]
    );
    // A status that still waits counts nothing.
    let h = happened(
        &w.observed(Answers::default()),
        &[Write::RunStatus(Box::new(waiting))],
        now,
    );
    assert!(h.is_empty(), "{h:?}");
}
