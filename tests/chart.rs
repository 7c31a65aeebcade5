//! The Helm chart with a real `helm` (built by tests/cluster/build.sh): it
//! lints and renders, its manifests apply to the real control plane, and the
//! controller running with the chart's ServiceAccount credentials (RBAC on)
//! completes a run that uses every permission the controller needs.

mod common;

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use testlayer::api::{
    LayerPhase, TestLayerResource, TestLayerResourceSpec, TestLayerRun, TestLayerSchedule,
    TestLayerTrigger,
};
use testlayer::controller::{ControllerOptions, LeaderElection, run as run_controller};
use testlayer_testkit::{ControlPlane, TestKubelet};

use common::{eventually, helm, helm_refused, helm_template};

fn chart() -> PathBuf {
    common::chart_dir()
}

fn render(namespace: &str, sets: &[&str]) -> Vec<serde_json::Value> {
    documents(&helm_template("tl", namespace, None, sets))
}

/// The documents of a rendered chart.
fn documents(text: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(text)
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
    // The admission policy: on by default, tightened or left out by values.
    let validations = |sets: &[&str]| {
        render("testlayer-system", sets)
            .iter()
            .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
            .map(|p| p["spec"]["validations"].as_array().unwrap().len())
    };
    assert_eq!(validations(&[]), Some(5));
    assert_eq!(
        validations(&["admissionPolicy.requirePodCreateForEveryRun=true"]),
        Some(6)
    );
    assert_eq!(validations(&["admissionPolicy.enabled=false"]), None);
    // And a trigger's author must be allowed to read what it watches
    // (tested against the apiserver in tests/trigger.rs).
    let docs = render("testlayer-system", &[]);
    let reads = find(
        &docs,
        "ValidatingAdmissionPolicy",
        "tl-testlayer-trigger-reads",
    );
    assert_eq!(reads["spec"]["validations"].as_array().unwrap().len(), 3);
    find(
        &docs,
        "ValidatingAdmissionPolicyBinding",
        "tl-testlayer-trigger-reads",
    );
    // The CRDs, rendered as templates so that `helm upgrade` brings them,
    // and kept on uninstall unless told otherwise.
    let crds = |sets: &[&str]| -> Vec<serde_json::Value> {
        render("testlayer-system", sets)
            .into_iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
            .collect()
    };
    let rendered = crds(&[]);
    assert_eq!(rendered.len(), 5);
    let generated: Vec<serde_json::Value> = testlayer::api::all_crds()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    for (r, g) in rendered.iter().zip(&generated) {
        assert_eq!(
            r["spec"], g["spec"],
            "{} as rendered",
            g["metadata"]["name"]
        );
        assert_eq!(
            r["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{}",
            r["metadata"]
        );
        assert_eq!(
            r["metadata"]["labels"]["app.kubernetes.io/name"],
            "testlayer"
        );
    }
    assert!(
        crds(&["crds.keep=false"])
            .iter()
            .all(|c| c["metadata"]["annotations"].is_null())
    );
    assert!(crds(&["crds.install=false"]).is_empty());

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
    // Nodes are read cluster-wide in either mode, unless turned off.
    let nodes = find(&single, "ClusterRole", "tl-testlayer-nodes");
    assert_eq!(
        nodes["rules"],
        json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}])
    );
    find(&single, "ClusterRoleBinding", "tl-testlayer-nodes");
    let no_nodes = render(
        "testlayer-system",
        &["watchNamespace=ci", "rbac.readNodes=false"],
    );
    // The controller then has no cluster-wide grant (the ClusterRoles left
    // are the users' view and edit roles, bound by no one).
    let cluster_wide: Vec<&serde_json::Value> = no_nodes
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "ClusterRoleBinding")
        .map(|d| &d["metadata"]["name"])
        .collect();
    assert_eq!(
        cluster_wide,
        [&json!("tl-testlayer-view"), &json!("tl-testlayer-edit")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_completes_a_run_under_the_charts_rbac() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("testlayer=warn")
        .with_test_writer()
        .try_init();
    // The CRDs as the other tests of this binary install them (kubectl);
    // the chart's own CRD templates are tested in tests/chart_upgrade.rs.
    let cp = common::control_plane();
    // `helm install` into the test control plane (two replicas: leader
    // election on).
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
        "--set",
        "crds.install=false",
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
        resources_namespace: None,
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
    common::create_layer_config_map(&admin, &ns, "layers", config).await;
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
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns);
    let ours = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reporting_instance.as_deref() == Some("chart-replica"))
        .count();
    assert!(ours > 0, "the controller could not publish events");

    // A schedule creates, and past its history deletes, runs; a trigger
    // reads the kinds the chart grants (Deployments), and one on a kind it
    // does not (Secrets) is Stalled, naming the field.
    let schedules: Api<TestLayerSchedule> = Api::namespaced(admin.clone(), &ns);
    schedules
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerSchedule",
                "metadata": {"name": "often"},
                "spec": {"schedule": "*/2 * * * * *", "successfulRunsHistoryLimit": 1, "concurrencyPolicy": "Forbid",
                    "template": {"spec": {"layer": "checked", "image": "busybox",
                        "config": {"configMapRef": {"name": "layers"}}}}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let triggers: Api<TestLayerTrigger> = Api::namespaced(admin.clone(), &ns);
    for (name, watch) in [
        (
            "on-deploy",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}),
        ),
        (
            "on-secret",
            json!({"apiVersion": "v1", "kind": "Secret", "name": "token", "revisionPath": ".metadata.resourceVersion"}),
        ),
    ] {
        triggers
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerTrigger",
                    "metadata": {"name": name},
                    "spec": {"watch": watch, "template": {"spec": {"layer": "checked", "image": "busybox",
                        "config": {"configMapRef": {"name": "layers"}}}}}}))
                .unwrap(),
            )
            .await
            .unwrap();
    }
    eventually(
        Duration::from_secs(60),
        "two ticks that passed, the first deleted",
        async || {
            let s = schedules.get("often").await.unwrap();
            let st = s.status.clone().unwrap_or_default();
            let passed = st
                .history
                .iter()
                .filter(|h| h.phase == Some(LayerPhase::Succeeded))
                .count();
            let left = runs
                .list(&ListParams::default().labels("testlayer.dev/schedule=often"))
                .await
                .unwrap()
                .items
                .len();
            if passed >= 2 && left <= 2 {
                Ok(())
            } else {
                Err(format!("{left} runs left; {st:#?}"))
            }
        },
    )
    .await;
    let condition = async |name: &str, type_: &str| {
        eventually(
            Duration::from_secs(20),
            format!("{type_} of {name}"),
            async || {
                let t = triggers.get(name).await.unwrap();
                let st = t.status.clone().unwrap_or_default();
                st.conditions
                    .iter()
                    .find(|c| c.type_ == type_ && c.status == "True")
                    .cloned()
                    .ok_or(format!("{st:#?}"))
            },
        )
        .await
    };
    condition("on-deploy", "Ready").await;
    let stalled = condition("on-secret", "Stalled").await;
    assert!(
        stalled
            .message
            .starts_with("spec.watch.kind: the controller may not read secrets in namespace"),
        "{}",
        stalled.message
    );

    // Shared resources: TestLayerResources read, grants (Leases) created
    // and given back.
    let declared: Api<TestLayerResource> = Api::namespaced(admin.clone(), &ns);
    declared
        .create(
            &PostParams::default(),
            &TestLayerResource::new(
                "sandbox",
                TestLayerResourceSpec {
                    capacity: 1,
                    description: None,
                },
            ),
        )
        .await
        .unwrap();
    let shared = "resources:\n  sandbox: {}\nlayers:\n  turns:\n    categories:\n      - name: one\n        timeout_seconds: 30\n        uses: [sandbox]\n        command: \"sleep 0.3\"\n";
    for name in ["turn-1", "turn-2"] {
        runs.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun", "metadata": {"name": name},
                "spec": {"layer": "turns", "config": {"inline": shared}, "image": "busybox"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    }
    for name in ["turn-1", "turn-2"] {
        let r = eventually(
            Duration::from_secs(60),
            format!("{name} done"),
            async || {
                let r = runs.get(name).await.unwrap();
                let p = r.status.as_ref().and_then(|s| s.phase);
                p.filter(|p| p.is_terminal())
                    .map(|p| (p, r.status.clone()))
                    .ok_or_else(|| format!("{:#?}", r.status))
            },
        )
        .await;
        assert_eq!(r.0, LayerPhase::Succeeded, "{:#?}", r.1);
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(admin.clone(), &ns);
    eventually(
        Duration::from_secs(20),
        "the grants given back",
        async || {
            let left = leases
                .list(&ListParams::default().labels("testlayer.dev/resource"))
                .await
                .unwrap()
                .items
                .len();
            (left == 0).then_some(())
        },
    )
    .await;
    controller.abort();
}

/// Applies one YAML document set with kubectl.
fn kubectl_apply(cp: &ControlPlane, yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = cp
        .kubectl()
        .args(["apply", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl apply:\n{yaml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart's ValidatingAdmissionPolicy: a user who may only create
/// TestLayerRuns cannot use one to run Pods as another ServiceAccount, with
/// Secrets or unrestricted; a user who may create Pods can, and
/// `pod.unrestricted` only where the namespace allows privileged Pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_layer_run_gives_no_more_than_a_pod_of_ones_own() {
    let cp = common::control_plane();
    let chart_path = chart();
    let policy = helm(&[
        "template",
        "guard",
        chart_path.to_str().unwrap(),
        "--show-only",
        "templates/admission-policy.yaml",
    ]);
    kubectl_apply(cp, &policy);

    let ns = cp.create_namespace("guard").await.unwrap();
    let restricted = cp.create_namespace("guard-restricted").await.unwrap();
    let mut rbac = String::new();
    for n in [&ns, &restricted] {
        rbac.push_str(&format!(
            "---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: alice, namespace: {n}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: bob, namespace: {n}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: runs, namespace: {n}}}
rules: [{{apiGroups: [testlayer.dev], resources: [testlayerruns, testlayerschedules], verbs: [create]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pods, namespace: {n}}}
rules: [{{apiGroups: [''], resources: [pods], verbs: [create]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: runs, namespace: {n}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: runs}}
subjects:
  - {{kind: ServiceAccount, name: alice, namespace: {n}}}
  - {{kind: ServiceAccount, name: bob, namespace: {n}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: pods, namespace: {n}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pods}}
subjects: [{{kind: ServiceAccount, name: bob, namespace: {n}}}]
"
        ));
    }
    rbac.push_str(&format!(
        "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {restricted}\n  labels: {{pod-security.kubernetes.io/enforce: restricted}}\n"
    ));
    kubectl_apply(cp, &rbac);

    let config =
        "layers:\n  unit:\n    categories:\n      - name: unit\n        timeout_seconds: 30\n";
    let run = |name: &str, pod: serde_json::Value| -> TestLayerRun {
        serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": name},
            "spec": {"layer": "unit", "config": {"inline": config}, "image": "busybox", "pod": pod},
        }))
        .unwrap()
    };
    let alice: Api<TestLayerRun> =
        Api::namespaced(cp.service_account_client(&ns, "alice").await.unwrap(), &ns);
    let bob: Api<TestLayerRun> =
        Api::namespaced(cp.service_account_client(&ns, "bob").await.unwrap(), &ns);
    let bob_restricted: Api<TestLayerRun> = Api::namespaced(
        cp.service_account_client(&restricted, "bob").await.unwrap(),
        &restricted,
    );
    let pp = PostParams::default();
    let escalations = [
        (
            "as-builder",
            json!({"serviceAccountName": "builder"}),
            "spec.pod.serviceAccountName",
        ),
        (
            "with-secret",
            json!({"env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}),
            "spec.pod.env, spec.pod.envFrom or spec.pod.imagePullSecrets",
        ),
        (
            "with-secrets",
            json!({"envFrom": [{"secretRef": {"name": "s"}}]}),
            "spec.pod.env, spec.pod.envFrom or spec.pod.imagePullSecrets",
        ),
        (
            "root",
            json!({"unrestricted": true}),
            "spec.pod.unrestricted",
        ),
    ];
    // The policy takes effect within moments of being applied.
    // Each probe has a name of its own: one admitted before the policy was
    // in force may stay a while (deleted, its finalizer not yet removed).
    let (_, pod, field) = &escalations[0];
    let mut probes = 0;
    let refused = eventually(Duration::from_secs(20), "the policy in force", async || {
        probes += 1;
        let probe = format!("probe-{probes}");
        match alice.create(&pp, &run(&probe, pod.clone())).await {
            Err(kube::Error::Api(e)) => Ok(e),
            Ok(_) => {
                let _ = alice.delete(&probe, &Default::default()).await;
                Err(format!("{probe} admitted"))
            }
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    assert!(refused.code == 403 || refused.code == 422, "{refused:?}");
    assert!(refused.message.contains(field), "{}", refused.message);
    assert!(
        refused.message.contains("no escalation"),
        "{}",
        refused.message
    );
    for (name, pod, field) in &escalations {
        let e = alice
            .create(&pp, &run(name, pod.clone()))
            .await
            .expect_err("admitted");
        assert!(e.to_string().contains(field), "{name}: {e}");
    }
    // A plain run is fine for whoever may create runs.
    alice
        .create(&pp, &run("plain", json!({"nodeSelector": {"pool": "ci"}})))
        .await
        .unwrap();
    // Whoever may create Pods may do all of it, where the namespace allows.
    for (name, pod, _) in &escalations {
        bob.create(&pp, &run(name, pod.clone()))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // A notification's Secrets: the controller reads them and sends them
    // on, so only an author who may read them (or create Pods) names them.
    let notifying = |name: &str, notify: serde_json::Value| -> TestLayerRun {
        serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": name},
            "spec": {"layer": "unit", "config": {"inline": config}, "image": "busybox",
                "notify": notify},
        }))
        .unwrap()
    };
    let targets = [
        json!([{"webhook": {"url": "http://example.invalid/", "secretRef": {"name": "hook", "key": "k"}}}]),
        json!([{"webhook": {"urlFrom": {"name": "hook", "key": "url"}}}]),
        json!([{"slack": {"urlFrom": {"name": "hook", "key": "url"}}}]),
        json!([{"githubStatus": {"repository": "o/r", "tokenFrom": {"name": "hook", "key": "token"}}}]),
    ];
    for (i, notify) in targets.iter().enumerate() {
        let e = alice
            .create(&pp, &notifying(&format!("notify-{i}"), notify.clone()))
            .await
            .expect_err("a Secret its author may not read, admitted");
        assert!(
            e.to_string()
                .contains("spec.notify: only a user who may read the Secrets"),
            "{i}: {e}"
        );
        bob.create(&pp, &notifying(&format!("notify-{i}"), notify.clone()))
            .await
            .unwrap_or_else(|e| panic!("{i}: {e}"));
    }
    // Without a Secret, or by one who may read it (and nothing more), fine.
    alice
        .create(
            &pp,
            &notifying(
                "notify-plain",
                json!([{"webhook": {"url": "http://example.invalid/"}}]),
            ),
        )
        .await
        .unwrap();
    kubectl_apply(
        cp,
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: hook, namespace: {ns}}}
rules: [{{apiGroups: [''], resources: [secrets], resourceNames: [hook], verbs: [get]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: hook, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: hook}}
subjects: [{{kind: ServiceAccount, name: alice, namespace: {ns}}}]
"
        ),
    );
    eventually(
        Duration::from_secs(20),
        "alice may read the Secret hook",
        async || match alice
            .create(&pp, &notifying("notify-reader", targets[3].clone()))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;

    let e = bob_restricted
        .create(&pp, &run("root", json!({"unrestricted": true})))
        .await
        .expect_err("unrestricted admitted in a restricted namespace");
    assert!(
        e.to_string()
            .contains("enforces Pod Security level restricted"),
        "{e}"
    );
    bob_restricted
        .create(
            &pp,
            &run("as-builder", json!({"serviceAccountName": "builder"})),
        )
        .await
        .unwrap();

    // A schedule's runs are created by the controller: its template is
    // checked against its author, the same way.
    let schedule = |name: &str, pod: serde_json::Value| -> TestLayerSchedule {
        serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerSchedule",
            "metadata": {"name": name},
            "spec": {"schedule": "@daily", "template": {"spec": {"layer": "unit",
                "config": {"inline": config}, "image": "busybox", "pod": pod}}},
        }))
        .unwrap()
    };
    let alice: Api<TestLayerSchedule> =
        Api::namespaced(cp.service_account_client(&ns, "alice").await.unwrap(), &ns);
    let bob: Api<TestLayerSchedule> =
        Api::namespaced(cp.service_account_client(&ns, "bob").await.unwrap(), &ns);
    for (name, pod, field) in &escalations {
        let field = field.replace("spec.pod", "spec.template.spec.pod");
        let e = eventually(
            Duration::from_secs(20),
            "the schedule policy in force",
            async || match alice.create(&pp, &schedule(name, pod.clone())).await {
                Err(e) => Ok(e),
                Ok(_) => {
                    let _ = alice.delete(name, &Default::default()).await;
                    Err(format!("schedule {name} admitted"))
                }
            },
        )
        .await;
        assert!(e.to_string().contains(&field), "{name}: {e}");
        assert!(e.to_string().contains("TestLayerSchedule"), "{name}: {e}");
        bob.create(&pp, &schedule(name, pod.clone()))
            .await
            .unwrap_or_else(|e| panic!("schedule {name}: {e}"));
    }
    alice
        .create(
            &pp,
            &schedule("plain", json!({"nodeSelector": {"pool": "ci"}})),
        )
        .await
        .unwrap();
}

/// Where the values under `path` of values.yaml are not described by
/// `schema` (following `$ref`s into `root`): a key it has no property for,
/// a leaf it gives no type.
fn undescribed(
    values: &serde_json::Value,
    schema: &serde_json::Value,
    root: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    let schema = match schema["$ref"].as_str() {
        Some(r) => root
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{path}: the schema has no {r}")),
        None => schema,
    };
    match values {
        serde_json::Value::Object(map) => {
            if schema["type"] != "object" {
                out.push(format!("{path} (not an object in the schema)"));
            }
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match schema["properties"].get(k) {
                    Some(s) => undescribed(v, s, root, &p, out),
                    None if schema["additionalProperties"].is_object() => {
                        undescribed(v, &schema["additionalProperties"], root, &p, out)
                    }
                    None => out.push(p),
                }
            }
        }
        serde_json::Value::Array(items) => {
            if schema["type"] != "array" {
                out.push(format!("{path} (not an array in the schema)"));
            }
            for (i, v) in items.iter().enumerate() {
                undescribed(v, &schema["items"], root, &format!("{path}[{i}]"), out);
            }
        }
        _ => {
            if schema.get("type").is_none()
                && schema.get("oneOf").is_none()
                && schema.get("enum").is_none()
            {
                out.push(format!("{path} (no type)"));
            }
        }
    }
}

/// Where `schema` describes an object's properties but accepts others.
fn open_objects(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match schema {
        serde_json::Value::Object(map) => {
            if map.get("properties").is_some_and(|p| p.is_object())
                && map.get("additionalProperties") != Some(&json!(false))
            {
                out.push(path.to_string());
            }
            for (k, v) in map {
                open_objects(v, &format!("{path}/{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                open_objects(v, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// values.schema.json describes every value of values.yaml, refuses
/// unknown keys wherever the chart defines the keys, and `helm template`
/// (as `helm install` and `helm upgrade`) refuses a bad value with Helm's
/// message naming it.
#[test]
fn the_values_schema_describes_every_value_and_refuses_bad_ones() {
    let read = |f: &str| std::fs::read_to_string(chart().join(f)).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&read("values.schema.json")).unwrap();
    let values: serde_json::Value = serde_yaml::from_str(&read("values.yaml")).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let mut missing = Vec::new();
    undescribed(&values, &schema, &schema, "", &mut missing);
    assert!(
        missing.is_empty(),
        "values of values.yaml the schema does not describe: {missing:?}"
    );
    let mut open = Vec::new();
    open_objects(&schema, "#", &mut open);
    assert!(
        open.is_empty(),
        "objects of the schema that take unknown keys: {open:?}"
    );

    let schema_refusal = "values don't meet the specifications of the schema";
    for (set, says) in [
        ("replicaCount=-1", vec!["at '/replicaCount'", "minimum"]),
        (
            "replicaCount=two",
            vec!["at '/replicaCount'", "want integer"],
        ),
        ("replicas=2", vec!["at ''", "'replicas' not allowed"]),
        (
            "image.pullPolicy=Sometimes",
            vec!["at '/image/pullPolicy'", "'IfNotPresent'"],
        ),
        ("image.tagg=v1", vec!["at '/image'", "'tagg' not allowed"]),
        ("image.tag=1", vec!["at '/image/tag'", "want string"]),
        ("concurrency=0", vec!["at '/concurrency'"]),
        ("watchNamespace=Team_A", vec!["at '/watchNamespace'"]),
        (
            "logging.json=yes",
            vec!["at '/logging/json'", "want boolean"],
        ),
        (
            "leaderElection.leaseSeconds=0",
            vec!["at '/leaderElection/leaseSeconds'"],
        ),
        ("metrics.port=70000", vec!["at '/metrics/port'", "maximum"]),
        (
            "metrics.service.type=ExternalName",
            vec!["at '/metrics/service/type'"],
        ),
        (
            "resources.limits.memory=lots",
            vec!["at '/resources/limits/memory'"],
        ),
        (
            "securityContext.runAsNonroot=true",
            vec!["at '/securityContext'", "'runAsNonroot' not allowed"],
        ),
        (
            "podSecurityContext.runAsUser=-1",
            vec!["at '/podSecurityContext/runAsUser'"],
        ),
        (
            "tolerations[0].operator=Maybe",
            vec!["at '/tolerations/0/operator'"],
        ),
        (
            "podDisruptionBudget.maxUnavailable=half",
            vec!["at '/podDisruptionBudget/maxUnavailable'"],
        ),
        (
            "podDisruptionBudget.maxUnavailable=-1",
            vec!["at '/podDisruptionBudget/maxUnavailable'"],
        ),
        (
            "podDisruptionBudget.unhealthyPodEvictionPolicy=Never",
            vec!["at '/podDisruptionBudget/unhealthyPodEvictionPolicy'"],
        ),
        (
            "rbac.aggregatedRoles=sometimes",
            vec!["at '/rbac/aggregatedRoles'", "want boolean"],
        ),
        (
            "admissionPolicy.validationActions={Deny,Warn}",
            vec!["at '/admissionPolicy/validationActions/1'"],
        ),
    ] {
        let err = helm_refused(&[set]);
        assert!(err.contains(schema_refusal), "{set}: {err}");
        for s in says {
            assert!(err.contains(s), "{set}: no {s:?} in\n{err}");
        }
    }
    // What the schema cannot say: one value against another.
    let err = helm_refused(&["leaderElection.graceSeconds=15"]);
    assert!(
        err.contains(
            "leaderElection.graceSeconds (15) must be less than leaderElection.leaseSeconds (15)"
        ),
        "{err}"
    );
    let err = helm_refused(&["watchNamespace=ci", "sharedResources.namespace=shared"]);
    assert!(err.contains("sharedResources.namespace"), "{err}");
}

/// Every value set to something other than its default (sharedResources
/// needs watchNamespace empty: that one is a case of its own).
const EVERY_OPTION: &str = r#"
crds: {install: true, keep: false}
replicaCount: 3
image: {repository: registry.example.com/testlayer, tag: "0.1.0-rc.1", pullPolicy: Always}
imagePullSecrets: [{name: regcred}]
watchNamespace: ""
sharedResources: {namespace: shared-runs}
concurrency: 4
leaderElection: {enabled: true, leaseName: tl-lease, leaseSeconds: 30, graceSeconds: 10}
logging: {level: "testlayer=debug,info", json: false}
serviceAccount: {create: true, name: tl-controller, annotations: {iam.example.com/role: ci}}
rbac: {create: true, readNodes: false, aggregatedRoles: true}
triggers:
  watch:
    - {apiGroup: apps, resources: [deployments]}
    - {apiGroup: argoproj.io, resources: [rollouts]}
metrics: {port: 9090, service: {enabled: true, type: NodePort, annotations: {prometheus.io/scrape: "true"}}}
podDisruptionBudget: {enabled: true, maxUnavailable: "50%", unhealthyPodEvictionPolicy: IfHealthyBudget}
resources:
  requests: {cpu: 100m, memory: 128Mi}
  limits: {cpu: 2, memory: 512Mi, ephemeral-storage: 1Gi}
podSecurityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
  seccompProfile: {type: RuntimeDefault}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities: {drop: [ALL]}
  seccompProfile: {type: RuntimeDefault}
podLabels: {team: ci}
podAnnotations: {example.com/owner: ci}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: ci, effect: NoSchedule}]
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}]
admissionPolicy: {enabled: true, validationActions: [Warn, Audit], requirePodCreateForEveryRun: true}
"#;

/// The defaults are the restricted security context and bounded
/// resources; every documented option renders where it belongs.
#[test]
fn every_documented_option_renders() {
    let docs = render("testlayer-system", &[]);
    let deploy = find(&docs, "Deployment", "tl-testlayer");
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]}})
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}})
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["image"], "ghcr.io/testlayer/testlayer:0.1.0");

    let docs = documents(&helm_template(
        "tl",
        "testlayer-system",
        Some(EVERY_OPTION),
        &[],
    ));
    let deploy = find(&docs, "Deployment", "tl-testlayer");
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(c["image"], "registry.example.com/testlayer:0.1.0-rc.1");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    for a in [
        "--listen=0.0.0.0:9090",
        "--concurrency=4",
        "--log=testlayer=debug,info",
        "--resources-namespace=shared-runs",
        "--leader-elect",
        "--lease-name=tl-lease",
        "--lease-seconds=30",
        "--lease-grace-seconds=10",
    ] {
        assert!(args.contains(&a), "no {a} in {args:?}");
    }
    assert!(!args.contains(&"--log-json"), "{args:?}");
    assert_eq!(c["ports"][0]["containerPort"], 9090);
    assert_eq!(pod["serviceAccountName"], "tl-controller");
    assert_eq!(
        find(&docs, "ServiceAccount", "tl-controller")["metadata"]["annotations"],
        json!({"iam.example.com/role": "ci"})
    );
    assert_eq!(
        c["resources"]["limits"],
        json!({"cpu": 2, "memory": "512Mi", "ephemeral-storage": "1Gi"})
    );
    assert_eq!(pod["securityContext"]["fsGroup"], 1000);
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        deploy["spec"]["template"]["metadata"]["labels"]["team"],
        "ci"
    );
    assert_eq!(
        deploy["spec"]["template"]["metadata"]["annotations"],
        json!({"example.com/owner": "ci"})
    );
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert!(
        pod["affinity"]["nodeAffinity"].is_object(),
        "{}",
        pod["affinity"]
    );
    let service = find(&docs, "Service", "tl-testlayer-metrics");
    assert_eq!(service["spec"]["type"], "NodePort");
    assert_eq!(service["spec"]["ports"][0]["port"], 9090);
    assert_eq!(
        service["metadata"]["annotations"],
        json!({"prometheus.io/scrape": "true"})
    );
    let pdb = find(&docs, "PodDisruptionBudget", "tl-testlayer");
    assert_eq!(pdb["spec"]["maxUnavailable"], "50%");
    assert_eq!(pdb["spec"]["unhealthyPodEvictionPolicy"], "IfHealthyBudget");
    let role = find(&docs, "ClusterRole", "tl-testlayer");
    assert!(
        role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["apiGroups"] == json!(["argoproj.io"])
                && r["resources"] == json!(["rollouts"])),
        "{}",
        role["rules"]
    );
    assert!(
        !docs
            .iter()
            .any(|d| d["metadata"]["name"] == "tl-testlayer-nodes"),
        "rbac.readNodes=false"
    );
    find(&docs, "ClusterRole", "tl-testlayer-view");
    find(&docs, "ClusterRole", "tl-testlayer-edit");
    let policy = find(
        &docs,
        "ValidatingAdmissionPolicyBinding",
        "tl-testlayer-no-escalation",
    );
    assert_eq!(
        policy["spec"]["validationActions"],
        json!(["Warn", "Audit"])
    );
    let crds: Vec<&serde_json::Value> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 5);
    assert!(crds.iter().all(|c| c["metadata"]["annotations"].is_null()));

    // Set keys merge into the defaults; null removes one.
    let docs = render(
        "testlayer-system",
        &[
            "resources.limits.memory=512Mi",
            "securityContext.readOnlyRootFilesystem=null",
        ],
    );
    let c = &find(&docs, "Deployment", "tl-testlayer")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}})
    );
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
    );

    // The switches that leave objects out.
    let none = render(
        "testlayer-system",
        &[
            "crds.install=false",
            "serviceAccount.create=false",
            "rbac.create=false",
            "rbac.aggregatedRoles=false",
            "metrics.service.enabled=false",
            "admissionPolicy.enabled=false",
            "replicaCount=2",
            "podDisruptionBudget.enabled=false",
        ],
    );
    let kinds: Vec<&str> = none.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Deployment"]);
}

/// A PodDisruptionBudget keeps the standby through a drain: only with more
/// than one replica, `maxUnavailable: 1` unless told otherwise, selecting
/// exactly the controller's Pods.
#[test]
fn a_pod_disruption_budget_only_with_more_than_one_replica() {
    let pdbs = |sets: &[&str]| -> Vec<serde_json::Value> {
        render("testlayer-system", sets)
            .into_iter()
            .filter(|d| d["kind"] == "PodDisruptionBudget")
            .collect()
    };
    assert!(pdbs(&[]).is_empty());
    assert!(pdbs(&["leaderElection.enabled=true"]).is_empty());
    assert!(pdbs(&["replicaCount=0"]).is_empty());
    let docs = render("testlayer-system", &["replicaCount=2"]);
    let pdb = find(&docs, "PodDisruptionBudget", "tl-testlayer");
    let deploy = find(&docs, "Deployment", "tl-testlayer");
    assert_eq!(pdb["metadata"]["namespace"], "testlayer-system");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    let three = pdbs(&["replicaCount=3", "podDisruptionBudget.maxUnavailable=2"]);
    assert_eq!(three[0]["spec"]["maxUnavailable"], 2);
    let percent = pdbs(&["replicaCount=3", "podDisruptionBudget.maxUnavailable=50%"]);
    assert_eq!(percent[0]["spec"]["maxUnavailable"], "50%");
    assert!(pdbs(&["replicaCount=2", "podDisruptionBudget.enabled=false"]).is_empty());
}

/// The roles of the people who use testlayer: `-view` reads everything of
/// testlayer.dev and aggregates into `view`; `-edit` also writes runs,
/// schedules, triggers and resources (never a status, never a
/// CategoryRun) and aggregates into `edit` and `admin`.
#[test]
fn the_view_and_edit_roles_render_aggregated() {
    let docs = render("testlayer-system", &[]);
    let all = [
        "testlayerruns",
        "categoryruns",
        "testlayerschedules",
        "testlayertriggers",
        "testlayerresources",
    ];
    let reads: Vec<String> = all
        .iter()
        .flat_map(|r| [r.to_string(), format!("{r}/status")])
        .collect();
    let view = find(&docs, "ClusterRole", "tl-testlayer-view");
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert_eq!(
        view["rules"],
        json!([{"apiGroups": ["testlayer.dev"], "resources": reads, "verbs": ["get", "list", "watch"]}])
    );
    let edit = find(&docs, "ClusterRole", "tl-testlayer-edit");
    let labels = &edit["metadata"]["labels"];
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-admin"],
        "true"
    );
    assert!(labels["rbac.authorization.k8s.io/aggregate-to-view"].is_null());
    assert_eq!(
        edit["rules"],
        json!([
            {"apiGroups": ["testlayer.dev"], "resources": reads, "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["testlayer.dev"],
             "resources": ["testlayerruns", "testlayerschedules", "testlayertriggers", "testlayerresources"],
             "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        ])
    );
    // Off, and independent of the controller's own RBAC.
    let off = render("testlayer-system", &["rbac.aggregatedRoles=false"]);
    assert!(
        !off.iter()
            .any(|d| d["metadata"]["name"] == "tl-testlayer-view"
                || d["metadata"]["name"] == "tl-testlayer-edit")
    );
    let only = render("testlayer-system", &["rbac.create=false"]);
    find(&only, "ClusterRole", "tl-testlayer-view");
    find(&only, "ClusterRole", "tl-testlayer-edit");
}

/// The answer to a request the caller may not make: 403, naming the verb
/// and the resource RBAC refused.
fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, verb_resource: &str) {
    match result {
        Err(kube::Error::Api(e)) if e.code == 403 => assert!(
            e.message.contains(&format!("cannot {verb_resource}")),
            "{}",
            e.message
        ),
        other => panic!("{verb_resource}: not refused with 403: {other:?}"),
    }
}

/// The `-edit` and `-view` roles, as rendered, bound in one namespace to
/// ServiceAccounts that have nothing else, against the real apiserver:
/// real requests, not access reviews.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_and_edit_roles_grant_what_they_say_and_no_more() {
    use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
    let cp = common::control_plane();
    let chart_path = chart();
    // A release name of its own: ClusterRoles are cluster-wide.
    let roles = helm(&[
        "template",
        "roles",
        chart_path.to_str().unwrap(),
        "--show-only",
        "templates/user-roles.yaml",
    ]);
    kubectl_apply(cp, &roles);
    let ns = cp.create_namespace("roles").await.unwrap();
    let other = cp.create_namespace("roles-other").await.unwrap();
    kubectl_apply(
        cp,
        &format!(
            "---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: editor, namespace: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: viewer, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: edit, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: roles-testlayer-edit}}
subjects: [{{kind: ServiceAccount, name: editor, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: view, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: roles-testlayer-view}}
subjects: [{{kind: ServiceAccount, name: viewer, namespace: {ns}}}]
"
        ),
    );
    let editor = cp.service_account_client(&ns, "editor").await.unwrap();
    let viewer = cp.service_account_client(&ns, "viewer").await.unwrap();
    let pp = PostParams::default();
    let config =
        "layers:\n  unit:\n    categories:\n      - name: unit\n        timeout_seconds: 30\n";
    let run = |name: &str| common::test_layer_run(name, "unit", config, json!({}));

    // The editor creates a run (once the binding is in force), changes it,
    // reads it and its status, and writes schedules, triggers and
    // resources.
    let runs: Api<TestLayerRun> = Api::namespaced(editor.clone(), &ns);
    eventually(
        Duration::from_secs(20),
        "the edit binding in force",
        async || runs.create(&pp, &run("mine")).await.map(|_| ()),
    )
    .await;
    let labelled = runs
        .patch(
            "mine",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "ci"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.labels.unwrap()["team"], "ci");
    runs.get_status("mine").await.unwrap();
    let schedules: Api<TestLayerSchedule> = Api::namespaced(editor.clone(), &ns);
    schedules
        .create(
            &pp,
            &serde_json::from_value(json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerSchedule",
                "metadata": {"name": "nightly"},
                "spec": {"schedule": "@daily", "template": {"spec": {"layer": "unit", "image": "busybox",
                    "config": {"inline": config}}}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let declared: Api<TestLayerResource> = Api::namespaced(editor.clone(), &ns);
    declared
        .create(
            &pp,
            &TestLayerResource::new(
                "sandbox",
                TestLayerResourceSpec {
                    capacity: 1,
                    description: None,
                },
            ),
        )
        .await
        .unwrap();
    // Deleting a trigger is allowed: the answer is that there is none.
    let triggers: Api<TestLayerTrigger> = Api::namespaced(editor.clone(), &ns);
    match triggers.delete("none", &DeleteParams::default()).await {
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        other => panic!("deleting a missing trigger: {other:?}"),
    }
    let category_runs: Api<testlayer::api::CategoryRun> = Api::namespaced(editor.clone(), &ns);
    category_runs.list(&ListParams::default()).await.unwrap();

    // Never a status, never a CategoryRun: those are the controller's.
    forbidden(
        runs.patch_status(
            "mine",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
        )
        .await,
        "patch resource \"testlayerruns/status\"",
    );
    forbidden(
        declared
            .patch_status(
                "sandbox",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"holders": []}})),
            )
            .await,
        "patch resource \"testlayerresources/status\"",
    );
    let any_category_runs = common::dynamic_api(
        &editor,
        &ns,
        ("testlayer.dev", "v1alpha1", "CategoryRun"),
        "categoryruns",
    );
    let category_run: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "CategoryRun",
        "metadata": {"name": "mine-unit"}, "spec": {}}))
    .unwrap();
    forbidden(
        any_category_runs.create(&pp, &category_run).await,
        "create resource \"categoryruns\"",
    );
    forbidden(
        any_category_runs
            .delete("mine-unit", &DeleteParams::default())
            .await,
        "delete resource \"categoryruns\"",
    );
    // And only in the namespace of the binding.
    forbidden(
        Api::<TestLayerRun>::namespaced(editor.clone(), &other)
            .create(&pp, &run("elsewhere"))
            .await,
        "create resource \"testlayerruns\"",
    );

    // The viewer lists and reads, and writes nothing.
    let seen: Api<TestLayerRun> = Api::namespaced(viewer.clone(), &ns);
    let listed = eventually(
        Duration::from_secs(20),
        "the view binding in force",
        async || seen.list(&ListParams::default()).await,
    )
    .await;
    assert!(
        listed
            .items
            .iter()
            .any(|r| r.metadata.name.as_deref() == Some("mine")),
        "{listed:?}"
    );
    seen.get_status("mine").await.unwrap();
    Api::<TestLayerSchedule>::namespaced(viewer.clone(), &ns)
        .get("nightly")
        .await
        .unwrap();
    Api::<TestLayerResource>::namespaced(viewer.clone(), &ns)
        .get_status("sandbox")
        .await
        .unwrap();
    Api::<TestLayerTrigger>::namespaced(viewer.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    Api::<testlayer::api::CategoryRun>::namespaced(viewer.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    forbidden(
        seen.create(&pp, &run("theirs")).await,
        "create resource \"testlayerruns\"",
    );
    forbidden(
        seen.patch(
            "mine",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cancel": true}})),
        )
        .await,
        "patch resource \"testlayerruns\"",
    );
    forbidden(
        seen.delete("mine", &DeleteParams::default()).await,
        "delete resource \"testlayerruns\"",
    );
    forbidden(
        Api::<TestLayerRun>::namespaced(viewer.clone(), &other)
            .list(&ListParams::default())
            .await,
        "list resource \"testlayerruns\"",
    );

    // The editor's run goes as it came.
    runs.delete("mine", &DeleteParams::default()).await.unwrap();
}

/// Applies `yaml` with a server-side dry run: every object is validated by
/// the apiserver (its OpenAPI schemas, strict field validation, the CRDs'
/// schemas, CEL compilation of the admission policies, admission) and
/// nothing is stored. Returns kubectl's output.
fn dry_run_apply(cp: &ControlPlane, yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chart.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = cp
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=chart-dry-run",
            "--dry-run=server",
            "--validate=strict",
            "-f",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl apply --dry-run=server refused the chart:\n{}\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm template` against the control plane's own schemas: every object
/// the chart renders (the defaults, two replicas with the
/// PodDisruptionBudget and the Lease role, one watched namespace, every
/// option set) passes the apiserver's validation in a server-side dry run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_chart_passes_the_apiservers_validation() {
    let cp = common::control_plane();
    let ns = cp.create_namespace("dry").await.unwrap();
    let watched = cp.create_namespace("dry-watched").await.unwrap();
    let watch = format!("watchNamespace={watched}");
    for (what, values, sets) in [
        ("the defaults", None, vec![]),
        ("two replicas", None, vec!["replicaCount=2"]),
        ("one watched namespace", None, vec![watch.as_str()]),
        ("every option", Some(EVERY_OPTION), vec![]),
    ] {
        let text = helm_template("dry", &ns, values, &sets);
        let docs = documents(&text);
        let out = dry_run_apply(cp, &text);
        let validated = out
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(validated, docs.len(), "{what}: {out}");
        for d in &docs {
            let kind = d["kind"].as_str().unwrap().to_ascii_lowercase();
            let name = d["metadata"]["name"].as_str().unwrap();
            assert!(
                out.lines().any(|l| (l.starts_with(&format!("{kind}."))
                    || l.starts_with(&format!("{kind}/")))
                    && l.contains(&format!("/{name} "))),
                "{what}: {kind} {name} not validated:\n{out}"
            );
        }
        if what == "two replicas" {
            find(&docs, "PodDisruptionBudget", "dry-testlayer");
            find(&docs, "Role", "dry-testlayer-leader-election");
            find(&docs, "ClusterRole", "dry-testlayer-edit");
            find(&docs, "ClusterRole", "dry-testlayer-view");
        }
    }
    // And a bad object is refused there (the check is not vacuous): a
    // field the Deployment does not have.
    let text = helm_template("dry", &ns, None, &[]).replace(
        "serviceAccountName: dry-testlayer",
        "serviceAcountName: x\n      serviceAccountName: dry-testlayer",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, text).unwrap();
    let out = cp
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=chart-dry-run",
            "--dry-run=server",
            "--validate=strict",
            "-f",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("serviceAcountName"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
