//! What the kubelet's tasks share: whether each node is up, the Pods API,
//! the record of events and notes, the served logs, and Pods being drained.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use tokio::sync::watch;

use super::logs::LogStore;
use super::{KubeletEvent, KubeletEventKind, KubeletNote, KubeletNoteKind};

/// Whether each node is up (`true`) or down.
pub(crate) struct NodeStates(HashMap<String, watch::Sender<bool>>);

impl NodeStates {
    pub(super) fn new(names: &[String]) -> Self {
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

    pub(super) fn set(&self, node: &str, up: bool) {
        if let Some(s) = self.0.get(node) {
            s.send_replace(up);
        }
    }

    pub(super) fn subscribe(&self, node: &str) -> Option<watch::Receiver<bool>> {
        self.0.get(node).map(|s| s.subscribe())
    }
}

/// What the kubelet's tasks share.
pub(crate) struct Shared {
    pub(super) pods: Api<Pod>,
    pub(super) events: Mutex<Vec<KubeletEvent>>,
    pub(super) notes: Mutex<Vec<KubeletNote>>,
    pub(super) store: LogStore,
    pub(super) nodes: Arc<NodeStates>,
    /// Uids of Pods being drained: their deletion kills the container.
    pub(super) drains: Mutex<HashSet<String>>,
}

impl Shared {
    pub(super) fn record_at(&self, pod: &str, kind: KubeletEventKind, at: Instant) {
        if let Ok(mut g) = self.events.lock() {
            g.push(KubeletEvent {
                pod: pod.to_string(),
                kind,
                at,
            });
        }
    }

    pub(super) fn note(&self, subject: &str, kind: KubeletNoteKind) {
        if let Ok(mut g) = self.notes.lock() {
            g.push(KubeletNote {
                subject: subject.to_string(),
                kind,
                at: Instant::now(),
            });
        }
    }
}

pub(crate) fn now() -> Time {
    Time(Timestamp::now())
}
