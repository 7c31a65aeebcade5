//! Shared resources in the cluster, against the real control plane: runs
//! take turns on a TestLayerResource in the order of the namespace's line,
//! the wait shows in status, and whatever ends a holder (its attempt, a
//! timeout, the layer's deadline, a cancel, a deleted run, a Pod deleted by
//! hand, a controller restart in between) gives back what it held, checked
//! from the kubelet's record.

mod common;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use testlayer::api::{LayerPhase, TestLayerResource};
use testlayer::plan::Phase;
use testlayer::words::Reason;
use testlayer_testkit::kubelet::{KubeletEvent, KubeletEventKind};

use common::{Fixture, category_phases, eventually, phase};

const T: Duration = Duration::from_secs(60);

/// A layer whose categories each hold the mutex `staging_db` while they
/// run `command`.
fn config(categories: &[(&str, &str)], extra_category_fields: &str) -> String {
    let mut c = String::from(
        "resources:\n  staging_db: {}\nlayers:\n  e2e:\n    execution_mode: parallel\n    categories:\n",
    );
    for (name, command) in categories {
        c += &format!(
            "      - name: {name}\n        timeout_seconds: 120\n        uses: [staging_db]\n        command: \"{command}\"\n{extra_category_fields}"
        );
    }
    c
}

async fn grants(fx: &Fixture) -> Vec<Lease> {
    let api: Api<Lease> = fx.api();
    api.list(&ListParams::default().labels("testlayer.dev/resource"))
        .await
        .expect("list grants")
        .items
}

/// Most Pods of `pods` with a running container at once, and the order
/// their containers started, in the kubelet's record.
fn overlap(events: &[KubeletEvent], pods: impl Fn(&str) -> bool) -> (usize, Vec<String>) {
    let mut running = std::collections::BTreeSet::new();
    let (mut peak, mut order) = (0, Vec::new());
    for e in events.iter().filter(|e| pods(&e.pod)) {
        match e.kind {
            KubeletEventKind::Running => {
                running.insert(e.pod.clone());
                order.push(e.pod.clone());
            }
            KubeletEventKind::Bound => {}
            _ => {
                running.remove(&e.pod);
            }
        }
        peak = peak.max(running.len());
    }
    (peak, order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_take_turns_on_a_mutex_in_the_order_they_were_created() {
    let fx = Fixture::new("res-turns").await;
    fx.declare_resource("staging-db", 1).await;
    // Each holds it 3 s: second-b waits long enough to be looked at.
    let config = config(&[("a", "sleep 3"), ("b", "sleep 3")], "");
    fx.submit("first", "e2e", &config, json!({})).await;
    // One second later, so that the line's order is the runs' creation.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fx.submit("second", "e2e", &config, json!({})).await;
    // A waiting category says what it waits for; its place in line is in
    // the resource's status, and `testlayer get` shows it from there.
    let waiting = eventually(T, "a category of the second run in line", async || {
        let cr = fx.crs().get("second-b").await.ok()?;
        let st = cr.status?;
        (st.reason == Some(Reason::WaitingForResource)).then_some(st)
    })
    .await;
    let claim = waiting
        .resource_claim
        .clone()
        .expect("the claim is recorded");
    assert_eq!(claim.wants[0].resource, "staging-db");
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for shared resources: staging-db"),
        "{waiting:#?}"
    );
    let place = eventually(T, "second-b in the resource's line", async || {
        let r: TestLayerResource = fx.api().get("staging-db").await.ok()?;
        let next = r.status?.next;
        next.iter().position(|h| h.holder == "second-b")
    })
    .await;
    // Behind first-b and second-a at most (one may hold the unit by now).
    assert!(place <= 2, "second-b is {place} places behind the first");
    let get = std::process::Command::new(env!("CARGO_BIN_EXE_testlayer"))
        .args(["get", "second", "-n", &fx.ns, "--kubeconfig"])
        .arg(fx.cp.kubeconfig())
        .output()
        .expect("testlayer get");
    let tree = String::from_utf8_lossy(&get.stdout);
    assert!(
        tree.contains("waiting for shared resources: staging-db: ") && tree.contains(" in line"),
        "{tree}"
    );
    for run in ["first", "second"] {
        let r = fx.wait_done(run, T).await;
        assert_eq!(phase(&r), Some(LayerPhase::Succeeded), "{r:#?}");
    }
    let events = fx.kubelet().events();
    let (peak, order) = overlap(&events, |p| {
        p.starts_with("first-") || p.starts_with("second-")
    });
    assert_eq!(peak, 1, "two holders of the mutex at once: {order:?}");
    assert_eq!(order.len(), 4, "{order:?}");
    assert!(
        order[..2].iter().all(|p| p.starts_with("first-")),
        "the earlier run's claims were not served first: {order:?}"
    );
    // Everything held was given back.
    eventually(T, "no grant left", async || {
        let left = grants(&fx).await;
        left.is_empty().then_some(()).ok_or_else(|| {
            format!(
                "{:?}",
                left.iter().map(|l| l.name_any()).collect::<Vec<_>>()
            )
        })
    })
    .await;
}

/// Waits until `run`'s category `long` holds the mutex and `waiter`'s
/// category `quick` waits for it.
async fn holding(fx: &Fixture, run: &str, waiter: &str) {
    eventually(T, format!("{run} holding, {waiter} waiting"), async || {
        let held = grants(fx)
            .await
            .iter()
            .any(|l| l.labels().get("testlayer.dev/holder") == Some(&format!("{run}-long")));
        let waits = fx
            .crs()
            .get(&format!("{waiter}-quick"))
            .await
            .ok()
            .and_then(|c| c.status)
            .is_some_and(|s| s.reason == Some(Reason::WaitingForResource));
        (held && waits).then_some(())
    })
    .await;
}

/// Submits `holder` (config `long`, whose category `long` takes the mutex)
/// and, a second later so that it is behind in line, `waiter` (category
/// `quick`), and waits until the one holds and the other waits.
async fn hold_and_wait(fx: &Fixture, holder: &str, long: &str, waiter: &str) {
    fx.submit(holder, "e2e", long, json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let quick = config(&[("quick", "true")], "");
    fx.submit(waiter, "e2e", &quick, json!({})).await;
    holding(fx, holder, waiter).await;
}

/// Deletes run `name` as `kubectl delete` does: at once, its CategoryRuns
/// and Pods left to the garbage collector.
async fn delete_in_background(fx: &Fixture, name: &str) {
    fx.runs()
        .delete(
            name,
            &DeleteParams {
                propagation_policy: Some(kube::api::PropagationPolicy::Background),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_a_deleted_run_and_a_pod_deleted_by_hand_give_back_the_mutex() {
    // The controller's logs (each grant made and given back), shown when
    // the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("testlayer=info")
        .with_test_writer()
        .try_init();
    let mut fx = Fixture::new("res-release").await;
    fx.declare_resource("staging-db", 1).await;
    let long = config(&[("long", "sleep 300")], "        infra_retries: 0\n");

    // Cancelled: its attempt is stopped and the mutex goes back.
    hold_and_wait(&fx, "holder1", &long, "waiter1").await;
    // A controller restart in between changes nothing: the grant is an
    // object, not a memory.
    fx.restart_controller(Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    holding(&fx, "holder1", "waiter1").await;
    assert_eq!(grants(&fx).await.len(), 1);
    fx.runs()
        .patch(
            "holder1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cancel": true}})),
        )
        .await
        .unwrap();
    let w = fx.wait_done("waiter1", T).await;
    assert_eq!(phase(&w), Some(LayerPhase::Succeeded));
    let h = fx.wait_done("holder1", T).await;
    assert_eq!(phase(&h), Some(LayerPhase::Cancelled));

    // Its Pod deleted by hand: the attempt ends, its grant goes back.
    hold_and_wait(&fx, "holder2", &long, "waiter2").await;
    // Once its attempt is recorded as running (before that, its Pod is the
    // only record, and a Pod gone that early is started again).
    eventually(T, "holder2's attempt recorded", async || {
        let st = fx.crs().get("holder2-long").await.ok()?.status?;
        (st.phase == Some(Phase::Running) && !st.attempts.is_empty()).then_some(())
    })
    .await;
    fx.pods()
        .delete("holder2-long-1", &DeleteParams::default())
        .await
        .unwrap();
    let w = fx.wait_done("waiter2", T).await;
    assert_eq!(phase(&w), Some(LayerPhase::Succeeded));
    let h = fx.wait_done("holder2", T).await;
    assert_eq!(category_phases(&h).get("long"), Some(&Phase::Failed));

    // The run deleted: the garbage collector takes its grant with it.
    hold_and_wait(&fx, "holder3", &long, "waiter3").await;
    delete_in_background(&fx, "holder3").await;
    let w = fx.wait_done("waiter3", T).await;
    assert_eq!(phase(&w), Some(LayerPhase::Succeeded));

    // The run deleted while its Pod ignores SIGTERM: the Pod runs through
    // its grace period (10 s), and its grant, which has no owner the
    // garbage collector could follow, stays until the Pod has stopped.
    let stubborn = config(&[("long", "trap '' TERM; sleep 300")], "");
    hold_and_wait(&fx, "holder4", &stubborn, "waiter4").await;
    let deleted = std::time::Instant::now();
    delete_in_background(&fx, "holder4").await;
    let w = fx.wait_done("waiter4", T).await;
    assert_eq!(phase(&w), Some(LayerPhase::Succeeded));
    assert!(
        deleted.elapsed() >= Duration::from_secs(9),
        "waiter4 ended {:?} after holder4 was deleted, before holder4's Pod's grace period ran out",
        deleted.elapsed()
    );

    let events = fx.kubelet().events();
    let (peak, _) = overlap(&events, |_| true);
    assert_eq!(
        peak,
        1,
        "two holders of the mutex at once:\n{}",
        common::timeline(&events, "")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_attempt_and_a_run_past_its_deadline_give_back_the_mutex() {
    let fx = Fixture::new("res-timeout").await;
    fx.declare_resource("staging-db", 1).await;
    let long = config(&[("long", "sleep 300")], "        infra_retries: 0\n");

    // Its attempt times out (3 s): the attempt is stopped, the mutex goes.
    let timing_out = long.replace("timeout_seconds: 120", "timeout_seconds: 3");
    hold_and_wait(&fx, "holder1", &timing_out, "waiter1").await;
    let w = fx.wait_done("waiter1", T).await;
    assert_eq!(phase(&w), Some(LayerPhase::Succeeded));
    let h = fx.wait_done("holder1", T).await;
    assert_eq!(category_phases(&h).get("long"), Some(&Phase::TimedOut));

    // The layer's deadline (3 s) passes while it holds the mutex.
    let past_deadline = long.replace("  e2e:\n", "  e2e:\n    max_duration_minutes: 0.05\n");
    hold_and_wait(&fx, "holder2", &past_deadline, "waiter2").await;
    let w = fx.wait_done("waiter2", T).await;
    assert_eq!(phase(&w), Some(LayerPhase::Succeeded));
    let h = fx.wait_done("holder2", T).await;
    assert_eq!(phase(&h), Some(LayerPhase::TimedOut), "{h:#?}");

    let events = fx.kubelet().events();
    let (peak, _) = overlap(&events, |_| true);
    assert_eq!(
        peak,
        1,
        "two holders of the mutex at once:\n{}",
        common::timeline(&events, "")
    );
    eventually(T, "no grant left", async || {
        grants(&fx).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_without_its_object_holds_the_run_until_it_is_declared() {
    let fx = Fixture::new("res-missing").await;
    let config = config(&[("a", "true")], "");
    fx.submit("r", "e2e", &config, json!({})).await;
    let r = fx
        .wait_for("r", T, "the hold naming the resource", |r| {
            r.status
                .as_ref()
                .and_then(|s| s.message.as_deref())
                .is_some_and(|m| {
                    m.contains(
                        "shared resource \"staging-db\" has no TestLayerResource in namespace",
                    )
                })
        })
        .await;
    assert!(!common::is_done(&r));
    assert!(fx.pod_names("").await.is_empty(), "a Pod started");
    fx.declare_resource("staging-db", 1).await;
    let r = fx.wait_done("r", T).await;
    assert_eq!(phase(&r), Some(LayerPhase::Succeeded));
}

/// A layer that keeps `keeps` for the whole run, and whose second category
/// (after a first of two seconds) also wants `wants`.
fn keeping(keeps: &str, wants: &str) -> String {
    format!(
        "resources:\n  staging_db: {{}}\n  sandbox: {{}}\nlayers:\n  e2e:\n    uses: [{keeps}]\n    categories:\n      - name: first\n        timeout_seconds: 120\n        command: \"sleep 2\"\n      - name: second\n        timeout_seconds: 120\n        dependencies: [first]\n        uses: [{wants}]\n        command: \"true\"\n"
    )
}

/// `run`'s Stalled condition, when it is true.
fn stalled(run: &testlayer::api::TestLayerRun) -> Option<String> {
    run.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "ResourceDeadlock")
        .map(|c| c.message.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_keep_what_each_other_waits_for_are_stalled_naming_the_cycle_until_one_is_cancelled()
 {
    let fx = Fixture::new("res-deadlock").await;
    fx.declare_resource("staging-db", 1).await;
    fx.declare_resource("sandbox", 1).await;
    // Two configs, so that no check of one config can see the cycle.
    fx.submit(
        "db-first",
        "e2e",
        &keeping("staging_db", "sandbox"),
        json!({}),
    )
    .await;
    fx.submit(
        "sandbox-first",
        "e2e",
        &keeping("sandbox", "staging_db"),
        json!({}),
    )
    .await;
    let mut messages = Vec::new();
    for run in ["db-first", "sandbox-first"] {
        let r = fx
            .wait_for(run, T, "Stalled by a resource deadlock", |r| {
                stalled(r).is_some()
            })
            .await;
        assert!(!common::is_done(&r));
        messages.push(stalled(&r).unwrap());
    }
    let expected = "deadlock over shared resources: runs \"db-first\" and \"sandbox-first\" wait for each other; \
        \"db-first\" keeps staging-db and waits for sandbox; \
        \"sandbox-first\" keeps sandbox and waits for staging-db; cancel or delete one of them";
    assert_eq!(messages, [expected, expected]);
    // Each resource says who holds it and who waits.
    let api: Api<TestLayerResource> = fx.api();
    let db = eventually(T, "the status of staging-db", async || {
        let st = api.get("staging-db").await.ok()?.status?;
        (st.in_use == 1 && st.waiting == 1).then_some(st)
    })
    .await;
    assert_eq!(
        (db.holders[0].holder.as_str(), db.next[0].run.as_str()),
        ("db-first", "sandbox-first"),
        "{db:#?}"
    );
    // One of them cancelled: the other goes on, and is no longer stalled.
    fx.runs()
        .patch(
            "db-first",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cancel": true}})),
        )
        .await
        .unwrap();
    let other = fx.wait_done("sandbox-first", T).await;
    assert_eq!(phase(&other), Some(LayerPhase::Succeeded), "{other:#?}");
    assert_eq!(stalled(&other), None);
    let cancelled = fx.wait_done("db-first", T).await;
    assert_eq!(phase(&cancelled), Some(LayerPhase::Cancelled));
    eventually(T, "staging-db free, nobody waiting", async || {
        let st = api.get("staging-db").await.ok()?.status?;
        (st.in_use == 0 && st.waiting == 0 && st.holders.is_empty()).then_some(())
    })
    .await;
}

/// A unit given back and granted again is a new Lease of the same name: a
/// second give-back decided on the first (two controllers, or a retried
/// reconcile) leaves the new holder's grant alone. Grants made by earlier
/// versions carry a finalizer, which a give-back removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_give_back_leaves_the_next_holders_grant_of_the_same_unit_alone() {
    use testlayer::api::names::GRANT_FINALIZER;
    use testlayer::controller::shared::claims::GrantRef;
    use testlayer::controller::shared::writes::release_grants;
    let fx = Fixture::new("res-late").await;
    let api: Api<Lease> = fx.api();
    for finalizers in [vec![], vec![GRANT_FINALIZER]] {
        let lease = |holder: &str| -> Lease {
            serde_json::from_value(json!({
                "metadata": {"name": "testlayer-grant-staging-db-0",
                    "labels": {"testlayer.dev/resource": "staging-db", "testlayer.dev/holder": holder},
                    "finalizers": finalizers},
                "spec": {"holderIdentity": holder},
            }))
            .unwrap()
        };
        let pp = kube::api::PostParams::default();
        let first = api
            .create(&pp, &lease("first"))
            .await
            .expect("grant to first");
        let old = GrantRef::of(&first);
        release_grants(&api, vec![old.clone()])
            .await
            .expect("give back");
        assert!(grants(&fx).await.is_empty(), "the first grant is gone");
        let second = api
            .create(&pp, &lease("second"))
            .await
            .expect("grant to second");
        assert_ne!(second.uid(), first.uid());
        release_grants(&api, vec![old])
            .await
            .expect("a late give-back is fine");
        let left = grants(&fx).await;
        assert_eq!(left.len(), 1, "{left:#?}");
        assert_eq!(left[0].uid(), second.uid());
        assert!(
            left[0].metadata.deletion_timestamp.is_none(),
            "{:#?}",
            left[0]
        );
        assert_eq!(left[0].finalizers(), finalizers);
        release_grants(&api, vec![GrantRef::of(&second)])
            .await
            .expect("give back the second");
        assert!(grants(&fx).await.is_empty());
    }
}
