//! Shared resources across namespaces, against the real control plane: a
//! controller of every namespace started with `--resources-namespace`
//! serves runs of two namespaces in one line from the TestLayerResources of
//! a third. Its own binary (and so its own control plane), since the
//! controller watches every namespace.

mod common;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;
use testlayer::api::{LayerPhase, TestLayerResource};
use testlayer::controller::ControllerOptions;
use testlayer::plan::Phase;
use testlayer_testkit::kubelet::{KubeletEvent, KubeletEventKind};

use common::{Fixture, eventually, phase};

const T: Duration = Duration::from_secs(60);

/// A layer whose categories each hold the mutex `staging_db` while they
/// run `command`.
fn config(categories: &[(&str, &str)]) -> String {
    let mut c = String::from(
        "resources:\n  staging_db: {}\nlayers:\n  e2e:\n    execution_mode: parallel\n    categories:\n",
    );
    for (name, command) in categories {
        c += &format!(
            "      - name: {name}\n        timeout_seconds: 300\n        infra_retries: 0\n        uses: [staging_db]\n        command: \"{command}\"\n"
        );
    }
    c
}

/// Most Pods with a running container at once in the kubelets' records
/// (Pods named `namespace/name`).
fn most_at_once(records: &[(&str, Vec<KubeletEvent>)]) -> (usize, String) {
    let mut all: Vec<(String, &KubeletEvent)> = records
        .iter()
        .flat_map(|(ns, events)| events.iter().map(move |e| (format!("{ns}/{}", e.pod), e)))
        .collect();
    all.sort_by_key(|(_, e)| e.at);
    let mut running = std::collections::BTreeSet::new();
    let (mut most, mut order) = (0, Vec::new());
    for (pod, e) in all {
        match e.kind {
            KubeletEventKind::Running => {
                running.insert(pod.clone());
                order.push(pod);
            }
            KubeletEventKind::Bound => {}
            _ => {
                running.remove(&pod);
            }
        }
        most = most.max(running.len());
    }
    (most, order.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_two_namespaces_take_turns_on_a_resource_of_a_third() {
    let a = Fixture::builder("xns-a").without_controller().start().await;
    let b = Fixture::builder("xns-b").without_controller().start().await;
    let home = Fixture::builder("xns-res")
        .nodes(0)
        .without_controller()
        .start()
        .await;
    home.declare_resource("staging-db", 1).await;
    let resources: Api<TestLayerResource> = home.api();
    // A TestLayerResource in a run's own namespace is not the one served.
    let _controller = a
        .spawn_controller(ControllerOptions {
            namespace: None,
            resources_namespace: Some(home.ns.clone()),
            ..a.controller_options()
        })
        .await;

    // Runs of one name in both namespaces, so that their holders have the
    // same names too.
    let two = config(&[("x", "sleep 1"), ("y", "sleep 1")]);
    a.submit("r", "e2e", &two, json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.submit("r", "e2e", &two, json!({})).await;
    // The line spans both namespaces: b's categories wait behind a's.
    let waiting = eventually(T, "a category of b's run waiting", async || {
        let st = b.crs().get("r-y").await.ok()?.status?;
        st.resource_claim.is_some().then_some(st)
    })
    .await;
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for shared resources: staging-db"),
        "{waiting:#?}"
    );
    for fx in [&a, &b] {
        let r = fx.wait_done("r", T).await;
        assert_eq!(phase(&r), Some(LayerPhase::Succeeded), "{r:#?}");
    }
    let (most, order) = most_at_once(&[
        (a.ns.as_str(), a.kubelet().events()),
        (b.ns.as_str(), b.kubelet().events()),
    ]);
    assert_eq!(most, 1, "two holders of the mutex at once: {order}");
    assert!(
        order.starts_with(&format!("{}/", a.ns)) && order.contains(&format!("{}/", b.ns)),
        "{order}"
    );
    // Grants live with the resource, none in the runs' namespaces.
    for fx in [&a, &b] {
        let leases: Api<Lease> = fx.api();
        let held = leases
            .list(&ListParams::default().labels("testlayer.dev/resource"))
            .await
            .unwrap();
        assert!(held.items.is_empty(), "{:?}", held.items);
    }

    // A holder deleted: its grant (in the resource's namespace, with no
    // owner the garbage collector could follow) goes once it is gone.
    a.submit(
        "holder",
        "e2e",
        &config(&[("long", "sleep 300")]),
        json!({}),
    )
    .await;
    eventually(T, "the holder running", async || {
        let st = a.crs().get("holder-long").await.ok()?.status?;
        (st.phase == Some(Phase::Running)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.submit("next", "e2e", &config(&[("quick", "true")]), json!({}))
        .await;
    let status = eventually(
        T,
        "the resource's status naming holder and next",
        async || {
            let st = resources.get("staging-db").await.ok()?.status?;
            (st.in_use == 1 && st.waiting == 1).then_some(st)
        },
    )
    .await;
    assert_eq!(
        (
            status.holders[0].holder.as_str(),
            status.holders[0].namespace.as_deref(),
            status.next[0].run.as_str(),
            status.next[0].namespace.as_deref(),
        ),
        (
            "holder-long",
            Some(a.ns.as_str()),
            "next",
            Some(b.ns.as_str())
        ),
        "{status:#?}"
    );
    a.runs()
        .delete("holder", &DeleteParams::default())
        .await
        .unwrap();
    let next = b.wait_done("next", T).await;
    assert_eq!(phase(&next), Some(LayerPhase::Succeeded), "{next:#?}");
    let leases: Api<Lease> = home.api();
    eventually(T, "no grant left", async || {
        let left = leases
            .list(&ListParams::default().labels("testlayer.dev/resource"))
            .await
            .map_err(|e| e.to_string())?;
        if left.items.is_empty() {
            Ok(())
        } else {
            let names: Vec<_> = left.items.iter().map(|l| l.name_any()).collect();
            Err(format!("left: {names:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_of_one_namespace_refuses_a_line_across_namespaces() {
    let fx = Fixture::builder("xns-one")
        .nodes(0)
        .without_controller()
        .start()
        .await;
    let err = fx
        .spawn_controller(ControllerOptions {
            resources_namespace: Some("elsewhere".into()),
            ..fx.controller_options()
        })
        .await
        .await
        .expect("the controller task")
        .expect_err("a controller of one namespace with another resources namespace");
    assert!(
        err.to_string()
            .contains("--resources-namespace elsewhere serves the runs of every namespace"),
        "{err}"
    );
}
