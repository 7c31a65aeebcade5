//! The Argo CD health check (`deploy/gitops/health.lua`, run by a real Lua
//! 5.4) against the TestLayerRuns a real run goes through: Progressing while
//! it runs, Healthy when it passed, Degraded when it failed or stalled,
//! Suspended while suspended.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Fixture;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

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

async fn get(fx: &Fixture, name: &str) -> Value {
    serde_json::to_value(fx.runs().get(name).await.unwrap()).unwrap()
}

/// Waits (up to a minute) until run `name`, as JSON, satisfies `f`.
async fn until(fx: &Fixture, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let run = fx
        .wait_for(name, Duration::from_secs(60), what, |r| {
            f(&serde_json::to_value(r).unwrap())
        })
        .await;
    serde_json::to_value(run).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_a_real_run() {
    let fx = Fixture::builder("gitops").identity("gitops").start().await;
    let config = "layers:\n  ok:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"sleep 1.5\"\n  bad:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"exit 3\"\n";
    let running = |v: &Value| v["status"]["phase"] == "Running";
    let done = |v: &Value| {
        matches!(
            v["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "TimedOut" | "Cancelled")
        )
    };

    let fresh = serde_json::to_value(fx.submit("ok", "ok", config, json!({})).await).unwrap();
    assert_eq!(health(&fresh).0, "Progressing");
    let v = until(&fx, "ok", "running", running).await;
    assert_eq!(health(&v).0, "Progressing", "{v:#}");
    let v = until(&fx, "ok", "the end", done).await;
    assert_eq!(
        health(&v),
        ("Healthy".to_string(), "all 1 categories passed".to_string()),
        "{v:#}"
    );

    fx.submit("bad", "bad", config, json!({})).await;
    let v = until(&fx, "bad", "the end", done).await;
    assert_eq!(health(&v).0, "Degraded", "{v:#}");

    fx.submit("invalid", "nosuchlayer", config, json!({})).await;
    let v = until(&fx, "invalid", "the end", done).await;
    let (status, message) = health(&v);
    assert_eq!(status, "Degraded");
    assert!(message.contains("nosuchlayer"), "{message}");

    fx.submit("paused", "ok", config, json!({"suspend": true}))
        .await;
    let v = until(&fx, "paused", "the suspended message", |v| {
        v["status"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("suspended"))
    })
    .await;
    assert_eq!(health(&v).0, "Suspended", "{v:#}");
    // A new spec not yet seen by the controller is Progressing, not the old health.
    fx.runs()
        .patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"environment": "staging"}})),
        )
        .await
        .unwrap();
    let mut v = get(&fx, "ok").await;
    if v["status"]["observedGeneration"] == v["metadata"]["generation"] {
        // The controller was quick: make the lag explicit for the check.
        v["metadata"]["generation"] = json!(v["metadata"]["generation"].as_i64().unwrap() + 1);
    }
    assert_eq!(health(&v).0, "Progressing");
}
