//! A run in a Kueue queue (`pod.queueName`), against the real control
//! plane, with Kueue's plain-Pod integration played the way its docs
//! describe it: a Pod labelled `kueue.x-k8s.io/queue-name` is created behind
//! the scheduling gate `kueue.x-k8s.io/admission` (here by a
//! MutatingAdmissionPolicy standing in for Kueue's webhook), nothing binds
//! it while gated (the test kubelet, as the scheduler), and admission
//! removes the gate (here the test). Kueue itself is not run.

mod common;

use std::io::Write as _;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
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

fn gated(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.name == GATE))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_behind_a_queue_s_gate_does_not_count_against_the_timeout() {
    let fx = Fixture::new("kueue").await;
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
        .write_all(gate_policy(&fx.ns).as_bytes())
        .expect("write the policy");
    let out = apply.wait_with_output().expect("kubectl apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    fx.submit(
        "r",
        "queued",
        config,
        json!({"pod": {"queueName": "team-queue"}}),
    )
    .await;
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
    let ran = a
        .completion_time
        .as_ref()
        .unwrap()
        .0
        .duration_since(a.admitted_time.as_ref().unwrap().0);
    let created_to_end = a
        .completion_time
        .as_ref()
        .unwrap()
        .0
        .duration_since(a.start_time.as_ref().unwrap().0);
    assert!(
        created_to_end.as_secs_f64() >= 5.0 && ran.as_secs_f64() < 5.0,
        "the timeout counted the gated time: created to end {created_to_end:?}, admitted to end {ran:?}"
    );
}
