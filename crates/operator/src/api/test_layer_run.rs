//! `TestLayerRun`: one run of one layer of the config.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::LayerPhase;
use crate::config::raw::{LlmMode, Strategy};
use crate::plan::Phase;
use crate::results::TestCounts;
use crate::words::{Known, Multiplier, Reason};

/// Runs one layer of a layer config: one CategoryRun per category, admitted by
/// the planner (dependencies, parallel limit, budget, fail-fast, retries,
/// timeouts), with the results summed in the status.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "testlayer.dev",
    version = "v1alpha1",
    kind = "TestLayerRun",
    namespaced,
    shortname = "tlr",
    category = "testlayer",
    status = "TestLayerRunStatus",
    printcolumn = r#"{"name":"Layer","type":"string","jsonPath":".spec.layer"}"#,
    printcolumn = r#"{"name":"Env","type":"string","jsonPath":".spec.environment","priority":1}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Passed","type":"integer","jsonPath":".status.counts.passed"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.counts.failed"}"#,
    printcolumn = r#"{"name":"Duration","type":"string","jsonPath":".status.duration"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TestLayerRunSpec {
    /// Key of the layer to run in the layer config (e.g. `fast_feedback`).
    pub layer: String,
    /// Environment whose `environment_overrides` apply (test, development,
    /// staging, production, or any the config defines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Where the layer config comes from: a ConfigMap key or inline YAML
    /// (not read by a rerun, which runs its earlier run's frozen plan).
    #[serde(default)]
    pub config: ConfigSource,
    /// Default container image of category Pods (a category's own `image` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Default shell command template of category Pods; `{category}` and
    /// `{layer}` are substituted (a category's own `command` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Overrides of the layer's settings for this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<RunOverrides>,
    /// Settings applied to every category Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodSettings>,
    /// Names of TestLayerRuns in this namespace that must have succeeded before
    /// this run starts (in addition to the layer's own `dependencies`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Rerun what did not pass in this earlier TestLayerRun (same
    /// namespace, same layer, finished): its frozen plan, not the config;
    /// the categories that passed there are carried over as passed (and
    /// satisfy dependencies), the others run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// A background run: nobody waits for it; it never blocks other runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    /// Suspended: running Pods are stopped and nothing new starts until false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Cancel the run: running Pods are stopped, the rest is marked Cancelled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
    /// Seconds to wait for a dependency that has no run at all (not created
    /// yet, or deleted by its TTL before this run saw it end) before the run
    /// fails with `DependencyNotFound`; 3600 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = super::limits::MAX_WHOLE_SECONDS))]
    pub dependency_wait_seconds: Option<u32>,
    /// Seconds a category Pod may stay Terminating past its deletion time
    /// (its grace period) before its attempt is ended anyway: as its stop
    /// said, or as `NodeLost` (its node does not answer); 60 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = super::limits::MAX_WHOLE_SECONDS))]
    pub termination_bound_seconds: Option<u32>,
    /// Seconds the node of a category Pod may be not Ready (its `Ready`
    /// condition `Unknown` or `False`, as the node lifecycle controller
    /// marks a node whose kubelet stopped answering) before the attempt
    /// ends `NodeLost`, an infrastructure failure, and its Pod is deleted;
    /// 60 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = super::limits::MAX_WHOLE_SECONDS))]
    pub node_lost_seconds: Option<u32>,
    /// Served before runs of a lower priority when waiting for shared
    /// resources (the layer config's `uses`); 0 when unset. Among runs of
    /// one priority, the earlier created goes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Delete the run (and everything it owns) this many seconds after it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = super::limits::MAX_WHOLE_SECONDS))]
    pub ttl_seconds_after_finished: Option<i64>,
    /// Where to tell the run's outcome (webhook, Slack, GitHub commit
    /// status), each at most once; the runs of a suite tell the suite's
    /// outcome once, when its last run ends (see docs/usage/notifications.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub notify: Vec<super::notify::NotifyTarget>,
}

/// Where the layer config comes from. Exactly one of the fields is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSource {
    /// A key of a ConfigMap in the run's namespace holding the YAML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
    /// The layer config YAML itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
}

/// A key of a ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// ConfigMap name.
    pub name: String,
    /// Key holding the YAML; `test_layers.yaml` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Overrides of the layer's settings for one run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunOverrides {
    /// SEQUENTIAL, PARALLEL_UNLIMITED, PARALLEL_LIMITED or HYBRID_SMART.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Known<Strategy>>,
    /// Most categories running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = super::limits::MAX_PARALLEL))]
    pub max_parallel: Option<u32>,
    /// Cancel everything at the first failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
    /// Retries of every category after a failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = super::limits::MAX_RETRIES))]
    pub retries: Option<u32>,
    /// Multiplier of every timeout, as a decimal string (e.g. "1.5").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_multiplier: Option<Known<Multiplier>>,
}

/// Settings of every category Pod of a run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    /// ServiceAccount the Pods run as (default: the namespace's `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Node selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Environment added to every container (secrets by reference only:
    /// `valueFrom.secretKeyRef`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Environment from ConfigMaps and Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// Default requests and limits where the config names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Pull secrets for the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Labels added to every Pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to every Pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Run without the restricted security defaults (non-root, no privilege
    /// escalation, all capabilities dropped, RuntimeDefault seccomp).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unrestricted: bool,
    /// A Kueue `LocalQueue` of the namespace: every Pod carries the label
    /// `kueue.x-k8s.io/queue-name` with it, so that Kueue's plain-Pod
    /// integration admits it (through its `kueue.x-k8s.io/admission`
    /// scheduling gate). Time a Pod spends scheduling-gated does not count
    /// against the category's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub queue_name: Option<String>,
}

/// What a TestLayerRun has done so far.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestLayerRunStatus {
    /// Pending, Running, Succeeded, Failed, TimedOut or Cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LayerPhase>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Succeeded, Complete, Ready, Reconciling and Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the first category started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Wall time of the finished run, for humans (`1m20s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Finished categories over all (`3/7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Tests summed over categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<TestCounts>,
    /// Flaky categories (passed only on a retry) and flaky tests (failed,
    /// then passed in a later attempt), when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flaky: Option<FlakyCounts>,
    /// The strategy in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Known<Strategy>>,
    /// One sentence on where the run stands or why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Since when a dependency of the run has had no run at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency_missing_since: Option<Time>,
    /// When the run reached its required-services gate (its layer
    /// dependencies had passed); the wait for the services counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_wait_start: Option<Time>,
    /// Hash of the spec fields that define the run (everything but `cancel`,
    /// `suspend` and `ttlSecondsAfterFinished`); when it changes, the run
    /// starts over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// The layer's settings as resolved when the run started; the run follows
    /// them (and its CategoryRuns' specs) even if the config changes later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSnapshot>,
    /// Categories by phase (the whole plan, however large).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<PhaseCounts>,
    /// The first failed or timed-out categories, in config order, at most
    /// [`LISTED_FAILURES`]; `phases` has how many there are in all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_categories: Vec<String>,
    /// The first categories that failed as their `allowFailure` lets them
    /// (the run went on as if they had passed), at most [`LISTED_FAILURES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_failures: Vec<String>,
    /// What this rerun took over from the run it reruns (`spec.rerunOf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<RerunStatus>,
    /// Quarantined tests that failed, summed over categories.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub quarantined_tests: u64,
    /// The shared resources the layer (its `uses`) waits for, while it
    /// waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_claim: Option<super::ResourceClaim>,
    /// Seconds the run spent with nothing running because of shared
    /// resources others held, in spans that ended (not counted against the
    /// layer deadline unless the layer says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_wait_seconds: Option<u64>,
    /// Since when the run has had nothing running because of shared
    /// resources, while it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_wait_since: Option<Time>,
    /// Every category of the plan, compact, while the run has at most
    /// [`MAX_LISTED_CATEGORIES`] (a larger run lists none: details are in
    /// each category's CategoryRun).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<CategorySummary>,
    /// The notifications of the run's outcome (`spec.notify`), each
    /// recorded before it is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub notifications: Vec<super::notify::NotificationStatus>,
}

/// Most categories a run's status lists one by one (`status.categories`).
pub const MAX_LISTED_CATEGORIES: usize = 50;
/// Most failed categories a run's status and message name.
pub const LISTED_FAILURES: usize = 10;

/// How many categories of a run are in each phase.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseCounts {
    /// Not looked at yet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending: u32,
    /// Waiting on dependencies, a slot, the budget or a backoff.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waiting: u32,
    /// Running an attempt.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub running: u32,
    /// Passed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub succeeded: u32,
    /// Failed after their retries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u32,
    /// Stopped at a timeout.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timed_out: u32,
    /// Cancelled.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cancelled: u32,
    /// Not run because a dependency did not pass.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u32,
}

impl PhaseCounts {
    /// Counts one category in `phase`.
    pub fn add(&mut self, phase: Phase) {
        let n = match phase {
            Phase::Pending => &mut self.pending,
            Phase::Waiting => &mut self.waiting,
            Phase::Running => &mut self.running,
            Phase::Succeeded => &mut self.succeeded,
            Phase::Failed => &mut self.failed,
            Phase::TimedOut => &mut self.timed_out,
            Phase::Cancelled => &mut self.cancelled,
            Phase::Skipped => &mut self.skipped,
        };
        *n += 1;
    }

    /// Categories that ended.
    pub fn finished(&self) -> u32 {
        self.succeeded + self.failed + self.timed_out + self.cancelled + self.skipped
    }

    /// Every category counted.
    pub fn total(&self) -> u32 {
        self.pending + self.waiting + self.running + self.finished()
    }
}

/// Layer-wide settings of a run, frozen when it starts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSnapshot {
    /// Display name of the layer.
    pub display_name: String,
    /// SEQUENTIAL, PARALLEL_UNLIMITED, PARALLEL_LIMITED or HYBRID_SMART.
    pub strategy: Known<Strategy>,
    /// Most categories running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// CPU (millicores) and memory (bytes) budget of running categories.
    #[serde(default)]
    pub budget: super::common::Amounts,
    /// Cancel everything at the first failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_fast: bool,
    /// A background layer (or run): nobody waits for it and no layer may
    /// depend on it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    /// Whole-layer deadline in seconds, multiplier applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_seconds: Option<f64>,
    /// The timeout multiplier that was applied.
    pub timeout_multiplier: f64,
    /// Layers whose latest runs in this namespace must have succeeded first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_dependencies: Vec<String>,
    /// Services that must have ready endpoints first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_services: Vec<String>,
    /// Bound on waiting for the services, in seconds.
    pub service_wait_seconds: f64,
    /// LLM mode (`mock` or `real`).
    pub llm_mode: Known<LlmMode>,
    /// Number of categories (each has a CategoryRun whose spec holds it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub category_count: u32,
    /// Category names in config order, as controllers before the frozen
    /// plan recorded them; empty in runs accepted since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// The immutable ConfigMap that holds every CategoryRun's spec as
    /// resolved when the run was accepted; a CategoryRun deleted mid-run is
    /// recreated from it, never from the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<FrozenPlanRef>,
    /// Units of shared resources (TestLayerResources, by name) the layer
    /// holds from its start to its end.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub uses: BTreeMap<String, u32>,
    /// Time spent waiting for shared resources counts against the deadline.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deadline_counts_resource_wait: bool,
}

impl PlanSnapshot {
    /// Number of categories in the plan (from the count, or from the name
    /// list of a run accepted by an older controller).
    pub fn count(&self) -> usize {
        if self.category_count > 0 {
            self.category_count as usize
        } else {
            self.categories.len()
        }
    }
}

/// Where a run's frozen plan is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrozenPlanRef {
    /// Name of the ConfigMap (in the run's namespace, owned by the run).
    pub config_map: String,
    /// SHA-256 of its compressed content (`sha256:<hex>`).
    pub digest: String,
}

/// One category in a TestLayerRun's status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategorySummary {
    /// Name from the config.
    pub name: String,
    /// Its phase.
    pub phase: Phase,
    /// Attempts made.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// Machine-friendly reason of its end or wait (`DependencyFailed`, `TestsFailed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Its test counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<TestCounts>,
}

impl CategorySummary {
    /// A category that has not started.
    pub fn pending(name: &str) -> Self {
        CategorySummary {
            name: name.to_string(),
            phase: Phase::Pending,
            attempts: 0,
            reason: None,
            counts: None,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// What a rerun took over from its earlier run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RerunStatus {
    /// The earlier run.
    pub of: String,
    /// Its categories that passed, carried over and not run again.
    #[schemars(range(max = super::limits::MAX_INDEX))]
    pub carried: u32,
    /// Its categories that did not pass, run again.
    #[schemars(range(max = super::limits::MAX_INDEX))]
    pub rerun: u32,
}

/// How much of a run was flaky.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlakyCounts {
    /// Categories that passed only on a retry.
    #[schemars(range(max = super::limits::MAX_INDEX))]
    pub categories: u32,
    /// Tests that failed in one attempt and passed in a later one.
    pub tests: u64,
}
