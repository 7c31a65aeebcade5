//! Before a run starts: its config, layer dependencies, services, a changed spec, its TTL.

use super::*;

#[test]
fn invalid_config_is_a_clear_condition_and_creates_nothing() {
    let config = "layers:\n  bad:\n    categories:\n      - name: a\n        timeout_seconds: 10\n        dependencies: [b]\n      - name: b\n        timeout_seconds: 10\n        dependencies: [a]\n";
    let mut w = World::new("bad", config, json!({"command": "true"}));
    assert_eq!(w.reconcile(), Next::AwaitChange);
    let st = w.run.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    let stalled = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidConfig")
    );
    assert!(
        stalled.message.contains("dependency cycle"),
        "{}",
        stalled.message
    );
    assert!(w.crs.is_empty() && w.pods.is_empty());
    // Stepping again writes nothing more.
    let writes = w.writes.len();
    w.reconcile();
    assert_eq!(w.writes.len(), writes);
    // An unknown layer, and an unknown strategy in the overrides.
    let mut w = World::new("missing", CHAIN, json!({}));
    w.reconcile();
    assert!(
        w.run
            .status
            .clone()
            .unwrap()
            .message
            .unwrap()
            .contains("missing")
    );
    let mut w = World::new(
        "chain",
        CHAIN,
        json!({"overrides": {"strategy": "FASTEST"}}),
    );
    w.reconcile();
    let msg = w.run.status.clone().unwrap().message.unwrap();
    assert!(
        msg.contains("spec.overrides.strategy") && msg.contains("FASTEST"),
        "{msg}"
    );
}

#[test]
fn runs_wait_for_layer_dependencies_and_config_maps() {
    let config = "layers:\n  base:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n  top:\n    execution_mode: sequential\n    dependencies: [base]\n    categories:\n      - name: b\n        timeout_seconds: 30\n";
    let mut w = World::new(
        "top",
        config,
        json!({"command": "true", "config": {"configMapRef": {"name": "layers"}}}),
    );
    w.run.spec.config.inline = None;
    assert_eq!(w.reconcile(), Next::After(Duration::from_secs(10)));
    let st = w.run.status.clone().unwrap();
    assert!(st.message.unwrap().contains("ConfigMap layers not found"));
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    );
    w.config_maps.insert("layers".into(), config.into());
    w.reconcile();
    assert!(
        w.run
            .status
            .clone()
            .unwrap()
            .message
            .unwrap()
            .contains("layer base"),
        "{:?}",
        w.run.status
    );
    assert_eq!(w.count("create pod"), 0);
    // A run of the base layer passes: the dependent starts.
    let mut base = running_base(config);
    w.others.push(base.clone());
    w.reconcile();
    assert_eq!(w.count("create pod"), 0);
    base.status.as_mut().unwrap().phase = Some(LayerPhase::Succeeded);
    w.others = vec![base.clone()];
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    // A failed dependency fails the run without starting anything.
    let mut w = World::new("top", config, json!({"command": "true"}));
    base.status.as_mut().unwrap().phase = Some(LayerPhase::Failed);
    w.others = vec![base];
    w.reconcile();
    w.reconcile();
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    assert_eq!(w.cat_phase("b"), Some(Phase::Skipped));
    assert_eq!(w.count("create pod"), 0);
    // A cancelled dependency is no failure: the run is cancelled with it,
    // saying so, without starting anything (as a local suite's layer that
    // waited on a cancelled one).
    let mut w = World::new("top", config, json!({"command": "true"}));
    let mut base = running_base(config);
    base.status.as_mut().unwrap().phase = Some(LayerPhase::Cancelled);
    w.others = vec![base];
    w.reconcile();
    w.reconcile();
    assert_eq!(w.phase(), Some(LayerPhase::Cancelled));
    assert_eq!(w.cat_phase("b"), Some(Phase::Cancelled));
    assert_eq!(w.count("create pod"), 0);
    let st = w.run.status.clone().unwrap();
    assert!(
        st.message
            .as_deref()
            .unwrap_or_default()
            .contains("was cancelled"),
        "{st:?}"
    );
    let succeeded = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Succeeded")
        .unwrap();
    assert_eq!(
        (succeeded.status.as_str(), succeeded.reason.as_str()),
        ("False", "DependencyCancelled")
    );
    assert!(
        !st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True"),
        "cancelled, not stuck"
    );
}

#[test]
fn required_services_gate_the_start_with_a_bound() {
    let config = "layers:\n  svc:\n    execution_mode: sequential\n    required_services: [postgresql]\n    service_wait_seconds: 5\n    categories:\n      - name: a\n        timeout_seconds: 30\n";
    let mut w = World::new("svc", config, json!({"command": "true"}));
    w.unready = vec!["postgresql".into()];
    w.reconcile();
    assert!(
        w.run
            .status
            .clone()
            .unwrap()
            .message
            .unwrap()
            .contains("postgresql")
    );
    assert_eq!(w.count("create pod"), 0);
    w.unready.clear();
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    // Never ready: the run fails at its bound with a clear reason.
    let mut w = World::new("svc", config, json!({"command": "true"}));
    w.unready = vec!["postgresql".into()];
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    let st = w.run.status.clone().unwrap();
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "ServicesNotReady")
    );
    let waited = w.now.duration_since(world::t0()).as_secs_f64();
    assert!((5.0..8.0).contains(&waited), "failed after {waited}s");
    assert_eq!(w.count("create pod"), 0);
}

#[test]
fn a_changed_spec_starts_the_run_over_and_finished_runs_are_cleaned_up() {
    let mut w = World::new(
        "wide",
        &wide(2, "", ""),
        json!({"command": "true", "ttlSecondsAfterFinished": 5}),
    )
    .scripts(|_, _| Script::forever());
    w.reconcile();
    assert_eq!(w.count("create pod"), 2);
    w.run.spec.image = Some("busybox:2".into());
    w.reconcile();
    assert_eq!(w.count("delete cr"), 2);
    assert!(w.pods.is_empty() && w.crs.is_empty());
    assert!(w.run.status.clone().unwrap().plan.is_none());
    // It starts over with the new spec.
    w.reconcile();
    assert_eq!(w.count("create pod"), 4);
    assert_eq!(
        w.pods["r-c0-1"].spec.clone().unwrap().containers[0]
            .image
            .as_deref(),
        Some("busybox:2")
    );
    // Finished, it is deleted after its TTL.
    w.run.spec.cancel = true;
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Cancelled));
    let Next::After(d) = w.reconcile() else {
        panic!("a TTL wake-up")
    };
    assert!(d <= Duration::from_secs(6));
    assert!(!w.run_deleted);
    w.advance_to(
        w.now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(6))
            .unwrap(),
    );
    w.reconcile();
    assert!(w.run_deleted);
}

#[test]
fn the_services_wait_counts_from_the_gate_not_from_creation() {
    let config = "layers:\n  base:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n  top:\n    execution_mode: sequential\n    dependencies: [base]\n    required_services: [postgresql]\n    service_wait_seconds: 5\n    categories:\n      - name: b\n        timeout_seconds: 30\n";
    let mut w = World::new("top", config, json!({"command": "true"}));
    w.unready = vec!["postgresql".into()];
    let mut base = running_base(config);
    w.others = vec![base.clone()];
    // The dependency runs for a minute: longer than the services may take.
    w.run_until(Duration::from_secs(60), |w| w.now >= later_secs(60));
    assert!(w.run.status.clone().unwrap().services_wait_start.is_none());
    base.status.as_mut().unwrap().phase = Some(LayerPhase::Succeeded);
    w.others = vec![base];
    w.reconcile();
    assert!(
        !w.phase().unwrap().is_terminal(),
        "not failed on reaching the gate"
    );
    assert!(w.run.status.clone().unwrap().services_wait_start.is_some());
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    let waited = w.now.duration_since(world::t0()).as_secs_f64() - 60.0;
    assert!(
        (5.0..8.0).contains(&waited),
        "failed {waited}s after the gate"
    );
}

fn later_secs(s: i64) -> k8s_openapi::jiff::Timestamp {
    world::t0()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(s))
        .unwrap()
}

#[test]
fn a_dependency_that_never_has_a_run_fails_the_run_within_its_bound() {
    let config = "layers:\n  top:\n    execution_mode: sequential\n    categories:\n      - name: b\n        timeout_seconds: 30\n";
    let mut w = World::new(
        "top",
        config,
        json!({"command": "true", "dependsOn": ["gone"], "dependencyWaitSeconds": 30}),
    );
    w.reconcile();
    assert!(
        w.run
            .status
            .clone()
            .unwrap()
            .message
            .unwrap()
            .contains("no such run yet")
    );
    w.run_to_end(LONG);
    let st = w.run.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.reason == "DependencyNotFound")
    );
    let waited = w.now.duration_since(world::t0()).as_secs_f64();
    assert!((30.0..34.0).contains(&waited), "failed after {waited}s");
    assert_eq!(w.count("create pod"), 0);
    assert_eq!(w.cat_phase("b"), Some(Phase::Skipped));
}

/// A running run of layer `base` in the same namespace, from `config`.
fn running_base(config: &str) -> crate::api::TestLayerRun {
    serde_json::from_value(json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "metadata": {"name": "base", "namespace": "ns", "uid": "base-uid", "creationTimestamp": world::t0().to_string()},
        "spec": {"layer": "base", "config": {"inline": config}},
        "status": {"phase": "Running"}}))
    .unwrap()
}
