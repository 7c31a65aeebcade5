//! Benchmark of the operator against the real control plane (a program that
//! prints figures: `cargo bench --bench operator`). Needs the binaries of
//! `tests/cluster/build.sh`.
//!
//! (a) a 500-category PARALLEL_UNLIMITED layer: apply to all Pods created,
//!     beside a plain loop of Pod creates on the same apiserver;
//! (b) apiserver writes per category lifecycle, from the apiserver's own
//!     request counters;
//! (c) latency from a dependency's Pod finishing to its dependent's Pod;
//! (d) peak RSS of a controller process running 100 runs of 20 categories.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Fixture, control_plane, eventually_every};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use testlayer_testkit::ControlPlane;
use testlayer_testkit::kubelet::KubeletEventKind;

fn wide_layer(name: &str, n: usize, command: &str) -> String {
    let mut c = format!(
        "layers:\n  {name}:\n    execution_mode: parallel\n    strategy: PARALLEL_UNLIMITED\n    categories:\n"
    );
    for i in 0..n {
        c.push_str(&format!(
            "      - name: c{i}\n        timeout_seconds: 600\n        command: \"{command}\"\n"
        ));
    }
    c
}

fn chain_layer(name: &str, n: usize) -> String {
    let mut c = format!("layers:\n  {name}:\n    execution_mode: sequential\n    categories:\n");
    for i in 0..n {
        let dep = if i > 0 {
            format!("        dependencies: [c{}]\n", i - 1)
        } else {
            String::new()
        };
        c.push_str(&format!("      - name: c{i}\n        timeout_seconds: 60\n        command: \"sleep 0.05\"\n{dep}"));
    }
    c
}

/// A namespace with the controller running in-process as the benchmark
/// runs it (concurrency 16), and a test kubelet with `nodes` Nodes (0: none,
/// Pods stay Pending). Waits a second for the controller's caches.
async fn bench_fixture(prefix: &str, nodes: usize) -> Fixture {
    let fx = Fixture::builder(prefix)
        .nodes(nodes)
        .concurrency(16)
        .identity("bench")
        .start()
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    fx
}

/// Write requests the apiserver served, by `resource/subresource verb`.
fn apiserver_writes(cp: &ControlPlane) -> BTreeMap<String, f64> {
    let out = cp
        .kubectl()
        .args(["get", "--raw", "/metrics"])
        .output()
        .expect("kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let get = |k: &str| {
            labels
                .split(&format!("{k}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let verb = get("verb");
        if !matches!(
            verb.as_str(),
            "POST" | "PUT" | "PATCH" | "DELETE" | "APPLY" | "CREATE" | "UPDATE"
        ) {
            continue;
        }
        let key = format!(
            "{}{} {verb}",
            get("resource"),
            match get("subresource").as_str() {
                "" => String::new(),
                s => format!("/{s}"),
            }
        );
        *m.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    m
}

fn diff(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Seconds a plain loop of `n` Pod creates takes in a fresh namespace.
async fn raw_loop(cp: &'static ControlPlane, client: &Client, n: usize) -> f64 {
    let ns = cp.create_namespace("bench-raw").await.expect("ns");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let t = Instant::now();
    for i in 0..n {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": format!("raw-{i}")},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "test", "image": "busybox", "command": ["/bin/sh", "-c", "true"]}]}}))
        .expect("pod");
        pods.create(&PostParams::default(), &p)
            .await
            .expect("create pod");
    }
    t.elapsed().as_secs_f64()
}

async fn creation_rate(cp: &'static ControlPlane) {
    const N: usize = 500;
    let client = cp.admin_client().await.expect("client");
    // A plain loop before and after the operator, so that neither side gets
    // the quieter moment of the machine.
    let raw_before = raw_loop(cp, &client, N).await;

    let mut fx = bench_fixture("bench-wide", 0).await;
    let pods = fx.pods();
    let t = Instant::now();
    fx.submit(
        "wide",
        "wide",
        &wide_layer("wide", N, "sleep infinity"),
        json!({}),
    )
    .await;
    eventually_every(
        Duration::from_millis(50),
        Duration::from_secs(600),
        format!("all {N} pods of the operator"),
        async || {
            let n = pods
                .list_metadata(&ListParams::default().labels("testlayer.dev/run=wide"))
                .await
                .expect("list")
                .items
                .len();
            if n >= N {
                Ok(())
            } else {
                Err(format!("{n} pods"))
            }
        },
    )
    .await;
    let op = t.elapsed().as_secs_f64();
    fx.stop_controller();
    let raw_after = raw_loop(cp, &client, N).await;
    let raw = (raw_before + raw_after) / 2.0;
    let (op_rate, raw_rate) = (N as f64 / op, N as f64 / raw);
    println!("(a) {N}-category PARALLEL_UNLIMITED layer, apply to all Pods created:");
    println!("    operator: {op:.2} s, {op_rate:.0} pods/s (it also creates {N} CategoryRuns)");
    println!(
        "    plain loop of {N} Pod creates: {raw_before:.2} s before, {raw_after:.2} s after, mean {raw_rate:.0} pods/s"
    );
    println!(
        "    operator / raw rate: {:.0}% (target >= 70%)",
        100.0 * op_rate / raw_rate
    );
}

async fn writes_and_latency(cp: &'static ControlPlane) {
    const N: usize = 100;
    let fx = bench_fixture("bench-writes", 4).await;
    let before = apiserver_writes(cp);
    fx.submit(
        "writes",
        "writes",
        &wide_layer("writes", N, "echo '1 passed in 0.1s'; sleep 0.2"),
        json!({}),
    )
    .await;
    fx.wait_done("writes", Duration::from_secs(300)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let d = diff(&apiserver_writes(cp), &before);
    let kubelet_keys = [
        "pods/binding POST",
        "pods/status PATCH",
        "nodes/status PATCH",
        "nodes POST",
    ];
    let mut total = 0.0;
    println!(
        "(b) apiserver writes for a {N}-category run, passing, one attempt each (test kubelet's own writes left out):"
    );
    for (k, v) in &d {
        let theirs = kubelet_keys.contains(&k.as_str())
            || k.starts_with("leases")
            || k.starts_with("endpoints")
            || k.starts_with("endpointslices")
            || k.starts_with("namespaces")
            || k.starts_with("serviceaccounts")
            || k.starts_with("configmaps")
            || k.starts_with("secrets");
        if !theirs {
            total += v;
            println!("    {k:<32} {v:>6.0}  ({:.2} per category)", v / N as f64);
        }
    }
    println!(
        "    total: {:.2} writes per category lifecycle (target <= 6)",
        total / N as f64
    );
    drop(fx);

    // (c) A chain: each category waits for the one before.
    const CHAIN: usize = 40;
    let fx = bench_fixture("bench-chain", 2).await;
    fx.submit("chain", "chain", &chain_layer("chain", CHAIN), json!({}))
        .await;
    fx.wait_done("chain", Duration::from_secs(300)).await;
    let ev = fx.kubelet().events();
    let at = |pod: &str, kind: KubeletEventKind| {
        ev.iter()
            .find(|e| e.pod == pod && e.kind == kind)
            .map(|e| e.at)
    };
    let mut lat: Vec<f64> = (1..CHAIN)
        .filter_map(|i| {
            let done = at(
                &format!("chain-c{}-1", i - 1),
                KubeletEventKind::Terminated(0),
            )?;
            let next = at(&format!("chain-c{i}-1"), KubeletEventKind::Bound)?;
            Some(next.duration_since(done).as_secs_f64() * 1e3)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    println!(
        "(c) dependency's Pod finished (kubelet status write) -> dependent's Pod seen by the kubelet, {} links:",
        lat.len()
    );
    println!(
        "    p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 <= 200 ms)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

async fn controller_memory(cp: &'static ControlPlane) {
    const RUNS: usize = 100;
    const CATS: usize = 20;
    // The controller runs as a process of its own here, to be measured.
    let mut fx = Fixture::builder("bench-rss")
        .nodes(8)
        .without_controller()
        .start()
        .await;
    let ns = fx.ns.clone();
    let bin = env!("CARGO_BIN_EXE_testlayer");
    let mut child = std::process::Command::new(bin)
        .args([
            "controller",
            "--listen",
            "127.0.0.1:0",
            "--namespace",
            &ns,
            "--identity",
            "rss",
        ])
        .arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("controller process");
    let t = Instant::now();
    for r in 0..RUNS {
        let config = wide_layer("mem", CATS, "echo '3 passed in 0.1s'; sleep 1");
        let mut config =
            config.replace("strategy: PARALLEL_UNLIMITED", "strategy: PARALLEL_LIMITED");
        config = config.replace(
            "    categories:\n",
            "    resource_limits: {max_parallel_instances: 5}\n    categories:\n",
        );
        fx.submit(&format!("run-{r}"), "mem", &config, json!({}))
            .await;
    }
    for r in 0..RUNS {
        fx.wait_done(&format!("run-{r}"), Duration::from_secs(900))
            .await;
    }
    let took = t.elapsed();
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let _ = child.kill();
    let _ = child.wait();
    fx.stop_kubelet();
    let ok = fx
        .runs()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| p == testlayer::api::LayerPhase::Succeeded)
        })
        .count();
    println!(
        "(d) controller process, {RUNS} concurrent runs of {CATS} categories ({} Pods), all done in {:.1} s, {ok}/{RUNS} succeeded:",
        RUNS * CATS,
        took.as_secs_f64()
    );
    println!(
        "    peak RSS {:.1} MiB, RSS at the end {:.1} MiB (target <= 150 MiB)",
        field("VmHWM:") / 1024.0,
        field("VmRSS:") / 1024.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cp = control_plane();
    let version = std::process::Command::new(cp.binary("kube-apiserver"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "testlayer operator benchmark ({cores} cores, {version}, etcd, test kubelet; controller, apiserver and load share the machine)"
    );
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |k: &str| which.is_empty() || which.iter().any(|w| w == k);
    if want("a") {
        creation_rate(cp).await;
    }
    if want("b") || want("c") {
        writes_and_latency(cp).await;
    }
    if want("d") {
        controller_memory(cp).await;
    }
}
