//! The GitOps examples in `deploy/gitops/` work as written: applied with
//! kubectl (server-side, strict field validation) to the test control plane
//! with Flux's and Argo CD's own CRDs installed (from their Go modules),
//! Flux's and Argo CD's objects are accepted by their schemas, the
//! validation objects come up Ready, and driving the watched Flux
//! Kustomization and Argo CD Application through a revision (by writing
//! their status, as their controllers would) starts the fast layers once,
//! as one suite, while the nightly schedule waits for two o'clock in Berlin.
//!
//! What is checked is what the triggers and schedules create: the layers'
//! own commands (`pytest`, `ruff`) are not played by the test kubelet, which
//! refuses them (their Pods fail to start, naming the word); the tests'
//! results are not looked at here.

mod common;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::jiff::tz::TimeZone;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testlayer::api::{TestLayerSchedule, TestLayerTrigger};
use testlayer_testkit::ControlPlane;

use common::{Fixture, eventually};

const GITOPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/gitops");

/// Runs kubectl with `args`; its stdout, or a panic with its stderr.
fn kubectl(cp: &ControlPlane, args: &[&str]) -> String {
    let out = cp.kubectl().args(args).output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates namespace `ns` unless it exists.
fn namespace(cp: &ControlPlane, ns: &str) {
    let out = cp
        .kubectl()
        .args(["create", "namespace", ns])
        .output()
        .expect("kubectl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("AlreadyExists"),
        "{err}"
    );
}

/// Applies `file` as written (server-side, strict field validation), to
/// `ns` for objects that name no namespace.
fn apply_file(cp: &ControlPlane, file: &str, ns: Option<&str>) {
    let mut args = vec!["apply", "--server-side", "--validate=strict", "-f", file];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    kubectl(cp, &args);
}

/// Applies the kustomization in `dir` (kubectl's own kustomize) to `ns`.
fn apply_kustomization(cp: &ControlPlane, dir: &str, ns: &str) {
    let yaml = kubectl(cp, &["kustomize", dir]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("objects.yaml");
    std::fs::write(&file, yaml).expect("write");
    let file = file.to_str().expect("path");
    apply_file(cp, file, Some(ns));
}

async fn ready(fx: &Fixture, name: &str) -> TestLayerTrigger {
    let api: Api<TestLayerTrigger> = fx.api();
    eventually(
        Duration::from_secs(30),
        format!("trigger {name} Ready"),
        async || {
            let t = api.get(name).await.expect("trigger");
            let st = t.status.clone().unwrap_or_default();
            if st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                && st.watching_since.is_some()
            {
                Ok(t)
            } else {
                Err(format!("{st:#?}"))
            }
        },
    )
    .await
}

/// The nightly schedule is Ready, its next tick at two in Berlin.
async fn nightly_waits_for_two_in_berlin(fx: &Fixture) {
    let api: Api<TestLayerSchedule> = fx.api();
    let s = eventually(
        Duration::from_secs(30),
        "nightly-e2e scheduled",
        async || {
            let s = api.get("nightly-e2e").await.expect("schedule");
            match s
                .status
                .as_ref()
                .and_then(|st| st.next_schedule_time.clone())
            {
                Some(_) => Ok(s),
                None => Err(format!("{:#?}", s.status)),
            }
        },
    )
    .await;
    let next = s.status.unwrap().next_schedule_time.unwrap().0;
    let berlin = next.to_zoned(TimeZone::get("Europe/Berlin").expect("tz"));
    assert_eq!((berlin.hour(), berlin.minute()), (2, 0), "{berlin}");
}

/// Applies what the GitOps tool deploys from `deploy/gitops/TOOL` to the
/// fixture's namespace; waits for the trigger to watch and the schedule to
/// wait for two in Berlin; shortens the trigger's delay for the test.
async fn deploy_validation(fx: &Fixture, tool: &str) {
    apply_kustomization(fx.cp, &format!("{GITOPS}/{tool}"), &fx.ns);
    ready(fx, "after-staging-sync").await;
    nightly_waits_for_two_in_berlin(fx).await;
    // Shorter than the example's 30 s.
    common::set_trigger_delay(fx, "after-staging-sync", 1).await;
}

/// Waits for the suite of `trigger`'s first firing; returns its runs' layers.
async fn fired_layers(fx: &Fixture, trigger: &str, revision: &str) -> Vec<String> {
    let runs = eventually(
        Duration::from_secs(60),
        format!("the runs of {trigger}"),
        async || {
            let runs = fx
                .runs()
                .list(&ListParams::default().labels(&format!("testlayer.dev/trigger={trigger}")))
                .await
                .expect("runs")
                .items;
            if runs.len() >= 2 {
                Ok(runs)
            } else {
                Err(format!("{} runs", runs.len()))
            }
        },
    )
    .await;
    let mut layers: Vec<String> = runs.iter().map(|r| r.spec.layer.clone()).collect();
    layers.sort();
    for r in &runs {
        assert_eq!(r.annotations()["testlayer.dev/revision"], revision);
        assert_eq!(r.spec.environment.as_deref(), Some("staging"));
    }
    let suites: std::collections::BTreeSet<&String> = runs
        .iter()
        .map(|r| &r.labels()["testlayer.dev/suite"])
        .collect();
    assert_eq!(suites.len(), 1, "one suite: {suites:?}");
    layers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flux_example_runs_the_fast_layers_after_a_sync_and_e2e_nightly() {
    let fx = Fixture::new("gitops-flux").await;
    let cp = fx.cp;
    common::install_gitops_crds(cp);
    namespace(cp, "flux-system");
    // Flux's own objects of the example, against Flux's schemas.
    apply_file(cp, &format!("{GITOPS}/flux/flux-system.yaml"), None);
    apply_file(cp, &format!("{GITOPS}/flux-kustomization.yaml"), None);
    // The staging app Flux syncs, at revision 1 (there before).
    let ks = common::dynamic_api(
        &fx.client,
        "flux-system",
        ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        "kustomizations",
    );
    let name = "staging-apps".to_string();
    let _ = ks.delete(&name, &Default::default()).await;
    let obj: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization", "metadata": {"name": name},
        "spec": {"interval": "5m", "path": "./staging", "prune": true,
            "sourceRef": {"kind": "GitRepository", "name": "platform"}}}))
        .unwrap();
    let created = eventually(
        Duration::from_secs(30),
        "staging-apps created",
        async || {
            ks.create(&PostParams::default(), &obj)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let generation = created.metadata.generation.unwrap_or(1);
    let status = |rev: &str, ready: &str| {
        json!({"status": {"observedGeneration": generation,
        "lastAppliedRevision": rev, "lastAttemptedRevision": rev,
        "conditions": [{"type": "Ready", "status": ready, "reason": "ReconciliationSucceeded",
            "message": format!("Applied revision: {rev}"), "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    };
    let r1 = "main@sha1:1111111111111111111111111111111111111111";
    ks.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&status(r1, "True")),
    )
    .await
    .expect("status");

    // What Flux applies from deploy/gitops/flux.
    deploy_validation(&fx, "flux").await;

    // A sync of revision 2: nothing while Flux reconciles, the fast layers once Ready.
    let r2 = "main@sha1:2222222222222222222222222222222222222222";
    ks.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&status(r2, "Unknown")),
    )
    .await
    .expect("status");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        fx.runs()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    ks.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&status(r2, "True")),
    )
    .await
    .expect("status");
    assert_eq!(
        fired_layers(&fx, "after-staging-sync", r2).await,
        ["core_integration", "fast_feedback"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_argo_cd_example_runs_the_fast_layers_after_a_sync_and_e2e_nightly() {
    let fx = Fixture::new("gitops-argo").await;
    let cp = fx.cp;
    common::install_gitops_crds(cp);
    namespace(cp, "argocd");
    apply_file(cp, &format!("{GITOPS}/argocd/application.yaml"), None);
    kubectl(
        cp,
        &[
            "create",
            "--dry-run=server",
            "--validate=strict",
            "-n",
            &fx.ns,
            "-f",
            &format!("{GITOPS}/post-sync-staging.yaml"),
        ],
    );
    // The staging app Argo CD syncs, Synced and Healthy at revision aaa….
    let apps = common::dynamic_api(
        &fx.client,
        "argocd",
        ("argoproj.io", "v1alpha1", "Application"),
        "applications",
    );
    let _ = apps.delete("shop-staging", &Default::default()).await;
    let app: DynamicObject = serde_json::from_value(json!({"apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application", "metadata": {"name": "shop-staging"},
        "spec": {"project": "default",
            "source": {"repoURL": "https://git.example.com/shop.git", "path": "staging", "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop-staging"}}}))
    .unwrap();
    eventually(
        Duration::from_secs(30),
        "shop-staging created",
        async || {
            apps.create(&PostParams::default(), &app)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    // Argo CD writes an Application's status with the object (no subresource).
    let status = |rev: &str, sync: &str, health: &str| -> Value {
        json!({"status": {"sync": {"status": sync, "revision": rev}, "health": {"status": health}}})
    };
    let (r1, r2) = ("a".repeat(40), "b".repeat(40));
    apps.patch(
        "shop-staging",
        &PatchParams::default(),
        &Patch::Merge(&status(&r1, "Synced", "Healthy")),
    )
    .await
    .expect("status");

    deploy_validation(&fx, "argocd").await;

    apps.patch(
        "shop-staging",
        &PatchParams::default(),
        &Patch::Merge(&status(&r2, "OutOfSync", "Healthy")),
    )
    .await
    .expect("status");
    apps.patch(
        "shop-staging",
        &PatchParams::default(),
        &Patch::Merge(&status(&r2, "Synced", "Progressing")),
    )
    .await
    .expect("status");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        fx.runs()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    apps.patch(
        "shop-staging",
        &PatchParams::default(),
        &Patch::Merge(&status(&r2, "Synced", "Healthy")),
    )
    .await
    .expect("status");
    assert_eq!(
        fired_layers(&fx, "after-staging-sync", &r2).await,
        ["core_integration", "fast_feedback"]
    );
}

/// The layer config of the examples passes `testlayer validate`.
#[test]
fn the_examples_layer_config_validates() {
    let text = std::fs::read_to_string(Path::new(GITOPS).join("validation/test-layers.yaml"))
        .expect("read");
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_yaml::from_str(&text).expect("a ConfigMap");
    let config = &cm.data.expect("data")["test_layers.yaml"];
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("layers.yaml");
    std::fs::write(&file, config).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_testlayer"))
        .arg("validate")
        .arg(&file)
        .output()
        .expect("testlayer validate");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
