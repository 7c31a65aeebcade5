//! The test kubelet plays real nodes, against the real apiserver: grace
//! periods on deletion, dead nodes, DisruptionTarget on disruptions, image
//! pulls that fail and then succeed, slow and failing logs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use testlayer_testkit::kubelet::{KubeletEventKind, KubeletNoteKind};
use testlayer_testkit::{ControlPlane, KubeletOptions, LogServing, NodeFailure, TestKubelet};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn setup(prefix: &str) -> (Client, String, Api<Pod>, History) {
    let cp = ControlPlane::shared();
    let ns = cp.create_namespace(prefix).await.unwrap();
    let admin = cp.admin_client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let history = History::start(pods.clone()).await;
    (admin, ns, pods, history)
}

/// Every version of every Pod of a namespace, as a watch saw them, with
/// `None` for a deletion.
#[derive(Clone)]
struct History(Arc<Mutex<Vec<Seen>>>);

/// When, which Pod, and its version (`None`: deleted).
type Seen = (Instant, String, Option<Pod>);

impl History {
    async fn start(pods: Api<Pod>) -> Self {
        let h = History(Arc::default());
        let log = h.0.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut stream = watcher(pods, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                let mut g = log.lock().unwrap();
                match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        g.push((Instant::now(), p.name_any(), Some(p)))
                    }
                    Ok(watcher::Event::Delete(p)) => g.push((Instant::now(), p.name_any(), None)),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        let _ = ready_rx.await;
        h
    }

    fn of(&self, name: &str) -> Vec<(Instant, Option<Pod>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, n, _)| n == name)
            .map(|(t, _, p)| (*t, p.clone()))
            .collect()
    }

    fn gone_at(&self, name: &str) -> Option<Instant> {
        self.of(name)
            .into_iter()
            .find(|(_, p)| p.is_none())
            .map(|(t, _)| t)
    }

    /// When the history's watch saw `name` go, waiting a little for the
    /// watch to catch up with the apiserver.
    async fn wait_gone_at(&self, name: &str) -> Instant {
        let start = Instant::now();
        loop {
            if let Some(t) = self.gone_at(name) {
                return t;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the watch never saw {name} go"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn pod(name: &str, script: &str) -> Pod {
    obj(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "test", "image": "busybox", "command": ["/bin/sh", "-c", script]}]}
    }))
}

fn with_grace(mut p: Pod, seconds: i64) -> Pod {
    p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(seconds);
    p
}

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn exit_code(p: &Pod) -> Option<i32> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

fn container_running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

fn waiting_reason(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

fn disruption(p: &Pod) -> Option<(String, String)> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

async fn wait_phase(pods: &Api<Pod>, name: &str, want: &str, timeout: Duration) {
    eventually(&format!("{name} to be {want}"), timeout, || {
        let pods = pods.clone();
        async move {
            pods.get_opt(name)
                .await
                .unwrap()
                .is_some_and(|p| phase(&p) == want)
        }
    })
    .await;
}

async fn wait_gone(pods: &Api<Pod>, name: &str, timeout: Duration) {
    eventually(&format!("{name} to be gone"), timeout, || {
        let pods = pods.clone();
        async move { pods.get_opt(name).await.unwrap().is_none() }
    })
    .await;
}

fn event_at(k: &TestKubelet, pod: &str, kind: KubeletEventKind) -> Option<Instant> {
    k.events()
        .into_iter()
        .find(|e| e.pod == pod && e.kind == kind)
        .map(|e| e.at)
}

#[tokio::test]
async fn deleted_pods_terminate_within_their_grace_period() {
    let (admin, ns, pods, history) = setup("grace").await;
    let kubelet = TestKubelet::start(admin, &ns, 2).await.unwrap();
    let pp = PostParams::default();
    pods.create(&pp, &pod("handles", "echo hi; sleep infinity"))
        .await
        .unwrap();
    pods.create(
        &pp,
        &with_grace(pod("ignores", "trap '' TERM; sleep infinity"), 3),
    )
    .await
    .unwrap();
    pods.create(
        &pp,
        &with_grace(
            pod("graceful", "trap 'sleep 1; exit 0' TERM; sleep infinity"),
            10,
        ),
    )
    .await
    .unwrap();
    pods.create(&pp, &pod("pulling", "imagepull"))
        .await
        .unwrap();
    for n in ["handles", "ignores", "graceful"] {
        wait_phase(&pods, n, "Running", Duration::from_secs(20)).await;
    }
    eventually("the image pull to fail", Duration::from_secs(20), || {
        let pods = pods.clone();
        async move { waiting_reason(&pods.get("pulling").await.unwrap()).is_some() }
    })
    .await;

    let deleted = Instant::now();
    for n in ["handles", "ignores", "graceful", "pulling"] {
        pods.delete(n, &DeleteParams::default()).await.unwrap();
    }

    // Not running yet: removed at once. Handles SIGTERM: ends with 143 a
    // moment later.
    wait_gone(&pods, "pulling", Duration::from_secs(5)).await;
    wait_gone(&pods, "handles", Duration::from_secs(5)).await;
    assert!(
        history.wait_gone_at("handles").await - deleted < Duration::from_secs(3),
        "a container that handles SIGTERM ends promptly"
    );
    let handles = history.of("handles");
    let last = handles
        .iter()
        .filter_map(|(_, p)| p.clone())
        .next_back()
        .unwrap();
    assert_eq!(
        (phase(&last), exit_code(&last)),
        ("Failed".to_string(), Some(143)),
        "the end is written before the deletion is finished"
    );
    let term = event_at(&kubelet, "handles", KubeletEventKind::Terminated(143)).unwrap();
    assert!(term - deleted >= Duration::from_millis(50));
    assert!(event_at(&kubelet, "handles", KubeletEventKind::Deleted).unwrap() >= term);

    // Ignores SIGTERM: Terminating, still running, for its grace period.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ignores = pods.get("ignores").await.unwrap();
    assert!(ignores.metadata.deletion_timestamp.is_some());
    assert_eq!(phase(&ignores), "Running");
    assert!(container_running(&ignores));
    // The graceful handler needs 1 s and exits 0.
    wait_gone(&pods, "graceful", Duration::from_secs(5)).await;
    let graceful = event_at(&kubelet, "graceful", KubeletEventKind::Terminated(0)).unwrap();
    assert!(graceful - deleted >= Duration::from_millis(900));
    let last = history
        .of("graceful")
        .iter()
        .filter_map(|(_, p)| p.clone())
        .next_back()
        .unwrap();
    assert_eq!(phase(&last), "Succeeded");

    wait_gone(&pods, "ignores", Duration::from_secs(10)).await;
    let killed = event_at(&kubelet, "ignores", KubeletEventKind::Terminated(137))
        .expect("killed at the end of the grace period");
    assert!(
        killed - deleted >= Duration::from_millis(2900),
        "killed after {:?}, before its 3 s grace period",
        killed - deleted
    );
    assert!(killed - deleted < Duration::from_secs(6));
    let notes = kubelet.notes();
    assert!(
        notes
            .iter()
            .any(|n| n.subject == "ignores"
                && n.kind == KubeletNoteKind::Sigterm { grace_seconds: 3 })
    );
    assert!(
        notes
            .iter()
            .any(|n| n.subject == "ignores" && n.kind == KubeletNoteKind::Sigkill)
    );
    assert!(event_at(&kubelet, "pulling", KubeletEventKind::Deleted).is_some());
    assert!(
        !kubelet
            .events()
            .iter()
            .any(|e| e.pod == "pulling" && matches!(e.kind, KubeletEventKind::Terminated(_)))
    );
}

#[tokio::test]
async fn a_shorter_grace_period_on_a_second_delete_is_honoured() {
    let (admin, ns, pods, _history) = setup("regrace").await;
    let kubelet = TestKubelet::start(admin, &ns, 1).await.unwrap();
    pods.create(
        &PostParams::default(),
        &with_grace(pod("stubborn", "trap '' TERM; sleep infinity"), 60),
    )
    .await
    .unwrap();
    wait_phase(&pods, "stubborn", "Running", Duration::from_secs(20)).await;
    let deleted = Instant::now();
    pods.delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pods.delete("stubborn", &DeleteParams::default().grace_period(1))
        .await
        .unwrap();
    wait_gone(&pods, "stubborn", Duration::from_secs(10)).await;
    let killed = event_at(&kubelet, "stubborn", KubeletEventKind::Terminated(137)).unwrap();
    assert!(killed - deleted >= Duration::from_millis(1400));
}

async fn ready_condition(admin: &Client, node: &str) -> (String, Vec<String>) {
    let nodes: Api<Node> = Api::all(admin.clone());
    let n = nodes.get(node).await.unwrap();
    let ready = n
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    let taints = n
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    (ready.status, taints)
}

#[tokio::test]
async fn a_dead_node_keeps_its_pods_until_it_comes_back() {
    let (admin, ns, pods, _history) = setup("deadnode").await;
    let kubelet = TestKubelet::start(admin.clone(), &ns, 1).await.unwrap();
    let node = kubelet.nodes()[0].clone();
    let pp = PostParams::default();
    pods.create(&pp, &pod("victim", "sleep infinity"))
        .await
        .unwrap();
    pods.create(&pp, &pod("finishing", "sleep 1; exit 0"))
        .await
        .unwrap();
    wait_phase(&pods, "victim", "Running", Duration::from_secs(20)).await;
    wait_phase(&pods, "finishing", "Running", Duration::from_secs(20)).await;

    kubelet
        .fail_node(&node, NodeFailure::Unreachable)
        .await
        .unwrap();
    assert!(!kubelet.node_is_up(&node));
    let (ready, taints) = ready_condition(&admin, &node).await;
    assert_eq!(ready, "Unknown");
    assert!(taints.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()));
    assert!(taints.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string()));

    pods.delete("victim", &DeleteParams::default())
        .await
        .unwrap();
    // A Pod created now is bound (by default) but does not start.
    pods.create(&pp, &pod("late", "echo late; exit 0"))
        .await
        .unwrap();
    // Logs of a dead node's Pod cannot be fetched.
    assert!(pods.logs("victim", &LogParams::default()).await.is_err());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim = pods.get("victim").await.unwrap();
    assert!(victim.metadata.deletion_timestamp.is_some());
    assert_eq!(phase(&victim), "Running", "Terminating for ever");
    assert_eq!(
        phase(&pods.get("finishing").await.unwrap()),
        "Running",
        "its end is not reported"
    );
    let late = pods.get("late").await.unwrap();
    assert_eq!(
        late.spec.as_ref().unwrap().node_name.as_deref(),
        Some(node.as_str())
    );
    assert_eq!(phase(&late), "Pending");
    assert!(event_at(&kubelet, "victim", KubeletEventKind::Deleted).is_none());

    let back = Instant::now();
    kubelet.recover_node(&node).await.unwrap();
    let (ready, taints) = ready_condition(&admin, &node).await;
    assert_eq!(ready, "True");
    assert!(taints.is_empty(), "{taints:?}");
    wait_gone(&pods, "victim", Duration::from_secs(10)).await;
    wait_phase(&pods, "finishing", "Succeeded", Duration::from_secs(10)).await;
    wait_phase(&pods, "late", "Succeeded", Duration::from_secs(10)).await;
    let term = event_at(&kubelet, "victim", KubeletEventKind::Terminated(143)).unwrap();
    assert!(term >= back, "SIGTERM only once the node is back");
    assert!(event_at(&kubelet, "victim", KubeletEventKind::Deleted).unwrap() >= back);
    assert_eq!(
        pods.logs("finishing", &LogParams::default()).await.unwrap(),
        ""
    );
}

#[tokio::test]
async fn new_pods_can_avoid_dead_nodes() {
    let (admin, ns, pods, _history) = setup("avoid").await;
    let kubelet = TestKubelet::start_with_options(
        admin.clone(),
        &ns,
        KubeletOptions::new(2).bind_to_not_ready_nodes(false),
    )
    .await
    .unwrap();
    let [a, b] = [kubelet.nodes()[0].clone(), kubelet.nodes()[1].clone()];
    kubelet.fail_node(&a, NodeFailure::NotReady).await.unwrap();
    let (ready, taints) = ready_condition(&admin, &a).await;
    assert_eq!(ready, "False");
    assert!(taints.contains(&"node.kubernetes.io/not-ready:NoSchedule".to_string()));
    let pp = PostParams::default();
    for i in 0..4 {
        pods.create(&pp, &pod(&format!("p{i}"), "exit 0"))
            .await
            .unwrap();
    }
    for i in 0..4 {
        let n = format!("p{i}");
        wait_phase(&pods, &n, "Succeeded", Duration::from_secs(20)).await;
        let p = pods.get(&n).await.unwrap();
        assert_eq!(p.spec.unwrap().node_name.as_deref(), Some(b.as_str()));
    }
    // With every node down, new Pods wait unbound until one comes back.
    kubelet
        .fail_node(&b, NodeFailure::Unreachable)
        .await
        .unwrap();
    pods.create(&pp, &pod("waits", "exit 0")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waits = pods.get("waits").await.unwrap();
    assert_eq!(waits.spec.unwrap().node_name, None);
    kubelet.recover_node(&a).await.unwrap();
    wait_phase(&pods, "waits", "Succeeded", Duration::from_secs(20)).await;
    let waits = pods.get("waits").await.unwrap();
    assert_eq!(waits.spec.unwrap().node_name.as_deref(), Some(a.as_str()));
}

#[tokio::test]
async fn disruptions_set_the_disruption_target_condition() {
    let (admin, ns, pods, history) = setup("disrupt").await;
    // Without retries, a refused eviction (429) is seen at once.
    let no_retry = ControlPlane::shared()
        .admin_client_without_retries()
        .await
        .unwrap();
    let kubelet = TestKubelet::start(no_retry, &ns, 2).await.unwrap();
    let pp = PostParams::default();
    pods.create(&pp, &pod("evicted", "sleep 0.5; evict"))
        .await
        .unwrap();
    for n in ["preempted", "drained", "guarded"] {
        pods.create(&pp, &with_grace(pod(n, "trap '' TERM; sleep infinity"), 30))
            .await
            .unwrap();
    }
    for n in ["preempted", "drained", "guarded"] {
        wait_phase(&pods, n, "Running", Duration::from_secs(20)).await;
    }

    // Eviction by the kubelet: the condition comes before the end.
    wait_phase(&pods, "evicted", "Failed", Duration::from_secs(20)).await;
    // The history's watch may be a moment behind the apiserver.
    let start = Instant::now();
    let marked = loop {
        let seen = history
            .of("evicted")
            .into_iter()
            .filter_map(|(_, p)| p)
            .find(|p| disruption(p).is_some());
        if let Some(p) = seen {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "a DisruptionTarget condition"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        disruption(&marked),
        Some(("True".into(), "TerminationByKubelet".into()))
    );
    assert_eq!(phase(&marked), "Running", "marked before it ends");
    let end = pods.get("evicted").await.unwrap();
    assert_eq!(
        end.status.as_ref().unwrap().reason.as_deref(),
        Some("Evicted")
    );
    assert!(disruption(&end).is_some());

    // Preemption: condition, then killed, Failed, not deleted.
    kubelet.preempt_pod("preempted").await.unwrap();
    wait_phase(&pods, "preempted", "Failed", Duration::from_secs(10)).await;
    let p = pods.get("preempted").await.unwrap();
    assert_eq!(
        disruption(&p),
        Some(("True".into(), "PreemptionByScheduler".into()))
    );
    assert_eq!(exit_code(&p), Some(137));
    assert!(p.metadata.deletion_timestamp.is_none());
    let first_marked = history
        .of("preempted")
        .into_iter()
        .filter_map(|(_, p)| p)
        .find(|p| disruption(p).is_some())
        .unwrap();
    assert_eq!(phase(&first_marked), "Running");

    // Drain: the Eviction API (by the kubelet's client) marks and deletes it;
    // the container is killed at once, not after its 30 s grace period.
    let drained_at = Instant::now();
    kubelet.drain_pod("drained").await.unwrap();
    wait_gone(&pods, "drained", Duration::from_secs(10)).await;
    assert!(drained_at.elapsed() < Duration::from_secs(10));
    let versions: Vec<Pod> = history
        .of("drained")
        .into_iter()
        .filter_map(|(_, p)| p)
        .collect();
    let first_marked = versions.iter().find(|p| disruption(p).is_some()).unwrap();
    assert_eq!(
        disruption(first_marked),
        Some(("True".into(), "EvictionByEvictionAPI".into()))
    );
    assert_eq!(phase(first_marked), "Running");
    assert!(
        versions.iter().any(|p| disruption(p).is_some()
            && p.metadata.deletion_timestamp.is_some()
            && container_running(p)),
        "Terminating with the condition, the container still running"
    );
    let last = versions.last().unwrap();
    assert_eq!((phase(last), exit_code(last)), ("Failed".into(), Some(137)));
    assert!(event_at(&kubelet, "drained", KubeletEventKind::Terminated(137)).is_some());
    assert!(event_at(&kubelet, "drained", KubeletEventKind::Deleted).is_some());

    // A PodDisruptionBudget can refuse a drain.
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(admin, &ns);
    pdbs.create(
        &pp,
        &obj(json!({"metadata": {"name": "guard"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}})),
    )
    .await
    .unwrap();
    let refused = kubelet.drain_pod("guarded").await;
    match refused {
        Err(testlayer_testkit::TestkitError::Kube {
            source: kube::Error::Api(e),
            ..
        }) => assert_eq!(e.code, 429, "{e:?}"),
        other => panic!("the budget must refuse the eviction: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let guarded = pods.get("guarded").await.unwrap();
    assert!(guarded.metadata.deletion_timestamp.is_none());
    assert_eq!(phase(&guarded), "Running");
}

#[tokio::test]
async fn an_image_pull_fails_for_a_while_then_the_pod_runs() {
    let (admin, ns, pods, history) = setup("pull").await;
    let kubelet = TestKubelet::start(admin, &ns, 1).await.unwrap();
    pods.create(
        &PostParams::default(),
        &pod("flaky", "imagepull 2; echo pulled; exit 0"),
    )
    .await
    .unwrap();
    wait_phase(&pods, "flaky", "Succeeded", Duration::from_secs(20)).await;
    let versions: Vec<Pod> = history
        .of("flaky")
        .into_iter()
        .filter_map(|(_, p)| p)
        .collect();
    let reasons: Vec<String> = versions.iter().filter_map(waiting_reason).collect();
    assert!(reasons.contains(&"ErrImagePull".to_string()), "{reasons:?}");
    assert!(
        reasons.contains(&"ImagePullBackOff".to_string()),
        "{reasons:?}"
    );
    let bound = event_at(&kubelet, "flaky", KubeletEventKind::Bound).unwrap();
    let running = event_at(&kubelet, "flaky", KubeletEventKind::Running).unwrap();
    assert!(running - bound >= Duration::from_millis(1900));
    assert_eq!(
        pods.logs("flaky", &LogParams::default()).await.unwrap(),
        "pulled\n"
    );
}

#[tokio::test]
async fn logs_can_be_slow_hang_or_fail() {
    let (admin, ns, pods, _history) = setup("logs").await;
    let kubelet = TestKubelet::start(admin, &ns, 1).await.unwrap();
    let pp = PostParams::default();
    pods.create(&pp, &pod("slow", "logs slow 1.5; echo slow"))
        .await
        .unwrap();
    pods.create(&pp, &pod("hangs", "logs hang; echo never"))
        .await
        .unwrap();
    pods.create(&pp, &pod("fails", "logs error 500; echo no"))
        .await
        .unwrap();
    pods.create(&pp, &pod("plain", "echo plain")).await.unwrap();
    for n in ["slow", "hangs", "fails", "plain"] {
        wait_phase(&pods, n, "Succeeded", Duration::from_secs(20)).await;
    }
    let lp = LogParams::default();

    let t = Instant::now();
    assert_eq!(pods.logs("slow", &lp).await.unwrap(), "slow\n");
    assert!(t.elapsed() >= Duration::from_millis(1500));

    let hung = tokio::time::timeout(Duration::from_secs(2), pods.logs("hangs", &lp)).await;
    assert!(hung.is_err(), "the request must hang: {hung:?}");

    match pods.logs("fails", &lp).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 500, "{e:?}"),
        other => panic!("expected an error, got {other:?}"),
    }

    let t = Instant::now();
    assert_eq!(pods.logs("plain", &lp).await.unwrap(), "plain\n");
    assert!(t.elapsed() < Duration::from_secs(1));

    // Kubelet-wide: slow for Pods that do not say otherwise.
    kubelet.set_log_serving(LogServing::Slow(Duration::from_secs(1)));
    let t = Instant::now();
    assert_eq!(pods.logs("plain", &lp).await.unwrap(), "plain\n");
    assert!(t.elapsed() >= Duration::from_secs(1));

    // A hanging request is answered when the setting changes.
    kubelet.set_log_serving(LogServing::Hang);
    let waiting = {
        let pods = pods.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let r = pods.logs("plain", &LogParams::default()).await;
            (t.elapsed(), r.map_err(|e| e.to_string()))
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished());
    kubelet.set_log_serving(LogServing::Prompt);
    let (took, r) = waiting.await.unwrap();
    assert_eq!(r.unwrap(), "plain\n");
    assert!(took >= Duration::from_millis(1500));
}
