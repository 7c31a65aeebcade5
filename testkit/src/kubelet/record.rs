//! What the kubelet records for tests to assert on: lifecycle events
//! ([`KubeletEventKind`]) and notes on everything else ([`KubeletNoteKind`]).

use std::time::Instant;

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
    /// [`TestKubelet::drain_pod`](super::TestKubelet::drain_pod) evicted the Pod through the Eviction API.
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
