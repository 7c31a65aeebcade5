//! `CategoryRun`: one category of one TestLayerRun, self-contained.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::test_layer_run::PodSettings;
use crate::api::Amounts;
use crate::plan::Phase;
use crate::results::{FailedTests, TestCounts};
use crate::words::{AttemptReason, Reason};

/// One category of a TestLayerRun, owned by it. Its spec holds everything its
/// Pods need; each attempt is one Pod.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "testlayer.dev",
    version = "v1alpha1",
    kind = "CategoryRun",
    namespaced,
    shortname = "tlcr",
    category = "testlayer",
    status = "CategoryRunStatus",
    printcolumn = r#"{"name":"Run","type":"string","jsonPath":".spec.runName"}"#,
    printcolumn = r#"{"name":"Category","type":"string","jsonPath":".spec.category"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Attempts","type":"integer","jsonPath":".status.attemptCount"}"#,
    printcolumn = r#"{"name":"Passed","type":"integer","jsonPath":".status.counts.passed"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.counts.failed"}"#,
    printcolumn = r#"{"name":"Duration","type":"string","jsonPath":".status.duration"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.reason","priority":1}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CategoryRunSpec {
    /// The owning TestLayerRun.
    pub run_name: String,
    /// Layer key.
    pub layer: String,
    /// Category name as written in the config.
    pub category: String,
    /// Position of the category in the layer (0-based, config order).
    #[schemars(range(max = super::limits::MAX_INDEX))]
    pub index: u32,
    /// Lower starts first among equals.
    #[serde(default)]
    pub priority_order: i64,
    /// Expected duration in seconds, which HYBRID_SMART plans with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = super::limits::MAX_SECONDS))]
    pub expected_duration_seconds: Option<f64>,
    /// Container image.
    pub image: String,
    /// Shell command line (run with `/bin/sh -c`).
    pub command: String,
    /// Environment of the container (plain values; secrets come through
    /// `pod.env` references).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// CPU and memory requests and limits of the test container, as the
    /// config resolved them.
    #[serde(default, skip_serializing_if = "CategoryResources::is_empty")]
    pub resources: CategoryResources,
    /// Per-attempt timeout in seconds, multiplier applied.
    #[schemars(range(min = 0, max = super::limits::MAX_SECONDS))]
    pub timeout_seconds: f64,
    /// Retries after a failed test attempt.
    #[serde(default)]
    #[schemars(range(max = super::limits::MAX_RETRIES))]
    pub retries: u32,
    /// Retries after an infrastructure failure (eviction, image pull, node loss).
    #[serde(default)]
    #[schemars(range(max = super::limits::MAX_RETRIES))]
    pub infra_retries: u32,
    /// Backoff before the first retry in seconds; doubles for each further one.
    #[serde(default)]
    #[schemars(range(min = 0, max = super::limits::MAX_SECONDS))]
    pub retry_backoff_seconds: f64,
    /// Categories of the same run that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// JUnit XML file the command writes (relative to the working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub junit_report: Option<String>,
    /// Quarantined test ids (`*` any characters, `?` one): an attempt whose
    /// failing tests, read from its JUnit report, are all quarantined passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = super::limits::MAX_QUARANTINE))]
    pub quarantine: Vec<String>,
    /// Its failure is reported but fails neither the run nor fail-fast, and
    /// its dependents still run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_failure: bool,
    /// It passed in this earlier run and is not run again (a rerun of
    /// what failed there carries it over as passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed_in: Option<String>,
    /// Pod settings from the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodSettings>,
    /// Units of shared resources (TestLayerResources, by name) each attempt
    /// holds while it runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub uses: BTreeMap<String, u32>,
}

/// What a CategoryRun has done so far.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryRunStatus {
    /// Pending, Waiting, Running, Succeeded, Failed, TimedOut, Cancelled or Skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Succeeded, Complete, Ready, Reconciling and Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Machine-friendly reason of the phase (`Running`, `WaitingForSlot`,
    /// `PodCreateFailed`, `TestsFailed`, `DependencyFailed`, `FailFast`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// One sentence on the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the first attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Wall time, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Number of attempts made.
    #[serde(default)]
    pub attempt_count: u32,
    /// Every attempt, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptStatus>,
    /// Test counts of the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<TestCounts>,
    /// The failing tests of the last attempt, from its JUnit report: the
    /// first 50 named (id, first line of the message, attempt), then how
    /// many more.
    #[serde(default, skip_serializing_if = "FailedTests::is_empty")]
    pub failed_tests: FailedTests,
    /// It passed, but only on a retry after a test failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flaky: bool,
    /// Tests that failed in one attempt and passed in a later one (with the
    /// attempt and message of their failure; the first 50, then a count).
    #[serde(default, skip_serializing_if = "FailedTests::is_empty")]
    pub flaky_tests: FailedTests,
    /// Quarantined tests that failed (in any attempt; the first 50, then a
    /// count): reported, never the cause of a failure.
    #[serde(default, skip_serializing_if = "FailedTests::is_empty")]
    pub quarantined_tests: FailedTests,
    /// It failed, and `spec.allowFailure` lets it: the run and its
    /// dependents go on as if it had passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allowed_failure: bool,
    /// The end of the last attempt's log (bounded), kept after the Pod is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
    /// The category that caused this end (the failed dependency, or the
    /// failure that triggered fail-fast).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<String>,
    /// The shared resources its next attempt waits for, while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_claim: Option<super::ResourceClaim>,
}

/// One attempt: one Pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptStatus {
    /// 1-based.
    pub number: u32,
    /// The Pod.
    pub pod_name: String,
    /// Exit code of the test container, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it ended: Completed, ExitCodeN, OOMKilled, Evicted,
    /// DeadlineExceeded, ImagePullBackOff, PodDeleted, Stopped, ...;
    /// PodCreateFailed: the apiserver refused its Pod (the message says
    /// why), which is retried while the attempt has not ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<AttemptReason>,
    /// The container's termination message or the Pod's status message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// An infrastructure failure rather than a test failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub infrastructure: bool,
    /// The end of this attempt's log (at most 10 lines, 1 KiB), read when it
    /// ended or, for a stopped attempt, before its Pod was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
    /// Why this attempt's JUnit report could not be used (not written, not
    /// a JUnit report, too large, cut in the log); its counts then come
    /// from the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_problem: Option<String>,
    /// The ConfigMap that keeps every test case of this attempt's JUnit
    /// report (key `cases.jsonl.gz`: gzip of one JSON object per line),
    /// owned by this CategoryRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_cases: Option<String>,
    /// Its failing tests that are quarantined (the first 50, then a count).
    #[serde(default, skip_serializing_if = "FailedTests::is_empty")]
    pub quarantined_tests: FailedTests,
    /// It exited with a failure, and every failing test its JUnit report
    /// names (at least one) is quarantined: it counts as passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passed_by_quarantine: bool,
    /// The controller stopped this attempt: recorded before its Pod is
    /// deleted; once the attempt has ended, the category ends as it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<AttemptStop>,
    /// When the Pod was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Its Pod waits behind a scheduling gate (a Kueue queue's admission):
    /// its timeout does not run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gated: bool,
    /// When its Pod was seen without its scheduling gates, having had some:
    /// its timeout counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_time: Option<Time>,
}

impl AttemptStatus {
    /// Attempt `number`, whose Pod `pod_name` was created at `start_time`,
    /// with nothing known of its end yet.
    pub fn new(number: u32, pod_name: String, start_time: Time) -> Self {
        AttemptStatus {
            number,
            pod_name,
            exit_code: None,
            reason: None,
            message: None,
            infrastructure: false,
            log_tail: None,
            report_problem: None,
            test_cases: None,
            quarantined_tests: FailedTests::default(),
            passed_by_quarantine: false,
            stop: None,
            start_time: Some(start_time),
            completion_time: None,
            gated: false,
            admitted_time: None,
        }
    }
}

/// Why the controller stopped an attempt.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptStop {
    /// The phase the category ends in once the attempt has ended (TimedOut
    /// or Cancelled); absent when the attempt was interrupted by suspension
    /// and the category starts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why (`DeadlineExceeded`, `LayerDeadlineExceeded`, `FailFast`,
    /// `Cancelled`, `Interrupted`).
    pub reason: Reason,
    /// The category whose failure caused it (fail-fast).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<String>,
}

/// Requests and limits of a category's container.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryResources {
    /// What the container is guaranteed.
    #[serde(default)]
    pub requests: Amounts,
    /// What it may use at most.
    #[serde(default)]
    pub limits: Amounts,
}

impl CategoryResources {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == CategoryResources::default()
    }
}
