//! TestLayerTriggers on the kinds whose controllers do not run here: a Flux
//! Kustomization, an Argo CD Application and an Argo Rollout (with their
//! own CRDs, from their Go modules) driven through revisions by writing
//! what their controllers would, since none of those controllers runs in
//! the test cluster: a run once per finished revision, none while a
//! rollout goes, none again after a controller restart, and what triggered
//! the run recorded on it. Deployments, StatefulSets and DaemonSets roll
//! out for real on the real node instead (tests/trigger_rollouts.rs). And
//! under the chart's RBAC and admission policy: a trigger reads only what
//! its author may read, and never a Secret's value.

mod common;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testlayer::api::{TestLayerTrigger, TickAction};
use testlayer::controller::trigger::access;

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

/// The `Stalled` condition of trigger `name`, once it is `True`.
async fn wait_stalled(
    fx: &Fixture,
    name: &str,
    timeout: Duration,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let stalled = |t: &TestLayerTrigger| {
        t.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Stalled" && c.status == "True")
                .cloned()
        })
    };
    let t = wait_trigger(fx, name, timeout, "Stalled", |t| stalled(t).is_some()).await;
    stalled(&t).expect("stalled")
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
        let c = wait_stalled(&fx, name, Duration::from_secs(20)).await;
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

/// `kubectl apply` of `yaml` (cluster-wide objects and the fixture's).
async fn apply(fx: &Fixture, yaml: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, yaml).expect("writing the objects");
    fx.kubectl(&["apply", "-f", file.to_str().expect("path")])
        .await;
}

/// A TestLayerTrigger's runs and status show what the controller reads of
/// what it watches: with the chart's RBAC and admission policy, and the
/// controller under the chart's ServiceAccount (which may read Deployments
/// and, by `triggers.watch`, Secrets), a user who may not read a resource
/// cannot create a trigger on it (the policy names what is missing), a
/// Secret's revision comes only from its metadata, and a trigger on a
/// Secret's resourceVersion fires with no value of the Secret anywhere in
/// the trigger, its runs, their CategoryRuns, Pods and Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_reads_only_what_its_author_may_read_and_never_a_secret_s_value() {
    // No node: the Pods are only looked at.
    let fx = Fixture::builder("trig-access")
        .nodes(0)
        .without_controller()
        .start()
        .await;
    let ns = fx.ns.clone();
    fx.layer_config_map("layers", CONFIG).await;

    // The chart, watching the fixture's namespace, granting Secrets to
    // triggers besides Deployments; its controller in-process with the
    // chart's ServiceAccount token.
    let system = fx.cp.create_namespace("trig-access-system").await.unwrap();
    let values = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        values.path(),
        format!(
            "watchNamespace: {ns}\ncrds: {{install: false}}\ntriggers:\n  watch:\n    \
             - {{apiGroup: apps, resources: [deployments]}}\n    \
             - {{apiGroup: \"\", resources: [secrets]}}\n"
        ),
    )
    .unwrap();
    let chart = common::chart_dir();
    let kubeconfig = fx.cp.kubeconfig().display().to_string();
    common::helm(&[
        "install",
        "access",
        chart.to_str().unwrap(),
        "-f",
        values.path().to_str().unwrap(),
        "--kubeconfig",
        &kubeconfig,
        "--namespace",
        &system,
    ]);
    let sa = fx
        .cp
        .service_account_client(&system, "access-testlayer")
        .await
        .unwrap();
    let controller = common::spawn_controller(sa, fx.controller_options());

    // reader may read Secrets, not Deployments; outsider may get
    // Deployments (not list them), not Secrets. Both may create triggers.
    apply(
        &fx,
        &format!(
            "---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: outsider, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: triggers, namespace: {ns}}}
rules: [{{apiGroups: [testlayer.dev], resources: [testlayertriggers], verbs: [create, get, patch, delete]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: secrets, namespace: {ns}}}
rules: [{{apiGroups: [''], resources: [secrets], verbs: [get, list, watch]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: deployments, namespace: {ns}}}
rules: [{{apiGroups: [apps], resources: [deployments], verbs: [get]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: triggers, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: triggers}}
subjects:
  - {{kind: ServiceAccount, name: reader, namespace: {ns}}}
  - {{kind: ServiceAccount, name: outsider, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: secrets, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: secrets}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: deployments, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployments}}
subjects: [{{kind: ServiceAccount, name: outsider, namespace: {ns}}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: db, namespace: {ns}}}
stringData: {{password: hunter2-first}}
"
        ),
    )
    .await;
    let as_user = async |name: &str| -> Api<TestLayerTrigger> {
        Api::namespaced(fx.cp.service_account_client(&ns, name).await.unwrap(), &ns)
    };
    let (reader, outsider) = (as_user("reader").await, as_user("outsider").await);
    let secret_watch = |path: &str| json!({"apiVersion": "v1", "kind": "Secret", "name": "db", "revisionPath": path});
    let pp = PostParams::default();
    let refusal = async |api: &Api<TestLayerTrigger>, name: &str, watch: Value| -> String {
        match api
            .create(&pp, &trigger(name, watch.clone(), json!({})))
            .await
        {
            Err(kube::Error::Api(e)) => {
                assert!(e.code == 403 || e.code == 422, "{name}: {e:?}");
                e.message
            }
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => panic!("{name} admitted: {watch}"),
        }
    };

    // The policy takes effect within moments of being installed.
    let mut probes = 0;
    let first = eventually(Duration::from_secs(20), "the policy in force", async || {
        probes += 1;
        let probe = format!("probe-{probes}");
        let watch = secret_watch(".metadata.resourceVersion");
        match outsider
            .create(&pp, &trigger(&probe, watch, json!({})))
            .await
        {
            Err(kube::Error::Api(e)) => Ok(e.message),
            Ok(_) => {
                let _ = outsider.delete(&probe, &Default::default()).await;
                Err(format!("{probe} admitted"))
            }
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    // Who may not read a Secret cannot watch it, even for its metadata.
    let want = format!("spec.watch: this user may not get secrets named db in namespace {ns}");
    assert!(first.contains(&want), "{first}");
    assert!(
        first.contains("rule: a trigger reads only what its author may read"),
        "{first}"
    );

    // The namespace checked is the watched one.
    let mut elsewhere = secret_watch(".metadata.resourceVersion");
    elsewhere["namespace"] = json!("kube-system");
    let m = refusal(&reader, "elsewhere", elsewhere).await;
    assert!(
        m.contains("may not get secrets named db in namespace kube-system"),
        "{m}"
    );
    // A Deployment: by name for who may get it, not by label without list
    // and watch; not at all for who may not read Deployments.
    let web = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
    outsider
        .create(&pp, &trigger("outsider-web", web.clone(), json!({})))
        .await
        .expect("a Deployment its author may get");
    let m = refusal(
        &outsider,
        "outsider-tier",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "selector": {"matchLabels": {"tier": "web"}}}),
    )
    .await;
    assert!(
        m.contains(&format!(
            "spec.watch.selector: this user may not list and watch deployments.apps in namespace {ns}"
        )),
        "{m}"
    );
    let m = refusal(&reader, "reader-web", web).await;
    assert!(
        m.contains(&format!(
            "spec.watch: this user may not get deployments.apps named web in namespace {ns}"
        )),
        "{m}"
    );
    // The resource the policy checks is the one the controller's rule
    // derives from the kind (and the only one the controller reads).
    for (api_version, kind) in [
        ("v1", "Endpoints"),
        ("v1", "ConfigMap"),
        ("apps/v1", "StatefulSet"),
        ("networking.k8s.io/v1", "Ingress"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("gateway.networking.k8s.io/v1", "Gateway"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
        ("example.com/v1", "Patch"),
        ("example.com/v1", "Quiz"),
        ("example.com/v1", "Y"),
    ] {
        let group = access::group_of(api_version);
        let resource = access::resource_name(group, &access::resource_of(kind));
        let m = refusal(
            &outsider,
            "some-kind",
            json!({"apiVersion": api_version, "kind": kind, "name": "x",
                "revisionPath": ".metadata.generation"}),
        )
        .await;
        assert!(
            m.contains(&format!("may not get {resource} named x in namespace")),
            "{kind}: {m}"
        );
    }

    // Who may read the Secret still takes its revision only from its
    // metadata.
    for path in [
        ".data.password",
        "data[\"password\"]",
        ".metadata.annotations[\"kubectl.kubernetes.io/last-applied-configuration\"]",
    ] {
        let m = refusal(&reader, "db-data", secret_watch(path)).await;
        assert!(
            m.contains(SECRET_FROM_METADATA) && m.contains(&format!("; {path} is none of those")),
            "{path}: {m}"
        );
    }

    // On its resourceVersion it works: recorded when watching begins, and a
    // change to the Secret fires one run with the new resourceVersion.
    reader
        .create(
            &pp,
            &trigger(
                "on-db",
                secret_watch(".metadata.resourceVersion"),
                json!({}),
            ),
        )
        .await
        .expect("a trigger on a Secret's resourceVersion by who may read it");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = fx.api();
    let before = secrets.get("db").await.unwrap().metadata.resource_version;
    wait_trigger(&fx, "on-db", Duration::from_secs(30), "watching db", |t| {
        t.status
            .as_ref()
            .is_some_and(|s| s.resources.first().map(|r| &r.revision) == Some(&before))
    })
    .await;
    wait_trigger(
        &fx,
        "outsider-web",
        Duration::from_secs(30),
        "watching web",
        watching,
    )
    .await;
    let patch = json!({"stringData": {"password": "hunter2-second"}});
    let after = secrets
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let runs = wait_runs(&fx, "on-db", 1, Duration::from_secs(30)).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(revision_of(&runs[0]), after);
    assert_eq!(
        runs[0].annotations()["testlayer.dev/triggered-by"],
        "Secret/db"
    );
    let pod = eventually(Duration::from_secs(30), "the run's Pod", async || {
        let pods = fx.pods().list(&ListParams::default()).await.unwrap().items;
        pods.into_iter()
            .find(|p| {
                p.spec.iter().flat_map(|s| &s.containers).any(|c| {
                    c.env.iter().flatten().any(|e| {
                        e.name == "TESTLAYER_TRIGGER_REVISION" && e.value.as_ref() == Some(&after)
                    })
                })
            })
            .ok_or("no Pod with the revision yet")
    })
    .await;
    assert!(pod.metadata.name.is_some());
    // No value of the Secret, as written or as stored, anywhere the
    // trigger's readers look.
    let mut seen = String::new();
    let t: Api<TestLayerTrigger> = fx.api();
    seen.push_str(
        &serde_json::to_string(&t.list(&ListParams::default()).await.unwrap().items).unwrap(),
    );
    seen.push_str(
        &serde_json::to_string(&fx.runs().list(&ListParams::default()).await.unwrap().items)
            .unwrap(),
    );
    seen.push_str(
        &serde_json::to_string(&fx.crs().list(&ListParams::default()).await.unwrap().items)
            .unwrap(),
    );
    seen.push_str(
        &serde_json::to_string(&fx.pods().list(&ListParams::default()).await.unwrap().items)
            .unwrap(),
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = fx.api();
    seen.push_str(
        &serde_json::to_string(&events.list(&ListParams::default()).await.unwrap().items).unwrap(),
    );
    for value in ["hunter2-first", "hunter2-second"] {
        let stored = base64_of(value);
        assert!(
            !seen.contains(value) && !seen.contains(&stored),
            "{value} ({stored}) is shown"
        );
    }

    // An update is checked when it changes what is watched: not otherwise
    // (whoever may edit the trigger), and then as a create is.
    let edit = async |api: &Api<TestLayerTrigger>, spec: Value| {
        api.patch(
            "on-db",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": spec})),
        )
        .await
    };
    edit(&outsider, json!({"delaySeconds": 5}))
        .await
        .expect("an update that leaves spec.watch as it was");
    let refused = |r: Result<TestLayerTrigger, kube::Error>| match r {
        Err(kube::Error::Api(e)) => e.message,
        other => panic!("admitted: {other:?}"),
    };
    let m = refused(
        edit(
            &outsider,
            json!({"watch": {"revisionPath": ".metadata.generation"}}),
        )
        .await,
    );
    assert!(
        m.contains(&format!(
            "spec.watch: this user may not get secrets named db in namespace {ns}"
        )),
        "{m}"
    );
    let m = refused(
        edit(
            &reader,
            json!({"watch": {"revisionPath": ".data.password"}}),
        )
        .await,
    );
    assert!(m.contains(SECRET_FROM_METADATA), "{m}");

    // A kind the cluster serves under a resource the rule does not derive
    // (Box as boxen, not boxes): the policy checked boxes, so the
    // controller reads nothing and says so.
    let crds = tempfile::tempdir().unwrap();
    std::fs::write(
        crds.path().join("boxen.yaml"),
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: boxen.odd.example.com}
spec:
  group: odd.example.com
  scope: Namespaced
  names: {kind: Box, plural: boxen, singular: box, listKind: BoxList}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
",
    )
    .unwrap();
    fx.cp
        .install_crds(crds.path(), &["boxen.odd.example.com"])
        .unwrap();
    let admin: Api<TestLayerTrigger> = fx.api();
    admin
        .create(
            &pp,
            &trigger(
                "on-box",
                json!({"apiVersion": "odd.example.com/v1", "kind": "Box", "name": "b",
                    "revisionPath": ".status.revision"}),
                json!({}),
            ),
        )
        .await
        .unwrap();
    // The apiserver's discovery may not list the new kind yet: a stalled
    // trigger looks again (every 10 s), so the message settles on the plural.
    const NOT_BOXES: &str = "spec.watch.kind: this cluster serves kind Box as resource boxen.odd.example.com, not boxes.odd.example.com";
    wait_trigger(&fx, "on-box", Duration::from_secs(45), NOT_BOXES, |t| {
        t.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Stalled" && c.status == "True" && c.message.starts_with(NOT_BOXES)
            })
        })
    })
    .await;
    assert!(!controller.is_finished(), "the controller stopped");
    controller.abort();
}

/// How the admission policy refuses a Secret's revision from anywhere but
/// its metadata.
const SECRET_FROM_METADATA: &str = "spec.watch.revisionPath: a TestLayerTrigger takes the revision of a Secret only from its metadata";

/// `value` in standard base64, as a Secret stores it.
fn base64_of(value: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in value.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
