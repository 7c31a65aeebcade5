//! Benchmark of the operator on a real node (a program that prints figures:
//! `cargo bench --bench real_node`). Needs `tests/cluster/build.sh` and
//! `tests/node/build.sh`, and root.
//!
//! Each round, these measurements, (1) and (3) twice: with the controller
//! on this machine (in the benchmark's process), and with the controller as
//! users install it (the chart's Deployment, the image built by
//! `scripts/image.sh`, in a Pod on the node):
//! (1) the example's `full` layer (examples/shop, six categories of real
//!     pytest, a parallel limit of 2, a retry) in Kubernetes: from the
//!     TestLayerRun's create to the run seen finished;
//! (2) the same layer with `testlayer run` on this machine, as a process,
//!     from start to exit;
//! (3) the per-category overhead of the cluster, from 8 busybox categories
//!     (4 at once) that each print a line, sleep 1 s and print their count:
//!     Pod start to container start (the Pod seen created by a watch, to the
//!     container's first log line, timestamped by containerd) and container
//!     end to status written (the last log line, to the CategoryRun's status
//!     seen recording the attempt's end), split at the Pod seen with its
//!     container terminated: the kubelet's part, then the controller's.
//!
//! `--rounds=N` (or `TESTLAYER_BENCH_ROUNDS`), default 3; each round is
//! printed, then min / median / max of each figure. Its targets, checked at
//! the end (exit 1 when one is missed): the controller in its Pod takes the
//! shop layer in at most 1.2 times what it takes on this machine (median of
//! the rounds' ratios), and adds at most 0.5 s to the median time from a
//! container's end to its status written.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::release::Release;
use common::{Fixture, is_done, phase};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::watcher;
use serde_json::json;
use testlayer::api::{CategoryRun, LayerPhase};
use testlayer_testkit::RealNode;

const ROUNDS: usize = 3;
const OVERHEAD_CATEGORIES: usize = 8;
/// Target: the shop layer with the controller in its Pod, over the same
/// with the controller on this machine (median of the rounds).
const MAX_POD_OVER_HOST: f64 = 1.2;
/// Target: seconds the controller in its Pod may add to the median time
/// from a container's end to its status written.
const MAX_POD_EXTRA_END: f64 = 0.5;

/// Where the controller runs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Controller {
    /// In this process, as `testlayer controller` on the machine.
    Host,
    /// The chart's Deployment on the node, from the built image.
    Pod,
}

/// A fresh namespace on the real node with the controller where `c` says.
async fn fixture(prefix: &str, round: usize, c: Controller) -> Fixture {
    let name = format!(
        "{prefix}-{}-{round}",
        if c == Controller::Pod { "pod" } else { "host" }
    );
    match c {
        Controller::Host => Fixture::builder(&name).real_node().start().await,
        Controller::Pod => {
            let fx = Fixture::builder(&name)
                .real_node()
                .without_controller()
                .start()
                .await;
            Release::install(&fx, &name, &[]).await;
            fx
        }
    }
}

fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn rounds() -> usize {
    std::env::args()
        .find_map(|a| a.strip_prefix("--rounds=").map(str::to_string))
        .or_else(|| std::env::var("TESTLAYER_BENCH_ROUNDS").ok())
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(ROUNDS)
}

/// (1): the shop's layer in Kubernetes, create to seen finished.
async fn shop_in_kubernetes(round: usize, c: Controller) -> f64 {
    let fx = fixture("bench-shop", round, c).await;
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/shop/testlayer.yaml"
    ))
    .expect("examples/shop/testlayer.yaml");
    fx.layer_config_map("shop-layers", &config).await;
    let started = Instant::now();
    fx.submit(
        "shop",
        "full",
        "",
        json!({"config": {"configMapRef": {"name": "shop-layers"}},
               "image": "localhost/testlayer/shop-tests:1"}),
    )
    .await;
    let run = fx
        .wait_for("shop", Duration::from_secs(300), "the end", is_done)
        .await;
    let took = started.elapsed().as_secs_f64();
    assert_eq!(
        phase(&run),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        run.status
    );
    took
}

/// (2): the same layer as local processes.
fn shop_locally() -> f64 {
    let root = env!("CARGO_MANIFEST_DIR");
    // No history: the cluster run plans without one either.
    let history = std::env::temp_dir().join(format!("testlayer-bench-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&history);
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_testlayer"))
        .current_dir(root)
        .env("TESTLAYER_HISTORY", &history)
        .args([
            "run",
            "-c",
            "examples/shop/testlayer.yaml",
            "-l",
            "full",
            "--workdir",
            "examples/shop",
        ])
        .output()
        .expect("running testlayer");
    let took = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "testlayer run failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// The timestamps of the first and last lines of a CRI log file
/// (`2026-12-02T04:34:04.440746454Z stdout F text`).
fn log_span(path: &Path) -> Option<(SystemTime, SystemTime)> {
    let text = std::fs::read_to_string(path).ok()?;
    let stamp = |line: &str| -> Option<SystemTime> {
        let t = line.split(' ').next()?;
        let ts: jiff::Timestamp = t.parse().ok()?;
        Some(SystemTime::from(ts))
    };
    let first = stamp(text.lines().next()?)?;
    let last = stamp(text.lines().last()?)?;
    Some((first, last))
}

fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Per-category overheads of one Pod, in seconds.
struct Overhead {
    /// Pod seen created to the container's first log line.
    start: f64,
    /// The container's last log line to the CategoryRun's status seen with
    /// the attempt ended.
    end: f64,
    /// Of `end`: the last log line to the Pod seen terminated (the kubelet).
    kubelet: f64,
}

/// (3): per-category overheads, one per category.
async fn overheads(round: usize, node: &RealNode, c: Controller) -> Vec<Overhead> {
    let fx = fixture("bench-over", round, c).await;
    let mut config = String::from(
        "layers:\n  over:\n    name: \"Over\"\n    execution_mode: \"parallel\"\n    \
         resource_limits: {max_parallel_instances: 4}\n    categories:\n",
    );
    for i in 0..OVERHEAD_CATEGORIES {
        config.push_str(&format!(
            "      - name: \"c{i}\"\n        timeout_seconds: 60\n        \
             command: \"echo begin; sleep 1; echo '1 passed'\"\n"
        ));
    }
    // When each Pod was first seen, and when each CategoryRun's status was
    // first seen with its attempt ended.
    let created: Arc<Mutex<BTreeMap<String, SystemTime>>> = Arc::default();
    let terminated: Arc<Mutex<BTreeMap<String, SystemTime>>> = Arc::default();
    let written: Arc<Mutex<BTreeMap<String, SystemTime>>> = Arc::default();
    let pods_watch = {
        let (created, terminated) = (created.clone(), terminated.clone());
        let stream = watcher(fx.pods(), watcher::Config::default());
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev {
                    let now = SystemTime::now();
                    if let Ok(mut g) = created.lock() {
                        g.entry(p.name_any()).or_insert(now);
                    }
                    let ended = p
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
                        });
                    if ended && let Ok(mut g) = terminated.lock() {
                        g.entry(p.name_any()).or_insert(now);
                    }
                }
            }
        })
    };
    let crs_watch = {
        let written = written.clone();
        let stream = watcher(fx.crs(), watcher::Config::default());
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                if let Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) = ev {
                    let now = SystemTime::now();
                    let ended = c.status.as_ref().is_some_and(|s| {
                        s.attempts
                            .first()
                            .is_some_and(|a| a.completion_time.is_some())
                    });
                    if ended && let Ok(mut g) = written.lock() {
                        g.entry(c.name_any()).or_insert(now);
                    }
                }
            }
        })
    };
    // Let both watches list before the run starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    fx.submit("over", "over", &config, json!({"image": "busybox:1.35"}))
        .await;
    let run = fx
        .wait_for("over", Duration::from_secs(300), "the end", is_done)
        .await;
    assert_eq!(
        phase(&run),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        run.status
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    pods_watch.abort();
    crs_watch.abort();

    let pods: Vec<Pod> = fx
        .pods()
        .list(&kube::api::ListParams::default().labels("testlayer.dev/run=over"))
        .await
        .expect("pods")
        .items;
    let crs: Vec<CategoryRun> = fx.crs().list(&Default::default()).await.expect("crs").items;
    let created = created.lock().map(|g| g.clone()).unwrap_or_default();
    let terminated = terminated.lock().map(|g| g.clone()).unwrap_or_default();
    let written = written.lock().map(|g| g.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for p in pods {
        let name = p.name_any();
        let uid = p.uid().unwrap_or_default();
        let log = node
            .pod_logs_dir()
            .join(format!("{}_{}_{}", fx.ns, name, uid))
            .join(testlayer::api::names::CONTAINER)
            .join("0.log");
        let Some((first, last)) = log_span(&log) else {
            panic!("no log at {}", log.display());
        };
        let cr = crs
            .iter()
            .find(|c| {
                c.status
                    .as_ref()
                    .is_some_and(|s| s.attempts.iter().any(|a| a.pod_name == name))
            })
            .map(|c| c.name_any())
            .expect("the Pod's CategoryRun");
        let (Some(c), Some(t), Some(w)) =
            (created.get(&name), terminated.get(&name), written.get(&cr))
        else {
            panic!("{name}: not seen created, terminated, or its status not seen written");
        };
        out.push(Overhead {
            start: secs_between(*c, first),
            end: secs_between(last, *w),
            kubelet: secs_between(last, *t),
        });
    }
    out
}

/// One round's figures, for one place of the controller.
#[derive(Default)]
struct Figures {
    shop: Vec<f64>,
    start: Vec<f64>,
    end: Vec<f64>,
    kubelet: Vec<f64>,
}

impl Figures {
    async fn round(&mut self, round: usize, node: &RealNode, c: Controller) -> (f64, f64) {
        let k = shop_in_kubernetes(round, c).await;
        let o = overheads(round, node, c).await;
        let (s_min, s_med, s_max) = spread(&o.iter().map(|x| x.start).collect::<Vec<_>>());
        let (e_min, e_med, e_max) = spread(&o.iter().map(|x| x.end).collect::<Vec<_>>());
        let (_, k_med, _) = spread(&o.iter().map(|x| x.kubelet).collect::<Vec<_>>());
        println!(
            "round {round}, controller {c:?}: shop layer {k:.2} s in Kubernetes; per category ({} Pods): \
             Pod start -> container start {s_min:.2} / {s_med:.2} / {s_max:.2} s, \
             container end -> status written {e_min:.2} / {e_med:.2} / {e_max:.2} s (min / median / max; \
             median to the Pod's status {k_med:.2} s)",
            o.len()
        );
        self.shop.push(k);
        self.start.push(s_med);
        self.end.push(e_med);
        self.kubelet.push(k_med);
        (k, e_med)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = rounds();
    let node = tokio::task::spawn_blocking(|| common::real_cluster().1)
        .await
        .expect("starting the real node");
    println!("real node {} ({} rounds)", node.name(), n);
    let (mut host, mut pod) = (Figures::default(), Figures::default());
    let (mut local, mut ratios, mut pod_over_host, mut extra_end) =
        (vec![], vec![], vec![], vec![]);
    for round in 1..=n {
        let (k, e) = host.round(round, node, Controller::Host).await;
        let (kp, ep) = pod.round(round, node, Controller::Pod).await;
        let l = tokio::task::spawn_blocking(shop_locally)
            .await
            .expect("local run");
        println!(
            "round {round}: shop layer locally {l:.2} s; Kubernetes / local {:.2}; controller in its Pod / on this machine {:.2}",
            k / l,
            kp / k
        );
        local.push(l);
        ratios.push(k / l);
        pod_over_host.push(kp / k);
        extra_end.push(ep - e);
    }
    let show = |what: &str, v: &[f64], unit: &str| {
        let (a, b, c) = spread(v);
        println!("{what}: {a:.2} / {b:.2} / {c:.2} {unit} (min / median / max over {n} rounds)");
    };
    println!();
    show("shop layer locally", &local, "s");
    for (c, f) in [(Controller::Host, &host), (Controller::Pod, &pod)] {
        println!("controller {c:?}:");
        show("  shop layer in Kubernetes", &f.shop, "s");
        show(
            "  Pod start -> container start (round median)",
            &f.start,
            "s",
        );
        show(
            "  container end -> status written (round median)",
            &f.end,
            "s",
        );
        show(
            "    of which container end -> Pod status (round median)",
            &f.kubelet,
            "s",
        );
        let controller: Vec<f64> = f.end.iter().zip(&f.kubelet).map(|(e, k)| e - k).collect();
        show(
            "    of which Pod status -> CategoryRun status",
            &controller,
            "s",
        );
    }
    show(
        "Kubernetes (controller on this machine) / local",
        &ratios,
        "",
    );
    show(
        "controller in its Pod / on this machine (shop layer)",
        &pod_over_host,
        "",
    );
    show(
        "controller in its Pod - on this machine (container end -> status written)",
        &extra_end,
        "s",
    );

    let (_, ratio, _) = spread(&pod_over_host);
    let (_, extra, _) = spread(&extra_end);
    let mut missed = Vec::new();
    if ratio > MAX_POD_OVER_HOST {
        missed.push(format!(
            "shop layer in Pod / on this machine {ratio:.2} > {MAX_POD_OVER_HOST}"
        ));
    }
    if extra > MAX_POD_EXTRA_END {
        missed.push(format!(
            "status written {extra:.2} s later in Pod > {MAX_POD_EXTRA_END} s"
        ));
    }
    if missed.is_empty() {
        println!(
            "targets met: in Pod / on this machine {ratio:.2} <= {MAX_POD_OVER_HOST}, extra {extra:.2} s <= {MAX_POD_EXTRA_END} s"
        );
    } else {
        println!("targets missed: {}", missed.join("; "));
        std::process::exit(1);
    }
}
