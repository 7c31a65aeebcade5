//! The Argo CD health check (`deploy/gitops/health.lua`, run by a real Lua
//! 5.4) against the TestLayerRuns a real run goes through: Progressing while
//! it runs, Healthy when it passed, Degraded when it failed or stalled,
//! Suspended while suspended.

use std::process::Command;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testlayer::api::TestLayerRun;
use testlayer::controller::{ControllerOptions, run as run_controller};
use testlayer_testkit::{ControlPlane, TestKubelet};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/gitops/health.lua");

/// A Lua literal for a JSON value.
fn lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("[==[{s}]==]"),
        Value::Array(a) => format!("{{{}}}", a.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("[\"{k}\"] = {}", lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The health Argo CD would show for `obj`.
fn health(obj: &Value) -> (String, String) {
    let out = Command::new("lua5.4")
        .arg("-e")
        .arg(format!("obj = {}", lua(obj)))
        .arg("-e")
        .arg(format!(
            "local hs = dofile([==[{SCRIPT}]==]); io.write(hs.status, '\\n', hs.message or '')"
        ))
        .output()
        .expect("lua5.4 (installed by scripts/prerequisites.sh)");
    assert!(
        out.status.success(),
        "lua failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

#[test]
fn the_argocd_config_map_holds_the_tested_script() {
    let cm = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/gitops/argocd-cm.yaml"
    ))
    .unwrap();
    let doc: Value = serde_yaml::from_str(&cm).unwrap();
    let script = std::fs::read_to_string(SCRIPT).unwrap();
    let body: String = script
        .lines()
        .filter(|l| !l.starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    for kind in ["TestLayerRun", "CategoryRun"] {
        let key = format!("resource.customizations.health.testlayer.dev_{kind}");
        assert_eq!(
            doc["data"][&key].as_str(),
            Some(body.as_str()),
            "{key} differs from deploy/gitops/health.lua"
        );
    }
    assert_eq!(
        health(&json!({"metadata": {"name": "x"}, "spec": {}})).0,
        "Progressing"
    );
}

async fn get(runs: &Api<TestLayerRun>, name: &str) -> Value {
    serde_json::to_value(runs.get(name).await.unwrap()).unwrap()
}

async fn until(
    runs: &Api<TestLayerRun>,
    name: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let v = get(runs, name).await;
        if f(&v) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_a_real_run() {
    let cp = ControlPlane::shared();
    let crds = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"));
    cp.install_crds(
        crds,
        &["testlayerruns.testlayer.dev", "categoryruns.testlayer.dev"],
    )
    .unwrap();
    let ns = cp.create_namespace("gitops").await.unwrap();
    let admin = cp.admin_client().await.unwrap();
    let _kubelet = TestKubelet::start(admin.clone(), &ns, 2).await.unwrap();
    let opts = ControllerOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        namespace: Some(ns.clone()),
        concurrency: 4,
        identity: "gitops".into(),
        leader_election: None,
    };
    let client = admin.clone();
    let _controller = tokio::spawn(async move { run_controller(client, opts).await.unwrap() });
    let runs: Api<TestLayerRun> = Api::namespaced(admin, &ns);
    let config = "layers:\n  ok:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"sleep 1.5\"\n  bad:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"exit 3\"\n";
    let create = |name: &str, layer: &str, extra: Value| {
        let mut spec = json!({"layer": layer, "config": {"inline": config}, "image": "busybox"});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<TestLayerRun>(json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun", "metadata": {"name": name}, "spec": spec})).unwrap()
    };
    let running = |v: &Value| v["status"]["phase"] == "Running";
    let done = |v: &Value| {
        matches!(
            v["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "TimedOut" | "Cancelled")
        )
    };

    let fresh = serde_json::to_value(
        runs.create(&PostParams::default(), &create("ok", "ok", json!({})))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(health(&fresh).0, "Progressing");
    let v = until(&runs, "ok", "running", running).await;
    assert_eq!(health(&v).0, "Progressing", "{v:#}");
    let v = until(&runs, "ok", "the end", done).await;
    assert_eq!(
        health(&v),
        ("Healthy".to_string(), "all 1 categories passed".to_string()),
        "{v:#}"
    );

    runs.create(&PostParams::default(), &create("bad", "bad", json!({})))
        .await
        .unwrap();
    let v = until(&runs, "bad", "the end", done).await;
    assert_eq!(health(&v).0, "Degraded", "{v:#}");

    runs.create(
        &PostParams::default(),
        &create("invalid", "nosuchlayer", json!({})),
    )
    .await
    .unwrap();
    let v = until(&runs, "invalid", "the end", done).await;
    let (status, message) = health(&v);
    assert_eq!(status, "Degraded");
    assert!(message.contains("nosuchlayer"), "{message}");

    runs.create(
        &PostParams::default(),
        &create("paused", "ok", json!({"suspend": true})),
    )
    .await
    .unwrap();
    let v = until(&runs, "paused", "the suspended message", |v| {
        v["status"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("suspended"))
    })
    .await;
    assert_eq!(health(&v).0, "Suspended", "{v:#}");
    // A new spec not yet seen by the controller is Progressing, not the old health.
    runs.patch(
        "ok",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"environment": "staging"}})),
    )
    .await
    .unwrap();
    let mut v = get(&runs, "ok").await;
    if v["status"]["observedGeneration"] == v["metadata"]["generation"] {
        // The controller was quick: make the lag explicit for the check.
        v["metadata"]["generation"] = json!(v["metadata"]["generation"].as_i64().unwrap() + 1);
    }
    assert_eq!(health(&v).0, "Progressing");
}
