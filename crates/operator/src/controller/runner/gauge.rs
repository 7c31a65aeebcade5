//! The gauges kept from the caches: CategoryRuns by phase, flaky tests,
//! each layer's failure streak and each queue's longest current wait. A
//! pass over the caches once a second, not one per reconcile; what each
//! gauge holds is computed by the pure [`kept`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::api::{CategoryRun, Decoded, LayerPhase, TestLayerRun};
use crate::controller::kit::metrics::Metrics;
use crate::controller::kit::outcome_metrics::{LayerLabels, Queue, QueueLabels};

/// Keeps the gauges of `runs` and `crs` in `metrics`, for ever.
pub(super) async fn keep(
    runs: Store<Decoded<TestLayerRun>>,
    crs: Store<Decoded<CategoryRun>>,
    metrics: Arc<Metrics>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let all = crs.state();
        metrics.set_categories(all.iter().filter_map(|c| {
            c.valid().map(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .unwrap_or(crate::plan::Phase::Pending)
                    .as_str()
            })
        }));
        let (mut categories, mut tests) = (0i64, 0i64);
        for s in all.iter().filter_map(|c| c.valid()?.status.as_ref()) {
            categories += i64::from(s.flaky);
            tests = tests.saturating_add(i64::try_from(s.flaky_tests.total()).unwrap_or(i64::MAX));
        }
        metrics.flaky_categories.set(categories);
        metrics.flaky_tests.set(tests);
        let runs = runs.state();
        let (streaks, waits) = kept(
            runs.iter().filter_map(|r| r.valid()).map(|r| &**r),
            all.iter().filter_map(|c| c.valid()).map(|c| &**c),
            Timestamp::now(),
        );
        metrics.outcomes.set_kept(&streaks, &waits);
    }
}

/// Seconds from `t` to `now` (0 when `t` is later).
fn age(t: &Time, now: Timestamp) -> f64 {
    now.duration_since(t.0).as_secs_f64().max(0.0)
}

/// Each layer's failure streak (failed or timed-out runs in a row at the
/// end of its ended runs, by completion; cancelled runs are passed over, a
/// success ends the count), for every layer with an ended run; and each
/// queue's longest wait going on at `now`, where one is.
pub fn kept<'a>(
    runs: impl Iterator<Item = &'a TestLayerRun>,
    crs: impl Iterator<Item = &'a CategoryRun>,
    now: Timestamp,
) -> (BTreeMap<LayerLabels, i64>, BTreeMap<QueueLabels, f64>) {
    let mut ended: BTreeMap<LayerLabels, Vec<(Timestamp, LayerPhase)>> = BTreeMap::new();
    let mut waits: BTreeMap<QueueLabels, f64> = BTreeMap::new();
    let mut wait = |namespace: String, layer: String, queue: Queue, secs: f64| {
        let l = QueueLabels {
            namespace,
            layer,
            queue: queue.as_str().into(),
        };
        let w = waits.entry(l).or_insert(0.0);
        *w = w.max(secs);
    };
    for r in runs {
        let Some(st) = r.status.as_ref() else {
            continue;
        };
        let layer = LayerLabels {
            namespace: r.namespace().unwrap_or_default(),
            layer: r.spec.layer.clone(),
        };
        match st.phase {
            Some(p) if p.is_terminal() => {
                let at = st
                    .completion_time
                    .as_ref()
                    .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
                ended.entry(layer).or_default().push((at, p));
            }
            _ => {
                let (ns, l) = (layer.namespace, layer.layer);
                let started = st.phase == Some(LayerPhase::Running);
                for (since, queue, counts) in [
                    (&st.resource_wait_since, Queue::Resource, true),
                    (&st.dependency_missing_since, Queue::Dependency, !started),
                    (&st.services_wait_start, Queue::Services, !started),
                ] {
                    if let Some(t) = since.as_ref().filter(|_| counts) {
                        wait(ns.clone(), l.clone(), queue, age(t, now));
                    }
                }
            }
        }
    }
    for c in crs {
        let Some(st) = c.status.as_ref() else {
            continue;
        };
        for a in &st.attempts {
            let waiting = a.gated && a.admitted_time.is_none() && a.completion_time.is_none();
            if let Some(t) = a.start_time.as_ref().filter(|_| waiting) {
                let ns = c.namespace().unwrap_or_default();
                wait(ns, c.spec.layer.clone(), Queue::Kueue, age(t, now));
            }
        }
    }
    let streaks = ended
        .into_iter()
        .map(|(layer, mut runs)| {
            runs.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
            let n = runs
                .iter()
                .filter(|(_, p)| *p != LayerPhase::Cancelled)
                .take_while(|(_, p)| matches!(p, LayerPhase::Failed | LayerPhase::TimedOut))
                .count();
            (layer, i64::try_from(n).unwrap_or(i64::MAX))
        })
        .collect();
    (streaks, waits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(name: &str, layer: &str, status: serde_json::Value) -> TestLayerRun {
        serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"layer": layer, "config": {"inline": "layers: {}"}},
            "status": status,
        }))
        .unwrap()
    }

    fn ended(name: &str, layer: &str, phase: &str, minute: u32) -> TestLayerRun {
        run(
            name,
            layer,
            json!({"phase": phase, "completionTime": format!("2026-12-01T10:{minute:02}:00Z")}),
        )
    }

    fn now() -> Timestamp {
        "2026-12-01T11:00:00Z".parse().unwrap()
    }

    fn labels(layer: &str) -> LayerLabels {
        LayerLabels {
            namespace: "ns".into(),
            layer: layer.into(),
        }
    }

    #[test]
    fn a_streak_counts_the_failures_after_the_last_success_passing_over_cancels() {
        let runs = [
            ended("a1", "api", "Failed", 1),
            ended("a2", "api", "Succeeded", 2),
            ended("a3", "api", "Failed", 3),
            ended("a4", "api", "Cancelled", 4),
            ended("a5", "api", "TimedOut", 5),
            // Listed out of order: the completion time orders them.
            ended("a7", "api", "Failed", 7),
            ended("a6", "api", "Cancelled", 6),
            ended("u1", "unit", "Failed", 1),
            ended("u2", "unit", "Succeeded", 2),
            run("w1", "web", json!({"phase": "Running"})),
        ];
        let (streaks, _) = kept(runs.iter(), std::iter::empty(), now());
        assert_eq!(streaks.get(&labels("api")), Some(&3));
        assert_eq!(streaks.get(&labels("unit")), Some(&0));
        // A layer with no ended run has no streak.
        assert_eq!(streaks.get(&labels("web")), None);
    }

    #[test]
    fn the_longest_wait_of_each_queue_is_kept_and_only_while_it_lasts() {
        let runs = [
            run(
                "r1",
                "api",
                json!({"phase": "Running", "resourceWaitSince": "2026-12-01T10:50:00Z"}),
            ),
            run(
                "r2",
                "api",
                json!({"phase": "Running", "resourceWaitSince": "2026-12-01T10:30:00Z"}),
            ),
            // Ended: its wait is over whatever it recorded.
            run(
                "r3",
                "api",
                json!({"phase": "Failed", "resourceWaitSince": "2026-12-01T09:00:00Z"}),
            ),
            run(
                "r4",
                "web",
                json!({"phase": "Pending", "dependencyMissingSince": "2026-12-01T10:59:00Z"}),
            ),
            // Started: a services wait it recorded is over.
            run(
                "r5",
                "web",
                json!({"phase": "Running", "servicesWaitStart": "2026-12-01T10:00:00Z"}),
            ),
        ];
        let cr: CategoryRun = serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "CategoryRun",
            "metadata": {"name": "r1-unit", "namespace": "ns"},
            "spec": {"runName": "r1", "layer": "api", "category": "unit", "index": 0,
                     "priorityOrder": 0, "image": "i", "command": "c",
                     "resources": {}, "timeoutSeconds": 1.0},
            "status": {"attempts": [
                {"number": 1, "podName": "p1", "gated": true,
                 "startTime": "2026-12-01T10:40:00Z", "admittedTime": "2026-12-01T10:41:00Z",
                 "completionTime": "2026-12-01T10:42:00Z"},
                {"number": 2, "podName": "p2", "gated": true,
                 "startTime": "2026-12-01T10:55:00Z"},
            ]},
        }))
        .unwrap();
        let (_, waits) = kept(runs.iter(), std::iter::once(&cr), now());
        let q = |layer: &str, queue: &str| QueueLabels {
            namespace: "ns".into(),
            layer: layer.into(),
            queue: queue.into(),
        };
        assert_eq!(waits.get(&q("api", "resource")), Some(&1800.0));
        assert_eq!(waits.get(&q("web", "dependency")), Some(&60.0));
        assert_eq!(waits.get(&q("api", "kueue")), Some(&300.0));
        assert_eq!(waits.len(), 3, "{waits:?}");
    }
}
