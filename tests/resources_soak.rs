//! Soak: many runs contending for one mutex, served by two controllers at
//! once (one in this process, one a `testlayer controller` process that is
//! SIGKILLed and started again), with runs cancelled at random. From the
//! test kubelet's record: no two holders ever overlapped, and every run
//! finished, with nothing left held.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use testlayer::api::LayerPhase;
use testlayer_testkit::kubelet::KubeletEventKind;

use common::{Fixture, controller_process, eventually, phase, timeline};

/// Runs in the soak.
const RUNS: usize = 14;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_on_one_mutex_through_two_controllers_a_sigkill_and_cancels() {
    // The in-process controller's logs (each grant made and given back),
    // shown when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("testlayer=info")
        .with_test_writer()
        .try_init();
    let seed = common::seed("SOAK_SEED");
    let mut rng = SmallRng::seed_from_u64(seed);
    let fx = Fixture::new("res-soak").await;
    let ctx = format!("seed {seed} (SOAK_SEED={seed} repeats it)");
    fx.declare_resource("staging-db", 1).await;
    let mut other = controller_process(fx.cp, &fx.ns, "soak-second");
    let config = "resources:\n  staging_db: {}\nlayers:\n  e2e:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 60\n        uses: [staging_db]\n        command: \"sleep 0.3\"\n      - name: b\n        timeout_seconds: 60\n        uses: [staging_db]\n        command: \"sleep 0.2\"\n      - name: free\n        timeout_seconds: 60\n        command: \"sleep 0.1\"\n";
    let names: Vec<String> = (0..RUNS).map(|i| format!("soak-{i:02}")).collect();
    let mut cancelled = Vec::new();
    let started = Instant::now();
    for (i, name) in names.iter().enumerate() {
        fx.submit(name, "e2e", config, json!({})).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..250))).await;
        if i == RUNS / 2 {
            // The second controller dies without a word, and comes back.
            other.kill().expect("SIGKILL the controller process");
            let _ = other.wait();
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..800))).await;
            other = controller_process(fx.cp, &fx.ns, "soak-second");
        }
        if i > 0 && rng.random_bool(0.25) {
            let victim = names[rng.random_range(0..i)].clone();
            fx.runs()
                .patch(
                    &victim,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"cancel": true}})),
                )
                .await
                .expect("cancel a run");
            cancelled.push(victim);
        }
    }
    for name in &names {
        let r = fx.wait_done(name, Duration::from_secs(180)).await;
        let p = phase(&r);
        if cancelled.contains(name) {
            assert!(
                matches!(p, Some(LayerPhase::Cancelled | LayerPhase::Succeeded)),
                "{name}: {p:?}; {ctx}"
            );
        } else {
            assert_eq!(p, Some(LayerPhase::Succeeded), "{name}: {r:#?}; {ctx}");
        }
    }
    let took = started.elapsed();
    let _ = other.kill();
    let _ = other.wait();

    // No two holders of the mutex ever ran at once.
    let events = fx.kubelet().events();
    let holder = |pod: &str| !pod.contains("-free-");
    let mut running = std::collections::BTreeSet::new();
    let mut holders = 0;
    for e in events.iter().filter(|e| holder(&e.pod)) {
        match e.kind {
            KubeletEventKind::Running => {
                running.insert(e.pod.clone());
                holders += 1;
            }
            KubeletEventKind::Bound => {}
            _ => {
                running.remove(&e.pod);
            }
        }
        assert!(
            running.len() <= 1,
            "two holders at once: {running:?}; {ctx}\n{}",
            timeline(&events, "")
        );
    }
    assert!(holders >= RUNS, "only {holders} holders ran; {ctx}");
    // Nothing is left held.
    let leases: Api<Lease> = Api::namespaced(fx.client.clone(), &fx.ns);
    eventually(Duration::from_secs(30), "no grant left", async || {
        let left = leases
            .list(&ListParams::default().labels("testlayer.dev/resource"))
            .await
            .expect("list grants")
            .items;
        left.is_empty().then_some(()).ok_or_else(|| {
            format!(
                "{:?}",
                left.iter().map(|l| l.name_any()).collect::<Vec<_>>()
            )
        })
    })
    .await;
    eprintln!(
        "soak: {RUNS} runs, {holders} holders, {} cancelled, {:.1} s; {ctx}",
        cancelled.len(),
        took.as_secs_f64()
    );
}
