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

use common::{eventually, helm};

fn chart() -> PathBuf {
    common::chart_dir()
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
    // The admission policy: on by default, tightened or left out by values.
    let validations = |sets: &[&str]| {
        render("testlayer-system", sets)
            .iter()
            .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
            .map(|p| p["spec"]["validations"].as_array().unwrap().len())
    };
    assert_eq!(validations(&[]), Some(4));
    assert_eq!(
        validations(&["admissionPolicy.requirePodCreateForEveryRun=true"]),
        Some(5)
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
    assert!(!no_nodes.iter().any(|d| d["kind"] == "ClusterRole"));
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
