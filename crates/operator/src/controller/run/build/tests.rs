use crate::api::names::{LABEL_ATTEMPT, LABEL_CATEGORY, LABEL_RUN};
use crate::config::Config;
use crate::controller::run::build::*;
use serde_json::json;

fn run(spec: serde_json::Value) -> TestLayerRun {
    serde_json::from_value(json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "metadata": {"name": "nightly", "namespace": "ci", "uid": "0000-1111"},
        "spec": spec,
    }))
    .unwrap()
}

const CONFIG: &str = r#"
layers:
  core:
    name: "Core Integration"
    execution_mode: "parallel"
    max_duration_minutes: 10
    fail_fast: true
    image: "python:3.12"
    resource_limits: {cpu: "4", memory: "8Gi", max_parallel_instances: 3}
    categories:
      - name: "database"
        timeout_seconds: 120
        priority_order: 1
        command: "pytest tests/db"
        resources: {requests: {cpu: "500m", memory: "512Mi"}, limits: {cpu: "1", memory: "1Gi"}}
        env: {DB: "postgres"}
      - name: "API Tests"
        timeout_seconds: 60
        priority_order: 2
        dependencies: ["database"]
        retries: 2
        expected_duration_seconds: 20
    llm_requirements: {mode: "mock"}
environment_overrides:
  staging:
    timeout_multiplier: 2
    llm_requirements: {mode: "real"}
"#;

fn layer() -> LayerPlan {
    Config::parse(CONFIG, "layers.yaml")
        .unwrap()
        .resolve("core", Some("staging"))
        .unwrap()
}

#[test]
fn names_are_dns_labels_stable_and_distinct() {
    assert_eq!(
        category_run_name("nightly", "api-tests"),
        "nightly-api-tests"
    );
    let long_run = "a-very-long-run-name-that-someone-generated-in-ci-12345678";
    let a = category_run_name(long_run, "database");
    let b = category_run_name(long_run, "database-migrations");
    assert!(
        a.len() <= MAX_CATEGORY_RUN_NAME && b.len() <= MAX_CATEGORY_RUN_NAME,
        "{a} {b}"
    );
    assert_ne!(a, b);
    assert_eq!(a, category_run_name(long_run, "database"));
    for n in [&a, &b] {
        assert!(crate::config::names::is_dns_label(&pod_name(n, 10)), "{n}");
    }
}

#[test]
fn category_runs_are_self_contained_and_owned() {
    let layer = layer();
    let r = run(
        json!({"layer": "core", "environment": "staging", "config": {"inline": CONFIG},
                       "command": "make test-{category}", "pod": {"serviceAccountName": "tests"}}),
    );
    let db = category_run(&r, &layer, 0).unwrap();
    assert_eq!(db.metadata.name.as_deref(), Some("nightly-database"));
    assert_eq!(db.metadata.namespace.as_deref(), Some("ci"));
    let owner = &db.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("TestLayerRun", "nightly", Some(true))
    );
    let s = &db.spec;
    assert_eq!(
        (s.image.as_str(), s.command.as_str()),
        ("python:3.12", "pytest tests/db")
    );
    assert_eq!(s.timeout_seconds, 240.0, "staging doubles timeouts");
    assert_eq!(
        (
            s.resources.requests.cpu_millis,
            s.resources.limits.memory_bytes
        ),
        (Some(500), Some(1 << 30))
    );
    assert_eq!(s.env.get("DB").map(String::as_str), Some("postgres"));
    assert_eq!(
        s.env.get("TESTLAYER_LLM_MODE").map(String::as_str),
        Some("real")
    );
    assert_eq!(
        s.env.get("TESTLAYER_ENVIRONMENT").map(String::as_str),
        Some("staging")
    );
    assert_eq!(
        s.pod.as_ref().unwrap().service_account_name.as_deref(),
        Some("tests")
    );

    let api = category_run(&r, &layer, 1).unwrap();
    assert_eq!(api.metadata.name.as_deref(), Some("nightly-api-tests"));
    assert_eq!(
        api.spec.command, "make test-API Tests",
        "the run's template fills in the category"
    );
    assert_eq!(api.spec.dependencies, vec!["database".to_string()]);
    assert_eq!((api.spec.retries, api.spec.index), (2, 1));
    assert_eq!(api.spec.expected_duration_seconds, Some(40.0));
    assert_eq!(
        api.labels().get(LABEL_CATEGORY).map(String::as_str),
        Some("api-tests")
    );

    let bare = run(json!({"layer": "core", "config": {"inline": CONFIG}}));
    assert_eq!(
        category_run(&bare, &layer, 1).unwrap_err(),
        BuildError::NoCommand {
            category: "API Tests".into()
        }
    );
}

#[test]
fn the_plan_rebuilds_from_the_objects() {
    let layer = layer();
    let r = run(
        json!({"layer": "core", "environment": "staging", "config": {"inline": CONFIG}, "command": "true"}),
    );
    let crs: Vec<CategoryRun> = (0..2)
        .map(|i| category_run(&r, &layer, i).unwrap())
        .collect();
    let snap = snapshot(&layer);
    assert_eq!((snap.category_count, snap.count()), (2, 2));
    assert!(snap.categories.is_empty(), "the status lists no category");
    // Order of the objects does not matter.
    let refs: Vec<&CategoryRun> = crs.iter().rev().collect();
    let back = layer_from_objects("core", Some("staging"), &snap, &refs).unwrap();
    assert_eq!(back.settings.strategy, layer.settings.strategy);
    assert_eq!(
        (
            back.settings.max_parallel,
            back.settings.budget,
            back.settings.fail_fast,
            back.settings.deadline
        ),
        (
            layer.settings.max_parallel,
            layer.settings.budget,
            layer.settings.fail_fast,
            layer.settings.deadline
        )
    );
    assert_eq!(back.settings.llm_mode, crate::layer::LlmMode::Real);
    for (a, b) in back.categories.iter().zip(&layer.categories) {
        assert_eq!(
            (&a.name, &a.k8s_name, a.timeout, &a.dependencies),
            (&b.name, &b.k8s_name, b.timeout, &b.dependencies)
        );
        assert_eq!(
            (
                a.resources,
                a.retries,
                a.infra_retries,
                a.retry_backoff,
                a.estimate
            ),
            (
                b.resources,
                b.retries,
                b.infra_retries,
                b.retry_backoff,
                b.estimate
            )
        );
        assert_eq!(a.priority_order, b.priority_order);
    }
    // A missing CategoryRun, or one the plan does not know, is an error.
    let e = layer_from_objects("core", None, &snap, &[&crs[0]]).unwrap_err();
    assert!(
        e.to_string().contains("category 1 (0-based) is missing"),
        "{e}"
    );
    let mut stranger = crs[1].clone();
    stranger.spec.index = 2;
    assert!(layer_from_objects("core", None, &snap, &[&crs[0], &stranger]).is_err());
    assert!(layer_from_objects("core", None, &snap, &[&crs[0], &crs[0]]).is_err());
    // A snapshot of an older controller names the categories; they must match.
    let legacy = crate::api::PlanSnapshot {
        category_count: 0,
        categories: vec!["database".into(), "API Tests".into()],
        ..snap.clone()
    };
    assert!(layer_from_objects("core", None, &legacy, &refs).is_ok());
    let e = layer_from_objects("core", None, &legacy, &[&crs[0]]).unwrap_err();
    assert!(e.to_string().contains("\"API Tests\" is missing"), "{e}");
    let mut stranger = crs[1].clone();
    stranger.spec.category = "other".into();
    assert!(layer_from_objects("core", None, &legacy, &[&crs[0], &stranger]).is_err());
}

#[test]
fn attempt_pods_carry_limits_env_owner_and_restricted_defaults() {
    let layer = layer();
    let r = run(
        json!({"layer": "core", "environment": "staging", "config": {"inline": CONFIG}, "command": "true",
        "pod": {"env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}],
                "nodeSelector": {"pool": "tests"}, "labels": {"team": "shop"}}}),
    );
    let mut cr = category_run(&r, &layer, 0).unwrap();
    cr.metadata.uid = Some("2222".into());
    let pod = attempt_pod(&cr, 2);
    assert_eq!(pod.metadata.name.as_deref(), Some("nightly-database-2"));
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels.get(LABEL_ATTEMPT).map(String::as_str), Some("2"));
    assert_eq!(labels.get(LABEL_RUN).map(String::as_str), Some("nightly"));
    assert_eq!(labels.get("team").map(String::as_str), Some("shop"));
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("CategoryRun", "2222")
    );
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(
        spec.active_deadline_seconds,
        Some(240 + DEADLINE_BACKSTOP_SECS)
    );
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(
        spec.node_selector
            .as_ref()
            .unwrap()
            .get("pool")
            .map(String::as_str),
        Some("tests")
    );
    assert_eq!(
        spec.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    let c = &spec.containers[0];
    assert_eq!(
        c.command.as_ref().unwrap(),
        &vec!["/bin/sh".to_string(), "-c".into(), "pytest tests/db".into()]
    );
    let res = c.resources.as_ref().unwrap();
    assert_eq!(
        res.limits.as_ref().unwrap().get("memory"),
        Some(&Quantity("1Gi".into()))
    );
    assert_eq!(
        res.requests.as_ref().unwrap().get("cpu"),
        Some(&Quantity("500m".into()))
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(
        (
            sc.allow_privilege_escalation,
            sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap()[0].as_str()
        ),
        (Some(false), "ALL")
    );
    let env = c.env.as_ref().unwrap();
    let get = |n: &str| env.iter().find(|e| e.name == n).unwrap();
    assert_eq!(get("TESTLAYER_ATTEMPT").value.as_deref(), Some("2"));
    let db = get("DB");
    assert!(
        db.value.is_none() && db.value_from.is_some(),
        "the secret reference wins over the plain value"
    );
    assert_eq!(env.iter().filter(|e| e.name == "DB").count(), 1);

    let mut open = cr.clone();
    open.spec
        .pod
        .get_or_insert_with(Default::default)
        .unrestricted = true;
    let pod = attempt_pod(&open, 1);
    assert!(pod.spec.as_ref().unwrap().security_context.is_none());
    assert!(
        pod.spec.as_ref().unwrap().containers[0]
            .security_context
            .is_none()
    );
}
