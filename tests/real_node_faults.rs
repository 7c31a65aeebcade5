//! Faults of the real node, one at a time: a drain, a kubelet that hangs
//! (SIGSTOP) while the controller reads a log, and a node lost (its kubelet
//! stopped, then killed) and back. Each touches the whole
//! node (cordoned, frozen), so these tests have a binary of their own and
//! take turns.
//!
//! Needs `bash tests/node/build.sh` (run by `scripts/test.sh`).

mod common;

use std::time::Duration;

use common::{Fixture, phase, running_in, wait_containers};
use serde_json::json;
use testlayer::api::LayerPhase;
use testlayer_testkit::RealNode;

/// One fault at a time: each of them touches the whole node.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BUSYBOX: &str = "busybox:1.35";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_the_attempt_as_infrastructure_and_its_retry_runs_once_uncordoned() {
    let _turn = TURN.lock().await;
    let fx = Fixture::builder("fault-drain").real_node().start().await;
    let (_, node) = RealNode::shared();
    // The first attempt runs until stopped; the retry passes at once.
    let config = r#"
layers:
  drained:
    execution_mode: "sequential"
    categories:
      - name: "long"
        timeout_seconds: 300
        retries: 1
        retry_backoff_seconds: 0.5
        command: "trap 'exit 143' TERM; if [ \"$TESTLAYER_ATTEMPT\" = 1 ]; then sleep 300 & wait; fi; echo '1 passed in 0.1s'"
"#;
    fx.submit("drained", "drained", config, json!({"image": BUSYBOX}))
        .await;
    fx.wait_category_running("drained").await;

    // `kubectl drain` as an operator types it: cordon, then evict through
    // the Eviction API (only this run's Pods: the node is shared). The node
    // is uncordoned however this test ends: the next test needs it.
    let _uncordon = Uncordon(node.name().to_string());
    fx.kubectl(&[
        "drain",
        node.name(),
        "--pod-selector=testlayer.dev/run=drained",
        "--ignore-daemonsets",
        "--timeout=60s",
    ])
    .await;
    let st = fx
        .wait_first_attempt_ended("drained", "long", Duration::from_secs(30))
        .await;
    let first = &st.attempts[0];
    assert_eq!(
        first.reason.as_ref().map(ToString::to_string).as_deref(),
        Some("Evicted"),
        "{st:#?}"
    );
    assert!(
        first.infrastructure,
        "an eviction is not the tests' failure: {first:#?}"
    );
    // Cordoned, the retry waits: the run is not over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let run = fx.runs().get("drained").await.expect("run");
    assert!(
        !phase(&run).is_some_and(|p| p.is_terminal()),
        "the run ended while the node was cordoned: {:#?}",
        run.status
    );

    fx.kubectl(&["uncordon", node.name()]).await;
    let run = fx.wait_done("drained", Duration::from_secs(90)).await;
    assert_eq!(
        phase(&run),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        run.status
    );
    let st = fx
        .category("drained", "long")
        .await
        .status
        .unwrap_or_default();
    assert_eq!(st.attempts.len(), 2, "{st:#?}");
    assert_eq!(
        st.attempts[1]
            .reason
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("Completed"),
        "{st:#?}"
    );
}

/// The node's kubelet hangs (SIGSTOP), then dies (SIGKILL): the container
/// goes on unseen, the node lifecycle controller marks the Node
/// `Ready=Unknown` (after `--node-monitor-grace-period`, 50 s by default,
/// as here), and
/// `nodeLostSeconds` later the attempt ends `NodeLost`, an infrastructure
/// failure. Its retry cannot run on a lost node; once the kubelet is back
/// it runs, and the lost attempt's container is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_ends_the_attempt_node_lost_in_its_bound_and_the_retry_runs_when_it_is_back() {
    let _turn = TURN.lock().await;
    let fx = Fixture::builder("fault-lost").real_node().start().await;
    let (cp, node) = RealNode::shared();
    let config = r#"
layers:
  lost:
    execution_mode: "sequential"
    categories:
      - name: "long"
        timeout_seconds: 300
        infra_retries: 1
        command: "trap 'exit 143' TERM; if [ \"$TESTLAYER_ATTEMPT\" = 1 ]; then sleep 300 & wait; fi; echo '1 passed in 0.1s'"
"#;
    fx.submit(
        "lost",
        "lost",
        config,
        json!({"image": BUSYBOX, "nodeLostSeconds": 5}),
    )
    .await;
    wait_containers(
        node,
        &fx.ns,
        Duration::from_secs(60),
        "the first attempt's container running",
        |r| r.iter().any(|p| p == "lost-long-1"),
    )
    .await;

    let frozen = node.freeze_kubelet().expect("freezing the kubelet");
    tokio::time::sleep(Duration::from_secs(1)).await;
    node.kill_kubelet().expect("killing the kubelet");
    drop(frozen);
    let killed = std::time::Instant::now();
    let st = fx
        .wait_first_attempt_ended("lost", "long", Duration::from_secs(120))
        .await;
    let took = killed.elapsed();
    let first = &st.attempts[0];
    assert_eq!(
        first.reason.as_ref().map(ToString::to_string).as_deref(),
        Some("NodeLost"),
        "{st:#?}"
    );
    assert!(first.infrastructure, "{first:#?}");
    let message = first.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("node {} has not been Ready", node.name()))
            && message.contains("Ready=Unknown"),
        "{message}"
    );
    // Its bound: the lease's grace (50 s), nodeLostSeconds (5 s), a second
    // of a stored time, and the time a loaded machine takes to look.
    assert!(took < Duration::from_secs(70), "NodeLost after {took:?}");
    eprintln!("kubelet killed -> attempt NodeLost: {took:?}");
    // The container runs on, unseen; the run waits for its retry.
    assert!(
        running_in(node, &fx.ns).contains(&"lost-long-1".to_string()),
        "the lost attempt's container still runs under its shim"
    );
    let run = fx.runs().get("lost").await.expect("run");
    assert!(
        !phase(&run).is_some_and(|p| p.is_terminal()),
        "{:#?}",
        run.status
    );

    // The node is back: the retry runs, the lost container is stopped.
    tokio::task::spawn_blocking(move || node.restart_kubelet(cp))
        .await
        .expect("join")
        .expect("restarting the kubelet");
    let run = fx.wait_done("lost", Duration::from_secs(120)).await;
    assert_eq!(
        phase(&run),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        run.status
    );
    let st = fx.category("lost", "long").await.status.unwrap_or_default();
    assert_eq!(st.attempts.len(), 2, "{st:#?}");
    wait_containers(
        node,
        &fx.ns,
        Duration::from_secs(60),
        "the lost attempt's container stopped",
        <[String]>::is_empty,
    )
    .await;
}

/// Uncordons the node when dropped.
struct Uncordon(String);

impl Drop for Uncordon {
    fn drop(&mut self) {
        let (cp, _) = RealNode::shared();
        let _ = cp.kubectl().args(["uncordon", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_read_from_a_hung_kubelet_gives_up_in_its_bound_and_holds_nothing_else() {
    let _turn = TURN.lock().await;
    let fx = Fixture::builder("fault-logs").real_node().start().await;
    let (_, node) = RealNode::shared();
    let config = r#"
layers:
  hung:
    execution_mode: "parallel"
    categories:
      - name: "long"
        timeout_seconds: 300
        command: "trap 'exit 143' TERM; echo started; sleep 300 & wait"
"#;
    fx.submit(
        "hung",
        "hung",
        config,
        json!({"image": BUSYBOX, "terminationBoundSeconds": 2}),
    )
    .await;
    fx.wait_category_running("hung").await;

    // The kubelet hangs; a cancel makes the controller read the attempt's
    // log before it stops the Pod: that read gets no answer.
    let frozen = node.freeze_kubelet().expect("freezing the kubelet");
    let cancelled = std::time::Instant::now();
    fx.runs()
        .patch(
            "hung",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"cancel": true}})),
        )
        .await
        .expect("cancel");
    // Meanwhile another run is taken up at once: its CategoryRun and Pod
    // made and its status written (the Pod cannot start on the frozen
    // node).
    let other = r#"
layers:
  other:
    execution_mode: "parallel"
    categories:
      - {name: "quick", timeout_seconds: 60, command: "echo '1 passed'"}
"#;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let submitted = std::time::Instant::now();
    fx.submit("other", "other", other, json!({"image": BUSYBOX}))
        .await;
    common::eventually(
        Duration::from_secs(5),
        "the other run taken up while a log read hangs",
        async || {
            let run = fx.runs().get("other").await.expect("get");
            let pods = fx.pod_names("testlayer.dev/run=other").await;
            let running = run.status.as_ref().is_some_and(|s| {
                s.message
                    .as_deref()
                    .is_some_and(|m| m.contains("1 running"))
            });
            if running && pods == ["other-quick-1"] {
                Ok(())
            } else {
                Err(format!("run status: {:#?}\npods: {pods:?}", run.status))
            }
        },
    )
    .await;
    let taken_up = submitted.elapsed();

    // The read gives up within its bound (10 s), and the stop goes on.
    let st = fx
        .wait_first_attempt_ended("hung", "long", Duration::from_secs(40))
        .await;
    let recorded = cancelled.elapsed();
    let tail = st.log_tail.clone().unwrap_or_default();
    assert!(
        tail.contains("logs unavailable") && tail.contains("no answer in 10s"),
        "the tail says why there is no log: {st:#?}"
    );
    drop(frozen);
    let run = fx.wait_done("hung", Duration::from_secs(60)).await;
    assert_eq!(
        phase(&run),
        Some(LayerPhase::Cancelled),
        "{:#?}",
        run.status
    );
    let other = fx.wait_done("other", Duration::from_secs(90)).await;
    assert_eq!(
        phase(&other),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        other.status
    );
    eprintln!(
        "another run taken up after {taken_up:?} while a log read hung; the cancelled attempt recorded after {recorded:?}"
    );
    assert!(taken_up < Duration::from_secs(3), "{taken_up:?}");
}
