//! Runs in a Kueue queue (`pod.queueName`), against the real control plane,
//! two ways:
//! - with Kueue itself: its manager as released (built from its Go module by
//!   `tests/kueue/build.sh`), its CRDs, webhooks and plain-Pod integration,
//!   a ClusterQueue whose quota fits one Pod at a time; Kueue gates each
//!   Pod, admits it when quota frees, and ungates it;
//! - with Kueue's plain-Pod integration played the way its docs describe
//!   it: a Pod labelled `kueue.x-k8s.io/queue-name` is created behind the
//!   scheduling gate `kueue.x-k8s.io/admission` (here by a
//!   MutatingAdmissionPolicy standing in for Kueue's webhook), and admission
//!   removes the gate (here the test), so the timing is the test's own.
//!
//! Either way nothing binds a gated Pod (the test kubelet, as the scheduler).

mod common;

use std::io::Write as _;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testlayer::api::LayerPhase;
use testlayer::plan::Phase;
use testlayer_testkit::kubelet::KubeletEventKind;

use common::{Fixture, category_phases, eventually, phase};

const GATE: &str = "kueue.x-k8s.io/admission";
const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";

/// What Kueue's webhook does to the Pods of a queue, for namespace `ns`.
fn gate_policy(ns: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1beta1
kind: MutatingAdmissionPolicy
metadata:
  name: kueue-gate-{ns}
spec:
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE"]
        resources: ["pods"]
  matchConditions:
    - name: queued
      expression: "has(object.metadata.labels) && '{QUEUE_LABEL}' in object.metadata.labels"
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
    - patchType: ApplyConfiguration
      applyConfiguration:
        expression: >
          Object{{spec: Object.spec{{schedulingGates: [Object.spec.schedulingGates{{name: "{GATE}"}}]}}}}
---
apiVersion: admissionregistration.k8s.io/v1beta1
kind: MutatingAdmissionPolicyBinding
metadata:
  name: kueue-gate-{ns}
spec:
  policyName: kueue-gate-{ns}
  matchResources:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: {ns}
"#
    )
}

/// `kubectl apply --server-side` of `yaml`.
fn kubectl_apply(fx: &Fixture, yaml: &str) {
    let mut apply = fx
        .cp
        .kubectl()
        .args(["apply", "--server-side", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    apply
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write the manifest");
    let out = apply.wait_with_output().expect("kubectl apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Submits run `r` of layer `queued` of `config` in LocalQueue `team-queue`.
async fn submit_queued(fx: &Fixture, config: &str) {
    fx.submit(
        "r",
        "queued",
        config,
        json!({"pod": {"queueName": "team-queue"}}),
    )
    .await;
}

/// The time from `from` to `to`, both recorded.
fn span(from: &Option<Time>, to: &Option<Time>) -> jiff::SignedDuration {
    let (from, to) = (
        from.as_ref().expect("recorded"),
        to.as_ref().expect("recorded"),
    );
    to.0.duration_since(from.0)
}

fn gated(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.name == GATE))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_behind_a_queue_s_gate_does_not_count_against_the_timeout() {
    let fx = Fixture::new("kueue").await;
    kubectl_apply(&fx, &gate_policy(&fx.ns));
    // The policy takes a moment to act: a probe Pod until it is gated.
    let probe: Pod = serde_json::from_value(
        json!({"metadata": {"name": "probe", "labels": {QUEUE_LABEL: "probe"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .unwrap();
    eventually(
        Duration::from_secs(30),
        "the gate policy to act",
        async || {
            let made = fx
                .pods()
                .create(&PostParams::default(), &probe)
                .await
                .ok()?;
            let _ = fx
                .pods()
                .delete("probe", &DeleteParams::default().grace_period(0))
                .await;
            if !gated(&made) {
                eventually(Duration::from_secs(10), "the probe gone", async || {
                    fx.pods()
                        .get_opt("probe")
                        .await
                        .ok()?
                        .is_none()
                        .then_some(())
                })
                .await;
            }
            gated(&made).then_some(())
        },
    )
    .await;

    let config = "layers:\n  queued:\n    execution_mode: parallel\n    categories:\n      - name: quick\n        timeout_seconds: 2\n        command: \"sleep 0.5\"\n      - name: slow\n        timeout_seconds: 2\n        command: \"sleep 30\"\n";
    submit_queued(&fx, config).await;
    // Both Pods wait behind the gate, longer than their timeout.
    eventually(Duration::from_secs(30), "both Pods gated", async || {
        let mut n = 0;
        for c in ["quick", "slow"] {
            let p = fx.pods().get_opt(&format!("r-{c}-1")).await.ok()??;
            assert_eq!(
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(QUEUE_LABEL))
                    .map(String::as_str),
                Some("team-queue")
            );
            n += usize::from(gated(&p));
        }
        (n == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = fx.runs().get("r").await.unwrap();
    assert!(!common::is_done(&r), "{r:#?}");
    let quick = fx.category("r", "quick").await.status.unwrap();
    assert!(
        quick.attempts.first().is_some_and(|a| a.gated) && quick.phase == Some(Phase::Running),
        "{quick:#?}"
    );
    assert!(
        !fx.kubelet()
            .events()
            .iter()
            .any(|e| e.pod.starts_with("r-") && e.kind == KubeletEventKind::Bound),
        "a gated Pod was bound"
    );

    // Admitted: the gate goes, as Kueue removes it.
    for c in ["quick", "slow"] {
        fx.pods()
            .patch(
                &format!("r-{c}-1"),
                &PatchParams::default(),
                &Patch::Json::<()>(
                    serde_json::from_value(
                        json!([{"op": "remove", "path": "/spec/schedulingGates"}]),
                    )
                    .unwrap(),
                ),
            )
            .await
            .unwrap();
    }
    let r = fx.wait_done("r", Duration::from_secs(60)).await;
    let phases = category_phases(&r);
    // The quick one passed; the slow one's timeout ran from its admission.
    assert_eq!(phases.get("quick"), Some(&Phase::Succeeded), "{r:#?}");
    assert_eq!(phases.get("slow"), Some(&Phase::TimedOut), "{r:#?}");
    assert_eq!(phase(&r), Some(LayerPhase::Failed));
    let quick = fx.category("r", "quick").await.status.unwrap();
    let a = &quick.attempts[0];
    assert!(!a.gated && a.admitted_time.is_some(), "{a:#?}");
    let slow = fx.category("r", "slow").await.status.unwrap();
    let a = &slow.attempts[0];
    let ran = span(&a.admitted_time, &a.completion_time);
    let created_to_end = span(&a.start_time, &a.completion_time);
    assert!(
        created_to_end.as_secs_f64() >= 5.0 && ran.as_secs_f64() < 5.0,
        "the timeout counted the gated time: created to end {created_to_end:?}, admitted to end {ran:?}"
    );
}

/// A ResourceFlavor, a ClusterQueue with quota for one Pod of 1 CPU, and
/// LocalQueue `team-queue` in `ns` pointing at it.
fn queues(ns: &str) -> String {
    format!(
        r#"apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata:
  name: flavor-{ns}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata:
  name: cq-{ns}
spec:
  namespaceSelector: {{}}
  resourceGroups:
    - coveredResources: [cpu, memory]
      flavors:
        - name: flavor-{ns}
          resources:
            - name: cpu
              nominalQuota: "1"
            - name: memory
              nominalQuota: 4Gi
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata:
  name: team-queue
  namespace: {ns}
spec:
  clusterQueue: cq-{ns}
"#
    )
}

/// The interval each Pod ran, from the kubelet's record.
fn ran(fx: &Fixture, pod: &str) -> Option<(std::time::Instant, std::time::Instant)> {
    let events = fx.kubelet().events();
    let at = |k: &dyn Fn(&KubeletEventKind) -> bool| {
        events
            .iter()
            .find(|e| e.pod == pod && k(&e.kind))
            .map(|e| e.at)
    };
    Some((
        at(&|k| *k == KubeletEventKind::Running)?,
        at(&|k| matches!(k, KubeletEventKind::Terminated(_)))?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kueue_admits_a_run_s_pods_within_its_quota_and_the_wait_is_not_timed() {
    let fx = Fixture::new("kueue-real").await;
    let cp = fx.cp;
    tokio::task::spawn_blocking(move || {
        testlayer_testkit::Kueue::shared(cp);
    })
    .await
    .expect("starting Kueue");
    // Kueue manages the Pods of this namespace only.
    let out = fx
        .cp
        .kubectl()
        .args(["label", "namespace", &fx.ns])
        .arg(format!(
            "{}=true",
            testlayer_testkit::kueue::NAMESPACE_LABEL
        ))
        .output()
        .expect("kubectl label");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Kueue's webhook validates the queues: applied once it serves.
    kubectl_apply(&fx, &queues(&fx.ns));

    // Two categories of 1 CPU each, at once; the quota fits one. Each runs
    // 3 s with a 5 s timeout: the second waits behind Kueue's gate for the
    // first (3 s and more), which, counted, would time it out.
    let config = "layers:\n  queued:\n    execution_mode: parallel\n    categories:\n      - name: first\n        timeout_seconds: 5\n        command: \"sleep 3\"\n        resources: {requests: {cpu: \"1\", memory: 64Mi}, limits: {cpu: \"1\", memory: 64Mi}}\n      - name: second\n        timeout_seconds: 5\n        command: \"sleep 3\"\n        resources: {requests: {cpu: \"1\", memory: 64Mi}, limits: {cpu: \"1\", memory: 64Mi}}\n";
    submit_queued(&fx, config).await;
    // Both Pods were created gated by Kueue's webhook; one is admitted.
    eventually(
        Duration::from_secs(60),
        "one Pod admitted by Kueue and one still gated",
        async || {
            let mut states = Vec::new();
            for c in ["first", "second"] {
                let p = fx.pods().get_opt(&format!("r-{c}-1")).await.ok()??;
                let labels = p.metadata.labels.clone().unwrap_or_default();
                assert_eq!(
                    labels.get(QUEUE_LABEL).map(String::as_str),
                    Some("team-queue")
                );
                assert_eq!(
                    labels.get("kueue.x-k8s.io/managed").map(String::as_str),
                    Some("true"),
                    "Kueue's webhook did not take the Pod: {p:#?}"
                );
                states.push(gated(&p));
            }
            (states.iter().filter(|g| **g).count() == 1).then_some(())
        },
    )
    .await;

    let r = fx.wait_done("r", Duration::from_secs(120)).await;
    let phases = category_phases(&r);
    assert_eq!(phases.get("first"), Some(&Phase::Succeeded), "{r:#?}");
    assert_eq!(phases.get("second"), Some(&Phase::Succeeded), "{r:#?}");
    assert_eq!(phase(&r), Some(LayerPhase::Succeeded));

    // Kueue let one run at a time: the runs did not overlap.
    let a = ran(&fx, "r-first-1").expect("first ran");
    let b = ran(&fx, "r-second-1").expect("second ran");
    let (early, late) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    assert!(
        early.1 <= late.0,
        "both Pods ran at once, past the queue's quota: {a:?} {b:?}"
    );
    // The later one was gated longer than its timeout left it, yet passed:
    // its timeout ran from its admission.
    let later = if a.0 <= b.0 { "second" } else { "first" };
    let s = fx.category("r", later).await.status.unwrap();
    let at = &s.attempts[0];
    let created_to_end = span(&at.start_time, &at.completion_time);
    assert!(
        at.admitted_time.is_some() && created_to_end.as_secs_f64() > 5.0,
        "the later Pod waited {created_to_end:?} from creation to its end: {at:#?}"
    );
    // Kueue kept its own record: a Workload per Pod, both finished.
    let out = fx
        .cp
        .kubectl()
        .args([
            "get",
            "workloads.kueue.x-k8s.io",
            "-n",
            &fx.ns,
            "-o",
            "json",
        ])
        .output()
        .expect("kubectl get workloads");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("workload list");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{list:#}");
    for w in &items {
        let finished = w["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Finished" && c["status"] == "True");
        assert!(finished, "{w:#}");
    }
}
