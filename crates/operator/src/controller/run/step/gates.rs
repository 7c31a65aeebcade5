//! The dependency gate: the runs a run waits for before its first category
//! starts (the named ones, and the latest run of each layer its layer
//! depends on; for a run of a suite, the run of that layer in the same
//! suite). Pure: over the runs of the namespace the caller observed.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::attempts::{offset, stored};
use super::observed::{Observed, Question};
use super::run_status;
use super::writes::{Step, wall_clock};

use crate::api::names::{ANNOTATION_SUITE_LAYERS, LABEL_SUITE};
use crate::api::{LayerPhase, TestLayerRun, TestLayerRunStatus};
use crate::layer::LayerPlan;
use crate::plan::gate::{Gate, services_gate};
use crate::words::Reason;

/// The gate of the runs this run depends on (the named ones, and the latest
/// run of each layer its layer depends on), and those dependencies that have
/// no run at all (not created yet, or deleted before this run saw them end).
/// A dependency that failed fails the gate (`DependencyFailed`); one that
/// was cancelled, when none failed, fails it with `DependencyCancelled`:
/// the run is cancelled with it.
pub fn dependencies(
    run: &TestLayerRun,
    layers: &[String],
    all: &[std::sync::Arc<TestLayerRun>],
) -> (Gate, Vec<String>) {
    let ns = run.namespace();
    let same_ns: Vec<&TestLayerRun> = all
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| r.namespace() == ns && r.uid() != run.uid())
        .collect();
    let mut waiting = Vec::new();
    let mut missing = Vec::new();
    let mut cancelled = None;
    let mut check =
        |label: String, dep: Option<&TestLayerRun>, waiting: &mut Vec<String>| -> Option<Gate> {
            let Some(dep) = dep else {
                waiting.push(format!("{label} (no such run yet)"));
                missing.push(label);
                return None;
            };
            match dep.status.as_ref().and_then(|s| s.phase) {
                Some(LayerPhase::Succeeded) => None,
                Some(LayerPhase::Cancelled) => {
                    cancelled.get_or_insert(Gate::Failed {
                        reason: Reason::DependencyCancelled,
                        message: format!("{label} was cancelled"),
                    });
                    None
                }
                Some(p) if p.is_terminal() => Some(Gate::Failed {
                    reason: Reason::DependencyFailed,
                    message: format!("{label} ended {}", p.as_str()),
                }),
                _ => {
                    waiting.push(label);
                    None
                }
            }
        };
    for name in &run.spec.depends_on {
        let dep = same_ns.iter().copied().find(|r| &r.name_any() == name);
        if let Some(g) = check(format!("TestLayerRun {name}"), dep, &mut waiting) {
            return (g, Vec::new());
        }
    }
    // A suite's runs gate on each other; a layer the suite does not run is
    // not waited for.
    let suite = run.labels().get(LABEL_SUITE);
    let suite_layers: Option<Vec<&str>> = suite.and_then(|_| {
        run.annotations()
            .get(ANNOTATION_SUITE_LAYERS)
            .map(|l| l.split(',').map(str::trim).collect())
    });
    for layer in layers {
        if suite_layers
            .as_ref()
            .is_some_and(|ls| !ls.contains(&layer.as_str()))
        {
            continue;
        }
        let latest = same_ns
            .iter()
            .copied()
            .filter(|r| &r.spec.layer == layer)
            .filter(|r| suite.is_none() || r.labels().get(LABEL_SUITE) == suite)
            .max_by(|a, b| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
                    .then_with(|| a.name_any().cmp(&b.name_any()))
            });
        let label = match latest {
            Some(r) => format!("layer {layer} (TestLayerRun {})", r.name_any()),
            None => format!("layer {layer}"),
        };
        if let Some(g) = check(label, latest, &mut waiting) {
            return (g, Vec::new());
        }
    }
    if let Some(g) = cancelled {
        return (g, Vec::new());
    }
    let gate = if waiting.is_empty() {
        Gate::Open
    } else {
        Gate::Waiting(format!("waiting for {}", waiting.join(", ")))
    };
    (gate, missing)
}

/// Seconds a run waits for a dependency that has no run, by default.
const DEPENDENCY_WAIT_SECONDS: u32 = 3600;

/// The gate stage: before the run's clock starts, its layer dependencies
/// and required services. `Ok`: what the run waits for, if anything;
/// `Err`: the step that asks which services are ready, or that fails the
/// run at a gate.
pub fn gate(
    o: &Observed,
    layer: &LayerPlan,
    status: &mut TestLayerRunStatus,
    now: Timestamp,
) -> Result<Option<String>, Step> {
    let run = o.run.as_ref();
    let mut hold = None;
    if status.start_time.is_none() && !run.spec.cancel {
        let (deps, missing) = dependencies(run, &layer.settings.dependencies, &o.runs);
        let deps = if missing.is_empty() {
            status.dependency_missing_since = None;
            deps
        } else {
            // A dependency with no run may never come (deleted by its TTL
            // before this run saw it): wait for it within a bound.
            let since = status
                .dependency_missing_since
                .get_or_insert_with(|| wall_clock(now))
                .clone();
            let bound = Duration::from_secs(u64::from(
                run.spec
                    .dependency_wait_seconds
                    .unwrap_or(DEPENDENCY_WAIT_SECONDS),
            ));
            if offset(&stored(&since), &now) >= bound {
                Gate::Failed {
                    reason: Reason::DependencyNotFound,
                    message: format!(
                        "no run of {} after {}",
                        missing.join(", "),
                        crate::plan::describe::human_duration(bound)
                    ),
                }
            } else {
                deps
            }
        };
        let gate = match deps {
            Gate::Open if !layer.settings.required_services.is_empty() => {
                let Some(unready) = &o.answers.unready_services else {
                    return Err(Step::ask(vec![Question::UnreadyServices(
                        layer.settings.required_services.clone(),
                    )]));
                };
                // The wait counts from when the run reached this gate.
                let since = status
                    .services_wait_start
                    .get_or_insert_with(|| wall_clock(now))
                    .clone();
                services_gate(
                    unready,
                    offset(&stored(&since), &now),
                    layer.settings.service_wait,
                )
            }
            g => g,
        };
        match gate {
            Gate::Open => {}
            Gate::Waiting(m) => hold = Some(m),
            Gate::Failed { reason, message } => {
                return Err(run_status::gate_failed(
                    o,
                    status.clone(),
                    layer,
                    &reason,
                    &message,
                    now,
                ));
            }
        }
    }
    Ok(hold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn run(
        name: &str,
        layer: &str,
        created: &str,
        phase: Option<&str>,
        depends_on: &[&str],
    ) -> Arc<TestLayerRun> {
        let mut v = json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": name, "namespace": "ci", "uid": name, "creationTimestamp": created},
            "spec": {"layer": layer, "config": {}, "dependsOn": depends_on}});
        if let Some(p) = phase {
            v["status"] = json!({"phase": p});
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn layer_dependencies_follow_the_latest_run_of_the_layer() {
        let me = run("e2e", "e2e", "2026-01-01T00:10:00Z", None, &[]);
        let layers = vec!["fast".to_string()];
        let old_ok = run(
            "fast-1",
            "fast",
            "2026-01-01T00:00:00Z",
            Some("Succeeded"),
            &[],
        );
        let new_running = run(
            "fast-2",
            "fast",
            "2026-01-01T00:05:00Z",
            Some("Running"),
            &[],
        );
        assert_eq!(
            dependencies(&me, &layers, std::slice::from_ref(&me)).0,
            Gate::Waiting("waiting for layer fast (no such run yet)".into())
        );
        assert!(
            matches!(dependencies(&me, &layers, &[me.clone(), old_ok.clone(), new_running.clone()]).0, Gate::Waiting(m) if m.contains("fast-2"))
        );
        assert_eq!(
            dependencies(&me, &layers, &[me.clone(), old_ok.clone()]).0,
            Gate::Open
        );
        let new_failed = run(
            "fast-2",
            "fast",
            "2026-01-01T00:05:00Z",
            Some("Failed"),
            &[],
        );
        assert!(
            matches!(dependencies(&me, &layers, &[me.clone(), old_ok, new_failed]).0, Gate::Failed { reason, .. } if reason == Reason::DependencyFailed)
        );
    }

    #[test]
    fn a_suite_s_runs_gate_on_each_other_not_on_other_runs_of_the_layer() {
        let in_suite = |r: Arc<TestLayerRun>, suite: &str| {
            let mut r = (*r).clone();
            r.metadata.labels = Some([(LABEL_SUITE.to_string(), suite.to_string())].into());
            r.metadata.annotations =
                Some([(ANNOTATION_SUITE_LAYERS.to_string(), "fast,core".to_string())].into());
            Arc::new(r)
        };
        let me = in_suite(
            run("s1-core", "core", "2026-01-01T00:10:00Z", None, &[]),
            "s1",
        );
        let layers = vec!["fast".to_string(), "lint".to_string()];
        // A newer run of fast in another suite, and one outside any suite,
        // passed: not this suite's.
        let other = in_suite(
            run(
                "s2-fast",
                "fast",
                "2026-01-01T00:20:00Z",
                Some("Succeeded"),
                &[],
            ),
            "s2",
        );
        let loose = run(
            "fast-x",
            "fast",
            "2026-01-01T00:21:00Z",
            Some("Succeeded"),
            &[],
        );
        let mine = in_suite(
            run(
                "s1-fast",
                "fast",
                "2026-01-01T00:09:00Z",
                Some("Running"),
                &[],
            ),
            "s1",
        );
        let all = [me.clone(), other.clone(), loose.clone(), mine];
        assert!(
            matches!(dependencies(&me, &layers, &all).0, Gate::Waiting(m) if m.contains("s1-fast") && !m.contains("lint")),
            "waits for its own suite's fast; lint is not in the suite"
        );
        let failed = in_suite(
            run(
                "s1-fast",
                "fast",
                "2026-01-01T00:09:00Z",
                Some("Failed"),
                &[],
            ),
            "s1",
        );
        assert!(matches!(
            dependencies(&me, &layers, &[me.clone(), other, loose, failed]).0,
            Gate::Failed { .. }
        ));
        // Not created yet: waited for, never another suite's.
        assert!(matches!(
            dependencies(&me, &layers, std::slice::from_ref(&me)).0,
            Gate::Waiting(m) if m.contains("no such run yet")
        ));
    }

    #[test]
    fn named_dependencies() {
        let me = run("b", "x", "2026-01-01T00:10:00Z", None, &["a"]);
        assert!(matches!(
            dependencies(&me, &[], std::slice::from_ref(&me)).0,
            Gate::Waiting(_)
        ));
        let a = run("a", "y", "2026-01-01T00:00:00Z", Some("Succeeded"), &[]);
        assert_eq!(dependencies(&me, &[], &[me.clone(), a]).0, Gate::Open);
        let a = run("a", "y", "2026-01-01T00:00:00Z", Some("Cancelled"), &[]);
        assert_eq!(
            dependencies(&me, &[], &[me.clone(), a.clone()]).0,
            Gate::Failed {
                reason: Reason::DependencyCancelled,
                message: "TestLayerRun a was cancelled".into()
            }
        );
        // A failure wins over a cancel, whatever the order: the run is
        // skipped for the failure, as a local suite skips it.
        let me = run("b", "x", "2026-01-01T00:10:00Z", None, &["a", "c"]);
        let c = run("c", "y", "2026-01-01T00:00:00Z", Some("TimedOut"), &[]);
        assert_eq!(
            dependencies(&me, &[], &[me.clone(), a, c]).0,
            Gate::Failed {
                reason: Reason::DependencyFailed,
                message: "TestLayerRun c ended TimedOut".into()
            }
        );
    }
}
