//! What [`step`](super::step) decides: the writes of one pass, in the order
//! they must happen, and when to look again.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use k8s_openapi::jiff::Timestamp;
use kube::Resource;

use super::observed::Question;
use crate::api::{CategoryRun, CategoryRunStatus, TestLayerRunStatus};
use crate::controller::status::note::Note;

/// One write. A reconcile applies a [`Step`]'s writes in order and stops at
/// the first that fails; the writes inside one entry go out concurrently.
#[derive(Debug, Clone)]
pub enum Write {
    /// Server-side apply of the run's whole status.
    RunStatus(Box<TestLayerRunStatus>),
    /// Create the run's frozen plan (one that exists already is fine: its
    /// name holds the digest of its content).
    CreatePlan(Box<ConfigMap>),
    /// Create these CategoryRuns (one that exists already is fine).
    CreateCategoryRuns(Vec<CategoryRun>),
    /// Create these grants of shared resources, all or none: a unit that is
    /// held already (a create conflict) fails the reconcile, and the grants
    /// made before it are deleted again.
    CreateGrants(Vec<Lease>),
    /// Give back these grants, of this namespace: each deleted only if it
    /// is still the Lease of that uid (gone already is fine).
    DeleteGrants(String, Vec<crate::controller::shared::claims::GrantRef>),
    /// Create these Pods (one that exists already is fine).
    CreatePods(Vec<Pod>),
    /// Create these ConfigMaps keeping attempts' test cases (one that
    /// exists already is fine; one the apiserver refuses is reported and
    /// left out, the attempt's results stand).
    CreateTestCases(Vec<ConfigMap>),
    /// Server-side apply of these CategoryRuns' statuses, by name.
    CategoryRunStatuses(Vec<(String, CategoryRunStatus)>),
    /// Stop these Pods' containers and keep the Pods (and so their logs):
    /// each Pod's `activeDeadlineSeconds` cut to the seconds it has been
    /// active, so its kubelet ends it `DeadlineExceeded` with its grace
    /// period, and annotated [`ANNOTATION_STOPPED_AT`]. A Pod that is gone
    /// is fine; one that cannot take the change is deleted instead.
    ///
    /// [`ANNOTATION_STOPPED_AT`]: crate::api::names::ANNOTATION_STOPPED_AT
    StopPods(Vec<PodStop>),
    /// Delete these Pods (gone already is fine).
    DeletePods(Vec<String>),
    /// Delete these CategoryRuns and what they own.
    DeleteCategoryRuns(Vec<String>),
    /// Delete the run itself (its TTL after finishing passed).
    DeleteRun,
    /// Merge these conditions into the run's status (for a run that may not
    /// decode, so its whole status cannot be applied).
    RunConditions(Vec<Condition>),
    /// Merge these conditions into these CategoryRuns' statuses, by name.
    CategoryRunConditions(Vec<(String, Vec<Condition>)>),
    /// Publish an Event.
    Event(Note),
    /// Record the run's notifications (its whole status, with them) before
    /// any is sent: written only if the run is still at `read_at` (its
    /// resourceVersion as observed), so that a stale view never takes an
    /// entry the sender moved on back to Pending.
    RecordNotifications {
        /// The status, with the entries.
        status: Box<TestLayerRunStatus>,
        /// The run's resourceVersion the status was derived from.
        read_at: Option<String>,
    },
}

impl Write {
    /// What it writes, in a word and a count, for the controller's log:
    /// `pods+3`, `grants-1`, `run status`.
    pub fn summary(&self) -> String {
        match self {
            Write::RunStatus(_) => "run status".into(),
            Write::CreatePlan(_) => "plan+1".into(),
            Write::CreateCategoryRuns(v) => format!("categoryruns+{}", v.len()),
            Write::CreateGrants(v) => format!("grants+{}", v.len()),
            Write::DeleteGrants(_, v) => format!("grants-{}", v.len()),
            Write::CreatePods(v) => format!("pods+{}", v.len()),
            Write::CreateTestCases(v) => format!("testcases+{}", v.len()),
            Write::CategoryRunStatuses(v) => format!("categoryrun statuses {}", v.len()),
            Write::StopPods(v) => format!("pods stopped {}", v.len()),
            Write::DeletePods(v) => format!("pods-{}", v.len()),
            Write::DeleteCategoryRuns(v) => format!("categoryruns-{}", v.len()),
            Write::DeleteRun => "run-1".into(),
            Write::RunConditions(v) => format!("run conditions {}", v.len()),
            Write::CategoryRunConditions(v) => format!("categoryrun conditions {}", v.len()),
            Write::Event(_) => "event".into(),
            Write::RecordNotifications { .. } => "notifications".into(),
        }
    }
}

/// A Pod to stop and keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodStop {
    /// The Pod's name.
    pub name: String,
    /// Its new `activeDeadlineSeconds`: the whole seconds it has been
    /// active (at least 1), never more than it had.
    pub deadline_seconds: i64,
    /// When it was stopped, RFC 3339 (the annotation's value).
    pub at: String,
}

/// When to reconcile the run again if nothing else happens first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Only when something changes.
    AwaitChange,
    /// After this long.
    After(Duration),
    /// At once, with what the writes made (objects created need a moment in
    /// this controller's view before the next step can use them).
    Again,
}

/// The outcome of one step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Facts to get first; when any are asked, there are no writes and the
    /// reconciler steps again with the answers.
    pub questions: Vec<Question>,
    /// The writes, in order.
    pub writes: Vec<Write>,
    /// When to look again.
    pub next: Next,
}

impl Step {
    /// A step that asks before it decides.
    pub fn ask(questions: Vec<Question>) -> Step {
        Step {
            questions,
            writes: Vec::new(),
            next: Next::Again,
        }
    }

    /// A step with these writes.
    pub fn write(writes: Vec<Write>, next: Next) -> Step {
        Step {
            questions: Vec::new(),
            writes,
            next,
        }
    }

    /// A step with nothing to do.
    pub fn idle(next: Next) -> Step {
        Step::write(Vec::new(), next)
    }

    /// The Pods this step creates.
    pub fn pods_created(&self) -> usize {
        self.writes
            .iter()
            .map(|w| match w {
                Write::CreatePods(p) => p.len(),
                _ => 0,
            })
            .sum()
    }
}

/// `now` as a status records it: `metav1.Time` keeps whole seconds, so a
/// time written with more would come back different and be written again.
pub fn wall_clock(now: Timestamp) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let whole = Timestamp::from_second(now.as_second()).unwrap_or(now);
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(whole)
}

/// A reference to an object for an Event.
pub fn regarding<K: Resource<DynamicType = ()>>(
    obj: &K,
) -> k8s_openapi::api::core::v1::ObjectReference {
    obj.object_ref(&())
}

/// A bounded Event note.
pub fn note<K: Resource<DynamicType = ()>>(
    obj: &K,
    warning: bool,
    reason: &str,
    text: &str,
) -> Note {
    Note {
        regarding: regarding(obj),
        warning,
        reason: reason.to_string(),
        note: text.chars().take(1000).collect(),
    }
}
