//! What the parts of the operator benchmark share: sizes and bounds of the
//! tier, the apiserver's counters, CPU and memory of processes, the objects
//! a plain client creates, and the targets checked.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource};
use testlayer::api::{CategoryRun, TestLayerRun};
use testlayer::controller::run::build::attempt_pod;
use testlayer::controller::run::step::resolve;
use testlayer_testkit::ControlPlane;

use crate::common::{eventually, test_layer_run};

/// Writes the controller sends to the apiserver at once: `CONCURRENT_WRITES`
/// of src/controller/reconcile.rs (private there; keep the two equal).
pub(crate) const CONCURRENT_WRITES: usize = 32;

/// Whether this run is the quick tier (`--quick`).
pub(crate) static QUICK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this run is the quick tier: parts (a), (b), (c), (g) and (i) only,
/// at small sizes, once, each figure checked against a bound with a
/// margin for a loaded machine (the regression guard CI runs).
pub(crate) fn quick() -> bool {
    QUICK.load(std::sync::atomic::Ordering::Relaxed)
}

/// `full` in a full run, `small` in the quick tier.
pub(crate) fn size(full: usize, small: usize) -> usize {
    if quick() { small } else { full }
}

/// The bound a figure is checked against: the target `full` in a full
/// run, `margin` (today's figure with room for a noisy machine) in the
/// quick tier.
pub(crate) fn bound(full: f64, margin: f64) -> f64 {
    if quick() { margin } else { full }
}

/// Min, median and max.
pub(crate) fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (v[0], median, v[n - 1])
}

/// Deletes the namespaces and waits until they are gone, so that the next
/// measurement neither pays for their deletion nor counts its writes.
pub(crate) async fn delete_namespaces(client: &Client, names: &[String]) {
    let api: Api<Namespace> = Api::all(client.clone());
    for n in names {
        match api.delete(n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => panic!("deleting namespace {n}: {e}"),
        }
    }
    for n in names {
        eventually(
            Duration::from_secs(300),
            format!("namespace {n} to be deleted"),
            async || match api.get_opt(n).await.expect("get namespace") {
                None => Ok(()),
                Some(ns) => Err(format!("{:?}", ns.status)),
            },
        )
        .await;
    }
}

pub(crate) fn wide_layer(name: &str, n: usize, command: &str) -> String {
    wide_layer_with(name, n, command, "")
}

/// [`wide_layer`] with `extra` (lines of YAML) added to every category.
pub(crate) fn wide_layer_with(name: &str, n: usize, command: &str, extra: &str) -> String {
    let mut c = format!(
        "layers:\n  {name}:\n    execution_mode: parallel\n    strategy: PARALLEL_UNLIMITED\n    categories:\n"
    );
    for i in 0..n {
        c.push_str(&format!(
            "      - name: c{i}\n        timeout_seconds: 600\n        command: \"{command}\"\n{extra}"
        ));
    }
    c
}

/// Write requests the apiserver served, by `resource/subresource verb`.
pub(crate) fn apiserver_writes(cp: &ControlPlane) -> BTreeMap<String, f64> {
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

pub(crate) fn diff(
    after: &BTreeMap<String, f64>,
    before: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Creates `objs`, `CONCURRENT_WRITES` at a time, as the controller does;
/// returns them as created.
pub(crate) async fn create_concurrently<K>(api: &Api<K>, objs: Vec<K>) -> Vec<K>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    futures::stream::iter(objs.into_iter().map(|o| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &o)
                .await
                .expect("create")
        }
    }))
    .buffer_unordered(CONCURRENT_WRITES)
    .collect()
    .await
}

/// Creates in `ns` what [`concurrent_baseline_with`] times.
pub(crate) async fn create_same_objects(
    client: &Client,
    ns: &str,
    name: &str,
    layer: &str,
    config: &str,
    inline: &str,
    extra: serde_json::Value,
) {
    let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), ns);
    let crs: Api<CategoryRun> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let run = runs
        .create(
            &PostParams::default(),
            &test_layer_run(name, layer, inline, extra),
        )
        .await
        .expect("create run");
    let origin = format!("TestLayerRun {ns}/{name} spec.config.inline");
    let (_, objs) = resolve(&run, config, &origin).expect("the layer resolves");
    let created = create_concurrently(&crs, objs).await;
    let attempts: Vec<Pod> = created.iter().map(|cr| attempt_pod(cr, 1)).collect();
    create_concurrently(&pods, attempts).await;
}

/// Peak and current resident memory of process `pid`, in MiB.
pub(crate) fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds (user and system, all threads) process `pid` has used.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's name, which ends with the last ')':
    // state is field 3, utime 14 and stime 15, in USER_HZ (100 a second).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// CPU seconds used so far by each process a part shares the machine with:
/// the control plane's components, the controller and this program (the
/// load and the test kubelet).
pub(crate) struct CpuUse(Vec<(String, u32, f64)>);

impl CpuUse {
    /// The figures now, for the control plane of `cp`, the controller
    /// process `controller` (if one runs) and this program.
    pub(crate) fn now(cp: &ControlPlane, controller: Option<u32>) -> Self {
        let mut procs = cp.pids();
        procs.extend(controller.map(|c| ("controller".to_string(), c)));
        procs.push(("benchmark and test kubelet".into(), std::process::id()));
        CpuUse(
            procs
                .into_iter()
                .map(|(n, p)| (n, p, cpu_seconds(p)))
                .collect(),
        )
    }

    /// What each used since `before`, over `wall` seconds, in words.
    pub(crate) fn since(&self, before: &CpuUse, wall: f64) -> String {
        self.0
            .iter()
            .map(|(name, pid, now)| {
                let was = before
                    .0
                    .iter()
                    .find(|(_, p, _)| p == pid)
                    .map_or(0.0, |b| b.2);
                let used = now - was;
                format!(
                    "{name} {used:.1} s ({:.0} % of a core)",
                    100.0 * used / wall
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether the writes counted under `key` (as [`apiserver_writes`] names
/// them) are another's than the controller's: the test kubelet's, the
/// controller manager's, the namespaces'. ConfigMaps are all another's but
/// those counted as "configmaps POST (the controller's)".
pub(crate) fn not_the_controllers(key: &str) -> bool {
    const KUBELET: [&str; 4] = [
        "pods/binding POST",
        "pods/status PATCH",
        "nodes/status PATCH",
        "nodes POST",
    ];
    KUBELET.contains(&key)
        || ["leases", "endpoints", "endpointslices", "namespaces"]
            .iter()
            .any(|k| key.starts_with(k))
        || ["serviceaccounts", "secrets"]
            .iter()
            .any(|k| key.starts_with(k))
        || (key.starts_with("configmaps") && !key.contains("the controller's"))
}

/// The controller's writes among `writes` (as [`diff`] gives them).
pub(crate) fn controller_writes(writes: &BTreeMap<String, f64>) -> f64 {
    writes
        .iter()
        .filter(|(k, _)| !not_the_controllers(k))
        .map(|(_, v)| v)
        .sum()
}

/// Each figure checked against its target: what, whether it met it, the
/// figure and the target in words.
pub(crate) static TARGETS: std::sync::Mutex<Vec<(String, bool, String)>> =
    std::sync::Mutex::new(Vec::new());

/// Records whether the figure `what` met its target.
pub(crate) fn target(what: &str, met: bool, detail: String) {
    if let Ok(mut t) = TARGETS.lock() {
        t.push((what.to_string(), met, detail));
    }
}

/// Waits until `pods` holds at least `n` Pods, from a watch of their
/// metadata (a list of 10,000 Pods every second would cost the apiserver
/// more than the operator's own work does).
pub(crate) async fn wait_for_pods(client: &Client, ns: &str, n: usize) {
    use kube::core::PartialObjectMeta;
    use kube::runtime::{WatchStreamExt, watcher};
    let pods: Api<PartialObjectMeta<Pod>> = Api::namespaced(client.clone(), ns);
    let mut seen = std::collections::HashSet::new();
    let mut events = std::pin::pin!(watcher(pods, watcher::Config::default()).applied_objects());
    let counted = async {
        while seen.len() < n {
            match events.next().await {
                Some(Ok(p)) => {
                    seen.insert(p.metadata.name.unwrap_or_default());
                }
                Some(Err(e)) => eprintln!("watching Pods: {e}"),
                None => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1800), counted)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "not every Pod of the run in 30 minutes: {} of {n}",
                seen.len()
            )
        });
}
