//! (i) Many runs at once: 200 runs of 50 categories over 20 namespaces,
//! created together, against one controller process of every namespace;
//! beside the same objects created by a plain client.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use serde_json::json;
use testlayer::api::TestLayerRun;
use testlayer::api::names::LABEL_RUN;
use testlayer_testkit::ControlPlane;

use crate::common::{self, Fixture, controller_process_of, eventually_every, test_layer_run};
use crate::kit::{
    CONCURRENT_WRITES, CpuUse, apiserver_writes, bound, controller_writes, create_same_objects,
    delete_namespaces, diff, not_the_controllers, percentile, rss_mib, size, target, wide_layer,
};

/// Runs the controller process reconciles at once (its default).
const CONTROLLER_CONCURRENCY: usize = 16;

/// When the first Pod of each run was seen, and how many Pods of the runs
/// (named `run-…`) were seen in all, from a watch of every namespace.
#[derive(Default)]
struct PodsSeen {
    first: BTreeMap<(String, String), Instant>,
    all: std::collections::HashSet<(String, String)>,
}

/// Starts a watch of the metadata of every Pod of a run in the cluster,
/// recording into what it returns; returns once the watch has listed.
async fn watch_pods(client: &kube::Client) -> (Arc<Mutex<PodsSeen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(PodsSeen::default()));
    let api: Api<PartialObjectMeta<Pod>> = Api::all(client.clone());
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let mut listed = Some(listed_tx);
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default().labels(LABEL_RUN)));
        while let Some(event) = events.next().await {
            let pod = match event {
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                // Pods listed before the runs are submitted are not theirs.
                Ok(watcher::Event::Apply(p)) => p,
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("watching Pods: {e}");
                    continue;
                }
            };
            let at = Instant::now();
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let run = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_RUN).cloned())
                .unwrap_or_default();
            if !run.starts_with("run-") {
                continue;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            if let Ok(mut s) = record.lock() {
                s.first.entry((ns.clone(), run)).or_insert(at);
                s.all.insert((ns, name));
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), listed_rx)
        .await
        .expect("the Pod watch listed in a minute")
        .expect("the Pod watch's task");
    (seen, task)
}

/// Fixtures of `n` namespaces named `prefix-…`, each with a test kubelet
/// of one node and no controller.
async fn namespaces(prefix: &str, n: usize) -> Vec<Fixture> {
    let mut fxs = Vec::new();
    for _ in 0..n {
        fxs.push(
            Fixture::builder(prefix)
                .nodes(1)
                .without_controller()
                .start()
                .await,
        );
    }
    fxs
}

/// Waits until every run of every namespace in `fxs` has ended; returns
/// how many succeeded.
async fn wait_all_ended(fxs: &[Fixture], per_ns: usize) -> usize {
    let mut succeeded = 0;
    for fx in fxs {
        let runs: Api<TestLayerRun> = fx.api();
        succeeded += eventually_every(
            Duration::from_secs(1),
            Duration::from_secs(1800),
            "every run of a namespace ended",
            async || {
                let list = runs
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let ours: Vec<_> = list
                    .items
                    .iter()
                    .filter(|r| {
                        r.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with("run-"))
                    })
                    .collect();
                let done = ours.iter().filter(|r| common::is_done(r)).count();
                if ours.len() == per_ns && done == per_ns {
                    Ok(ours
                        .iter()
                        .filter(|r| common::phase(r) == Some(testlayer::api::LayerPhase::Succeeded))
                        .count())
                } else {
                    Err(format!("{done} of {per_ns} ended"))
                }
            },
        )
        .await;
    }
    succeeded
}

/// ConfigMaps the controller made for the runs in the namespaces of `fxs`
/// (named for their run).
async fn controller_config_maps(fxs: &[Fixture]) -> f64 {
    let mut n = 0;
    for fx in fxs {
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = fx.api();
        n += cms
            .list_metadata(&ListParams::default())
            .await
            .expect("list ConfigMaps")
            .items
            .iter()
            .filter(|c| {
                c.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("run-"))
            })
            .count();
    }
    n as f64
}

/// The Events of the namespaces of `fxs` published more than once (each
/// again is a PATCH of the Event's series), counted by reason and kind of
/// object, in words.
async fn repeated_events(fxs: &[Fixture]) -> String {
    use k8s_openapi::api::events::v1::Event;
    let mut by: BTreeMap<String, (usize, i32)> = BTreeMap::new();
    for fx in fxs {
        let events: Api<Event> = fx.api();
        let list = events
            .list(&ListParams::default())
            .await
            .expect("list Events");
        for e in list.items {
            let Some(series) = e.series else { continue };
            let kind = e.regarding.and_then(|r| r.kind).unwrap_or_default();
            let key = format!("{} on a {kind}", e.reason.unwrap_or_default());
            let entry = by.entry(key).or_default();
            entry.0 += 1;
            entry.1 += series.count;
        }
    }
    if by.is_empty() {
        return "none".into();
    }
    by.iter()
        .map(|(k, (events, count))| format!("{k}: {events} Events, {count} times in all"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// (i) `runs` runs of `cats` categories over `n_ns` namespaces, submitted
/// together to one controller process of every namespace: apply to all
/// Pods created beside a plain client creating the same objects, how long
/// the last run waited for its first Pod beside the median run, and the
/// apiserver writes per category to every run's end.
pub(super) async fn many_runs(cp: &'static ControlPlane) {
    let (n_ns, per_ns, cats) = (size(20, 4), size(10, 5), size(50, 10));
    let runs = n_ns * per_ns;
    let total = runs * cats;
    // Every attempt runs long enough to be seen running, alone or among
    // many runs, so that both make the same status writes.
    let config = wide_layer("many", cats, "echo '1 passed in 0.1s'; sleep 2");
    let fxs = namespaces("bench-many", n_ns).await;
    let client = cp.admin_client().await.expect("client");
    let mut child = controller_process_of(cp, None, "many");
    // A run of one category first: once it ends, the controller has listed
    // and works.
    fxs[0]
        .submit("warm-up", "many", &wide_layer("many", 1, "true"), json!({}))
        .await;
    fxs[0].wait_done("warm-up", Duration::from_secs(120)).await;
    // One run alone first, in a namespace of its own: its writes per
    // category are the figure the many runs are held to.
    let solo = namespaces("bench-many-solo", 1).await;
    let before = apiserver_writes(cp);
    solo[0].submit("run-solo", "many", &config, json!({})).await;
    let alone = solo[0]
        .wait_done("run-solo", Duration::from_secs(600))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let solo_writes = diff(&apiserver_writes(cp), &before);
    let solo_per_category =
        (controller_writes(&solo_writes) + controller_config_maps(&solo).await) / cats as f64;
    let solo_ok = common::phase(&alone) == Some(testlayer::api::LayerPhase::Succeeded);
    let (seen, watch) = watch_pods(&client).await;

    let before = apiserver_writes(cp);
    let cpu_before = CpuUse::now(cp, Some(child.id()));
    let t = Instant::now();
    let submissions = fxs.iter().flat_map(|fx| {
        (0..per_ns).map(|r| {
            let api: Api<TestLayerRun> = fx.api();
            let run = test_layer_run(&format!("run-{r:02}"), "many", &config, json!({}));
            async move {
                api.create(&PostParams::default(), &run)
                    .await
                    .expect("create run")
            }
        })
    });
    futures::stream::iter(submissions)
        .buffer_unordered(CONCURRENT_WRITES)
        .collect::<Vec<_>>()
        .await;
    eventually_every(
        Duration::from_millis(100),
        Duration::from_secs(1800),
        "every Pod of every run",
        async || {
            let n = seen.lock().map(|s| s.all.len()).unwrap_or(0);
            if n >= total {
                Ok(())
            } else {
                Err(format!("{n} of {total} Pods"))
            }
        },
    )
    .await;
    let operator = t.elapsed().as_secs_f64();
    let cpu_create = CpuUse::now(cp, Some(child.id())).since(&cpu_before, operator);
    let succeeded = wait_all_ended(&fxs, per_ns).await;
    let to_end = t.elapsed().as_secs_f64();
    // The last statuses land just after the runs end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let many_writes = diff(&apiserver_writes(cp), &before);
    let writes = controller_writes(&many_writes) + controller_config_maps(&fxs).await;
    let repeated = repeated_events(&fxs).await;
    let cpu_all = CpuUse::now(cp, Some(child.id())).since(&cpu_before, to_end);
    let (peak, _) = rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    watch.abort();
    let mut firsts: Vec<f64> = seen
        .lock()
        .map(|s| {
            s.first
                .values()
                .map(|at| at.duration_since(t).as_secs_f64())
                .collect()
        })
        .unwrap_or_default();
    firsts.sort_by(f64::total_cmp);
    // The kubelets stay until their namespaces are gone (they end the
    // Pods that are deleted).
    let names: Vec<String> = fxs.iter().chain(&solo).map(|f| f.ns.clone()).collect();
    delete_namespaces(&client, &names).await;
    drop(fxs);
    drop(solo);

    // The same objects from a plain client: every run's, CategoryRuns then
    // Pods, as many runs at once as the controller reconciles, each
    // CONCURRENT_WRITES writes at a time.
    let fxs = namespaces("bench-many-plain", n_ns).await;
    let cpu_before = CpuUse::now(cp, None);
    let t = Instant::now();
    let creations = fxs.iter().flat_map(|fx| {
        let (client, config) = (&client, &config);
        (0..per_ns).map(move |r| async move {
            let name = format!("run-{r:02}");
            create_same_objects(client, &fx.ns, &name, "many", config, config, json!({})).await;
        })
    });
    futures::stream::iter(creations)
        .buffer_unordered(CONTROLLER_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let plain = t.elapsed().as_secs_f64();
    let cpu_plain = CpuUse::now(cp, None).since(&cpu_before, plain);
    // The kubelets stay until their namespaces are gone (they end the
    // Pods that are deleted).
    let names: Vec<String> = fxs.iter().map(|f| f.ns.clone()).collect();
    delete_namespaces(&client, &names).await;
    drop(fxs);

    let median = percentile(&firsts, 0.5);
    let last = firsts.last().copied().unwrap_or(f64::INFINITY);
    let per_category = writes / total as f64;
    println!(
        "(i) {runs} runs of {cats} categories over {n_ns} namespaces, created together, one controller of every namespace ({} Pods, test kubelet of one node in each):",
        total
    );
    println!(
        "    apply to all Pods created {operator:.1} s ({:.0} pods/s); the same objects from a plain client ({CONTROLLER_CONCURRENCY} runs at once, {CONCURRENT_WRITES} writes each): {plain:.1} s; operator / plain {:.0} % (target: within 1.4x, >= 71 %)",
        total as f64 / operator,
        100.0 * plain / operator
    );
    println!(
        "    each run's first Pod after the apply: median {median:.2} s, last {last:.2} s ({} runs seen; target: last <= 2x median)",
        firsts.len()
    );
    println!(
        "    every run ended {to_end:.1} s after the apply, {succeeded}/{runs} succeeded; apiserver writes {per_category:.2} per category; one run of the same layer alone: {solo_per_category:.2} (target: no more)"
    );
    println!("    writes per category by request, the many runs beside the run alone:");
    for (k, v) in many_writes.iter().filter(|(k, _)| !not_the_controllers(k)) {
        println!(
            "      {k:<34} {:>6.2}  {:>6.2}",
            v / total as f64,
            solo_writes.get(k).copied().unwrap_or(0.0) / cats as f64
        );
    }
    println!("    Events published more than once (a series), by reason: {repeated}");
    println!("    CPU while the Pods were created: {cpu_create}");
    println!("    CPU to every run's end: {cpu_all}");
    println!("    CPU while the plain client created them: {cpu_plain}");
    println!("    controller peak RSS {peak:.1} MiB");
    // At the quick tier's 200 Pods the first reconciles weigh as much as
    // the creates (1.4 s for the plain client): seen from 37 % to 66 %.
    let within = bound(1.4, 4.0);
    target(
        "(i) many runs: apply to all Pods created, operator / plain client",
        operator <= within * plain,
        format!(
            "{:.0} % (target >= {:.0} %, within {within}x)",
            100.0 * plain / operator,
            100.0 / within
        ),
    );
    let starved = bound(2.0, 4.0);
    target(
        "(i) many runs: no run starved (last run's first Pod / median run's)",
        firsts.len() == runs && last <= starved * median,
        format!(
            "{:.2}x over {} runs (target <= {starved}x)",
            last / median,
            firsts.len()
        ),
    );
    // A run's status writes depend on how its moments fall: a margin of
    // 0.1 per category (0.3 in the quick tier).
    // Every run passes: no Event of theirs is said twice (a run accepted
    // again on an older copy of itself said "Accepted" two or three times).
    target(
        "(i) many runs: no Event published twice",
        repeated == "none",
        repeated.clone(),
    );
    let ceiling = solo_per_category + bound(0.1, 0.3);
    target(
        "(i) many runs: apiserver writes per category, beside one run alone",
        succeeded == runs && solo_ok && per_category <= ceiling,
        format!(
            "{per_category:.2} beside {solo_per_category:.2}, {succeeded}/{runs} succeeded (ceiling {ceiling:.2})"
        ),
    );
}
