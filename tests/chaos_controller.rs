//! Chaos: the `testlayer controller` process is SIGKILLed at random moments
//! while runs with dependencies, a parallel limit, retries and timeouts go
//! on, and started again. Every run must complete as it would have without
//! the kills; the test kubelet's record must show no attempt started twice
//! and never more Pods running than the limit.
//!
//! Its own test binary: it runs the controller as a child process against
//! the control plane of this binary alone.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Fixture, assert_attempts, controller_process, peak_running, timeline};
use serde_json::json;
use testlayer::api::LayerPhase;
use testlayer::plan::Phase;

const DEPS: &str = "layers:\n  deps:\n    execution_mode: parallel\n    resource_limits: {max_parallel_instances: 2}\n    categories:\n      - {name: a, timeout_seconds: 60, command: \"sleep 2\"}\n      - {name: b, timeout_seconds: 60, command: \"sleep 1\", dependencies: [a]}\n      - {name: c, timeout_seconds: 60, command: \"sleep 2\", dependencies: [a]}\n      - {name: d, timeout_seconds: 60, command: \"sleep 1\"}\n      - {name: e, timeout_seconds: 60, command: \"sleep 1\", dependencies: [b, c]}\n      - {name: f, timeout_seconds: 60, command: \"sleep 2\"}\n";

const RETRIES: &str = "layers:\n  retries:\n    execution_mode: parallel\n    categories:\n      - {name: flaky, timeout_seconds: 60, retries: 2, retry_backoff_seconds: 1, command: \"sleep 1; exit 1\"}\n      - {name: steady, timeout_seconds: 60, command: \"sleep 3\"}\n";

const TIMEOUTS: &str = "layers:\n  timeouts:\n    execution_mode: parallel\n    categories:\n      - {name: hang, timeout_seconds: 3, command: \"sleep 60\"}\n      - {name: after, timeout_seconds: 60, command: \"sleep 1\"}\n";

/// A small deterministic generator (the seed is printed, to replay a failure).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_controller_loses_nothing_and_starts_nothing_twice() {
    let fx = Fixture::builder("chaos").without_controller().start().await;
    let seed = common::seed("TESTLAYER_CHAOS_SEED");
    eprintln!("chaos seed {seed} (TESTLAYER_CHAOS_SEED replays it)");
    let mut rng = Lcg(seed);

    fx.submit("deps", "deps", DEPS, json!({})).await;
    fx.submit("retries", "retries", RETRIES, json!({})).await;
    fx.submit("timeouts", "timeouts", TIMEOUTS, json!({})).await;

    // Kill it at random moments while the runs go on, 8 times.
    let mut controller = controller_process(fx.cp, &fx.ns, "chaos");
    let started = Instant::now();
    for _ in 0..8 {
        tokio::time::sleep(rng.millis(300, 2500)).await;
        controller.kill().expect("SIGKILL the controller");
        let _ = controller.wait();
        tokio::time::sleep(rng.millis(0, 800)).await;
        controller = controller_process(fx.cp, &fx.ns, "chaos");
    }
    let mut done = BTreeMap::new();
    for name in ["deps", "retries", "timeouts"] {
        let r = fx.wait_done(name, Duration::from_secs(120)).await;
        done.insert(name, r);
    }
    controller.kill().ok();
    let _ = controller.wait();
    eprintln!(
        "all runs done {:.1} s after the first start",
        started.elapsed().as_secs_f64()
    );

    let phase = |n: &str| done[n].status.as_ref().and_then(|s| s.phase);
    assert_eq!(phase("deps"), Some(LayerPhase::Succeeded), "seed {seed}");
    assert_eq!(phase("retries"), Some(LayerPhase::Failed), "seed {seed}");
    assert_eq!(phase("timeouts"), Some(LayerPhase::Failed), "seed {seed}");

    // Every category as it would have ended without the kills.
    let crs = fx.crs().list(&Default::default()).await.unwrap().items;
    let expect = [
        ("deps-a", Phase::Succeeded, 1),
        ("deps-b", Phase::Succeeded, 1),
        ("deps-c", Phase::Succeeded, 1),
        ("deps-d", Phase::Succeeded, 1),
        ("deps-e", Phase::Succeeded, 1),
        ("deps-f", Phase::Succeeded, 1),
        ("retries-flaky", Phase::Failed, 3),
        ("retries-steady", Phase::Succeeded, 1),
        ("timeouts-hang", Phase::TimedOut, 1),
        ("timeouts-after", Phase::Succeeded, 1),
    ];
    let events = fx.kubelet().events();
    assert_attempts(&crs, &expect, &events, &format!("seed {seed}"));
    assert!(
        peak_running(&events, "deps-") <= 2,
        "more than 2 deps Pods ran at once, seed {seed}:\n{}",
        timeline(&events, "deps-")
    );
}
