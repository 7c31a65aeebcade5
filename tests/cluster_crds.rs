//! The generated CRDs against a real kube-apiserver: accepted as structural,
//! printer columns in `kubectl get`, descriptions in `kubectl explain`, schema
//! validation, and the status subresource.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use testlayer::api::{CategoryRun, LayerPhase, TestLayerRun};
use testlayer_testkit::ControlPlane;

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl(cp: &ControlPlane, args: &[&str]) -> String {
    let out = cp.kubectl().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn install_crds(cp: &ControlPlane) {
    kubectl(
        cp,
        &[
            "apply",
            "--server-side",
            "-f",
            repo().join("crds").to_str().unwrap(),
        ],
    );
    let client = cp.admin_client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let start = Instant::now();
    for name in ["testlayerruns.testlayer.dev", "categoryruns.testlayer.dev"] {
        loop {
            let crd = crds.get(name).await.unwrap();
            let conds = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            assert!(
                !conds
                    .iter()
                    .any(|c| c.type_ == "NonStructuralSchema" && c.status == "True"),
                "{name} is not structural: {conds:?}"
            );
            if conds
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} not established: {conds:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Discovery may lag behind Established for kubectl.
    let start = Instant::now();
    while !cp
        .kubectl()
        .args(["get", "tlr", "-A"])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "kubectl does not know tlr"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn crds_are_accepted_and_serve_columns_descriptions_and_status() {
    let cp = ControlPlane::shared();
    install_crds(cp).await;
    let ns = cp.create_namespace("crds").await.unwrap();
    let client = cp.admin_client().await.unwrap();
    let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), &ns);

    let run: TestLayerRun = serde_json::from_value(json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "metadata": {"name": "nightly"},
        "spec": {"layer": "fast_feedback", "environment": "staging", "config": {"configMapRef": {"name": "layers"}}}
    }))
    .unwrap();
    let created = runs.create(&PostParams::default(), &run).await.unwrap();
    assert_eq!(created.spec, run.spec);

    // Schema validation: a run without a layer, or with a wrong type, is refused.
    for bad in [
        json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun", "metadata": {"name": "bad1", "namespace": ns},
               "spec": {"config": {"inline": "layers: {}"}}}),
        json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun", "metadata": {"name": "bad2", "namespace": ns},
               "spec": {"layer": "x", "config": {}, "suspend": "yes"}}),
    ] {
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &kube::api::ApiResource::erase::<TestLayerRun>(&()),
        );
        let obj: kube::api::DynamicObject = serde_json::from_value(bad.clone()).unwrap();
        match api.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 422, "{bad}: {e:?}"),
            other => panic!("{bad} must be refused, got {other:?}"),
        }
    }

    // The status subresource: a status patch (server-side apply, with
    // apiVersion and kind) changes status only...
    let status = json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "status": {"phase": "Running", "progress": "1/2", "observedGeneration": 1,
                   "counts": {"passed": 7, "failed": 1, "skipped": 0},
                   "conditions": [{"type": "Reconciling", "status": "True", "reason": "Running", "message": "1 of 2 categories finished",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}],
                   "categories": [{"name": "smoke", "phase": "Succeeded", "attempts": 1}, {"name": "unit", "phase": "Running", "attempts": 1}]}
    });
    let pp = PatchParams::apply("testlayer-test").force();
    let patched = runs
        .patch_status("nightly", &pp, &Patch::Apply(&status))
        .await
        .unwrap();
    let st = patched.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Running));
    assert_eq!(st.categories.len(), 2);
    assert_eq!(
        patched.metadata.generation, created.metadata.generation,
        "a status write must not bump the generation"
    );
    // ...and a write of the main resource cannot change status.
    let mut with_status = patched.clone();
    with_status.status.as_mut().unwrap().phase = Some(LayerPhase::Succeeded);
    with_status.spec.suspend = true;
    let replaced = runs
        .replace("nightly", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().phase, Some(LayerPhase::Running));
    assert!(replaced.spec.suspend);
    assert!(replaced.metadata.generation > created.metadata.generation);

    // Printer columns.
    let table = kubectl(cp, &["get", "testlayerruns", "-n", &ns]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "LAYER", "PHASE", "PROGRESS", "PASSED", "FAILED", "DURATION", "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        ["nightly", "fast_feedback", "Running", "1/2", "7", "1"],
        "{table}"
    );
    let wide = kubectl(cp, &["get", "tlr", "-n", &ns, "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("ENV"), "{wide}");

    // Field descriptions.
    let explain = kubectl(cp, &["explain", "testlayerrun.spec.layer"]);
    assert!(
        explain.contains("Key of the layer to run in the layer config"),
        "{explain}"
    );
    let explain = kubectl(cp, &["explain", "categoryrun.status.attempts"]);
    assert!(explain.contains("Every attempt, oldest first"), "{explain}");

    // kubectl wait works on the conditions.
    let done = json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "status": {"phase": "Succeeded", "observedGeneration": replaced.metadata.generation,
                   "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "all passed",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": replaced.metadata.generation}]}
    });
    runs.patch_status("nightly", &pp, &Patch::Apply(&done))
        .await
        .unwrap();
    kubectl(
        cp,
        &[
            "wait",
            "--for=condition=Succeeded",
            "-n",
            &ns,
            "tlr/nightly",
            "--timeout=10s",
        ],
    );

    // CategoryRun too.
    let crs: Api<CategoryRun> = Api::namespaced(client, &ns);
    let cr: CategoryRun = serde_json::from_value(json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "CategoryRun", "metadata": {"name": "nightly-smoke"},
        "spec": {"runName": "nightly", "layer": "fast_feedback", "category": "smoke", "index": 0, "image": "python:3.12",
                 "command": "pytest tests/smoke", "timeoutSeconds": 60.0}
    }))
    .unwrap();
    crs.create(&PostParams::default(), &cr).await.unwrap();
    let status = json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "CategoryRun",
        "status": {"phase": "Failed", "attemptCount": 1, "reason": "OOMKilled",
                   "attempts": [{"number": 1, "podName": "nightly-smoke-1", "exitCode": 137, "reason": "OOMKilled", "infrastructure": false}]}});
    crs.patch_status("nightly-smoke", &pp, &Patch::Apply(&status))
        .await
        .unwrap();
    let table = kubectl(cp, &["get", "categoryruns", "-n", &ns]);
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        ["nightly-smoke", "nightly", "smoke", "Failed", "1"],
        "{table}"
    );
}
