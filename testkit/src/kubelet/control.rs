//! [`Control`]: what the kubelet's handle asks of its loop.

/// Asks of the kubelet's loop.
pub(super) enum Control {
    /// A node came back: bind Pods that waited for one.
    NodeUp,
    /// Preempt the Pod of this uid.
    Preempt(String),
}
