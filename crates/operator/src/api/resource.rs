//! `TestLayerResource`: a shared resource (a staging database, a
//! licence-limited sandbox) and its capacity, declared once per namespace so
//! that every run using it sees the same value; and the claims and grants
//! runs record about it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A shared resource that categories of different runs take turns on: at
/// most `capacity` units are held at once. Categories name it in their
/// layer config's `uses`; its name is the resource's name there, lower
/// case with `_` as `-`. Each unit held is a `coordination.k8s.io` Lease
/// named `testlayer-grant-NAME-UNIT`, owned by its holder.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "testlayer.dev",
    version = "v1alpha1",
    kind = "TestLayerResource",
    namespaced,
    shortname = "tlres",
    category = "testlayer",
    status = "TestLayerResourceStatus",
    printcolumn = r#"{"name":"Capacity","type":"integer","jsonPath":".spec.capacity"}"#,
    printcolumn = r#"{"name":"In Use","type":"integer","jsonPath":".status.inUse"}"#,
    printcolumn = r#"{"name":"Waiting","type":"integer","jsonPath":".status.waiting"}"#,
    printcolumn = r#"{"name":"Description","type":"string","jsonPath":".spec.description"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TestLayerResourceSpec {
    /// Units that may be held at once (1: a mutex).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub capacity: u32,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Who holds a shared resource and who waits for it, as the controller
/// last saw its grants and claims; written only when it changes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestLayerResourceStatus {
    /// Units held now.
    #[serde(default)]
    pub in_use: u32,
    /// Holders waiting for units.
    #[serde(default)]
    pub waiting: u32,
    /// The holders, at most [`MAX_LISTED_HOLDERS`] of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<ResourceHolder>,
    /// The waiting holders first in line, at most
    /// [`MAX_LISTED_HOLDERS`] of them, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<ResourceHolder>,
}

/// Holders listed in a TestLayerResource's status at most.
pub const MAX_LISTED_HOLDERS: usize = 20;

/// One holder of units of a shared resource, or one waiting for them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceHolder {
    /// The CategoryRun, or the TestLayerRun for a layer's own `uses`.
    pub holder: String,
    /// Its TestLayerRun.
    pub run: String,
    /// The namespace of both, when not the resource's (a controller that
    /// serves every namespace from one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Units held or wanted.
    pub units: u32,
}

fn one() -> u32 {
    1
}

/// Units of one shared resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceUnits {
    /// The resource (its TestLayerResource's name).
    pub resource: String,
    /// Units.
    pub units: u32,
}

/// A claim on shared resources, recorded while its holder waits for them,
/// so that every run's reconcile serves the waiting claims of the namespace
/// in one order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceClaim {
    /// The attempt the grant is for (0: the whole run).
    pub attempt: u32,
    /// When the claiming run was created (served in this order).
    pub since: Time,
    /// The run's priority (served first when higher).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// The units wanted of each resource (the line itself, in order, is
    /// in each TestLayerResource's `status.next`).
    pub wants: Vec<ResourceUnits>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}
