//! The kubelet's loop: watches the namespace's Pods, picks a node for each
//! new one (round-robin), and hands each Pod to its worker.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::control::Control;
use super::options::ScriptFn;
use super::pod::{self, Cmd, WorkerInput};
use super::shared::Shared;

/// A Pod's worker, from the loop's side. Dropping it tells the worker its
/// Pod is gone.
struct WorkerHandle {
    pod: watch::Sender<Pod>,
    cmd: mpsc::UnboundedSender<Cmd>,
    task: JoinHandle<()>,
}

/// The kubelet's loop: watches the namespace's Pods and hands each to its
/// worker.
pub(super) struct Loop {
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
    /// A loop over the Pods of `sh`, binding new ones to `nodes`.
    pub(super) fn new(
        sh: Arc<Shared>,
        nodes: Vec<String>,
        script: ScriptFn,
        bind_to_not_ready: bool,
    ) -> Self {
        Self {
            sh,
            nodes,
            script,
            bind_to_not_ready,
            workers: HashMap::new(),
            waiting: HashMap::new(),
            relist: None,
            next: 0,
            started: 0,
        }
    }

    pub(super) async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) {
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
        let gated = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_some_and(|g| !g.is_empty());
        let node = match pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            Some(n) if self.nodes.contains(&n) => n,
            Some(_) => return, // another kubelet's Pod
            None if pod.metadata.deletion_timestamp.is_some() => return,
            // As the scheduler: a Pod behind a scheduling gate (a Kueue
            // queue's admission) is not bound until its gates are gone.
            None if gated => {
                self.waiting.remove(&uid);
                return;
            }
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
