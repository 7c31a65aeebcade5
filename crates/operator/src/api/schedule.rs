//! `TestLayerSchedule`: TestLayerRuns created from a template on a cron
//! schedule, with a history of what each tick did.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::common::LayerPhase;
use super::test_layer_run::TestLayerRunSpec;

/// Creates TestLayerRuns from `template` at every tick of `schedule`: one
/// run of one layer, or one run per layer of `layers` as one suite (gated
/// on each other by their layer dependencies, as `testlayer submit --all`
/// does). A tick's runs are named after the tick, so a tick is never run
/// twice.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "testlayer.dev",
    version = "v1alpha1",
    kind = "TestLayerSchedule",
    namespaced,
    shortname = "tlsched",
    category = "testlayer",
    status = "TestLayerScheduleStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Zone","type":"string","jsonPath":".spec.timeZone","priority":1}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Last Schedule","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Last Run","type":"string","jsonPath":".status.lastRun.name"}"#,
    printcolumn = r#"{"name":"Outcome","type":"string","jsonPath":".status.lastRun.phase"}"#,
    printcolumn = r#"{"name":"Next","type":"date","jsonPath":".status.nextScheduleTime","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TestLayerScheduleSpec {
    /// Cron expression, read as a CronJob's (robfig/cron v3): five fields
    /// (minute hour day-of-month month day-of-week, Sunday 0; when both day
    /// fields are restricted either one matching is enough), a macro
    /// (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`) or `@every
    /// DURATION`; six fields with seconds first is an extension of ours.
    pub schedule: String,
    /// IANA time zone of the schedule (e.g. `Europe/Berlin`); UTC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// With a run of an earlier tick still going: Allow (start beside it),
    /// Forbid (skip this tick) or Replace (cancel it, start this one).
    #[serde(default, skip_serializing_if = "is_default")]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A tick not started within this many seconds (the controller was down)
    /// is recorded as missed, not run. Unset: a missed tick runs when the
    /// controller is back; after a downtime only the latest tick runs, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = super::limits::MAX_WHOLE_SECONDS))]
    pub starting_deadline_seconds: Option<i64>,
    /// Finished ticks that passed whose runs are kept (older ones are
    /// deleted; the status history remembers them); 3 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_HISTORY_LIMIT))]
    pub successful_runs_history_limit: Option<u32>,
    /// Finished ticks that did not pass whose runs are kept; 3 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_HISTORY_LIMIT))]
    pub failed_runs_history_limit: Option<u32>,
    /// No tick starts while true (runs already started go on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// The layers every tick runs, as one suite; empty: the template's
    /// `spec.layer` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
    /// The runs each tick creates.
    pub template: RunTemplate,
}

/// Most runs of finished ticks a schedule keeps, per outcome.
pub const MAX_HISTORY_LIMIT: u32 = 100;

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// What a schedule does with runs of an earlier tick still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Start the new tick's runs beside them.
    #[default]
    Allow,
    /// Skip the new tick.
    Forbid,
    /// Cancel them, then start the new tick's runs.
    Replace,
}

/// The runs a schedule or trigger creates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunTemplate {
    /// Labels and annotations of the runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// The spec of each run (its `layer` may be left out when the owner
    /// names `layers`).
    pub spec: RunSpecTemplate,
}

/// Labels and annotations given to created runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A TestLayerRun's spec in a template, where `layer` may be left out (the
/// owner's `layers` then names the layers); empty when left out.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(transparent)]
pub struct RunSpecTemplate(pub TestLayerRunSpec);

impl<'de> Deserialize<'de> for RunSpecTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut value = serde_json::Value::deserialize(d)?;
        if let Some(map) = value.as_object_mut() {
            let layer = map.entry("layer").or_insert(serde_json::Value::Null);
            if layer.is_null() {
                *layer = serde_json::Value::String(String::new());
            }
        }
        // Read through a path tracker, so that the error names the field
        // inside the template (`pod.unrestricted: ...`), which
        // `Decoded` joins to the template's own path.
        serde_path_to_error::deserialize::<_, TestLayerRunSpec>(value)
            .map(RunSpecTemplate)
            .map_err(|e| {
                let path = e.path().to_string();
                let why = testlayer_core::parse_words::plain(&path, &e.into_inner().to_string());
                serde::de::Error::custom(if path.is_empty() || path == "." {
                    why
                } else {
                    format!("{path}: {why}")
                })
            })
    }
}

impl JsonSchema for RunSpecTemplate {
    fn schema_name() -> Cow<'static, str> {
        "RunSpecTemplate".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = TestLayerRunSpec::json_schema(generator);
        if let Some(required) = schema.get_mut("required").and_then(|r| r.as_array_mut()) {
            required.retain(|f| f != "layer");
            if required.is_empty() {
                schema.remove("required");
            }
        }
        schema
    }
}

/// What a TestLayerSchedule has done.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestLayerScheduleStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the schedule is valid and ticks) and `Stalled` (it cannot:
    /// the field at fault is named).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The problem, when stalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The latest tick acted on (started, skipped or missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The next tick (none while suspended or stalled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The tick whose runs passed most recently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// The runs of the latest tick started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<ScheduledRun>,
    /// Runs started by the schedule that have not finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// The latest ticks, newest first (at most 20): what each did and how
    /// its runs ended, kept after the runs are deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<TickRecord>,
}

/// Ticks a schedule's status remembers.
pub const MAX_TICK_HISTORY: usize = 20;

/// The runs of one tick.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledRun {
    /// The run's name, or the suite's (its runs are `NAME-LAYER`).
    pub name: String,
    /// The tick.
    pub scheduled_at: Time,
    /// Its runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
    /// Pending, Running, or how it ended (a suite: Succeeded when every
    /// layer not in the background did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LayerPhase>,
}

/// What one tick did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TickRecord {
    /// The tick.
    pub at: Time,
    /// Started, Skipped (Forbid, with a run going) or Missed (past its
    /// starting deadline).
    pub action: TickAction,
    /// The run or suite started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How its runs ended (while known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LayerPhase>,
    /// Earlier ticks not run because the controller was down through them
    /// (one run for a downtime, not one per tick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_before: Option<u64>,
}

/// What a tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TickAction {
    /// Its runs were created.
    Started,
    /// A run was going and the policy is Forbid.
    Skipped,
    /// It was past its starting deadline.
    Missed,
}
