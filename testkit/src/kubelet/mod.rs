//! A test kubelet: registers Nodes, binds pending Pods of one namespace to
//! them, and moves each Pod through Running to Succeeded or Failed as its
//! [`PodScript`] says. It acts only through the API server, as a kubelet
//! does, and plays real nodes: deleted Pods terminate with a grace period,
//! nodes can die and come back, Pods can be disrupted.
//!
//! # Knobs
//!
//! - **Grace periods.** A Pod deleted while its container runs stays
//!   Terminating (deletionTimestamp set, container still running) until the
//!   container ends. The kubelet sends SIGTERM; by default the container ends
//!   a short moment later (75 ms, exit 143); a script that ignores SIGTERM
//!   ([`OnSigterm::Ignore`], `trap '' TERM`) runs on until the grace period
//!   (`deletionGracePeriodSeconds`: the Pod's `terminationGracePeriodSeconds`,
//!   default 30, or the delete call's) runs out and is killed (exit 137).
//!   Only then does the kubelet write the end to the Pod status (phase
//!   `Failed`, or `Succeeded` for exit 0) and finish the deletion (grace
//!   period 0, uid precondition). Recorded: [`KubeletEventKind::Terminated`]
//!   (at the moment the container stopped), then
//!   [`KubeletEventKind::Deleted`]; notes [`KubeletNoteKind::Sigterm`] and
//!   [`KubeletNoteKind::Sigkill`]. A Pod deleted before its container runs
//!   (start delay, image pull) is removed at once.
//! - **Dead nodes.** [`TestKubelet::fail_node`] marks a Node `Ready=Unknown`
//!   ([`NodeFailure::Unreachable`], as the node lifecycle controller does when
//!   heartbeats stop) or `Ready=False` ([`NodeFailure::NotReady`]), with the
//!   matching `node.kubernetes.io/unreachable` or `not-ready` taints
//!   (`NoSchedule`, `NoExecute`), and stops acting on its Pods: nothing is
//!   written for them, deleted ones stay Terminating, their logs cannot be
//!   fetched. Containers already running run on and end as scripted; that is
//!   reported once the node is back. [`TestKubelet::recover_node`] brings it
//!   back and it catches up (finishes pending deletions, and so on). By
//!   default new Pods are still bound to a dead node (and wait there), as
//!   the test kubelet has no scheduler's view;
//!   [`KubeletOptions::bind_to_not_ready_nodes`] `= false` binds them only to
//!   nodes that are up (and keeps them Pending, unbound, while none is).
//! - **Disruptions.** A scripted eviction ([`PodEnd::Evicted`]) first gives
//!   the Pod the `DisruptionTarget` condition (reason `TerminationByKubelet`)
//!   and then ends it `Failed`/`Evicted`. [`TestKubelet::preempt_pod`] writes
//!   `DisruptionTarget` (reason `PreemptionByScheduler`), then kills the
//!   container (exit 137, phase `Failed`); the Pod is not deleted.
//!   [`TestKubelet::drain_pod`] evicts the Pod through the Eviction API with
//!   the kubelet's client (the apiserver adds `DisruptionTarget` with reason
//!   `EvictionByEvictionAPI` and starts a graceful deletion, and refuses when
//!   a PodDisruptionBudget forbids it); the kubelet kills the container at
//!   once (exit 137, phase `Failed`) and finishes the deletion.
//! - **Image pulls** that fail for a while, then succeed:
//!   [`PodScript::pull_fails_for`], word `imagepull SECONDS`.
//! - **Logs** served slowly, never, or with an error: per Pod
//!   ([`PodScript::log_serving`], words `logs slow SECONDS`, `logs hang`,
//!   `logs error [STATUS]`), or kubelet-wide ([`KubeletOptions::log_serving`],
//!   [`TestKubelet::set_log_serving`]); the Pod's own setting wins.
//!
//! Everything the kubelet does is recorded: [`TestKubelet::events`] (the
//! lifecycle, [`KubeletEventKind`], unchanged since the first version) and
//! [`TestKubelet::notes`] (the rest, [`KubeletNoteKind`]); both use the same
//! clock.

mod logs;
mod pod;
mod script;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use script::{DEFAULT_SIGTERM_EXIT, LogServing, OnSigterm, PodEnd, PodScript};

use logs::{LogServer, LogStore};
use pod::{Cmd, WorkerInput};

use crate::TestkitError;

/// Decides the script of each Pod.
pub type ScriptFn = Arc<dyn Fn(&Pod) -> PodScript + Send + Sync>;

/// Something the kubelet did, for tests to assert on.
#[derive(Debug, Clone, PartialEq)]
pub enum KubeletEventKind {
    /// Bound to a node.
    Bound,
    /// Container running.
    Running,
    /// Container ended (exit code).
    Terminated(i32),
    /// Pod evicted.
    Evicted,
    /// Deletion of a bound Pod finished.
    Deleted,
}

/// One recorded action.
#[derive(Debug, Clone)]
pub struct KubeletEvent {
    /// Pod name.
    pub pod: String,
    /// What happened.
    pub kind: KubeletEventKind,
    /// When.
    pub at: Instant,
}

/// Something else the kubelet did or saw, beyond the lifecycle of
/// [`KubeletEventKind`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KubeletNoteKind {
    /// It saw the Pod's deletion and sent its running container SIGTERM; the
    /// grace period in seconds.
    Sigterm {
        /// The grace period.
        grace_seconds: i64,
    },
    /// It killed the container (SIGKILL: grace period over, preemption,
    /// drain, or a deletion with no grace).
    Sigkill,
    /// It gave the Pod the `DisruptionTarget` condition with this reason.
    DisruptionTarget(String),
    /// [`TestKubelet::drain_pod`] evicted the Pod through the Eviction API.
    EvictionRequested,
    /// The image pull failed: the container waits with this reason
    /// (`ErrImagePull`, `ImagePullBackOff`).
    ImagePull(String),
    /// The node (the note's subject) went down.
    NodeDown,
    /// The node (the note's subject) came back.
    NodeUp,
}

/// One note.
#[derive(Debug, Clone)]
pub struct KubeletNote {
    /// The Pod, or for node notes the Node, it is about.
    pub subject: String,
    /// What happened.
    pub kind: KubeletNoteKind,
    /// When.
    pub at: Instant,
}

/// How a node fails in [`TestKubelet::fail_node`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeFailure {
    /// Its kubelet stops posting status: `Ready=Unknown`, reason
    /// `NodeStatusUnknown`, taints `node.kubernetes.io/unreachable`.
    Unreachable,
    /// Its kubelet reports it not ready: `Ready=False`, reason
    /// `KubeletNotReady`, taints `node.kubernetes.io/not-ready`.
    NotReady,
}

/// How to start a [`TestKubelet`].
#[derive(Clone)]
pub struct KubeletOptions {
    /// How many Nodes it registers (at least 1).
    pub nodes: usize,
    /// The script of each Pod (default [`PodScript::from_pod`]).
    pub script: ScriptFn,
    /// Whether new Pods are bound to nodes that are down (default true: the
    /// test kubelet binds round-robin without looking).
    pub bind_to_not_ready_nodes: bool,
    /// How `pods/log` is answered for Pods whose script does not say
    /// (default [`LogServing::Prompt`]).
    pub log_serving: LogServing,
}

impl KubeletOptions {
    /// `nodes` Nodes, everything else by default.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            script: Arc::new(PodScript::from_pod),
            bind_to_not_ready_nodes: true,
            log_serving: LogServing::Prompt,
        }
    }

    /// With this script.
    pub fn script(mut self, script: ScriptFn) -> Self {
        self.script = script;
        self
    }

    /// Binding new Pods to nodes that are down, or not.
    pub fn bind_to_not_ready_nodes(mut self, yes: bool) -> Self {
        self.bind_to_not_ready_nodes = yes;
        self
    }

    /// With this kubelet-wide [`LogServing`].
    pub fn log_serving(mut self, serving: LogServing) -> Self {
        self.log_serving = serving;
        self
    }
}

impl std::fmt::Debug for KubeletOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletOptions")
            .field("nodes", &self.nodes)
            .field("bind_to_not_ready_nodes", &self.bind_to_not_ready_nodes)
            .field("log_serving", &self.log_serving)
            .finish_non_exhaustive()
    }
}

/// Whether each node is up (`true`) or down.
pub(crate) struct NodeStates(HashMap<String, watch::Sender<bool>>);

impl NodeStates {
    fn new(names: &[String]) -> Self {
        Self(
            names
                .iter()
                .map(|n| (n.clone(), watch::Sender::new(true)))
                .collect(),
        )
    }

    /// Whether `node` is up (unknown nodes count as up).
    pub(crate) fn is_up(&self, node: &str) -> bool {
        self.0.get(node).is_none_or(|s| *s.borrow())
    }

    fn set(&self, node: &str, up: bool) {
        if let Some(s) = self.0.get(node) {
            s.send_replace(up);
        }
    }

    fn subscribe(&self, node: &str) -> Option<watch::Receiver<bool>> {
        self.0.get(node).map(|s| s.subscribe())
    }
}

/// What the kubelet's tasks share.
pub(crate) struct Shared {
    pods: Api<Pod>,
    events: Mutex<Vec<KubeletEvent>>,
    notes: Mutex<Vec<KubeletNote>>,
    store: LogStore,
    nodes: Arc<NodeStates>,
    /// Uids of Pods being drained: their deletion kills the container.
    drains: Mutex<HashSet<String>>,
}

impl Shared {
    fn record_at(&self, pod: &str, kind: KubeletEventKind, at: Instant) {
        if let Ok(mut g) = self.events.lock() {
            g.push(KubeletEvent {
                pod: pod.to_string(),
                kind,
                at,
            });
        }
    }

    fn note(&self, subject: &str, kind: KubeletNoteKind) {
        if let Ok(mut g) = self.notes.lock() {
            g.push(KubeletNote {
                subject: subject.to_string(),
                kind,
                at: Instant::now(),
            });
        }
    }
}

/// Asks of the kubelet's loop.
enum Control {
    /// A node came back: bind Pods that waited for one.
    NodeUp,
    /// Preempt the Pod of this uid.
    Preempt(String),
}

/// A running test kubelet. Dropping it stops it (Pods it was running stay as
/// they are).
pub struct TestKubelet {
    task: JoinHandle<()>,
    _logs: LogServer,
    shared: Arc<Shared>,
    nodes: Vec<String>,
    client: Client,
    control: mpsc::UnboundedSender<Control>,
    log_serving: watch::Sender<LogServing>,
}

impl TestKubelet {
    /// Registers `nodes` Nodes named `<namespace>-node-<i>` and starts
    /// playing them for Pods in `namespace`, scripted by [`PodScript::from_pod`].
    pub async fn start(
        client: Client,
        namespace: &str,
        nodes: usize,
    ) -> Result<Self, TestkitError> {
        Self::start_with_options(client, namespace, KubeletOptions::new(nodes)).await
    }

    /// Like [`TestKubelet::start`] with a script of the test's own.
    pub async fn start_with(
        client: Client,
        namespace: &str,
        nodes: usize,
        script: ScriptFn,
    ) -> Result<Self, TestkitError> {
        Self::start_with_options(client, namespace, KubeletOptions::new(nodes).script(script)).await
    }

    /// Starts with every option of [`KubeletOptions`].
    pub async fn start_with_options(
        client: Client,
        namespace: &str,
        options: KubeletOptions,
    ) -> Result<Self, TestkitError> {
        let names: Vec<String> = (0..options.nodes.max(1))
            .map(|i| format!("{namespace}-node-{i}"))
            .collect();
        let store: LogStore = Arc::default();
        let node_states = Arc::new(NodeStates::new(&names));
        let log_serving = watch::Sender::new(options.log_serving.clone());
        let server =
            LogServer::start(store.clone(), log_serving.subscribe(), node_states.clone()).await?;
        for n in &names {
            register_node(&client, n, server.port).await?;
        }
        let shared = Arc::new(Shared {
            pods: Api::namespaced(client.clone(), namespace),
            events: Mutex::default(),
            notes: Mutex::default(),
            store,
            nodes: node_states,
            drains: Mutex::default(),
        });
        let (control, control_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(
            Loop {
                sh: shared.clone(),
                nodes: names.clone(),
                script: options.script,
                bind_to_not_ready: options.bind_to_not_ready_nodes,
                workers: HashMap::new(),
                waiting: HashMap::new(),
                relist: None,
                next: 0,
                started: 0,
            }
            .run(control_rx),
        );
        Ok(Self {
            task,
            _logs: server,
            shared,
            nodes: names,
            client,
            control,
            log_serving,
        })
    }

    /// Names of the Nodes it plays.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Everything it did so far, in order.
    pub fn events(&self) -> Vec<KubeletEvent> {
        self.shared
            .events
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Everything else it did or saw so far, in order (see
    /// [`KubeletNoteKind`]).
    pub fn notes(&self) -> Vec<KubeletNote> {
        self.shared
            .notes
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    fn check_node(&self, node: &str) -> Result<(), TestkitError> {
        if self.nodes.iter().any(|n| n == node) {
            Ok(())
        } else {
            Err(TestkitError::Kubelet {
                problem: format!("{node} is not one of its nodes ({:?})", self.nodes),
            })
        }
    }

    /// Whether `node` is up (not failed by [`TestKubelet::fail_node`]).
    pub fn node_is_up(&self, node: &str) -> bool {
        self.shared.nodes.is_up(node)
    }

    /// Makes `node` dead: stops acting on its Pods at once, then marks its
    /// Node as `how` says (Ready condition and taints).
    pub async fn fail_node(&self, node: &str, how: NodeFailure) -> Result<(), TestkitError> {
        self.check_node(node)?;
        self.shared.nodes.set(node, false);
        self.shared.note(node, KubeletNoteKind::NodeDown);
        let (status, reason, message, taint) = match how {
            NodeFailure::Unreachable => (
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
                "node.kubernetes.io/unreachable",
            ),
            NodeFailure::NotReady => (
                "False",
                "KubeletNotReady",
                "container runtime is down",
                "node.kubernetes.io/not-ready",
            ),
        };
        set_ready(&self.client, node, status, reason, message, Some(taint)).await
    }

    /// Brings `node` back: marks its Node ready, removes the taints, and
    /// resumes its Pods (pending writes and deletions are made) and binding.
    pub async fn recover_node(&self, node: &str) -> Result<(), TestkitError> {
        self.check_node(node)?;
        set_ready(
            &self.client,
            node,
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
            None,
        )
        .await?;
        self.shared.nodes.set(node, true);
        self.shared.note(node, KubeletNoteKind::NodeUp);
        let _ = self.control.send(Control::NodeUp);
        Ok(())
    }

    /// A Pod of the namespace on one of its nodes.
    async fn own_pod(&self, name: &str) -> Result<(Pod, String), TestkitError> {
        let pod = self
            .shared
            .pods
            .get(name)
            .await
            .map_err(TestkitError::kube(format!("reading pod {name}")))?;
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let uid = pod.uid();
        match (node, uid) {
            (Some(n), Some(uid)) if self.nodes.contains(&n) => Ok((pod, uid)),
            (n, _) => Err(TestkitError::Kubelet {
                problem: format!("pod {name} is not bound to one of its nodes (node {n:?})"),
            }),
        }
    }

    /// Preempts the Pod `name` as the scheduler would for a higher priority
    /// Pod: writes its `DisruptionTarget` condition (reason
    /// `PreemptionByScheduler`), then the kubelet kills its container (exit
    /// 137) and ends it `Failed`. The Pod is not deleted.
    pub async fn preempt_pod(&self, name: &str) -> Result<(), TestkitError> {
        let (pod, uid) = self.own_pod(name).await?;
        let scheduler = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.clone())
            .unwrap_or_else(|| "default-scheduler".into());
        let patch = json!({"metadata": {"uid": uid}, "status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
            "reason": "PreemptionByScheduler", "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": now()}]}});
        self.shared
            .pods
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map_err(TestkitError::kube(format!("marking pod {name} preempted")))?;
        self.shared.note(
            name,
            KubeletNoteKind::DisruptionTarget("PreemptionByScheduler".into()),
        );
        let _ = self.control.send(Control::Preempt(uid));
        Ok(())
    }

    /// Drains the Pod `name` as `kubectl drain` does: evicts it through the
    /// Eviction API with the kubelet's client (the apiserver adds the
    /// `DisruptionTarget` condition, reason `EvictionByEvictionAPI`, and
    /// deletes the Pod gracefully; a PodDisruptionBudget may refuse, which is
    /// returned as the error). The kubelet then kills the container at once
    /// (exit 137), ends the Pod `Failed` and finishes the deletion. A refusal
    /// is a 429, which kube's default client retries for minutes: start the
    /// kubelet with a client without retries
    /// ([`crate::ControlPlane::admin_client_without_retries`]) to see it at
    /// once.
    pub async fn drain_pod(&self, name: &str) -> Result<(), TestkitError> {
        let (_, uid) = self.own_pod(name).await?;
        if let Ok(mut d) = self.shared.drains.lock() {
            d.insert(uid.clone());
        }
        match self.shared.pods.evict(name, &EvictParams::default()).await {
            Ok(_) => {
                self.shared.note(name, KubeletNoteKind::EvictionRequested);
                Ok(())
            }
            Err(e) => {
                if let Ok(mut d) = self.shared.drains.lock() {
                    d.remove(&uid);
                }
                Err(TestkitError::Kube {
                    what: format!("evicting pod {name}"),
                    source: e,
                })
            }
        }
    }

    /// Sets how `pods/log` is answered for Pods whose script does not say;
    /// requests hanging under [`LogServing::Hang`] are answered as the new
    /// setting says.
    pub fn set_log_serving(&self, serving: LogServing) {
        self.log_serving.send_replace(serving);
    }
}

impl Drop for TestKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sets the Ready condition of a Node and its failure taints (`None`: none).
async fn set_ready(
    client: &Client,
    name: &str,
    status: &str,
    reason: &str,
    message: &str,
    taint: Option<&str>,
) -> Result<(), TestkitError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = now();
    let mut ready = json!({"type": "Ready", "status": status, "reason": reason, "message": message,
        "lastTransitionTime": now});
    if status == "True" {
        ready["lastHeartbeatTime"] = json!(now);
    }
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Strategic(&json!({"status": {"conditions": [ready]}})),
        )
        .await
        .map_err(TestkitError::kube(format!(
            "setting the Ready condition of node {name}"
        )))?;
    set_taints(&nodes, name, taint).await
}

/// Taint keys the node lifecycle controller puts on failed nodes.
const FAILURE_TAINTS: [&str; 2] = [
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/not-ready",
];

async fn set_taints(nodes: &Api<Node>, name: &str, key: Option<&str>) -> Result<(), TestkitError> {
    let node = nodes
        .get(name)
        .await
        .map_err(TestkitError::kube(format!("reading node {name}")))?;
    let mut taints: Vec<serde_json::Value> = node
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !FAILURE_TAINTS.contains(&t.key.as_str()))
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect();
    if let Some(key) = key {
        taints.push(json!({"key": key, "effect": "NoSchedule"}));
        taints.push(json!({"key": key, "effect": "NoExecute", "timeAdded": now()}));
    }
    let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(TestkitError::kube(format!(
            "setting the taints of node {name}"
        )))?;
    Ok(())
}

async fn register_node(client: &Client, name: &str, port: u16) -> Result<(), TestkitError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "testlayer.dev/test-node": "true"}},
    }))
    .map_err(|e| TestkitError::Kubeconfig { path: Default::default(), problem: e.to_string() })?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => {
            return Err(TestkitError::Kube {
                what: format!("registering node {name}"),
                source: e,
            });
        }
    }
    let now = now();
    let capacity = json!({"cpu": "64", "memory": "256Gi", "pods": "1000"});
    let status = json!({"status": {
        "capacity": capacity, "allocatable": capacity,
        // The apiserver reaches the log endpoint here (pods/log).
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test kubelet is ready",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "nodeInfo": {"kubeletVersion": "v1.34.4-test", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
                     "containerRuntimeVersion": "test://1", "kernelVersion": "", "osImage": "test", "machineID": "", "systemUUID": "", "bootID": ""},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(TestkitError::kube(format!(
            "setting the status of node {name}"
        )))?;
    // Failure taints a previous kubelet may have left.
    set_taints(&nodes, name, None).await
}

pub(crate) fn now() -> Time {
    Time(Timestamp::now())
}

/// A Pod's worker, from the loop's side. Dropping it tells the worker its
/// Pod is gone.
struct WorkerHandle {
    pod: watch::Sender<Pod>,
    cmd: mpsc::UnboundedSender<Cmd>,
    task: JoinHandle<()>,
}

/// The kubelet's loop: watches the namespace's Pods and hands each to its
/// worker.
struct Loop {
    sh: Arc<Shared>,
    nodes: Vec<String>,
    script: ScriptFn,
    bind_to_not_ready: bool,
    /// Workers by Pod uid.
    workers: HashMap<String, WorkerHandle>,
    /// Unbound Pods waiting for a node that is up.
    waiting: HashMap<String, Pod>,
    /// Uids seen since the watch started listing again.
    relist: Option<HashSet<String>>,
    next: usize,
    started: usize,
}

impl Loop {
    async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) {
        let mut stream = watcher(self.sh.pods.clone(), watcher::Config::default()).boxed();
        loop {
            let ev = tokio::select! {
                ev = stream.next() => match ev {
                    Some(ev) => Ok(ev),
                    None => return,
                },
                c = control.recv() => match c {
                    Some(c) => Err(c),
                    None => return,
                },
            };
            match ev {
                Ok(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => self.handle(p),
                Ok(Ok(watcher::Event::Delete(p))) => {
                    if let Some(uid) = p.metadata.uid {
                        self.workers.remove(&uid);
                        self.waiting.remove(&uid);
                    }
                }
                Ok(Ok(watcher::Event::Init)) => self.relist = Some(HashSet::new()),
                Ok(Ok(watcher::Event::InitDone)) => {
                    if let Some(seen) = self.relist.take() {
                        self.workers.retain(|uid, _| seen.contains(uid));
                        self.waiting.retain(|uid, _| seen.contains(uid));
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "test kubelet watch error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(Control::NodeUp) => {
                    for p in std::mem::take(&mut self.waiting).into_values() {
                        self.handle(p);
                    }
                }
                Err(Control::Preempt(uid)) => {
                    if let Some(w) = self.workers.get(&uid) {
                        let _ = w.cmd.send(Cmd::Preempt);
                    }
                }
            }
        }
    }

    /// A node for a new Pod, round-robin.
    fn pick_node(&mut self) -> Option<String> {
        for _ in 0..self.nodes.len() {
            self.next += 1;
            let n = &self.nodes[self.next % self.nodes.len()];
            if self.bind_to_not_ready || self.sh.nodes.is_up(n) {
                return Some(n.clone());
            }
        }
        None
    }

    fn handle(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if let Some(seen) = &mut self.relist {
            seen.insert(uid.clone());
        }
        if let Some(w) = self.workers.get(&uid) {
            if !w.task.is_finished() {
                w.pod.send_replace(pod);
                return;
            }
            // Its worker stopped on an error: start again.
            self.workers.remove(&uid);
        }
        let node = match pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            Some(n) if self.nodes.contains(&n) => n,
            Some(_) => return, // another kubelet's Pod
            None if pod.metadata.deletion_timestamp.is_some() => return,
            None => match self.pick_node() {
                Some(n) => n,
                None => {
                    self.waiting.insert(uid, pod);
                    return;
                }
            },
        };
        self.waiting.remove(&uid);
        let Some(up) = self.sh.nodes.subscribe(&node) else {
            return;
        };
        let ip = format!(
            "10.244.{}.{}",
            (self.started / 250) % 250,
            self.started % 250 + 2
        );
        self.started += 1;
        let script = (self.script)(&pod);
        let (pod_tx, pod_rx) = watch::channel(pod.clone());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let task = pod::spawn(
            self.sh.clone(),
            up,
            WorkerInput {
                pod,
                node,
                ip,
                script,
                pod_rx,
                cmd_rx,
            },
        );
        self.workers.insert(
            uid,
            WorkerHandle {
                pod: pod_tx,
                cmd: cmd_tx,
                task,
            },
        );
    }
}
