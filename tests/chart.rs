//! The Helm chart with a real `helm` (built by tests/cluster/build.sh): it
//! lints and renders, its manifests apply to the real control plane, and the
//! controller running with the chart's ServiceAccount credentials (RBAC on)
//! completes a run that uses every permission the controller needs.

mod common;

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, PostParams};
use serde_json::json;
use testlayer::api::{LayerPhase, TestLayerRun};
use testlayer::controller::{ControllerOptions, LeaderElection, run as run_controller};
use testlayer_testkit::{ControlPlane, TestKubelet, bin_dir};

use common::eventually;

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/testlayer")
}

fn helm(args: &[&str]) -> String {
    let bin = bin_dir().expect("bin dir").join("helm");
    let out = Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn render(namespace: &str, sets: &[&str]) -> Vec<serde_json::Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "tl",
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let text = helm(&args);
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| {
            let v: serde_json::Value = serde::Deserialize::deserialize(d).ok()?;
            (!v.is_null()).then_some(v)
        })
        .collect()
}

fn find<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered chart"))
}

#[test]
fn the_chart_lints_and_renders() {
    helm(&["lint", "--strict", chart().to_str().unwrap()]);
    let docs = render("testlayer-system", &["replicaCount=2"]);
    let deploy = find(&docs, "Deployment", "tl-testlayer");
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&"controller") && args.contains(&"--leader-elect"),
        "{args:?}"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    assert_eq!(deploy["spec"]["replicas"], 2);
    // Under leader election a rolling update is safe (the standby is Ready).
    assert!(
        deploy["spec"]["strategy"].is_null(),
        "{}",
        deploy["spec"]["strategy"]
    );
    find(&docs, "Role", "tl-testlayer-leader-election");
    find(&docs, "ClusterRole", "tl-testlayer");
    find(&docs, "Service", "tl-testlayer-metrics");
    // One replica: no Lease role; a watched namespace: a Role, not a ClusterRole.
    let single = render("testlayer-system", &["watchNamespace=ci"]);
    // Without leader election two controllers never run at once.
    assert_eq!(
        find(&single, "Deployment", "tl-testlayer")["spec"]["strategy"]["type"],
        "Recreate"
    );
    assert!(
        !single
            .iter()
            .any(|d| d["metadata"]["name"] == "tl-testlayer-leader-election")
    );
    assert_eq!(
        find(&single, "Role", "tl-testlayer")["metadata"]["namespace"],
        "ci"
    );
    assert!(!single.iter().any(|d| d["kind"] == "ClusterRole"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_completes_a_run_under_the_charts_rbac() {
    let cp = ControlPlane::shared();
    // `helm install` into the test control plane (two replicas: leader
    // election on); it installs the CRDs from the chart too.
    let system = cp.create_namespace("tl-system").await.unwrap();
    let chart_path = chart();
    let kubeconfig = cp.kubeconfig().to_str().unwrap().to_string();
    helm(&[
        "install",
        "tl",
        chart_path.to_str().unwrap(),
        "--kubeconfig",
        &kubeconfig,
        "--namespace",
        &system,
        "--set",
        "replicaCount=2",
    ]);
    let listed = helm(&["list", "--kubeconfig", &kubeconfig, "--namespace", &system]);
    assert!(
        listed.contains("tl") && listed.contains("deployed"),
        "{listed}"
    );
    let out = cp
        .kubectl()
        .args([
            "wait",
            "--for=condition=Established",
            "crd/testlayerruns.testlayer.dev",
            "crd/categoryruns.testlayer.dev",
            "--timeout=30s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (kind, name) in [
        ("deployment", "tl-testlayer"),
        ("serviceaccount", "tl-testlayer"),
        ("service", "tl-testlayer-metrics"),
        ("role", "tl-testlayer-leader-election"),
    ] {
        let out = cp
            .kubectl()
            .args(["get", kind, name, "-n", &system])
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind} {name} not installed");
    }

    // The controller with the chart's ServiceAccount: nothing else grants it anything.
    let sa_client = cp
        .service_account_client(&system, "tl-testlayer")
        .await
        .unwrap();
    let opts = ControllerOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        namespace: None,
        concurrency: 4,
        identity: "chart-replica".into(),
        leader_election: Some(LeaderElection {
            namespace: system.clone(),
            lease_name: "testlayer-controller".into(),
            lease_seconds: 15,
            grace_seconds: 5,
        }),
    };
    let controller = tokio::spawn(async move {
        if let Err(e) = run_controller(sa_client, opts).await {
            panic!("the controller stopped: {e}");
        }
    });

    // A run that uses every permission: a ConfigMap config, a required
    // service (endpoint slices), retries, Pods and their logs, events, TTL.
    let admin = cp.admin_client().await.unwrap();
    let ns = cp.create_namespace("tl-work").await.unwrap();
    let _kubelet = TestKubelet::start(admin.clone(), &ns, 2).await.unwrap();
    let config = "layers:\n  checked:\n    execution_mode: hybrid\n    required_services: [backend]\n    service_wait_seconds: 60\n    categories:\n      - name: smoke\n        timeout_seconds: 30\n        command: \"echo '2 passed in 0.1s'\"\n      - name: unit\n        timeout_seconds: 30\n        dependencies: [smoke]\n        command: \"echo '4 passed in 0.1s'; sleep 0.2\"\n";
    Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "layers"}, "data": {"test_layers.yaml": config}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    Api::<Service>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "backend"}, "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80}]}})).unwrap())
        .await
        .unwrap();
    Api::<Pod>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "backend", "labels": {"app": "backend"}},
            "spec": {"containers": [{"name": "app", "image": "backend", "command": ["/bin/sh", "-c", "sleep infinity"]}]}})).unwrap())
        .await
        .unwrap();
    let runs: Api<TestLayerRun> = Api::namespaced(admin.clone(), &ns);
    runs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun", "metadata": {"name": "checked"},
            "spec": {"layer": "checked", "config": {"configMapRef": {"name": "layers"}}, "image": "busybox", "ttlSecondsAfterFinished": 3}}))
        .unwrap(),
    )
    .await
    .unwrap();
    // It finishes, and its TTL deletes it.
    let saw = RefCell::new(None);
    eventually(
        Duration::from_secs(90),
        "the run to finish and go",
        async || {
            let Some(r) = runs.get_opt("checked").await.unwrap() else {
                return Ok(());
            };
            if let Some(p) = r
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .filter(|p| p.is_terminal())
            {
                *saw.borrow_mut() = Some((p, r.status.clone()));
            }
            assert!(!controller.is_finished(), "the controller stopped");
            Err(format!("{:#?}", r.status))
        },
    )
    .await;
    let (phase, status) = saw
        .into_inner()
        .expect("the run was deleted before it was seen finished");
    assert_eq!(phase, LayerPhase::Succeeded, "{status:#?}");
    assert_eq!(status.unwrap().counts.map(|c| c.passed), Some(6));
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin, &ns);
    let ours = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reporting_instance.as_deref() == Some("chart-replica"))
        .count();
    assert!(ours > 0, "the controller could not publish events");
    controller.abort();
}
