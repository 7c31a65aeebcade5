//! The Kubernetes API of testlayer: `TestLayerRun`, `CategoryRun`, `TestLayerSchedule`, `TestLayerTrigger` and
//! `TestLayerResource` in group
//! `testlayer.dev`, version `v1alpha1`. Plain serde types (no untagged unions,
//! optional fields skipped when empty) so the generated schemas are structural.

mod category_run;
mod common;
mod crds;
mod decoded;
pub mod limits;
pub mod names;
mod notify;
pub mod reference;
mod resource;
mod schedule;
mod test_layer_run;
mod trigger;

pub use crate::plan::Phase as CategoryPhase;
pub use crate::results::TestCounts;
pub use category_run::{
    AttemptStatus, AttemptStop, CategoryResources, CategoryRun, CategoryRunSpec, CategoryRunStatus,
};
pub use common::{Amounts, ConditionType, LayerPhase};
pub use crds::{all_crds, crds_yaml};
pub use decoded::{Decoded, Undecodable};
pub use notify::{
    GithubStatusTarget, MAX_NOTIFY_TARGETS, NotificationState, NotificationStatus, NotifyTarget,
    NotifyWhen, SecretKeyRef, SlackTarget, WebhookTarget,
};
pub use resource::{
    MAX_LISTED_HOLDERS, ResourceClaim, ResourceHolder, ResourceUnits, TestLayerResource,
    TestLayerResourceSpec, TestLayerResourceStatus,
};
pub use schedule::{
    ConcurrencyPolicy, MAX_HISTORY_LIMIT, MAX_TICK_HISTORY, RunSpecTemplate, RunTemplate,
    ScheduledRun, TemplateMetadata, TestLayerSchedule, TestLayerScheduleSpec,
    TestLayerScheduleStatus, TickAction, TickRecord,
};
pub use test_layer_run::{
    CategorySummary, ConfigMapKeyRef, ConfigSource, FlakyCounts, FrozenPlanRef, LISTED_FAILURES,
    MAX_LISTED_CATEGORIES, PhaseCounts, PlanSnapshot, PodSettings, RerunStatus, RunOverrides,
    TestLayerRun, TestLayerRunSpec, TestLayerRunStatus,
};
pub use trigger::{
    FiringRecord, MAX_WATCHED, PendingRevision, TestLayerTrigger, TestLayerTriggerSpec,
    TestLayerTriggerStatus, WatchedResource, WatchedState,
};

/// API group.
pub const GROUP: &str = "testlayer.dev";
/// API version.
pub const VERSION: &str = "v1alpha1";
