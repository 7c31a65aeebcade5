//! The operator end to end against the real control plane, with the test
//! kubelet playing the nodes: every behaviour of DESIGN.md's "Behaviour the
//! controller guarantees".

mod common;

use std::cell::Cell;
use std::time::{Duration, Instant};

use common::{Fixture, category_phases, eventually, http_get, peak_running, phase, wait_ready};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testlayer::api::LayerPhase;
use testlayer::controller::LeaderElection;
use testlayer::plan::Phase;
use testlayer_testkit::kubelet::{KubeletEvent, KubeletEventKind};

fn first(events: &[KubeletEvent], pod_prefix: &str, kind: KubeletEventKind) -> Instant {
    events
        .iter()
        .find(|e| e.pod.starts_with(pod_prefix) && e.kind == kind)
        .map(|e| e.at)
        .unwrap_or_else(|| panic!("no {kind:?} for {pod_prefix}: {events:#?}"))
}

const CHAIN: &str = r#"
layers:
  chain:
    name: "Chain"
    execution_mode: "parallel"
    categories:
      - name: "smoke"
        timeout_seconds: 30
        command: "echo '2 passed in 0.1s'; sleep 0.5"
      - name: "unit"
        timeout_seconds: 30
        dependencies: ["smoke"]
        command: "echo '5 passed, 1 skipped in 0.3s'; sleep 0.3"
      - name: "API Tests"
        timeout_seconds: 30
        dependencies: ["smoke"]
        command: "echo 'test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s'"
      - name: "e2e"
        timeout_seconds: 30
        dependencies: ["unit", "API Tests"]
        command: "echo '1 passed in 1.0s'"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_passes_in_dependency_order_with_counts() {
    let fx = Fixture::new("op-chain").await;
    fx.submit("chain", "chain", CHAIN, json!({})).await;
    let done = fx.wait_done("chain", Duration::from_secs(60)).await;
    let st = done.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Succeeded), "{st:#?}");
    assert_eq!(st.progress.as_deref(), Some("4/4"));
    let counts = st.counts.unwrap();
    assert_eq!((counts.passed, counts.failed, counts.skipped), (11, 0, 1));
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Succeeded" && c.status == "True")
    );
    assert!(st.start_time.is_some() && st.completion_time.is_some() && st.duration.is_some());

    let ev = fx.kubelet().events();
    assert!(
        first(&ev, "chain-unit-", KubeletEventKind::Running)
            > first(&ev, "chain-smoke-", KubeletEventKind::Terminated(0))
    );
    assert!(
        first(&ev, "chain-api-tests-", KubeletEventKind::Running)
            > first(&ev, "chain-smoke-", KubeletEventKind::Terminated(0))
    );
    assert!(
        first(&ev, "chain-e2e-", KubeletEventKind::Running)
            > first(&ev, "chain-unit-", KubeletEventKind::Terminated(0))
    );
    assert!(
        first(&ev, "chain-e2e-", KubeletEventKind::Running)
            > first(&ev, "chain-api-tests-", KubeletEventKind::Terminated(0))
    );

    let api = fx.category("chain", "api-tests").await;
    let cst = api.status.unwrap();
    assert_eq!(cst.phase, Some(Phase::Succeeded));
    assert_eq!(cst.counts.map(|c| c.passed), Some(3));
    assert_eq!(cst.attempts.len(), 1);
    assert_eq!(cst.attempts[0].exit_code, Some(0));
    assert!(cst.log_tail.unwrap().contains("test result: ok."));

    // kubectl wait works on the condition.
    let out = fx
        .cp
        .kubectl()
        .args([
            "wait",
            "--for=condition=Succeeded",
            "-n",
            &fx.ns,
            "tlr/chain",
            "--timeout=5s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const FAILING: &str = r#"
layers:
  failing:
    name: "Failing"
    execution_mode: "parallel"
    categories:
      - name: "flaky"
        timeout_seconds: 30
        retries: 2
        retry_backoff_seconds: 0.2
        command: "echo '1 failed in 0.1s'; exit 1"
      - name: "after"
        timeout_seconds: 30
        dependencies: ["flaky"]
        command: "true"
      - name: "memory"
        timeout_seconds: 30
        command: "oom"
      - name: "evicted"
        timeout_seconds: 30
        infra_retries: 1
        retry_backoff_seconds: 0.2
        command: "evict"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_skip_dependents_and_name_their_reasons() {
    let fx = Fixture::new("op-fail").await;
    fx.submit("failing", "failing", FAILING, json!({})).await;
    let done = fx.wait_done("failing", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Failed));
    let phases = category_phases(&done);
    assert_eq!(phases["flaky"], Phase::Failed);
    assert_eq!(phases["after"], Phase::Skipped);
    assert_eq!(phases["memory"], Phase::Failed);
    assert_eq!(phases["evicted"], Phase::Failed);

    let flaky = fx.category("failing", "flaky").await.status.unwrap();
    assert_eq!(flaky.attempts.len(), 3, "two retries: {flaky:#?}");
    assert!(flaky.attempts.iter().all(|a| a.exit_code == Some(1)
        && a.reason.as_ref().map(ToString::to_string).as_deref() == Some("ExitCode1")
        && !a.infrastructure));
    assert_eq!(
        flaky.reason.as_ref().map(ToString::to_string).as_deref(),
        Some("TestsFailed")
    );
    assert_eq!(flaky.counts.map(|c| c.failed), Some(1));
    let after = fx.category("failing", "after").await.status.unwrap();
    assert_eq!(
        (
            after.reason.as_ref().map(ToString::to_string).as_deref(),
            after.caused_by.as_deref()
        ),
        (Some("DependencyFailed"), Some("flaky"))
    );
    assert!(after.attempts.is_empty());
    let memory = fx.category("failing", "memory").await.status.unwrap();
    assert_eq!(
        memory.attempts[0]
            .reason
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("OOMKilled")
    );
    assert_eq!(memory.attempts[0].exit_code, Some(137));
    let evicted = fx.category("failing", "evicted").await.status.unwrap();
    assert_eq!(
        evicted.attempts.len(),
        2,
        "one infrastructure retry: {evicted:#?}"
    );
    assert!(evicted.attempts.iter().all(|a| a.infrastructure
        && a.reason.as_ref().map(ToString::to_string).as_deref() == Some("Evicted")));
    assert_eq!(
        evicted.reason.as_ref().map(ToString::to_string).as_deref(),
        Some("InfrastructureFailed")
    );
    // No Pod was created for the skipped category.
    let pods = fx
        .pods()
        .list(&ListParams::default().labels("testlayer.dev/category=after"))
        .await
        .unwrap();
    assert!(pods.items.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parallel_limit_is_never_exceeded() {
    let fx = Fixture::new("op-limit").await;
    let mut config = String::from(
        "layers:\n  wide:\n    execution_mode: parallel\n    resource_limits: {max_parallel_instances: 3}\n    categories:\n",
    );
    for i in 0..9 {
        config.push_str(&format!(
            "      - name: c{i}\n        timeout_seconds: 30\n        command: \"sleep 0.6\"\n"
        ));
    }
    fx.submit("wide", "wide", &config, json!({})).await;
    let done = fx.wait_done("wide", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));
    let ev = fx.kubelet().events();
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind == KubeletEventKind::Running)
            .count(),
        9
    );
    let peak = peak_running(&ev, "");
    assert!(peak <= 3, "peak {peak} above the limit of 3");
    assert!(peak >= 2, "the limit should be used: peak {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_stop_pods_and_cancel_stops_everything() {
    let fx = Fixture::new("op-stop").await;
    let config = "layers:\n  slow:\n    execution_mode: parallel\n    categories:\n      - name: hang\n        timeout_seconds: 1\n        command: \"sleep infinity\"\n      - name: quick\n        timeout_seconds: 30\n        command: \"true\"\n";
    fx.submit("slow", "slow", config, json!({})).await;
    let done = fx.wait_done("slow", Duration::from_secs(30)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Failed));
    assert_eq!(category_phases(&done)["hang"], Phase::TimedOut);
    let hang = fx.category("slow", "hang").await.status.unwrap();
    assert_eq!(
        hang.reason.as_ref().map(ToString::to_string).as_deref(),
        Some("DeadlineExceeded")
    );
    assert_eq!(
        hang.attempts[0].stop.as_ref().and_then(|s| s.phase),
        Some(Phase::TimedOut)
    );

    // Cancel: everything running stops, nothing is left behind.
    let config = "layers:\n  long:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 300\n        command: \"sleep infinity\"\n      - name: b\n        timeout_seconds: 300\n        command: \"sleep infinity\"\n      - name: c\n        timeout_seconds: 300\n        dependencies: [a]\n        command: \"true\"\n";
    fx.submit("long", "long", config, json!({})).await;
    fx.wait_for(
        "long",
        Duration::from_secs(30),
        "two running categories",
        |r| {
            category_phases(r)
                .values()
                .filter(|p| **p == Phase::Running)
                .count()
                == 2
        },
    )
    .await;
    fx.runs()
        .patch(
            "long",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cancel": true}})),
        )
        .await
        .unwrap();
    let done = fx.wait_done("long", Duration::from_secs(30)).await;
    let details = fx.describe_category_runs("testlayer.dev/run=long").await;
    assert_eq!(phase(&done), Some(LayerPhase::Cancelled), "{details}");
    assert!(
        category_phases(&done)
            .values()
            .all(|p| *p == Phase::Cancelled),
        "{:?}\n{details}",
        category_phases(&done),
    );
    // Nothing runs on after the cancel; each stopped Pod is kept (ended
    // `DeadlineExceeded` by its kubelet, marked stopped), so its log can
    // still be read.
    eventually(
        Duration::from_secs(20),
        "every pod stopped and kept after cancel",
        async || {
            let pods = fx
                .pods()
                .list(&ListParams::default().labels("testlayer.dev/run=long"))
                .await
                .map_err(|e| e.to_string())?
                .items;
            let seen: Vec<(String, Option<String>, Option<String>, bool)> = pods
                .iter()
                .map(|p| {
                    let st = p.status.clone().unwrap_or_default();
                    let marked = p
                        .annotations()
                        .contains_key(testlayer::api::names::ANNOTATION_STOPPED_AT);
                    (p.name_any(), st.phase, st.reason, marked)
                })
                .collect();
            let stopped =
                |(_, phase, reason, marked): &(_, Option<String>, Option<String>, bool)| {
                    phase.as_deref() == Some("Failed")
                        && reason.as_deref() == Some("DeadlineExceeded")
                        && *marked
                };
            if seen.len() == 2 && seen.iter().all(stopped) {
                Ok(())
            } else {
                Err(format!("pods {seen:?}"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_a_clear_condition_and_creates_nothing() {
    let fx = Fixture::new("op-invalid").await;
    let config = "layers:\n  bad:\n    categories:\n      - name: a\n        timeout_seconds: 10\n        dependencies: [b]\n      - name: b\n        timeout_seconds: 10\n        dependencies: [a]\n";
    fx.submit("bad", "bad", config, json!({"command": "true"}))
        .await;
    let done = fx.wait_done("bad", Duration::from_secs(20)).await;
    let st = done.status.unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    let stalled = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidConfig")
    );
    assert!(
        stalled.message.contains("dependency cycle"),
        "{}",
        stalled.message
    );
    assert!(
        fx.crs()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        fx.pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // An unknown layer too.
    fx.submit("nolayer", "missing", CHAIN, json!({})).await;
    let done = fx.wait_done("nolayer", Duration::from_secs(20)).await;
    assert!(done.status.unwrap().message.unwrap().contains("missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_restart_loses_nothing_and_starts_nothing_twice() {
    let mut fx = Fixture::new("op-restart").await;
    let mut config = String::from(
        "layers:\n  steady:\n    execution_mode: parallel\n    resource_limits: {max_parallel_instances: 2}\n    categories:\n",
    );
    for i in 0..6 {
        config.push_str(&format!("      - name: c{i}\n        timeout_seconds: 60\n        command: \"echo '1 passed in 0.1s'; sleep 0.8\"\n"));
    }
    fx.submit("steady", "steady", &config, json!({})).await;
    fx.wait_for(
        "steady",
        Duration::from_secs(30),
        "a first category to finish",
        |r| category_phases(r).values().any(|p| *p == Phase::Succeeded),
    )
    .await;
    fx.restart_controller(Duration::from_millis(1500)).await;
    let done = fx.wait_done("steady", Duration::from_secs(60)).await;
    assert_eq!(
        phase(&done),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        done.status
    );
    let ev = fx.kubelet().events();
    let running: Vec<&str> = ev
        .iter()
        .filter(|e| e.kind == KubeletEventKind::Running)
        .map(|e| e.pod.as_str())
        .collect();
    assert_eq!(
        running.len(),
        6,
        "each category started exactly once: {running:?}"
    );
    assert_eq!(done.status.unwrap().counts.map(|c| c.passed), Some(6));
    assert!(peak_running(&ev, "") <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_cancels_what_runs_and_waits() {
    let fx = Fixture::new("op-failfast").await;
    let config = "layers:\n  ff:\n    execution_mode: parallel\n    fail_fast: true\n    resource_limits: {max_parallel_instances: 2}\n    categories:\n      - name: bad\n        timeout_seconds: 30\n        command: \"sleep 0.3; exit 2\"\n      - name: long\n        timeout_seconds: 30\n        command: \"sleep infinity\"\n      - name: later\n        timeout_seconds: 30\n        command: \"true\"\n";
    fx.submit("ff", "ff", config, json!({})).await;
    let done = fx.wait_done("ff", Duration::from_secs(30)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Failed));
    let phases = category_phases(&done);
    assert_eq!(
        (phases["bad"], phases["long"], phases["later"]),
        (Phase::Failed, Phase::Cancelled, Phase::Cancelled)
    );
    let long = fx.category("ff", "long").await.status.unwrap();
    assert_eq!(
        (
            long.reason.as_ref().map(ToString::to_string).as_deref(),
            long.caused_by.as_deref()
        ),
        (Some("FailFast"), Some("bad"))
    );
    assert!(
        fx.category("ff", "later")
            .await
            .status
            .unwrap()
            .attempts
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_deadline_times_out_what_runs() {
    let fx = Fixture::new("op-deadline").await;
    // 0.05 minutes: a 3 second deadline.
    let config = "layers:\n  dl:\n    execution_mode: sequential\n    max_duration_minutes: 0.05\n    categories:\n      - name: slow\n        timeout_seconds: 60\n        command: \"sleep infinity\"\n      - name: next\n        timeout_seconds: 60\n        command: \"true\"\n";
    let started = Instant::now();
    fx.submit("dl", "dl", config, json!({})).await;
    let done = fx.wait_done("dl", Duration::from_secs(30)).await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:#?} after {:?}",
        done.status,
        started.elapsed()
    );
    assert_eq!(phase(&done), Some(LayerPhase::TimedOut));
    let phases = category_phases(&done);
    assert_eq!(
        (phases["slow"], phases["next"]),
        (Phase::TimedOut, Phase::Cancelled)
    );
    assert_eq!(
        fx.category("dl", "slow")
            .await
            .status
            .unwrap()
            .reason
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("LayerDeadlineExceeded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_budget_limits_admission() {
    let fx = Fixture::new("op-budget").await;
    // Each category takes 1 CPU of a 2 CPU budget: at most two at once, no slot limit.
    let mut config = String::from(
        "layers:\n  budget:\n    execution_mode: parallel\n    strategy: PARALLEL_UNLIMITED\n    resource_limits: {cpu: \"2\"}\n    categories:\n",
    );
    for i in 0..6 {
        config.push_str(&format!("      - name: c{i}\n        timeout_seconds: 30\n        command: \"sleep 0.5\"\n        resources: {{limits: {{cpu: \"1\"}}}}\n"));
    }
    fx.submit("budget", "budget", &config, json!({})).await;
    let done = fx.wait_done("budget", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));
    let peak = peak_running(&fx.kubelet().events(), "");
    assert!((1..=2).contains(&peak), "peak {peak} with a budget for 2");
    let pod = fx.pods().get("budget-c0-1").await.unwrap();
    let limits = pod.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["cpu"].0, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_pods_and_resume_finishes_the_run() {
    let fx = Fixture::new("op-suspend").await;
    let config = "layers:\n  sus:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 60\n        command: \"sleep 2\"\n      - name: b\n        timeout_seconds: 60\n        dependencies: [a]\n        command: \"true\"\n";
    fx.submit("sus", "sus", config, json!({})).await;
    fx.wait_for("sus", Duration::from_secs(20), "a running", |r| {
        category_phases(r).get("a") == Some(&Phase::Running)
    })
    .await;
    fx.runs()
        .patch(
            "sus",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "suspend to stop the running pod",
        async || {
            let pods = fx
                .pods()
                .list(&ListParams::default().labels("testlayer.dev/run=sus"))
                .await
                .unwrap();
            // Stopped: kept and marked (its kubelet ends it), or deleted
            // when it had not started yet.
            let live: Vec<String> = pods
                .items
                .iter()
                .filter(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && !p
                            .annotations()
                            .contains_key(testlayer::api::names::ANNOTATION_STOPPED_AT)
                })
                .map(|p| p.name_any())
                .collect();
            if live.is_empty() {
                Ok(())
            } else {
                Err(format!("pods not stopped: {live:?}"))
            }
        },
    )
    .await;
    let suspended = fx
        .wait_for(
            "sus",
            Duration::from_secs(20),
            "the suspended message",
            |r| {
                r.status
                    .as_ref()
                    .and_then(|s| s.message.as_deref())
                    .is_some_and(|m| m.starts_with("suspended"))
            },
        )
        .await;
    assert!(!phase(&suspended).unwrap().is_terminal());
    fx.runs()
        .patch(
            "sus",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    let done = fx.wait_done("sus", Duration::from_secs(30)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));
    let a = fx.category("sus", "a").await.status.unwrap();
    assert_eq!(
        a.attempts.len(),
        2,
        "the interrupted attempt and the one after resume: {a:#?}"
    );
    assert_eq!(
        a.attempts[0]
            .stop
            .as_ref()
            .map(|s| s.reason.to_string())
            .as_deref(),
        Some("Interrupted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_run_leaves_no_pods_behind() {
    let fx = Fixture::new("op-delete").await;
    let config = "layers:\n  del:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 300\n        command: \"sleep infinity\"\n      - name: b\n        timeout_seconds: 300\n        command: \"sleep infinity\"\n";
    fx.submit("del", "del", config, json!({})).await;
    fx.wait_for("del", Duration::from_secs(20), "both running", |r| {
        category_phases(r).values().all(|p| *p == Phase::Running)
    })
    .await;
    fx.runs().delete("del", &Default::default()).await.unwrap();
    eventually(
        Duration::from_secs(60),
        "the run, its category runs and its pods to go",
        async || {
            let pods = fx
                .pods()
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len();
            let crs = fx
                .crs()
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len();
            let run = fx.runs().get_opt("del").await.unwrap();
            if pods == 0 && crs == 0 && run.is_none() {
                return Ok(());
            }
            Err(format!(
                "left behind: {pods} pods, {crs} category runs, run {:?}",
                run.map(|r| r.name_any())
            ))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_wait_for_layer_dependencies_and_config_maps() {
    let fx = Fixture::new("op-deps").await;
    let config = "layers:\n  base:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"sleep 1\"\n  top:\n    execution_mode: sequential\n    dependencies: [base]\n    categories:\n      - name: b\n        timeout_seconds: 30\n        command: \"true\"\n";
    // The config comes from a ConfigMap that appears after the run.
    fx.submit(
        "top",
        "top",
        config,
        json!({"config": {"configMapRef": {"name": "layers"}}}),
    )
    .await;
    let waiting = fx
        .wait_for(
            "top",
            Duration::from_secs(20),
            "the missing config map",
            |r| {
                r.status
                    .as_ref()
                    .and_then(|s| s.message.as_deref())
                    .is_some_and(|m| m.contains("ConfigMap layers not found"))
            },
        )
        .await;
    assert!(
        waiting
            .status
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    );
    fx.layer_config_map("layers", config).await;
    let waiting = fx
        .wait_for(
            "top",
            Duration::from_secs(30),
            "waiting for layer base",
            |r| {
                r.status
                    .as_ref()
                    .and_then(|s| s.message.as_deref())
                    .is_some_and(|m| m.contains("waiting for layer base"))
            },
        )
        .await;
    assert_eq!(phase(&waiting), Some(LayerPhase::Pending));
    fx.submit("base", "base", config, json!({})).await;
    let base = fx.wait_done("base", Duration::from_secs(30)).await;
    let top = fx.wait_done("top", Duration::from_secs(30)).await;
    assert_eq!(
        (phase(&base), phase(&top)),
        (Some(LayerPhase::Succeeded), Some(LayerPhase::Succeeded))
    );
    let base_end = base.status.unwrap().completion_time.unwrap();
    let top_start = top.status.unwrap().start_time.unwrap();
    assert!(
        top_start >= base_end,
        "top started at {top_start:?} before base ended at {base_end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_services_gate_the_start_with_a_bound() {
    let fx = Fixture::new("op-svc").await;
    let config = "layers:\n  svc:\n    execution_mode: sequential\n    required_services: [backend_service]\n    service_wait_seconds: 60\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"true\"\n  nosvc:\n    execution_mode: sequential\n    required_services: [postgresql]\n    service_wait_seconds: 2\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"true\"\n";
    fx.submit("svc", "svc", config, json!({})).await;
    fx.wait_for(
        "svc",
        Duration::from_secs(20),
        "waiting for the service",
        |r| {
            r.status
                .as_ref()
                .and_then(|s| s.message.as_deref())
                .is_some_and(|m| m.contains("backend_service"))
        },
    )
    .await;
    assert!(
        fx.pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A Service with a ready Pod behind it (the endpoint controllers fill in the slices).
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "backend-service"},
        "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    fx.api::<Service>()
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let backend: Pod = serde_json::from_value(json!({
        "metadata": {"name": "backend", "labels": {"app": "backend"}},
        "spec": {"containers": [{"name": "app", "image": "backend", "command": ["/bin/sh", "-c", "sleep infinity"]}]}
    }))
    .unwrap();
    fx.pods()
        .create(&PostParams::default(), &backend)
        .await
        .unwrap();
    let done = fx.wait_done("svc", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));

    fx.submit("nosvc", "nosvc", config, json!({})).await;
    let done = fx.wait_done("nosvc", Duration::from_secs(30)).await;
    let st = done.status.unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "ServicesNotReady"),
        "{:#?}",
        st.conditions
    );
    assert!(st.message.unwrap().contains("postgresql"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_spec_starts_the_run_over_and_finished_runs_are_cleaned_up() {
    let fx = Fixture::new("op-rerun").await;
    let config = "layers:\n  one:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"exit 1\"\n";
    fx.submit("gitops", "one", config, json!({})).await;
    let first = fx.wait_done("gitops", Duration::from_secs(30)).await;
    assert_eq!(phase(&first), Some(LayerPhase::Failed));
    // GitOps pushes a fixed command: the run starts over.
    fx.runs()
        .patch(
            "gitops",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"command": "true", "image": "busybox:2"}})),
        )
        .await
        .unwrap();
    let fixed = config.replace("command: \"exit 1\"", "command: \"true\"");
    fx.runs()
        .patch(
            "gitops",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"config": {"inline": fixed}}})),
        )
        .await
        .unwrap();
    let second = fx
        .wait_for(
            "gitops",
            Duration::from_secs(30),
            "the second run to pass",
            |r| phase(r) == Some(LayerPhase::Succeeded),
        )
        .await;
    assert_eq!(
        second.status.unwrap().observed_generation,
        second.metadata.generation
    );

    // Cleanup after a configurable time.
    fx.submit(
        "short",
        "one",
        &fixed,
        json!({"ttlSecondsAfterFinished": 2}),
    )
    .await;
    let saw_done = Cell::new(false);
    eventually(
        Duration::from_secs(30),
        "the finished run to be cleaned up",
        async || match fx.runs().get_opt("short").await.unwrap() {
            None => Ok(()),
            Some(r) => {
                saw_done.set(saw_done.get() || phase(&r) == Some(LayerPhase::Succeeded));
                Err(format!("still there: {:#?}", r.status))
            }
        },
    )
    .await;
    assert!(
        saw_done.get(),
        "the run was deleted without being seen finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_under_leader_election_act_once_and_fail_over() {
    let mut fx = Fixture::new("op-leader").await;
    fx.stop_controller();
    let replica = |identity: &str| {
        let mut opts = fx.controller_options();
        opts.identity = identity.to_string();
        opts.leader_election = Some(LeaderElection {
            namespace: fx.ns.clone(),
            lease_name: "testlayer-controller".into(),
            lease_seconds: 4,
            grace_seconds: 1,
        });
        // A replica that loses the Lease stops with an error: that is expected.
        fx.spawn_controller(opts)
    };
    let leases: Api<Lease> = fx.api();
    let holder_is = async |identity: &str| {
        let holder = leases
            .get_opt("testlayer-controller")
            .await
            .unwrap()
            .and_then(|l| l.spec.and_then(|s| s.holder_identity));
        if holder.as_deref() == Some(identity) {
            Ok(())
        } else {
            Err(format!("the Lease is held by {holder:?}"))
        }
    };
    let a = replica("replica-a").await;
    eventually(
        Duration::from_secs(20),
        "replica-a to take the lease",
        async || holder_is("replica-a").await,
    )
    .await;
    // The standby is Ready (it serves and can take over) while it does not lead.
    let standby_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = {
        let mut opts = fx.controller_options();
        opts.identity = "replica-b".into();
        opts.listen = format!("127.0.0.1:{standby_port}").parse().unwrap();
        opts.leader_election = Some(LeaderElection {
            namespace: fx.ns.clone(),
            lease_name: "testlayer-controller".into(),
            lease_seconds: 4,
            grace_seconds: 1,
        });
        fx.spawn_controller(opts).await
    };
    wait_ready(standby_port, "the standby replica to be ready").await;
    holder_is("replica-a").await.unwrap();

    let mut config = String::from(
        "layers:\n  pair:\n    execution_mode: parallel\n    resource_limits: {max_parallel_instances: 2}\n    categories:\n",
    );
    for i in 0..6 {
        config.push_str(&format!(
            "      - name: c{i}\n        timeout_seconds: 30\n        command: \"sleep 0.3\"\n"
        ));
    }
    fx.submit("first", "pair", &config, json!({})).await;
    let done = fx.wait_done("first", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));
    let bound: Vec<String> = fx
        .kubelet()
        .events()
        .iter()
        .filter(|e| e.kind == KubeletEventKind::Bound)
        .map(|e| e.pod.clone())
        .collect();
    let unique: std::collections::BTreeSet<&String> = bound.iter().collect();
    assert_eq!(
        (bound.len(), unique.len()),
        (6, 6),
        "each pod created once: {bound:?}"
    );
    let reporters = || async {
        let evs: Api<Event> = fx.api();
        evs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| Some((e.regarding?.name?, e.reporting_instance?)))
            .collect::<Vec<(String, String)>>()
    };
    let seen = reporters().await;
    assert!(
        seen.iter().any(|(n, _)| n == "first"),
        "the run published events: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, r)| r == "replica-a"),
        "only the leader acts: {seen:?}"
    );

    // The leader goes away: the other replica takes over and runs the next one.
    a.abort();
    eventually(
        Duration::from_secs(30),
        "replica-b to take over",
        async || holder_is("replica-b").await,
    )
    .await;
    fx.submit("second", "pair", &config, json!({})).await;
    let done = fx.wait_done("second", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));
    let seen = reporters().await;
    assert!(
        seen.iter()
            .filter(|(n, _)| n == "second")
            .all(|(_, r)| r == "replica-b"),
        "{seen:?}"
    );
    b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_are_served() {
    let mut fx = Fixture::new("op-metrics").await;
    fx.stop_controller();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = fx.controller_options();
    opts.listen = format!("127.0.0.1:{port}").parse().unwrap();
    opts.identity = "metrics".into();
    fx.start_controller_with(opts).await;
    wait_ready(port, "/readyz to answer 200").await;
    fx.submit("m", "chain", CHAIN, json!({})).await;
    fx.wait_done("m", Duration::from_secs(60)).await;
    let health = tokio::task::spawn_blocking(move || http_get(port, "/healthz"))
        .await
        .unwrap();
    assert_eq!(health, (200, "ok\n".to_string()));
    let layer = format!("namespace=\"{}\",layer=\"chain\"", fx.ns);
    let needles = [
        "testlayer_reconciles_total".to_string(),
        "testlayer_pods_created_total 4".into(),
        "testlayer_pod_start_latency_seconds_bucket".into(),
        "testlayer_reconcile_duration_seconds_count".into(),
        "testlayer_categories{phase=\"Succeeded\"}".into(),
        "testlayer_leader 1".into(),
        // What the run came to, once, by namespace and layer.
        format!("testlayer_runs_finished_total{{{layer},outcome=\"Succeeded\"}} 1"),
        format!("testlayer_run_duration_seconds_count{{{layer},outcome=\"Succeeded\"}} 1"),
        format!("testlayer_categories_finished_total{{{layer},outcome=\"Succeeded\"}} 4"),
        format!("testlayer_category_duration_seconds_count{{{layer},category=\"smoke\"}} 1"),
        format!("testlayer_tests_total{{{layer},result=\"passed\"}}"),
        // Kept from the runs' cache once a second.
        format!("testlayer_layer_failure_streak{{{layer}}} 0"),
    ];
    // The kept gauges follow within a second or two of the run's end.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, text) = tokio::task::spawn_blocking(move || http_get(port, "/metrics"))
            .await
            .unwrap();
        assert_eq!(code, 200);
        let missing: Vec<_> = needles
            .iter()
            .filter(|n| !text.contains(n.as_str()))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing:?} missing from:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_and_kubectl_wait_on_the_example() {
    let fx = Fixture::new("op-kubectl").await;
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/k8s/inline.yaml");
    let out = fx
        .cp
        .kubectl()
        .args(["apply", "-n", &fx.ns, "-f", file])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ns = fx.ns.clone();
    let cp = fx.cp;
    let out = tokio::task::spawn_blocking(move || {
        cp.kubectl()
            .args([
                "wait",
                "--for=condition=Succeeded",
                "-n",
                &ns,
                "tlr/smoke-then-unit",
                "--timeout=60s",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(
        fx.cp
            .kubectl()
            .args(["get", "tlr", "-n", &fx.ns])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        ["smoke-then-unit", "quick", "Succeeded", "2/2", "15", "0"],
        "{table}"
    );
    let pod = fx.pods().get("smoke-then-unit-unit-1").await.unwrap();
    let limits = pod.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(
        (limits["cpu"].0.as_str(), limits["memory"].0.as_str()),
        ("1", "512Mi")
    );
}

/// The polling helper itself: the value when it comes, and on timeout a
/// message with what was awaited and the state last seen.
#[tokio::test]
async fn eventually_returns_the_value_or_names_what_it_saw() {
    let mut looks = 0;
    let v = eventually(Duration::from_secs(5), "the third look", async || {
        looks += 1;
        (looks == 3).then_some(looks)
    })
    .await;
    assert_eq!(v, 3);
    let timed_out = tokio::spawn(async {
        eventually(
            Duration::from_millis(250),
            "a count of 10",
            async || -> Result<(), String> { Err("count 4".into()) },
        )
        .await
    })
    .await
    .unwrap_err();
    let message = timed_out
        .into_panic()
        .downcast::<String>()
        .map(|m| *m)
        .unwrap_or_default();
    assert!(
        message.contains("waiting for a count of 10") && message.contains("last seen:\ncount 4"),
        "{message}"
    );
}

/// `Succeeded` is `Unknown` while a run works and `False` only once it ended
/// without passing, so `kubectl wait --for=condition=Succeeded=False` waits
/// for a failure (the Tekton/Knative convention).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn succeeded_is_unknown_while_running_and_kubectl_wait_sees_a_failure() {
    let fx = Fixture::new("op-unknown").await;
    let config = "layers:\n  late:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"sleep 3; exit 1\"\n";
    fx.submit("late", "late", config, json!({})).await;
    let running = fx
        .wait_for("late", Duration::from_secs(20), "a running", |r| {
            category_phases(r).get("a") == Some(&Phase::Running)
        })
        .await;
    let succeeded = |r: &testlayer::api::TestLayerRun| {
        r.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Succeeded"))
            .map(|c| c.status.clone())
    };
    assert_eq!(succeeded(&running).as_deref(), Some("Unknown"));
    let (ns, cp) = (fx.ns.clone(), fx.cp);
    let out = tokio::task::spawn_blocking(move || {
        cp.kubectl()
            .args([
                "wait",
                "--for=condition=Succeeded=False",
                "-n",
                &ns,
                "tlr/late",
                "--timeout=60s",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = fx.runs().get("late").await.unwrap();
    assert_eq!(phase(&done), Some(LayerPhase::Failed));
    assert_eq!(succeeded(&done).as_deref(), Some("False"));
}

/// A run recorded by an older controller (its spec hash in an older format)
/// is neither started over nor left: after an upgrade it finishes as it was,
/// and a finished one stays finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_starts_no_run_over() {
    let mut fx = Fixture::new("op-upgrade").await;
    let config = "layers:\n  up:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"sleep 2\"\n      - name: b\n        timeout_seconds: 30\n        command: \"true\"\n";
    fx.submit("done", "up", config, json!({})).await;
    fx.wait_done("done", Duration::from_secs(30)).await;
    fx.submit("running", "up", config, json!({})).await;
    fx.wait_for("running", Duration::from_secs(20), "a running", |r| {
        category_phases(r).get("a") == Some(&Phase::Running)
    })
    .await;
    // The controller is replaced by one whose hash format differs: the
    // recorded hashes are of an older format, and the plans are as
    // controllers before the frozen plan recorded them (category names in
    // the status, no plan ConfigMap).
    fx.stop_controller();
    for name in ["done", "running"] {
        // Written as that controller wrote it: a server-side apply of the
        // whole status under the controller's field manager.
        let mut st = fx.runs().get(name).await.unwrap().status.unwrap();
        st.spec_hash = Some("0123456789abcdef".into());
        let plan = st.plan.as_mut().unwrap();
        (plan.category_count, plan.frozen) = (0, None);
        plan.categories = vec!["a".into(), "b".into()];
        let mut status = serde_json::to_value(&st).unwrap();
        for new_field in ["phases", "failedCategories"] {
            status.as_object_mut().unwrap().remove(new_field);
        }
        fx.runs()
            .patch_status(
                name,
                &PatchParams::apply(testlayer::controller::kit::context::FIELD_MANAGER).force(),
                &Patch::Apply(json!({"apiVersion": "testlayer.dev/v1alpha1",
                    "kind": "TestLayerRun", "status": status})),
            )
            .await
            .unwrap();
    }
    fx.start_controller().await;
    let running = fx.wait_done("running", Duration::from_secs(30)).await;
    assert_eq!(phase(&running), Some(LayerPhase::Succeeded));
    let a = fx.category("running", "a").await.status.unwrap();
    assert_eq!(a.attempts.len(), 1, "not started over: {a:#?}");
    let plan = running.status.clone().unwrap().plan.unwrap();
    assert!(
        plan.frozen.is_some() && plan.categories.is_empty(),
        "the running run's plan is frozen after the upgrade: {plan:#?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = fx.runs().get("done").await.unwrap();
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));
    assert!(
        done.status.unwrap().plan.is_some(),
        "the finished run kept its plan"
    );
    let pods = fx
        .pods()
        .list(&ListParams::default().labels("testlayer.dev/run=done"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2, "nothing ran again");
}

/// The wait for required services counts from when the run reached that gate
/// (its layer dependencies passed), not from its creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_wait_counts_from_the_gate() {
    let fx = Fixture::new("op-svcgate").await;
    let config = "layers:\n  base:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"sleep 6\"\n  top:\n    execution_mode: sequential\n    required_services: [postgresql]\n    service_wait_seconds: 4\n    categories:\n      - name: b\n        timeout_seconds: 30\n        command: \"true\"\n";
    fx.submit("base", "base", config, json!({})).await;
    fx.submit("top", "top", config, json!({"dependsOn": ["base"]}))
        .await;
    fx.wait_done("base", Duration::from_secs(30)).await;
    let gate = Instant::now();
    let done = fx.wait_done("top", Duration::from_secs(30)).await;
    let waited = gate.elapsed();
    let st = done.status.unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.reason == "ServicesNotReady"),
        "{:#?}",
        st.conditions
    );
    assert!(
        waited >= Duration::from_secs(3),
        "failed {waited:?} after its dependency passed: the 4 s wait counted from its creation"
    );
}

/// A dependency that has no run (never created, or deleted by its TTL before
/// the dependent saw it end) fails the dependent within its bound instead of
/// leaving it waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_dependency_fails_the_run_within_its_bound() {
    let fx = Fixture::new("op-nodep").await;
    let config = "layers:\n  top:\n    execution_mode: sequential\n    categories:\n      - name: b\n        timeout_seconds: 30\n        command: \"true\"\n";
    let started = Instant::now();
    fx.submit(
        "top",
        "top",
        config,
        json!({"dependsOn": ["gone"], "dependencyWaitSeconds": 3}),
    )
    .await;
    let done = fx.wait_done("top", Duration::from_secs(30)).await;
    assert!(started.elapsed() >= Duration::from_secs(3));
    let st = done.status.unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    let stalled = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "DependencyNotFound")
    );
    assert!(
        stalled.message.contains("TestLayerRun gone"),
        "{}",
        stalled.message
    );
    assert!(
        fx.pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_tail_come_from_the_end_of_a_long_log_that_is_not_utf8() {
    let fx = Fixture::new("op-biglog").await;
    // 40,000 lines of 41 bytes (1.6 MB) before the summary, and a line that
    // is not UTF-8 (Latin-1 "café").
    let config = "layers:\n  big:\n    execution_mode: parallel\n    categories:\n      - name: noisy\n        timeout_seconds: 60\n        command: \"yes 'filler line that is forty bytes long.' | head -n 40000; printf 'caf\\\\351\\\\n'; echo '7 passed, 2 failed in 1.5s'; exit 1\"\n";
    fx.submit("big", "big", config, json!({})).await;
    let done = fx.wait_done("big", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Failed));
    let cr = fx.category("big", "noisy").await;
    let st = cr.status.expect("status");
    let counts = st.counts.expect("counts from the end of the log");
    assert_eq!((counts.passed, counts.failed), (7, 2));
    let tail = st.log_tail.expect("tail");
    assert!(
        tail.ends_with("caf\u{fffd}\n7 passed, 2 failed in 1.5s\n")
            || tail.ends_with("caf\u{fffd}\n7 passed, 2 failed in 1.5s"),
        "{tail:?}"
    );
}

/// A log read that fails once (the kubelet answers 500, as after a dropped
/// connection or a busy node) is tried again: the attempt keeps its counts
/// and tail, with and without a JUnit report; a read that fails every time
/// says so in the tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_read_that_fails_once_is_tried_again() {
    let fx = Fixture::new("op-logagain").await;
    let config = r#"
layers:
  again:
    execution_mode: "parallel"
    categories:
      - name: "once"
        timeout_seconds: 60
        command: "logs error-once 500; echo 'test_a PASSED'; echo '3 passed in 0.2s'"
      - name: "report"
        timeout_seconds: 60
        junit_report: "report.xml"
        command: "logs error-once 502; junit \"<testsuite><testcase classname='a' name='t1'/><testcase classname='a' name='t2'><failure message='no'/></testcase></testsuite>\"; exit 1"
      - name: "always"
        timeout_seconds: 60
        command: "logs error 500; echo '5 passed'"
"#;
    fx.submit("again", "again", config, json!({})).await;
    fx.wait_done("again", Duration::from_secs(60)).await;
    let once = fx.category("again", "once").await.status.expect("status");
    let counts = once.counts.unwrap_or_else(|| panic!("counts: {once:#?}"));
    assert_eq!(counts.passed, 3, "{once:#?}");
    assert!(
        once.log_tail
            .as_deref()
            .unwrap_or_default()
            .contains("test_a PASSED"),
        "{once:#?}"
    );
    let report = fx.category("again", "report").await.status.expect("status");
    let counts = report
        .counts
        .unwrap_or_else(|| panic!("counts: {report:#?}"));
    assert_eq!((counts.passed, counts.failed), (1, 1), "{report:#?}");
    let always = fx.category("again", "always").await.status.expect("status");
    assert_eq!(always.counts, None, "{always:#?}");
    let tail = always.log_tail.unwrap_or_default();
    assert!(
        tail.contains("logs unavailable") && tail.contains("500"),
        "{tail:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_of_a_timed_out_attempt_is_kept() {
    let fx = Fixture::new("op-stoplog").await;
    let config = "layers:\n  stop:\n    execution_mode: parallel\n    categories:\n      - name: hang\n        timeout_seconds: 2\n        command: \"echo 'collected 3 items'; echo 'test_a PASSED'; sleep 60\"\n";
    fx.submit("stop", "stop", config, json!({})).await;
    let done = fx.wait_done("stop", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Failed));
    let st = fx.category("stop", "hang").await.status.expect("status");
    assert_eq!(st.phase, Some(Phase::TimedOut));
    let attempt = st.attempts.first().expect("an attempt");
    let tail = attempt.log_tail.as_deref().unwrap_or_default();
    assert!(
        tail.contains("collected 3 items\ntest_a PASSED"),
        "{attempt:#?}"
    );
    let tail = st.log_tail.unwrap_or_default();
    assert!(tail.contains("test_a PASSED"), "{tail:?}");
}

/// The plan is frozen when the run is accepted: its ConfigMap edited to
/// invalid YAML and then deleted, and a CategoryRun deleted by hand, change
/// nothing: the CategoryRun is recreated from the frozen plan and the run
/// completes as planned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_follows_its_frozen_plan_whatever_becomes_of_its_config() {
    let fx = Fixture::new("op-frozen").await;
    let config = "layers:\n  seq:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"sleep 3\"\n      - name: b\n        timeout_seconds: 30\n        command: \"true\"\n      - name: c\n        timeout_seconds: 30\n        command: \"echo '4 passed in 0.1s'\"\n";
    let cms = fx.api::<ConfigMap>();
    fx.layer_config_map("layers", config).await;
    fx.submit(
        "seq",
        "seq",
        "",
        json!({"config": {"configMapRef": {"name": "layers"}}}),
    )
    .await;
    let running = fx
        .wait_for("seq", Duration::from_secs(30), "a running", |r| {
            category_phases(r).get("a") == Some(&Phase::Running)
        })
        .await;
    let frozen = running.status.unwrap().plan.unwrap().frozen.unwrap();
    let plan = cms.get(&frozen.config_map).await.unwrap();
    assert_eq!(plan.immutable, Some(true));
    assert_eq!(
        plan.owner_references().first().map(|o| o.name.as_str()),
        Some("seq")
    );
    let c_before = fx.category("seq", "c").await;

    cms.patch(
        "layers",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"test_layers.yaml": "layers: [unclosed"}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cms.delete("layers", &Default::default()).await.unwrap();
    fx.crs().delete("seq-c", &Default::default()).await.unwrap();

    let done = fx.wait_done("seq", Duration::from_secs(60)).await;
    let st = done.status.unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Succeeded), "{st:#?}");
    assert_eq!(st.counts.map(|c| c.passed), Some(4));
    let c = fx.category("seq", "c").await;
    assert_ne!(c.metadata.uid, c_before.metadata.uid, "recreated");
    assert_eq!(c.spec, c_before.spec);
    assert_eq!(
        c.status.and_then(|s| s.phase),
        Some(Phase::Succeeded),
        "the recreated category ran"
    );
}

/// 1,000 categories with names near the 100-character limit, every one
/// failing: the run's whole object stays under 64 KiB (the detail is in the
/// CategoryRuns), and says how many failed and which first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_failing_categories_keep_the_run_small() {
    const N: usize = 1000;
    let fx = Fixture::builder("op-big").nodes(4).start().await;
    let name = |i: usize| format!("{i:04}-{}", "integration-suite-".repeat(5));
    let mut config =
        String::from("layers:\n  big:\n    execution_mode: parallel\n    categories:\n");
    for i in 0..N {
        config.push_str(&format!(
            "      - name: \"{}\"\n        timeout_seconds: 120\n        retries: 0\n        command: \"exit 1\"\n",
            name(i)
        ));
    }
    fx.layer_config_map("big", &config).await;
    fx.submit(
        "big",
        "big",
        "",
        json!({"config": {"configMapRef": {"name": "big"}}}),
    )
    .await;
    let runs = fx.runs();
    let largest = Cell::new(0usize);
    let done = eventually(
        Duration::from_secs(600),
        "the 1000-category run to end",
        async || {
            let r = runs.get("big").await.unwrap();
            let bytes = serde_json::to_vec(&r).unwrap().len();
            largest.set(largest.get().max(bytes));
            if common::is_done(&r) {
                return Ok(r);
            }
            Err(format!(
                "progress {:?}, {bytes} bytes",
                r.status.and_then(|s| s.progress)
            ))
        },
    )
    .await;
    let bytes = serde_json::to_vec(&done).unwrap().len();
    assert!(bytes < 64 * 1024, "the TestLayerRun is {bytes} bytes");
    assert!(
        largest.get() < 64 * 1024,
        "the TestLayerRun was {} bytes on the way",
        largest.get()
    );
    let st = done.status.unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    assert_eq!(st.phases.map(|p| p.failed as usize), Some(N));
    assert_eq!(st.failed_categories.first(), Some(&name(0)));
    assert!(
        st.message
            .as_deref()
            .unwrap_or_default()
            .contains("and 990 more"),
        "{:?}",
        st.message
    );
    assert!(st.categories.is_empty());
}

/// A Pod deleted by someone else, or preempted, is the cluster's doing: the
/// attempt is an infrastructure failure and uses `infra_retries`, never
/// `retries` (0 here: a test failure would end the category).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_deleted_or_preempted_by_others_use_infra_retries() {
    let fx = Fixture::new("op-infra").await;
    let config = "layers:\n  infra:\n    execution_mode: parallel\n    categories:\n      - name: deleted\n        timeout_seconds: 60\n        retries: 0\n        infra_retries: 2\n        command: \"sleep 5\"\n      - name: preempted\n        timeout_seconds: 60\n        retries: 0\n        infra_retries: 2\n        command: \"sleep 5\"\n";
    fx.submit("infra", "infra", config, json!({})).await;
    let pods = fx.pods();
    let crs = fx.crs();
    // Once each attempt is recorded as running (a Pod gone before that was
    // never an attempt of record, and is simply started again).
    for c in ["infra-deleted", "infra-preempted"] {
        eventually(
            Duration::from_secs(30),
            format!("{c} running"),
            async || {
                let cr = crs.get_opt(c).await.unwrap()?;
                (cr.status?.attempts.len() == 1).then_some(())
            },
        )
        .await;
    }
    pods.delete("infra-deleted-1", &Default::default())
        .await
        .unwrap();
    fx.kubelet().preempt_pod("infra-preempted-1").await.unwrap();
    let done = fx.wait_done("infra", Duration::from_secs(60)).await;
    assert_eq!(
        phase(&done),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        done.status
    );
    for (category, reason) in [("deleted", "PodDeleted"), ("preempted", "Preempted")] {
        let st = fx.category("infra", category).await.status.unwrap();
        assert_eq!(st.attempts.len(), 2, "{category}: {:#?}", st.attempts);
        let first = &st.attempts[0];
        assert!(first.infrastructure, "{category}: {first:#?}");
        assert_eq!(
            first.reason.as_ref().map(|r| r.to_string()).as_deref(),
            Some(reason),
            "{category}: {first:#?}"
        );
    }
}

/// A stopped attempt whose node no longer answers stays Terminating; after
/// its grace period and `terminationBoundSeconds` it ends as its stop said,
/// and the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_on_a_dead_node_ends_after_the_bound() {
    let fx = Fixture::builder("op-nodelost").nodes(1).start().await;
    let config = "layers:\n  dead:\n    execution_mode: parallel\n    categories:\n      - name: hang\n        timeout_seconds: 3\n        command: \"sleep 120\"\n";
    fx.submit(
        "dead",
        "dead",
        config,
        json!({"terminationBoundSeconds": 2}),
    )
    .await;
    let pods = fx.pods();
    let node = eventually(Duration::from_secs(30), "dead-hang-1 running", async || {
        let pod = pods.get_opt("dead-hang-1").await.unwrap()?;
        let running = pod.status.as_ref()?.phase.as_deref() == Some("Running");
        running.then(|| pod.spec?.node_name).flatten()
    })
    .await;
    fx.kubelet()
        .fail_node(&node, testlayer_testkit::kubelet::NodeFailure::Unreachable)
        .await
        .unwrap();
    let done = fx.wait_done("dead", Duration::from_secs(45)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Failed));
    let st = fx.category("dead", "hang").await.status.unwrap();
    assert_eq!(st.phase, Some(Phase::TimedOut), "{st:#?}");
    // The Pod is still there, Terminating on its dead node.
    let pod = pods.get("dead-hang-1").await.unwrap();
    assert!(pod.metadata.deletion_timestamp.is_some());
}

/// An attempt whose node is not Ready for `nodeLostSeconds` ends `NodeLost`
/// (an infrastructure failure, so `infra_retries` applies), its Pod is
/// deleted, and its retry runs on the node that is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_on_a_node_not_ready_past_the_bound_is_lost_and_retried_elsewhere() {
    let fx = Fixture::builder("op-notready").nodes(2).start().await;
    let config = "layers:\n  lost:\n    execution_mode: parallel\n    categories:\n      - name: steady\n        timeout_seconds: 60\n        infra_retries: 1\n        command: \"sleep 6\"\n";
    fx.submit("lost", "lost", config, json!({"nodeLostSeconds": 2}))
        .await;
    let pods = fx.pods();
    let node = eventually(
        Duration::from_secs(30),
        "lost-steady-1 running",
        async || {
            let pod = pods.get_opt("lost-steady-1").await.unwrap()?;
            let running = pod.status.as_ref()?.phase.as_deref() == Some("Running");
            running.then(|| pod.spec?.node_name).flatten()
        },
    )
    .await;
    let failed_at = std::time::Instant::now();
    fx.kubelet()
        .fail_node(&node, testlayer_testkit::kubelet::NodeFailure::Unreachable)
        .await
        .unwrap();
    let st = fx
        .wait_first_attempt_ended("lost", "steady", Duration::from_secs(30))
        .await;
    let took = failed_at.elapsed();
    let first = &st.attempts[0];
    assert_eq!(
        first.reason.as_ref().map(|r| r.to_string()).as_deref(),
        Some("NodeLost"),
        "{first:#?}"
    );
    assert!(first.infrastructure, "{first:#?}");
    let message = first.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("node {node} has not been Ready for")),
        "{message}"
    );
    // The bound (2 s, read as late as a whole second may be) and a look.
    assert!(took < Duration::from_secs(6), "lost after {took:?}");
    eventually(
        Duration::from_secs(10),
        "the lost attempt's Pod deleted",
        async || {
            let pod = pods.get_opt("lost-steady-1").await.unwrap();
            pod.is_none_or(|p| p.metadata.deletion_timestamp.is_some())
                .then_some(())
        },
    )
    .await;
    let done = fx.wait_done("lost", Duration::from_secs(60)).await;
    assert_eq!(
        phase(&done),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        done.status
    );
    let retry = pods.get("lost-steady-2").await.unwrap();
    assert_ne!(
        retry.spec.unwrap().node_name,
        Some(node),
        "the retry ran elsewhere"
    );
}

/// A CategoryRun deleted by hand while its Pod still runs is made again
/// from the frozen plan; its first attempt never adopts the old Pod of the
/// same name (owned by the deleted CategoryRun): it waits for it to go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_category_never_adopts_the_pod_of_its_predecessor() {
    let fx = Fixture::new("op-adopt").await;
    let config = "layers:\n  adopt:\n    execution_mode: parallel\n    categories:\n      - name: lingering\n        timeout_seconds: 60\n        command: \"trap '' TERM; sleep 6\"\n";
    fx.submit("adopt", "adopt", config, json!({})).await;
    let pods = fx.pods();
    let old = eventually(
        Duration::from_secs(30),
        "adopt-lingering-1 running",
        async || {
            let pod = pods.get_opt("adopt-lingering-1").await.unwrap()?;
            (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
        },
    )
    .await;
    fx.crs()
        .delete("adopt-lingering", &Default::default())
        .await
        .unwrap();
    // The old Pod stays (until the garbage collector, which may take a
    // while to notice a CategoryRun of a new kind, removes it): the new
    // attempt waits for it, and says so.
    eventually(
        Duration::from_secs(30),
        "the new attempt waits",
        async || {
            let cr = fx.crs().get_opt("adopt-lingering").await.unwrap()?;
            let msg = cr.status?.message?;
            msg.contains("belongs to another owner").then_some(())
        },
    )
    .await;
    assert_eq!(
        pods.get("adopt-lingering-1").await.unwrap().metadata.uid,
        old.metadata.uid
    );
    pods.delete("adopt-lingering-1", &Default::default())
        .await
        .unwrap();
    let done = fx.wait_done("adopt", Duration::from_secs(60)).await;
    assert_eq!(
        phase(&done),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        done.status
    );
    let st = fx.category("adopt", "lingering").await.status.unwrap();
    assert_eq!(st.attempts.len(), 1, "{:#?}", st.attempts);
    let pod = pods.get("adopt-lingering-1").await.unwrap();
    assert_ne!(
        pod.metadata.uid, old.metadata.uid,
        "the old Pod was adopted"
    );
}

/// A controller whose task is aborted (a crash, or a host program dropping
/// it) leaves none of its own tasks behind: no sweeper or status keeper of
/// a stopped controller goes on writing from a cache nobody updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_controller_leaves_none_of_its_tasks_running() {
    let mut fx = Fixture::builder("aborted")
        .nodes(0)
        .without_controller()
        .start()
        .await;
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = alive();
    fx.start_controller().await;
    // Its watches, sweepers, status keepers and wakes: more than five tasks.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive() < before + 6 {
        assert!(
            Instant::now() < deadline,
            "the controller started {} tasks",
            alive().saturating_sub(before)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let running = alive();
    fx.stop_controller();
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive() > before {
        assert!(
            Instant::now() < deadline,
            "{} of the controller's {} tasks still run 20 s after it was aborted",
            alive() - before,
            running - before
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
