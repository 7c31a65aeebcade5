//! The operator end to end against the real control plane, with the test
//! kubelet playing the nodes: every behaviour of DESIGN.md's "Behaviour the
//! controller guarantees".

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use testlayer::api::{CategoryRun, LayerPhase, TestLayerRun};
use testlayer::controller::{ControllerOptions, LeaderElection, run as run_controller};
use testlayer::plan::Phase;
use testlayer_testkit::kubelet::{KubeletEvent, KubeletEventKind};
use testlayer_testkit::{ControlPlane, TestKubelet};
use tokio::task::JoinHandle;

struct Env {
    cp: &'static ControlPlane,
    client: Client,
    ns: String,
    kubelet: TestKubelet,
    controller: Option<JoinHandle<()>>,
}

impl Env {
    async fn new(prefix: &str) -> Env {
        let cp = ControlPlane::shared();
        install_crds(cp);
        let ns = cp.create_namespace(prefix).await.unwrap();
        let client = cp.admin_client().await.unwrap();
        let kubelet = TestKubelet::start(client.clone(), &ns, 2).await.unwrap();
        let mut env = Env {
            cp,
            client,
            ns,
            kubelet,
            controller: None,
        };
        env.start_controller().await;
        env
    }

    async fn start_controller(&mut self) {
        let client = self.cp.admin_client().await.unwrap();
        let opts = ControllerOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            namespace: Some(self.ns.clone()),
            concurrency: 4,
            identity: format!("{}-controller", self.ns),
            leader_election: None,
        };
        self.controller = Some(tokio::spawn(async move {
            run_controller(client, opts).await.unwrap();
        }));
    }

    fn stop_controller(&mut self) {
        if let Some(h) = self.controller.take() {
            h.abort();
        }
    }

    fn runs(&self) -> Api<TestLayerRun> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn crs(&self) -> Api<CategoryRun> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn submit(
        &self,
        name: &str,
        layer: &str,
        config: &str,
        extra: serde_json::Value,
    ) -> TestLayerRun {
        let mut spec = json!({"layer": layer, "config": {"inline": config}, "image": "busybox"});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        let run: TestLayerRun = serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun", "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        self.runs()
            .create(&PostParams::default(), &run)
            .await
            .unwrap()
    }

    async fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&TestLayerRun) -> bool,
    ) -> TestLayerRun {
        let start = Instant::now();
        loop {
            let r = self.runs().get(name).await.unwrap();
            if pred(&r) {
                return r;
            }
            if start.elapsed() > timeout {
                let crs = self.crs().list(&ListParams::default()).await.unwrap();
                let detail: Vec<String> = crs
                    .items
                    .iter()
                    .map(|c| format!("{}: {:?}", c.name_any(), c.status))
                    .collect();
                panic!(
                    "timed out waiting for {what} of {name}; status: {:#?}\ncategory runs:\n{}",
                    r.status,
                    detail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_done(&self, name: &str, timeout: Duration) -> TestLayerRun {
        self.wait_for(name, timeout, "the end", |r| {
            r.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| p.is_terminal())
        })
        .await
    }

    async fn category(&self, run: &str, category: &str) -> CategoryRun {
        self.crs().get(&format!("{run}-{category}")).await.unwrap()
    }
}

fn install_crds(cp: &ControlPlane) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"));
        cp.install_crds(
            dir,
            &["testlayerruns.testlayer.dev", "categoryruns.testlayer.dev"],
        )
        .unwrap();
    });
}

fn phase(r: &TestLayerRun) -> Option<LayerPhase> {
    r.status.as_ref().and_then(|s| s.phase)
}

fn category_phases(r: &TestLayerRun) -> BTreeMap<String, Phase> {
    r.status
        .as_ref()
        .map(|s| {
            s.categories
                .iter()
                .map(|c| (c.name.clone(), c.phase))
                .collect()
        })
        .unwrap_or_default()
}

/// Most Pods running at once, from the kubelet's record (a Pod counts from
/// Running to its first end).
fn peak_running(events: &[KubeletEvent]) -> usize {
    let mut running = std::collections::BTreeSet::new();
    let mut peak = 0;
    for e in events {
        match e.kind {
            KubeletEventKind::Running => {
                running.insert(e.pod.clone());
            }
            KubeletEventKind::Terminated(_)
            | KubeletEventKind::Deleted
            | KubeletEventKind::Evicted => {
                running.remove(&e.pod);
            }
            KubeletEventKind::Bound => {}
        }
        peak = peak.max(running.len());
    }
    peak
}

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
    let env = Env::new("op-chain").await;
    env.submit("chain", "chain", CHAIN, json!({})).await;
    let done = env.wait_done("chain", Duration::from_secs(60)).await;
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

    let ev = env.kubelet.events();
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

    let api = env.category("chain", "api-tests").await;
    let cst = api.status.unwrap();
    assert_eq!(cst.phase, Some(Phase::Succeeded));
    assert_eq!(cst.counts.map(|c| c.passed), Some(3));
    assert_eq!(cst.attempts.len(), 1);
    assert_eq!(cst.attempts[0].exit_code, Some(0));
    assert!(cst.log_tail.unwrap().contains("test result: ok."));

    // kubectl wait works on the condition.
    let out = env
        .cp
        .kubectl()
        .args([
            "wait",
            "--for=condition=Succeeded",
            "-n",
            &env.ns,
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
    let env = Env::new("op-fail").await;
    env.submit("failing", "failing", FAILING, json!({})).await;
    let done = env.wait_done("failing", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Failed));
    let phases = category_phases(&done);
    assert_eq!(phases["flaky"], Phase::Failed);
    assert_eq!(phases["after"], Phase::Skipped);
    assert_eq!(phases["memory"], Phase::Failed);
    assert_eq!(phases["evicted"], Phase::Failed);

    let flaky = env.category("failing", "flaky").await.status.unwrap();
    assert_eq!(flaky.attempts.len(), 3, "two retries: {flaky:#?}");
    assert!(flaky.attempts.iter().all(|a| a.exit_code == Some(1)
        && a.reason.as_ref().map(ToString::to_string).as_deref() == Some("ExitCode1")
        && !a.infrastructure));
    assert_eq!(
        flaky.reason.as_ref().map(ToString::to_string).as_deref(),
        Some("TestsFailed")
    );
    assert_eq!(flaky.counts.map(|c| c.failed), Some(1));
    let after = env.category("failing", "after").await.status.unwrap();
    assert_eq!(
        (
            after.reason.as_ref().map(ToString::to_string).as_deref(),
            after.caused_by.as_deref()
        ),
        (Some("DependencyFailed"), Some("flaky"))
    );
    assert!(after.attempts.is_empty());
    let memory = env.category("failing", "memory").await.status.unwrap();
    assert_eq!(
        memory.attempts[0]
            .reason
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("OOMKilled")
    );
    assert_eq!(memory.attempts[0].exit_code, Some(137));
    let evicted = env.category("failing", "evicted").await.status.unwrap();
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
    let pods = env
        .pods()
        .list(&ListParams::default().labels("testlayer.dev/category=after"))
        .await
        .unwrap();
    assert!(pods.items.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parallel_limit_is_never_exceeded() {
    let env = Env::new("op-limit").await;
    let mut config = String::from(
        "layers:\n  wide:\n    execution_mode: parallel\n    resource_limits: {max_parallel_instances: 3}\n    categories:\n",
    );
    for i in 0..9 {
        config.push_str(&format!(
            "      - name: c{i}\n        timeout_seconds: 30\n        command: \"sleep 0.6\"\n"
        ));
    }
    env.submit("wide", "wide", &config, json!({})).await;
    let done = env.wait_done("wide", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));
    let ev = env.kubelet.events();
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind == KubeletEventKind::Running)
            .count(),
        9
    );
    let peak = peak_running(&ev);
    assert!(peak <= 3, "peak {peak} above the limit of 3");
    assert!(peak >= 2, "the limit should be used: peak {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_stop_pods_and_cancel_stops_everything() {
    let env = Env::new("op-stop").await;
    let config = "layers:\n  slow:\n    execution_mode: parallel\n    categories:\n      - name: hang\n        timeout_seconds: 1\n        command: \"sleep infinity\"\n      - name: quick\n        timeout_seconds: 30\n        command: \"true\"\n";
    env.submit("slow", "slow", config, json!({})).await;
    let done = env.wait_done("slow", Duration::from_secs(30)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Failed));
    assert_eq!(category_phases(&done)["hang"], Phase::TimedOut);
    let hang = env.category("slow", "hang").await.status.unwrap();
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
    env.submit("long", "long", config, json!({})).await;
    env.wait_for(
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
    env.runs()
        .patch(
            "long",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cancel": true}})),
        )
        .await
        .unwrap();
    let done = env.wait_done("long", Duration::from_secs(30)).await;
    let details = env
        .crs()
        .list(&ListParams::default().labels("testlayer.dev/run=long"))
        .await
        .unwrap();
    let details: Vec<String> = details
        .items
        .iter()
        .map(|c| format!("{}: {:?}", c.name_any(), c.status))
        .collect();
    assert_eq!(
        phase(&done),
        Some(LayerPhase::Cancelled),
        "{}",
        details.join("\n")
    );
    assert!(
        category_phases(&done)
            .values()
            .all(|p| *p == Phase::Cancelled),
        "{:?}\n{}",
        category_phases(&done),
        details.join("\n")
    );
    let start = Instant::now();
    while !env
        .pods()
        .list(&ListParams::default().labels("testlayer.dev/run=long"))
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pods left behind after cancel"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_a_clear_condition_and_creates_nothing() {
    let env = Env::new("op-invalid").await;
    let config = "layers:\n  bad:\n    categories:\n      - name: a\n        timeout_seconds: 10\n        dependencies: [b]\n      - name: b\n        timeout_seconds: 10\n        dependencies: [a]\n";
    env.submit("bad", "bad", config, json!({"command": "true"}))
        .await;
    let done = env.wait_done("bad", Duration::from_secs(20)).await;
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
        env.crs()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        env.pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // An unknown layer too.
    env.submit("nolayer", "missing", CHAIN, json!({})).await;
    let done = env.wait_done("nolayer", Duration::from_secs(20)).await;
    assert!(done.status.unwrap().message.unwrap().contains("missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_restart_loses_nothing_and_starts_nothing_twice() {
    let mut env = Env::new("op-restart").await;
    let mut config = String::from(
        "layers:\n  steady:\n    execution_mode: parallel\n    resource_limits: {max_parallel_instances: 2}\n    categories:\n",
    );
    for i in 0..6 {
        config.push_str(&format!("      - name: c{i}\n        timeout_seconds: 60\n        command: \"echo '1 passed in 0.1s'; sleep 0.8\"\n"));
    }
    env.submit("steady", "steady", &config, json!({})).await;
    env.wait_for(
        "steady",
        Duration::from_secs(30),
        "a first category to finish",
        |r| category_phases(r).values().any(|p| *p == Phase::Succeeded),
    )
    .await;
    env.stop_controller();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.start_controller().await;
    let done = env.wait_done("steady", Duration::from_secs(60)).await;
    assert_eq!(
        phase(&done),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        done.status
    );
    let ev = env.kubelet.events();
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
    assert!(peak_running(&ev) <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_cancels_what_runs_and_waits() {
    let env = Env::new("op-failfast").await;
    let config = "layers:\n  ff:\n    execution_mode: parallel\n    fail_fast: true\n    resource_limits: {max_parallel_instances: 2}\n    categories:\n      - name: bad\n        timeout_seconds: 30\n        command: \"sleep 0.3; exit 2\"\n      - name: long\n        timeout_seconds: 30\n        command: \"sleep infinity\"\n      - name: later\n        timeout_seconds: 30\n        command: \"true\"\n";
    env.submit("ff", "ff", config, json!({})).await;
    let done = env.wait_done("ff", Duration::from_secs(30)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Failed));
    let phases = category_phases(&done);
    assert_eq!(
        (phases["bad"], phases["long"], phases["later"]),
        (Phase::Failed, Phase::Cancelled, Phase::Cancelled)
    );
    let long = env.category("ff", "long").await.status.unwrap();
    assert_eq!(
        (
            long.reason.as_ref().map(ToString::to_string).as_deref(),
            long.caused_by.as_deref()
        ),
        (Some("FailFast"), Some("bad"))
    );
    assert!(
        env.category("ff", "later")
            .await
            .status
            .unwrap()
            .attempts
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_deadline_times_out_what_runs() {
    let env = Env::new("op-deadline").await;
    // 0.05 minutes: a 3 second deadline.
    let config = "layers:\n  dl:\n    execution_mode: sequential\n    max_duration_minutes: 0.05\n    categories:\n      - name: slow\n        timeout_seconds: 60\n        command: \"sleep infinity\"\n      - name: next\n        timeout_seconds: 60\n        command: \"true\"\n";
    let started = Instant::now();
    env.submit("dl", "dl", config, json!({})).await;
    let done = env.wait_done("dl", Duration::from_secs(30)).await;
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
        env.category("dl", "slow")
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
    let env = Env::new("op-budget").await;
    // Each category takes 1 CPU of a 2 CPU budget: at most two at once, no slot limit.
    let mut config = String::from(
        "layers:\n  budget:\n    execution_mode: parallel\n    strategy: PARALLEL_UNLIMITED\n    resource_limits: {cpu: \"2\"}\n    categories:\n",
    );
    for i in 0..6 {
        config.push_str(&format!("      - name: c{i}\n        timeout_seconds: 30\n        command: \"sleep 0.5\"\n        resources: {{limits: {{cpu: \"1\"}}}}\n"));
    }
    env.submit("budget", "budget", &config, json!({})).await;
    let done = env.wait_done("budget", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));
    let peak = peak_running(&env.kubelet.events());
    assert!((1..=2).contains(&peak), "peak {peak} with a budget for 2");
    let pod = env.pods().get("budget-c0-1").await.unwrap();
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
    let env = Env::new("op-suspend").await;
    let config = "layers:\n  sus:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 60\n        command: \"sleep 2\"\n      - name: b\n        timeout_seconds: 60\n        dependencies: [a]\n        command: \"true\"\n";
    env.submit("sus", "sus", config, json!({})).await;
    env.wait_for("sus", Duration::from_secs(20), "a running", |r| {
        category_phases(r).get("a") == Some(&Phase::Running)
    })
    .await;
    env.runs()
        .patch(
            "sus",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    let start = Instant::now();
    while !env
        .pods()
        .list(&ListParams::default().labels("testlayer.dev/run=sus"))
        .await
        .unwrap()
        .items
        .iter()
        .all(|p| p.metadata.deletion_timestamp.is_some())
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "suspend did not stop the running pod"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let suspended = env
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
    env.runs()
        .patch(
            "sus",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    let done = env.wait_done("sus", Duration::from_secs(30)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));
    let a = env.category("sus", "a").await.status.unwrap();
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
    let env = Env::new("op-delete").await;
    let config = "layers:\n  del:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 300\n        command: \"sleep infinity\"\n      - name: b\n        timeout_seconds: 300\n        command: \"sleep infinity\"\n";
    env.submit("del", "del", config, json!({})).await;
    env.wait_for("del", Duration::from_secs(20), "both running", |r| {
        category_phases(r).values().all(|p| *p == Phase::Running)
    })
    .await;
    env.runs().delete("del", &Default::default()).await.unwrap();
    let start = Instant::now();
    loop {
        let pods = env
            .pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        let crs = env
            .crs()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        let run = env.runs().get_opt("del").await.unwrap();
        if pods == 0 && crs == 0 && run.is_none() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "left behind: {pods} pods, {crs} category runs, run {:?}",
            run.map(|r| r.name_any())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_wait_for_layer_dependencies_and_config_maps() {
    let env = Env::new("op-deps").await;
    let config = "layers:\n  base:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"sleep 1\"\n  top:\n    execution_mode: sequential\n    dependencies: [base]\n    categories:\n      - name: b\n        timeout_seconds: 30\n        command: \"true\"\n";
    // The config comes from a ConfigMap that appears after the run.
    env.submit(
        "top",
        "top",
        config,
        json!({"config": {"configMapRef": {"name": "layers"}}}),
    )
    .await;
    let waiting = env
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
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(env.client.clone(), &env.ns);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "layers"}, "data": {"test_layers.yaml": config}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let waiting = env
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
    env.submit("base", "base", config, json!({})).await;
    let base = env.wait_done("base", Duration::from_secs(30)).await;
    let top = env.wait_done("top", Duration::from_secs(30)).await;
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
    let env = Env::new("op-svc").await;
    let config = "layers:\n  svc:\n    execution_mode: sequential\n    required_services: [backend_service]\n    service_wait_seconds: 60\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"true\"\n  nosvc:\n    execution_mode: sequential\n    required_services: [postgresql]\n    service_wait_seconds: 2\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"true\"\n";
    env.submit("svc", "svc", config, json!({})).await;
    env.wait_for(
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
        env.pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A Service with a ready Pod behind it (the endpoint controllers fill in the slices).
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"name": "backend-service"},
        "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let backend: Pod = serde_json::from_value(json!({
        "metadata": {"name": "backend", "labels": {"app": "backend"}},
        "spec": {"containers": [{"name": "app", "image": "backend", "command": ["/bin/sh", "-c", "sleep infinity"]}]}
    }))
    .unwrap();
    env.pods()
        .create(&PostParams::default(), &backend)
        .await
        .unwrap();
    let done = env.wait_done("svc", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));

    env.submit("nosvc", "nosvc", config, json!({})).await;
    let done = env.wait_done("nosvc", Duration::from_secs(30)).await;
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
    let env = Env::new("op-rerun").await;
    let config = "layers:\n  one:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n        command: \"exit 1\"\n";
    env.submit("gitops", "one", config, json!({})).await;
    let first = env.wait_done("gitops", Duration::from_secs(30)).await;
    assert_eq!(phase(&first), Some(LayerPhase::Failed));
    // GitOps pushes a fixed command: the run starts over.
    env.runs()
        .patch(
            "gitops",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"command": "true", "image": "busybox:2"}})),
        )
        .await
        .unwrap();
    let fixed = config.replace("command: \"exit 1\"", "command: \"true\"");
    env.runs()
        .patch(
            "gitops",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"config": {"inline": fixed}}})),
        )
        .await
        .unwrap();
    let second = env
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
    env.submit(
        "short",
        "one",
        &fixed,
        json!({"ttlSecondsAfterFinished": 2}),
    )
    .await;
    let (start, mut saw_done) = (Instant::now(), false);
    while let Some(r) = env.runs().get_opt("short").await.unwrap() {
        saw_done |= phase(&r) == Some(LayerPhase::Succeeded);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the finished run was not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_done, "the run was deleted without being seen finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_under_leader_election_act_once_and_fail_over() {
    let mut env = Env::new("op-leader").await;
    env.stop_controller();
    let start = |identity: &str| {
        let cp = env.cp;
        let opts = ControllerOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            namespace: Some(env.ns.clone()),
            concurrency: 4,
            identity: identity.to_string(),
            leader_election: Some(LeaderElection {
                namespace: env.ns.clone(),
                lease_name: "testlayer-controller".into(),
                lease_seconds: 4,
                grace_seconds: 1,
            }),
        };
        tokio::spawn(async move {
            let client = cp.admin_client().await.unwrap();
            let _ = run_controller(client, opts).await;
        })
    };
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let holder = || async {
        leases
            .get_opt("testlayer-controller")
            .await
            .unwrap()
            .and_then(|l| l.spec.and_then(|s| s.holder_identity))
    };
    let a = start("replica-a");
    let t0 = Instant::now();
    while holder().await.as_deref() != Some("replica-a") {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "replica-a never took the lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = start("replica-b");

    let mut config = String::from(
        "layers:\n  pair:\n    execution_mode: parallel\n    resource_limits: {max_parallel_instances: 2}\n    categories:\n",
    );
    for i in 0..6 {
        config.push_str(&format!(
            "      - name: c{i}\n        timeout_seconds: 30\n        command: \"sleep 0.3\"\n"
        ));
    }
    env.submit("first", "pair", &config, json!({})).await;
    let done = env.wait_done("first", Duration::from_secs(60)).await;
    assert_eq!(phase(&done), Some(LayerPhase::Succeeded));
    let bound: Vec<String> = env
        .kubelet
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
        let evs: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(env.client.clone(), &env.ns);
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
    let t0 = Instant::now();
    while holder().await.as_deref() != Some("replica-b") {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "replica-b never took over"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.submit("second", "pair", &config, json!({})).await;
    let done = env.wait_done("second", Duration::from_secs(60)).await;
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

fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        code,
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_are_served() {
    let mut env = Env::new("op-metrics").await;
    env.stop_controller();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = ControllerOptions {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        namespace: Some(env.ns.clone()),
        concurrency: 4,
        identity: "metrics".into(),
        leader_election: None,
    };
    let client = env.cp.admin_client().await.unwrap();
    env.controller = Some(tokio::spawn(async move {
        run_controller(client, opts).await.unwrap();
    }));
    let t0 = Instant::now();
    loop {
        let ready = tokio::task::spawn_blocking(move || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()
                .then(|| http_get(port, "/readyz"))
        })
        .await
        .unwrap();
        if ready.as_ref().is_some_and(|(code, _)| *code == 200) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "never ready: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.submit("m", "chain", CHAIN, json!({})).await;
    env.wait_done("m", Duration::from_secs(60)).await;
    let (health, metrics) = tokio::task::spawn_blocking(move || {
        (http_get(port, "/healthz"), http_get(port, "/metrics"))
    })
    .await
    .unwrap();
    assert_eq!(health, (200, "ok\n".to_string()));
    let (code, text) = metrics;
    assert_eq!(code, 200);
    for needle in [
        "testlayer_reconciles_total",
        "testlayer_pods_created_total 4",
        "testlayer_pod_start_latency_seconds_bucket",
        "testlayer_reconcile_duration_seconds_count",
        "testlayer_categories{phase=\"Succeeded\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_and_kubectl_wait_on_the_example() {
    let env = Env::new("op-kubectl").await;
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/k8s/inline.yaml");
    let out = env
        .cp
        .kubectl()
        .args(["apply", "-n", &env.ns, "-f", file])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ns = env.ns.clone();
    let cp = env.cp;
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
        env.cp
            .kubectl()
            .args(["get", "tlr", "-n", &env.ns])
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
    let pod = env.pods().get("smoke-then-unit-unit-1").await.unwrap();
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
