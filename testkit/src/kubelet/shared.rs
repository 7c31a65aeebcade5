//! What the kubelet's tasks share: whether each node is up, the Pods API,
//! the record of events and notes, the served logs, and Pods being drained.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use super::logs::LogStore;
use super::node_states::NodeStates;
use super::{KubeletEvent, KubeletEventKind, KubeletNote, KubeletNoteKind};

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
        tracing::debug!(
            pod,
            ?kind,
            ago_us = at.elapsed().as_micros() as u64,
            "kubelet event"
        );
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
