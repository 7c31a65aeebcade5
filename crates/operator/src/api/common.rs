//! Types shared by both resources.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Phase of a whole layer run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LayerPhase {
    /// Accepted, not started (waiting for dependencies or services, or suspended).
    #[default]
    Pending,
    /// Categories are running or waiting.
    Running,
    /// Every category passed.
    Succeeded,
    /// A category failed or was skipped.
    Failed,
    /// The layer passed its deadline.
    TimedOut,
    /// Cancelled by the user.
    Cancelled,
}

impl LayerPhase {
    /// The name shown in status and events.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerPhase::Pending => "Pending",
            LayerPhase::Running => "Running",
            LayerPhase::Succeeded => "Succeeded",
            LayerPhase::Failed => "Failed",
            LayerPhase::TimedOut => "TimedOut",
            LayerPhase::Cancelled => "Cancelled",
        }
    }

    /// Whether the phase is final.
    pub fn is_terminal(self) -> bool {
        !matches!(self, LayerPhase::Pending | LayerPhase::Running)
    }
}

/// Condition types both resources publish, in `metav1.Condition` shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionType {
    /// The run finished and passed (`kubectl wait --for=condition=Succeeded`).
    Succeeded,
    /// The run finished, whatever the outcome (`kubectl wait --for=condition=Complete`).
    Complete,
    /// The run finished and did not pass (failed, timed out, cancelled), as
    /// a Job's `Failed` (`kubectl wait --for=condition=Failed`).
    Failed,
    /// GitOps health: True when finished and passed.
    Ready,
    /// GitOps progress: True while the run is still working.
    Reconciling,
    /// GitOps: True when the run cannot go on (bad config, missing dependency).
    Stalled,
}

impl ConditionType {
    /// The `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Succeeded => "Succeeded",
            ConditionType::Complete => "Complete",
            ConditionType::Failed => "Failed",
            ConditionType::Ready => "Ready",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
        }
    }
}

/// CPU (millicores) and memory (bytes) of a container.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Amounts {
    /// CPU in millicores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = super::limits::MAX_CPU_MILLIS))]
    pub cpu_millis: Option<u64>,
    /// Memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = super::limits::MAX_MEMORY_BYTES))]
    pub memory_bytes: Option<u64>,
}
