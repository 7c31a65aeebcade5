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
//!
//! This file starts a [`TestKubelet`] and reads what it did (and sets log
//! serving); `handle` holds the type itself; `node` registers Nodes and
//! fails and recovers them; `disruption` preempts and drains Pods;
//! `dispatch` is the loop that binds Pods and hands each to its worker in
//! `pod`, and `control` what the handle asks of it; `record` and `options`
//! hold the public types; `shared` what the kubelet's tasks share,
//! `node_states` whether each node is up.

mod control;
mod dispatch;
mod disruption;
mod handle;
mod logs;
mod node;
mod node_states;
mod options;
mod pod;
mod record;
mod script;
mod shared;

use std::sync::{Arc, Mutex};

use kube::Client;
use kube::api::Api;
use tokio::sync::{mpsc, watch};

pub use handle::TestKubelet;
pub use node::NodeFailure;
pub use options::{KubeletOptions, ScriptFn};
pub use record::{KubeletEvent, KubeletEventKind, KubeletNote, KubeletNoteKind};
pub use script::{DEFAULT_SIGTERM_EXIT, LogServing, OnSigterm, PodEnd, PodScript};

use dispatch::Loop;
use logs::{LogServer, LogStore};
use node::register_node;
use node_states::NodeStates;
use shared::Shared;

use crate::TestkitError;

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
            Loop::new(
                shared.clone(),
                names.clone(),
                options.script,
                options.bind_to_not_ready_nodes,
            )
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

    /// Everything it did so far, in the order it happened. An event is
    /// stamped with the moment it happened, which may come before the status
    /// write that reports it (a container that ended is reported after), so
    /// the record is sorted by that moment, not by when it was written down.
    pub fn events(&self) -> Vec<KubeletEvent> {
        self.shared
            .events
            .lock()
            .map(|g| {
                let mut all = g.clone();
                all.sort_by_key(|e| e.at);
                all
            })
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

    /// Sets how `pods/log` is answered for Pods whose script does not say;
    /// requests hanging under [`LogServing::Hang`] are answered as the new
    /// setting says.
    pub fn set_log_serving(&self, serving: LogServing) {
        self.log_serving.send_replace(serving);
    }
}
