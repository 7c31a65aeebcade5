//! TestLayerTriggers on workloads that really roll out: on the real node,
//! kube-controller-manager's deployment, replicaset, statefulset and
//! daemonset controllers replace real Pods (busybox containers) and write
//! the status and revisions the trigger reads. A run starts once per
//! finished rollout, after the new Pods are Ready; none on scaling, none
//! on a change outside the Pod template, none again after a controller
//! restart. (tests/trigger.rs writes status by hand only for the kinds no
//! controller here runs: Flux's, Argo CD's and Argo Rollouts'.)
//!
//! Its own test binary: one control plane with the workload controllers
//! and kube-scheduler, and one real node.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use testlayer::api::{LayerPhase, TestLayerRun, TestLayerTrigger};

use common::triggers::{revision_of, runs_of, wait_runs};
use common::{Fixture, eventually};

const CONFIG: &str = r#"layers:
  smoke:
    execution_mode: parallel
    categories:
      - {name: check, timeout_seconds: 60, command: "echo \"revision $TESTLAYER_TRIGGER_REVISION\"; echo '1 passed in 0.1s'"}
"#;

/// The image every workload and run uses: present on the node.
const IMAGE: &str = "busybox:1.35";

fn trigger(name: &str, watch: Value) -> TestLayerTrigger {
    serde_json::from_value(json!({"apiVersion": "testlayer.dev/v1alpha1",
        "kind": "TestLayerTrigger", "metadata": {"name": name},
        "spec": {"watch": watch, "template": {"spec": {"layer": "smoke", "image": IMAGE,
            "config": {"configMapRef": {"name": "layers"}}}}}}))
    .unwrap_or_else(|e| panic!("trigger {name}: {e}"))
}

/// A workload of `kind` whose Pods run until stopped (and stop at once on
/// SIGTERM), with `VERSION=1` in their environment.
fn workload(kind: &str, name: &str) -> String {
    let extra = match kind {
        "Deployment" => {
            "  replicas: 1\n  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}\n"
                .to_string()
        }
        "StatefulSet" => format!("  replicas: 1\n  serviceName: {name}\n"),
        _ => String::new(),
    };
    format!(
        r#"apiVersion: apps/v1
kind: {kind}
metadata:
  name: {name}
  labels: {{tier: backend}}
spec:
{extra}  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: {IMAGE}
          command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
          env: [{{name: VERSION, value: "1"}}]
"#
    )
}

async fn apply(fx: &Fixture, yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("object.yaml");
    std::fs::write(&file, yaml).unwrap();
    fx.kubectl(&["apply", "-f", &file.display().to_string()])
        .await;
}

async fn rolled_out(fx: &Fixture, what: &str) {
    fx.kubectl(&["rollout", "status", what, "--timeout=120s"])
        .await;
}

async fn create_trigger(fx: &Fixture, t: TestLayerTrigger) {
    let api: Api<TestLayerTrigger> = fx.api();
    api.create(&PostParams::default(), &t)
        .await
        .unwrap_or_else(|e| panic!("creating trigger {}: {e}", t.name_any()));
    let name = t.name_any();
    eventually(
        Duration::from_secs(30),
        format!("trigger {name} watching"),
        async || {
            let t = api.get(&name).await.expect("trigger");
            match t.status.as_ref() {
                Some(s) if s.watching_since.is_some() && !s.resources.is_empty() => Ok(()),
                s => Err(format!("{s:#?}")),
            }
        },
    )
    .await;
}

/// When the last of the workload's Pods with `VERSION=2` became Ready.
async fn new_pods_ready_at(fx: &Fixture, app: &str) -> Timestamp {
    let pods = fx
        .pods()
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("pods")
        .items;
    let version = |p: &Pod| -> Option<String> {
        p.spec.as_ref()?.containers[0]
            .env
            .as_ref()?
            .iter()
            .find(|e| e.name == "VERSION")?
            .value
            .clone()
    };
    pods.iter()
        .filter(|p| version(p).as_deref() == Some("2"))
        .filter_map(|p| {
            p.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")?
                .last_transition_time
                .clone()
        })
        .map(|t| t.0)
        .max()
        .unwrap_or_else(|| panic!("no Ready Pod of {app} with VERSION=2"))
}

/// The run was made once the rollout had finished (its new Pods Ready),
/// names what triggered it and the image, and succeeds with the revision
/// in its Pods' environment.
async fn check_run(fx: &Fixture, run: &TestLayerRun, by: &str, app: &str) {
    let created = run
        .metadata
        .creation_timestamp
        .clone()
        .expect("creation time")
        .0;
    let ready = new_pods_ready_at(fx, app).await;
    assert!(
        created >= ready,
        "{by}: run created at {created}, before the new Pods were Ready at {ready}"
    );
    assert_eq!(run.annotations()["testlayer.dev/triggered-by"], by);
    assert_eq!(run.annotations()["testlayer.dev/image"], IMAGE);
    let done = fx.wait_done(&run.name_any(), Duration::from_secs(90)).await;
    assert_eq!(
        done.status.as_ref().and_then(|s| s.phase),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        done.status
    );
    let pods = fx
        .pods()
        .list(&ListParams::default().labels(&format!("testlayer.dev/run={}", run.name_any())))
        .await
        .expect("pods");
    let env = pods.items[0].spec.as_ref().unwrap().containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let revision = revision_of(run);
    assert!(
        env.iter().any(|e| e.name == "TESTLAYER_TRIGGER_REVISION"
            && e.value.as_deref() == Some(revision.as_str())),
        "{env:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_deployment_rollout_runs_once_never_on_scaling_or_restart() {
    let mut fx = Fixture::builder("roll-deploy").real_node().start().await;
    fx.layer_config_map("layers", CONFIG).await;
    apply(&fx, &workload("Deployment", "checkout")).await;
    rolled_out(&fx, "deployment/checkout").await;
    create_trigger(
        &fx,
        trigger(
            "on-checkout",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"}),
        ),
    )
    .await;

    // A real rollout: a new ReplicaSet, its Pod started and Ready, the old
    // one stopped; the deployment controller sets revision 2.
    fx.kubectl(&["set", "env", "deployment/checkout", "VERSION=2"])
        .await;
    rolled_out(&fx, "deployment/checkout").await;
    let runs = wait_runs(&fx, "on-checkout", 1, Duration::from_secs(120)).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(revision_of(&runs[0]), "2");
    check_run(&fx, &runs[0], "Deployment/checkout", "checkout").await;

    // Scaled, then a controller restart: no new revision, no run.
    fx.kubectl(&["scale", "deployment/checkout", "--replicas=2"])
        .await;
    rolled_out(&fx, "deployment/checkout").await;
    fx.restart_controller(Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        runs_of(&fx, "on-checkout").await.len(),
        1,
        "a run for no new revision"
    );

    // Revision 3 with a delay: not before it.
    common::set_trigger_delay(&fx, "on-checkout", 3).await;
    fx.kubectl(&["set", "env", "deployment/checkout", "VERSION=3"])
        .await;
    rolled_out(&fx, "deployment/checkout").await;
    let finished = std::time::Instant::now();
    let runs = wait_runs(&fx, "on-checkout", 2, Duration::from_secs(120)).await;
    assert!(
        finished.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        finished.elapsed()
    );
    assert_eq!(runs.len(), 2);
    assert_eq!(revision_of(&runs[1]), "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_statefulset_and_daemonset_rollouts_run_once_each() {
    let mut fx = Fixture::builder("roll-sts-ds").real_node().start().await;
    fx.layer_config_map("layers", CONFIG).await;
    apply(&fx, &workload("StatefulSet", "db")).await;
    apply(&fx, &workload("DaemonSet", "agent")).await;
    rolled_out(&fx, "statefulset/db").await;
    rolled_out(&fx, "daemonset/agent").await;
    // StatefulSets selected by label, the DaemonSet by name.
    create_trigger(
        &fx,
        trigger(
            "on-sts",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "selector": {"matchLabels": {"tier": "backend"}}}),
        ),
    )
    .await;
    create_trigger(
        &fx,
        trigger(
            "on-ds",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent"}),
        ),
    )
    .await;

    fx.kubectl(&["set", "env", "statefulset/db", "VERSION=2"])
        .await;
    fx.kubectl(&["set", "env", "daemonset/agent", "VERSION=2"])
        .await;
    rolled_out(&fx, "statefulset/db").await;
    rolled_out(&fx, "daemonset/agent").await;
    let s = wait_runs(&fx, "on-sts", 1, Duration::from_secs(120)).await;
    // The StatefulSet's update revision, a ControllerRevision's name.
    let sts_revision = revision_of(&s[0]);
    assert!(sts_revision.starts_with("db-"), "{sts_revision}");
    check_run(&fx, &s[0], "StatefulSet/db", "db").await;
    let d = wait_runs(&fx, "on-ds", 1, Duration::from_secs(120)).await;
    let ds_revision = revision_of(&d[0]);
    assert_eq!(
        ds_revision.len(),
        10,
        "a digest of the template: {ds_revision}"
    );
    check_run(&fx, &d[0], "DaemonSet/agent", "agent").await;

    // Scaled, labelled outside the template, a controller restart: no run.
    fx.kubectl(&["scale", "statefulset/db", "--replicas=2"])
        .await;
    fx.kubectl(&["annotate", "daemonset/agent", "note=unrelated"])
        .await;
    rolled_out(&fx, "statefulset/db").await;
    fx.restart_controller(Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(runs_of(&fx, "on-sts").await.len(), 1);
    assert_eq!(runs_of(&fx, "on-ds").await.len(), 1);
}
