//! An Event to publish, as the pure steps decide it.

use k8s_openapi::api::core::v1::ObjectReference;

/// An Event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// The object it is about.
    pub regarding: ObjectReference,
    /// A warning rather than a normal event.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What happened (bounded).
    pub note: String,
}
