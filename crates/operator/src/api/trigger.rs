//! `TestLayerTrigger`: TestLayerRuns created when a watched workload has
//! finished rolling out a new revision.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::LayerPhase;
use super::schedule::{ConcurrencyPolicy, MAX_HISTORY_LIMIT, RunTemplate, ScheduledRun};

/// Creates TestLayerRuns from `template` once each time a watched resource
/// has finished rolling out a new revision (never on a generation change
/// alone, never twice for one revision): one run of one layer, or one per
/// layer of `layers` as one suite. The runs record what triggered them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "testlayer.dev",
    version = "v1alpha1",
    kind = "TestLayerTrigger",
    namespaced,
    shortname = "tltrig",
    category = "testlayer",
    status = "TestLayerTriggerStatus",
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.watch.kind"}"#,
    printcolumn = r#"{"name":"Name","type":"string","jsonPath":".spec.watch.name"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastRevision"}"#,
    printcolumn = r#"{"name":"Last Run","type":"string","jsonPath":".status.lastRun.name"}"#,
    printcolumn = r#"{"name":"Outcome","type":"string","jsonPath":".status.lastRun.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TestLayerTriggerSpec {
    /// The resources whose rollouts start runs.
    pub watch: WatchedResource,
    /// Seconds to wait after a rollout finished before its runs start (a
    /// rollout that stops being finished meanwhile waits anew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = super::limits::MAX_WHOLE_SECONDS))]
    pub delay_seconds: Option<u32>,
    /// With runs of an earlier revision still going: Allow (start beside
    /// them), Forbid (skip this revision) or Replace (cancel them).
    #[serde(default, skip_serializing_if = "is_default")]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Finished firings that passed whose runs are kept; 3 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_HISTORY_LIMIT))]
    pub successful_runs_history_limit: Option<u32>,
    /// Finished firings that did not pass whose runs are kept; 3 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_HISTORY_LIMIT))]
    pub failed_runs_history_limit: Option<u32>,
    /// Nothing fires while true; revisions rolled out meanwhile are
    /// recorded, not run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// The layers each firing runs, as one suite; empty: the template's
    /// `spec.layer` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
    /// The runs each firing creates. Their Pods get the environment
    /// variables `TESTLAYER_TRIGGER_RESOURCE`, `TESTLAYER_TRIGGER_REVISION`
    /// and `TESTLAYER_TRIGGER_IMAGE`.
    pub template: RunTemplate,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The resources a trigger watches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchedResource {
    /// API version, e.g. `apps/v1`, `kustomize.toolkit.fluxcd.io/v1`,
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// Kind: Deployment, StatefulSet, DaemonSet, Kustomization,
    /// HelmRelease, Application, Rollout, or any kind with kstatus-style
    /// conditions (then `revisionPath` is needed).
    pub kind: String,
    /// Namespace of the resources (e.g. `flux-system`, `argocd`); the
    /// trigger's own when unset. The runs are created in the trigger's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// One resource by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resources by label (when no `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Where the revision is, for kinds without a known one (or to read
    /// another field), e.g. `.status.lastAppliedRevision` or
    /// `.metadata.annotations["example.com/revision"]`. For a Secret only
    /// `.metadata.resourceVersion`, `.metadata.generation` or an annotation
    /// is taken (never its data). A revision longer than 128 characters or
    /// with other than printable characters is shown as a digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_path: Option<String>,
}

/// What a TestLayerTrigger has done.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestLayerTriggerStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (watching) and `Stalled` (cannot: the field at fault is named).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The problem, when stalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Since when it watches: revisions finished before are not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watching_since: Option<Time>,
    /// The revision that fired last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_revision: Option<String>,
    /// Each watched resource's revision last handled (fired, skipped, or
    /// seen when watching began), and one waiting out `delaySeconds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<WatchedState>,
    /// The runs of the latest firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<ScheduledRun>,
    /// Runs started by the trigger that have not finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// The latest firings, newest first (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<FiringRecord>,
}

/// Watched resources a trigger's status keeps at most.
pub const MAX_WATCHED: usize = 100;

/// What a trigger knows of one watched resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchedState {
    /// Its name.
    pub name: String,
    /// The revision last handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// A finished revision waiting out `delaySeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingRevision>,
}

/// A finished revision waiting out the delay.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRevision {
    /// The revision.
    pub revision: String,
    /// When its rollout was first seen finished.
    pub finished_at: Time,
}

/// One firing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FiringRecord {
    /// When.
    pub at: Time,
    /// The resource, `Kind/name`.
    pub resource: String,
    /// Its revision.
    pub revision: String,
    /// Its first container image, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Started, or Skipped (Forbid, with runs going; or suspended).
    pub action: super::TickAction,
    /// The run or suite started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How its runs ended (while known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LayerPhase>,
}
