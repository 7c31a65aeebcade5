//! TestLayerTriggers on the kinds whose controllers do not run here: a Flux
//! Kustomization, an Argo CD Application and an Argo Rollout (with their
//! own CRDs, from their Go modules) driven through revisions by writing
//! what their controllers would, since none of those controllers runs in
//! the test cluster: a run once per finished revision, none while a
//! rollout goes, none again after a controller restart, and what triggered
//! the run recorded on it. Deployments, StatefulSets and DaemonSets roll
//! out for real on the real node instead (tests/trigger_rollouts.rs).

mod common;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testlayer::api::{TestLayerTrigger, TickAction};

use common::triggers::{revision_of, runs_of, wait_runs};
use common::{Fixture, eventually};

const CONFIG: &str = r#"layers:
  smoke:
    execution_mode: parallel
    categories:
      - {name: check, timeout_seconds: 30, command: "echo '1 passed in 0.1s'"}
"#;

fn trigger(name: &str, watch: Value, extra: Value) -> TestLayerTrigger {
    let mut spec = json!({"watch": watch, "template": {"spec": {"layer": "smoke",
        "image": "busybox", "config": {"configMapRef": {"name": "layers"}}}}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({"apiVersion": "testlayer.dev/v1alpha1",
        "kind": "TestLayerTrigger", "metadata": {"name": name}, "spec": spec}))
    .unwrap_or_else(|e| panic!("trigger {name}: {e}"))
}

async fn create_trigger(fx: &Fixture, t: TestLayerTrigger) {
    let api: Api<TestLayerTrigger> = fx.api();
    api.create(&PostParams::default(), &t)
        .await
        .unwrap_or_else(|e| panic!("creating trigger {}: {e}", t.name_any()));
}

async fn wait_trigger(
    fx: &Fixture,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&TestLayerTrigger) -> bool,
) -> TestLayerTrigger {
    let api: Api<TestLayerTrigger> = fx.api();
    eventually(timeout, format!("{what} of trigger {name}"), async || {
        let t = api.get(name).await.expect("trigger");
        if pred(&t) {
            Ok(t)
        } else {
            Err(format!("{:#?}", t.status))
        }
    })
    .await
}

fn watching(t: &TestLayerTrigger) -> bool {
    t.status
        .as_ref()
        .is_some_and(|s| s.watching_since.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_and_argo_cd_objects_trigger_on_their_revision_once_healthy() {
    let fx = Fixture::new("trig-gitops").await;
    common::install_gitops_crds(fx.cp);
    fx.layer_config_map("layers", CONFIG).await;
    let ks = common::dynamic_api(
        &fx.client,
        &fx.ns,
        ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        "kustomizations",
    );
    let apps = common::dynamic_api(
        &fx.client,
        &fx.ns,
        ("argoproj.io", "v1alpha1", "Application"),
        "applications",
    );
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "staging-apps", "labels": {"tier": "staging"}},
        "spec": {"interval": "5m", "path": "./staging", "prune": true,
            "sourceRef": {"kind": "GitRepository", "name": "fleet"}}}))
    .unwrap();
    ks.create(&PostParams::default(), &obj)
        .await
        .expect("kustomization");
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "shop"},
        "spec": {"project": "default",
            "source": {"repoURL": "https://example.com/fleet.git", "path": "shop", "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"}}}))
    .unwrap();
    apps.create(&PostParams::default(), &app)
        .await
        .expect("application");

    create_trigger(
        &fx,
        trigger(
            "on-flux",
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization", "selector": {"matchLabels": {"tier": "staging"}}}),
            json!({}),
        ),
    )
    .await;
    create_trigger(
        &fx,
        trigger(
            "on-argo",
            json!({"apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application", "name": "shop"}),
            json!({}),
        ),
    )
    .await;
    for t in ["on-flux", "on-argo"] {
        wait_trigger(&fx, t, Duration::from_secs(20), "watching", watching).await;
    }

    // Flux: a revision applied but not Ready, then Ready.
    let flux_status = |rev: &str, ready: &str| {
        json!({"status": {"observedGeneration": 1,
        "lastAppliedRevision": rev, "lastAttemptedRevision": rev,
        "conditions": [{"type": "Ready", "status": ready, "reason": "ReconciliationSucceeded",
            "message": format!("Applied revision: {rev}"), "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    };
    // Argo CD's Application has no status subresource: its controller
    // writes the whole object.
    let argo_status = |rev: &str, sync: &str, health: &str| {
        json!({"status": {
        "sync": {"status": sync, "revision": rev}, "health": {"status": health}}})
    };
    for (rev, n) in [
        ("main@sha1:1111111111111111111111111111111111111111", 1),
        ("main@sha1:2222222222222222222222222222222222222222", 2),
    ] {
        ks.patch_status(
            "staging-apps",
            &PatchParams::default(),
            &Patch::Merge(&flux_status(rev, "Unknown")),
        )
        .await
        .expect("flux status");
        let sha = &rev[rev.len() - 40..];
        apps.patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(&argo_status(sha, "Synced", "Progressing")),
        )
        .await
        .expect("argo status");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            runs_of(&fx, "on-flux").await.len(),
            n - 1,
            "a run before Flux said Ready"
        );
        assert_eq!(
            runs_of(&fx, "on-argo").await.len(),
            n - 1,
            "a run before Argo CD said Healthy"
        );
        ks.patch_status(
            "staging-apps",
            &PatchParams::default(),
            &Patch::Merge(&flux_status(rev, "True")),
        )
        .await
        .expect("flux status");
        apps.patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(&argo_status(sha, "Synced", "Healthy")),
        )
        .await
        .expect("argo status");
        for (t, want) in [("on-flux", rev.to_string()), ("on-argo", sha.to_string())] {
            let runs = eventually(
                Duration::from_secs(20),
                format!("run {n} of {t}"),
                async || {
                    let runs = runs_of(&fx, t).await;
                    if runs.len() >= n {
                        Ok(runs)
                    } else {
                        Err(format!("{} runs", runs.len()))
                    }
                },
            )
            .await;
            assert_eq!(runs.len(), n, "{t}");
            assert_eq!(revision_of(&runs[n - 1]), want, "{t}");
        }
    }
    // Healthy again after a blip, same revision: nothing new.
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(&argo_status(&"2".repeat(40), "Synced", "Degraded")),
    )
    .await
    .expect("argo status");
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(&argo_status(&"2".repeat(40), "Synced", "Healthy")),
    )
    .await
    .expect("argo status");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs_of(&fx, "on-argo").await.len(), 2);
    let t = wait_trigger(&fx, "on-flux", Duration::from_secs(5), "history", |_| true).await;
    let history = t.status.unwrap().history;
    assert_eq!(history.len(), 2);
    assert!(
        history
            .iter()
            .all(|h| h.action == TickAction::Started && h.resource == "Kustomization/staging-apps")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_on_a_kind_the_cluster_does_not_serve_stalls_naming_it() {
    let fx = Fixture::new("trig-bad").await;
    fx.layer_config_map("layers", CONFIG).await;
    create_trigger(
        &fx,
        trigger(
            "nokind",
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "name": "w", "revisionPath": ".status.revision"}),
            json!({}),
        ),
    )
    .await;
    create_trigger(&fx, trigger("nolayer", json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "name": "x"}), json!({"template": {"spec": {"layer": "nope", "config": {"configMapRef": {"name": "layers"}}}}}))).await;
    for (name, want) in [
        (
            "nokind",
            "spec.watch.kind: this cluster serves no kind Widget",
        ),
        ("nolayer", "spec.template.spec.layer: "),
    ] {
        let t = wait_trigger(&fx, name, Duration::from_secs(20), "Stalled", |t| {
            t.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True")
            })
        })
        .await;
        let st = t.status.unwrap();
        let c = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert!(c.message.starts_with(want), "{name}: {}", c.message);
    }
    assert!(
        fx.runs()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// Waits until trigger `name` has made `n` runs; returns them, oldest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argo_rollout_triggers_once_promoted_and_healthy() {
    let fx = Fixture::new("trig-rollout").await;
    common::install_gitops_crds(fx.cp);
    fx.layer_config_map("layers", CONFIG).await;
    let rollouts = common::dynamic_api(
        &fx.client,
        &fx.ns,
        ("argoproj.io", "v1alpha1", "Rollout"),
        "rollouts",
    );
    let obj: DynamicObject = serde_json::from_value(json!({"apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}))
    .unwrap();
    let created = eventually(Duration::from_secs(30), "the Rollout created", async || {
        rollouts
            .create(&PostParams::default(), &obj)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let status = async |observed: i64, current: &str, stable: &str, phase: &str| {
        let s = json!({"status": {"observedGeneration": observed.to_string(),
            "currentPodHash": current, "stableRS": stable, "phase": phase,
            "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}});
        rollouts
            .patch_status("web", &PatchParams::default(), &Patch::Merge(&s))
            .await
            .expect("rollout status");
    };
    let g1 = created.metadata.generation.unwrap_or(1);
    status(g1, "aaa", "aaa", "Healthy").await;
    create_trigger(
        &fx,
        trigger(
            "on-rollout",
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web"}),
            json!({}),
        ),
    )
    .await;
    wait_trigger(
        &fx,
        "on-rollout",
        Duration::from_secs(20),
        "watching",
        watching,
    )
    .await;

    // A new template: the canary at 50 %, paused, then promoted.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    let g2 = rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("new template")
        .metadata
        .generation
        .expect("generation");
    status(g1, "aaa", "aaa", "Healthy").await; // not observed yet
    status(g2, "bbb", "aaa", "Progressing").await;
    status(g2, "bbb", "aaa", "Paused").await;
    status(g2, "bbb", "aaa", "Healthy").await; // not promoted to stable yet
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        runs_of(&fx, "on-rollout").await.is_empty(),
        "a run before promotion"
    );
    status(g2, "bbb", "bbb", "Healthy").await;
    let runs = wait_runs(&fx, "on-rollout", 1, Duration::from_secs(20)).await;
    assert_eq!(revision_of(&runs[0]), "bbb");
    assert_eq!(runs[0].annotations()["testlayer.dev/image"], "web:2");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runs_of(&fx, "on-rollout").await.len(), 1);
}
