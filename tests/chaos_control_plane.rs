//! Chaos: kube-apiserver and then etcd are killed and started again while
//! runs with dependencies, a parallel limit, retries and timeouts go on.
//! Every run must complete as it would have; the test kubelet's record must
//! show no attempt started twice and never more Pods running than the limit.
//!
//! Its own test binary: it restarts the control plane of this binary.

mod common;

use std::time::Duration;

use common::{Fixture, assert_attempts, peak_running, timeline};
use serde_json::json;
use testlayer::api::LayerPhase;
use testlayer::plan::Phase;

const WORK: &str = "layers:\n  work:\n    execution_mode: parallel\n    resource_limits: {max_parallel_instances: 2}\n    categories:\n      - {name: a, timeout_seconds: 60, command: \"sleep 3\"}\n      - {name: b, timeout_seconds: 60, command: \"sleep 2\", dependencies: [a]}\n      - {name: c, timeout_seconds: 60, command: \"sleep 3\"}\n      - {name: d, timeout_seconds: 60, command: \"sleep 2\", dependencies: [c]}\n      - {name: flaky, timeout_seconds: 60, retries: 1, retry_backoff_seconds: 1, command: \"sleep 1; exit 1\"}\n      - {name: hang, timeout_seconds: 4, command: \"sleep 60\"}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_restarts_of_the_apiserver_and_etcd() {
    // The controller's and the watches' logs, shown when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("testlayer=debug,kube_runtime=debug,kube_client=info")
        .with_test_writer()
        .try_init();
    let fx = Fixture::new("cp-chaos").await;
    fx.submit("work", "work", WORK, json!({})).await;
    // `testlayer wait` follows the run through the restarts.
    let waiting = std::process::Command::new(env!("CARGO_BIN_EXE_testlayer"))
        .arg("wait")
        .arg("work")
        .arg("--kubeconfig")
        .arg(fx.cp.kubeconfig())
        .args(["-n", &fx.ns, "--timeout", "180"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cp = fx.cp;
    for (component, after) in [("kube-apiserver", 2), ("etcd", 3)] {
        tokio::time::sleep(Duration::from_secs(after)).await;
        tokio::task::spawn_blocking(move || cp.restart(component, Duration::from_secs(2)))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("restarting {component}: {e}"));
    }
    let done = fx.wait_done("work", Duration::from_secs(120)).await;
    assert_eq!(
        done.status.as_ref().and_then(|s| s.phase),
        Some(LayerPhase::Failed),
        "{:#?}",
        done.status
    );
    let waited = tokio::task::spawn_blocking(move || waiting.wait_with_output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&waited.stdout),
        String::from_utf8_lossy(&waited.stderr),
    );
    // To the run's own end and summary (exit 1: it failed), not given up
    // on an error of the apiserver.
    assert_eq!(waited.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("flaky") && stdout.contains("Failed"),
        "{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("error:"), "{stderr}");
    if stderr.contains("cannot watch work") {
        assert!(stderr.contains("watching work again"), "{stderr}");
    }
    let crs = fx.crs().list(&Default::default()).await.unwrap().items;
    let expect = [
        ("work-a", Phase::Succeeded, 1),
        ("work-b", Phase::Succeeded, 1),
        ("work-c", Phase::Succeeded, 1),
        ("work-d", Phase::Succeeded, 1),
        ("work-flaky", Phase::Failed, 2),
        ("work-hang", Phase::TimedOut, 1),
    ];
    let events = fx.kubelet().events();
    assert_attempts(&crs, &expect, &events, "after the restarts");
    let peak = peak_running(&events, "work-");
    assert!(
        peak <= 2,
        "{peak} Pods ran at once (limit 2):\n{}",
        timeline(&events, "work-")
    );
}
