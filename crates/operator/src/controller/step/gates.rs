//! The dependency gate: the runs a run waits for before its first category
//! starts (the named ones, and the latest run of each layer its layer
//! depends on). Pure: over the runs of the namespace the caller observed.

use kube::ResourceExt;

use crate::api::{LayerPhase, TestLayerRun};
use crate::plan::gate::Gate;
use crate::words::Reason;

/// The gate of the runs this run depends on (the named ones, and the latest
/// run of each layer its layer depends on), and those dependencies that have
/// no run at all (not created yet, or deleted before this run saw them end).
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
    let mut check =
        |label: String, dep: Option<&TestLayerRun>, waiting: &mut Vec<String>| -> Option<Gate> {
            let Some(dep) = dep else {
                waiting.push(format!("{label} (no such run yet)"));
                missing.push(label);
                return None;
            };
            match dep.status.as_ref().and_then(|s| s.phase) {
                Some(LayerPhase::Succeeded) => None,
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
    for layer in layers {
        let latest = same_ns
            .iter()
            .copied()
            .filter(|r| &r.spec.layer == layer)
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
    let gate = if waiting.is_empty() {
        Gate::Open
    } else {
        Gate::Waiting(format!("waiting for {}", waiting.join(", ")))
    };
    (gate, missing)
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
    fn named_dependencies() {
        let me = run("b", "x", "2026-01-01T00:10:00Z", None, &["a"]);
        assert!(matches!(
            dependencies(&me, &[], std::slice::from_ref(&me)).0,
            Gate::Waiting(_)
        ));
        let a = run("a", "y", "2026-01-01T00:00:00Z", Some("Succeeded"), &[]);
        assert_eq!(dependencies(&me, &[], &[me.clone(), a]).0, Gate::Open);
        let a = run("a", "y", "2026-01-01T00:00:00Z", Some("Cancelled"), &[]);
        assert!(
            matches!(dependencies(&me, &[], &[me.clone(), a]).0, Gate::Failed { message, .. } if message == "TestLayerRun a ended Cancelled")
        );
    }
}
