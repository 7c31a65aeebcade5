//! What a user installs, on the real node: the controller's image built
//! from this repository (`scripts/image.sh`, an OCI archive imported into
//! the node's containerd, never pulled) and the chart installed with
//! `helm install`. The controller runs as a Pod of the chart's Deployment,
//! under its ServiceAccount and RBAC, probes and security context, reaching
//! the apiserver through the `kubernetes` Service as in any cluster; no
//! controller runs in the test process.
//!
//! Its own test binary: one control plane with kube-scheduler and the
//! workload controllers, and one real node. Needs `bash tests/node/build.sh`
//! and `bash scripts/image.sh` (both run by `scripts/test.sh`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::release::{Release, chart_image};
use common::{Fixture, chart_dir, eventually, phase};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::json;
use testlayer::api::{CategoryRun, LayerPhase};
use testlayer_testkit::RealNode;

fn describe_pods(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            let st = p.status.clone().unwrap_or_default();
            format!(
                "{} {:?} image={:?} containers={:?}\n",
                p.name_any(),
                st.phase,
                p.spec.as_ref().map(|s| s.containers[0].image.clone()),
                st.container_statuses
            )
        })
        .collect()
}

/// The run's CategoryRuns by category, with their attempts' Pods.
async fn attempts(fx: &Fixture, run: &str) -> BTreeMap<String, Vec<String>> {
    fx.crs()
        .list(&ListParams::default().labels(&format!("testlayer.dev/run={run}")))
        .await
        .expect("listing CategoryRuns")
        .items
        .iter()
        .map(|c: &CategoryRun| {
            let st = c.status.clone().unwrap_or_default();
            (
                c.spec.category.clone(),
                st.attempts.iter().map(|a| a.pod_name.clone()).collect(),
            )
        })
        .collect()
}

/// Every category ran exactly once: one attempt each, and one Pod on the
/// node per category, the attempt's.
async fn assert_each_category_ran_once(fx: &Fixture, run: &str, categories: usize) {
    let by_category = attempts(fx, run).await;
    assert_eq!(by_category.len(), categories, "{by_category:#?}");
    for (category, pods) in &by_category {
        assert_eq!(
            pods.len(),
            1,
            "{category} ran {} times: {pods:?}",
            pods.len()
        );
    }
    let pods: Vec<String> = fx
        .pods()
        .list(&ListParams::default().labels(&format!("testlayer.dev/run={run}")))
        .await
        .expect("listing the run's Pods")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    let mut expected: Vec<String> = by_category.into_values().flatten().collect();
    expected.sort();
    let mut seen = pods.clone();
    seen.sort();
    assert_eq!(
        seen, expected,
        "the run's Pods are its attempts' and no more"
    );
}

/// Run `slow` ends Succeeded, each of its six categories run exactly once.
async fn slow_run_ended_as_it_would_have(fx: &Fixture) {
    let run = fx.wait_done("slow", Duration::from_secs(180)).await;
    assert_eq!(
        phase(&run),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        run.status
    );
    assert_each_category_ran_once(fx, "slow", 6).await;
}

/// A layer of `n` busybox categories that each take `seconds`, two at a
/// time.
fn slow_layer(n: usize, seconds: u32) -> String {
    let mut s = String::from(
        "layers:\n  slow:\n    execution_mode: parallel\n    resource_limits: {max_parallel_instances: 2}\n    categories:\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "      - name: c{i}\n        timeout_seconds: 120\n        command: \"sleep {seconds}; echo '1 passed in {seconds}s'\"\n"
        ));
    }
    s
}

/// Starts run `slow`: six busybox categories of 4 s, two at a time; returns
/// once one runs.
async fn start_slow_run(fx: &Fixture) {
    fx.submit(
        "slow",
        "slow",
        &slow_layer(6, 4),
        json!({"image": "busybox:1.35"}),
    )
    .await;
    fx.wait_category_running("slow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_chart_runs_the_shop_example_and_uninstalls_cleanly() {
    let fx = Fixture::builder("inst-shop")
        .real_node()
        .without_controller()
        .start()
        .await;
    let started = Instant::now();
    let release = Release::install(&fx, "tl-shop", &[]).await;
    let installed = started.elapsed();

    // The controller's Pod: the built image, non-root, Ready through its
    // probes, under the chart's ServiceAccount.
    let pods = release.pods(&fx).await;
    assert_eq!(pods.len(), 1, "{}", describe_pods(&pods));
    let pod = &pods[0];
    let spec = pod.spec.clone().expect("spec");
    assert_eq!(
        spec.containers[0].image.as_deref(),
        Some(chart_image().as_str())
    );
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some("tl-shop-testlayer")
    );
    let st = pod.status.clone().expect("status");
    let cs = &st.container_statuses.clone().unwrap_or_default()[0];
    assert!(cs.ready, "{}", describe_pods(&pods));
    assert!(
        cs.container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://")),
        "{cs:?}"
    );
    let version = fx
        .kubectl(&[
            "exec",
            &pod.name_any(),
            "--",
            "/usr/local/bin/testlayer",
            "--version",
        ])
        .await;
    assert!(version.contains("testlayer"), "{version}");

    // The shop example as `docs/getting-started/real-node.md` gives it, run
    // by the controller in its Pod.
    let run = fx.run_shop_example("240s").await;
    assert_eq!(
        phase(&run),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        run.status
    );
    let unit = fx.category("shop", "unit").await.status.expect("status");
    assert_eq!(
        unit.counts.map(|c| (c.passed, c.skipped, c.failed)),
        Some((5, 1, 0)),
        "{unit:#?}"
    );
    // The Events about the run came from the controller in its Pod.
    let events = fx
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    let instances: Vec<String> = events
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("shop"))
        .filter_map(|e| e.reporting_instance.clone())
        .collect();
    assert!(
        !instances.is_empty() && instances.iter().all(|i| i.starts_with(&pod.name_any())),
        "the run's events are reported by {instances:?}, not by {}",
        pod.name_any()
    );
    eprintln!(
        "helm install to Ready: {installed:?}; the shop layer through the installed controller: {:?}",
        started.elapsed() - installed
    );

    // Uninstalled, the release leaves no Pod behind.
    release.helm(&["uninstall", "tl-shop"]).await;
    eventually(
        Duration::from_secs(60),
        "no Pod of the release",
        async || {
            let left = release.pods(&fx).await;
            if left.is_empty() {
                Ok(())
            } else {
                Err(describe_pods(&left))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_upgrade_mid_run_with_two_replicas_changes_nothing_the_run_does() {
    let fx = Fixture::builder("inst-upgrade")
        .real_node()
        .without_controller()
        .start()
        .await;
    let (_, node) = RealNode::shared();
    let release = Release::install(&fx, "tl-upgrade", &["replicaCount=2"]).await;
    let next = format!("{}-next", chart_image());
    node.tag_image(&chart_image(), &next)
        .unwrap_or_else(|e| panic!("tagging the image: {e}"));

    start_slow_run(&fx).await;
    let tag = next.rsplit(':').next().unwrap_or_default().to_string();
    release
        .helm(&[
            "upgrade",
            "tl-upgrade",
            &chart_dir().display().to_string(),
            "--reuse-values",
            "--set",
            &format!("image.tag={tag}"),
        ])
        .await;
    let pods = release.pods(&fx).await;
    let running_new: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.spec
                    .as_ref()
                    .and_then(|s| s.containers[0].image.as_deref())
                    == Some(next.as_str())
        })
        .collect();
    assert_eq!(running_new.len(), 2, "{}", describe_pods(&pods));

    slow_run_ended_as_it_would_have(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_controller_pod_mid_run_loses_and_doubles_nothing() {
    let fx = Fixture::builder("inst-kill")
        .real_node()
        .without_controller()
        .start()
        .await;
    let release = Release::install(&fx, "tl-kill", &[]).await;
    start_slow_run(&fx).await;
    let old = release.pods(&fx).await;
    assert_eq!(old.len(), 1, "{}", describe_pods(&old));
    let old_name = old[0].name_any();
    fx.kubectl(&["delete", "pod", &old_name, "--wait=false"])
        .await;

    // The Deployment replaces it; the new controller picks the run up.
    eventually(
        Duration::from_secs(120),
        "a new controller Pod, Ready",
        async || {
            let pods = release.pods(&fx).await;
            let ready = pods.iter().any(|p| {
                p.name_any() != old_name
                    && p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .is_some_and(|c| c.iter().all(|c| c.ready))
            });
            if ready {
                Ok(())
            } else {
                Err(describe_pods(&pods))
            }
        },
    )
    .await;
    slow_run_ended_as_it_would_have(&fx).await;
}
