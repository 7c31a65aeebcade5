//! The chart's CRDs follow the chart: Helm installs the files of a chart's
//! `crds/` once and never upgrades them, so the chart renders its CRDs as
//! templates instead (`crds.install`), kept on uninstall (`crds.keep`).
//! Here a release of an older chart, whose TestLayerRun CRD lacks a field,
//! is upgraded to this one: the field is then stored; and uninstalling
//! leaves the CRDs and the runs in place.
//!
//! Its own test binary: the CRDs must not exist before the chart installs
//! them (the other binaries install them with kubectl).

mod common;

use std::path::Path;

use common::{chart_dir, helm};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use testlayer::api::TestLayerRun;
use testlayer_testkit::ControlPlane;

/// The field the older chart's CRD lacks.
const NEW_FIELD: &str = "priority";

/// Copies `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// This chart as an older version of it: chart version 0.0.1, and its
/// TestLayerRun CRD without `spec.priority`.
fn older_chart(dir: &Path) {
    copy_dir(&chart_dir(), dir);
    let chart_yaml = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).unwrap();
    let old: String = text
        .lines()
        .map(|l| {
            if l.starts_with("version:") {
                "version: 0.0.1".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&chart_yaml, old + "\n").unwrap();

    let crds = dir.join("files/crds.yaml");
    let text = std::fs::read_to_string(&crds).unwrap();
    let mut out = String::from("# An older chart's CRDs.\n");
    let mut removed = false;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if v.is_null() {
            continue;
        }
        if v["spec"]["names"]["kind"] == "TestLayerRun" {
            let props = v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
                ["properties"]
                .as_object_mut()
                .expect("the spec's properties");
            removed = props.remove(NEW_FIELD).is_some();
        }
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&v).unwrap());
    }
    assert!(
        removed,
        "the TestLayerRun CRD has no spec.{NEW_FIELD} to remove"
    );
    std::fs::write(&crds, out).unwrap();
}

fn priority(run: &TestLayerRun) -> Option<i32> {
    run.spec.priority
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_upgrade_brings_its_crds_and_an_uninstall_keeps_them() {
    let cp = ControlPlane::shared();
    let kubeconfig = cp.kubeconfig().display().to_string();
    let system = cp.create_namespace("tl-upgrade").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("testlayer");
    older_chart(&old);
    // Without `--wait`: this control plane runs no Deployment controller,
    // and the CRDs, not the controller, are what is tested here.
    let release = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--kubeconfig", &kubeconfig, "--namespace", &system]);
        helm(&all)
    };
    release(&["install", "tl", old.to_str().unwrap()]);
    let wait = |crd: &str| {
        let out = cp
            .kubectl()
            .args(["wait", "--for=condition=Established", crd, "--timeout=60s"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    wait("crd/testlayerruns.testlayer.dev");

    // Under the older CRD the field is pruned: the apiserver drops it.
    let admin = cp.admin_client().await.unwrap();
    let ns = cp.create_namespace("tl-upgrade-runs").await.unwrap();
    let runs: Api<TestLayerRun> = Api::namespaced(admin.clone(), &ns);
    let run: TestLayerRun = serde_json::from_value(json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "metadata": {"name": "kept"},
        "spec": {"layer": "x", "config": {"inline": "layers: {}"}, "image": "busybox", "suspend": true, NEW_FIELD: 5}
    }))
    .unwrap();
    let created = runs.create(&PostParams::default(), &run).await.unwrap();
    assert_eq!(
        priority(&created),
        None,
        "the older CRD knows no {NEW_FIELD}"
    );

    // The upgrade brings this chart's CRDs: the field is stored.
    release(&["upgrade", "tl", chart_dir().to_str().unwrap()]);
    let patch = json!({"spec": {NEW_FIELD: 5}});
    let mut stored = None;
    // The apiserver takes a moment to serve the new schema.
    for _ in 0..100 {
        let r = runs
            .patch("kept", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        stored = priority(&r);
        if stored == Some(5) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        stored,
        Some(5),
        "after the upgrade spec.{NEW_FIELD} is stored"
    );
    let listed = helm(&["list", "--kubeconfig", &kubeconfig, "--namespace", &system]);
    assert!(listed.contains("testlayer-0.1.0"), "{listed}");

    // Uninstalled, the CRDs and the runs stay.
    release(&["uninstall", "tl"]);
    wait("crd/testlayerruns.testlayer.dev");
    let kept = runs.get("kept").await.unwrap();
    assert_eq!(priority(&kept), Some(5));
}
