//! What [`step`](super::step) decides from: a run and everything it owns, as
//! read from the caches (and this controller's own recent writes), the Pod
//! creates the apiserver refused, plus the answers to the questions an
//! earlier step of the same reconcile asked.

pub use crate::controller::kit::refused::Refusal;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::api::{CategoryRun, TestLayerRun, Undecodable};
use crate::controller::run::frozen_plan::FrozenPlan;
use crate::results::{FailedTests, ReportOutcome};

/// A run and what it owns, as observed.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The run, its status the newest this controller knows.
    pub run: Arc<TestLayerRun>,
    /// The CategoryRuns it owns (any order).
    pub category_runs: Vec<Arc<CategoryRun>>,
    /// The CategoryRuns it owns that did not decode (edited by hand, or
    /// stored under an older CRD).
    pub invalid: Vec<Arc<Undecodable>>,
    /// The Pods labelled with the run.
    pub pods: Vec<Arc<Pod>>,
    /// The other TestLayerRuns of its namespace (for layer dependencies).
    pub runs: Vec<Arc<TestLayerRun>>,
    /// The Pods of its CategoryRuns that the apiserver refused to create, by
    /// Pod name, as this controller remembers them (none after a restart).
    pub refused: BTreeMap<String, Refusal>,
    /// The Pods of its CategoryRuns whose create was answered "it exists"
    /// (whose it is, a [`Question::PodOwner`] tells when the cache does not).
    pub existing: BTreeSet<String>,
    /// The shared resources of its namespace: capacities, grants, claims.
    pub shared: crate::controller::shared::claims::SharedView,
    /// The nodes of its Pods that are not Ready, by node name (none when
    /// the controller may not read Nodes).
    pub nodes_down: BTreeMap<String, NodeDown>,
    /// Answers to the questions asked so far.
    pub answers: Answers,
}

/// A node that is not Ready, as its `Ready` condition says: `Unknown` when
/// its kubelet stopped posting status (the node lifecycle controller's
/// word), `False` when the kubelet says it cannot run Pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDown {
    /// Since when (the condition's last transition).
    pub since: Timestamp,
    /// The condition's status: `Unknown` or `False`.
    pub status: String,
    /// The condition's message, if any.
    pub message: Option<String>,
}

/// A fact that only a request gives; the reconciler asks it and steps again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Question {
    /// The layer config text of the run (inline, or from its ConfigMap).
    Config,
    /// The run's frozen plan (from the ConfigMap its status names).
    FrozenPlan,
    /// Does this Pod exist? (It is missing from the cache.)
    PodExists(String),
    /// Whose is this Pod? (Its create met one of its name, which the cache
    /// does not show.)
    PodOwner(String),
    /// The log of this Pod's test container, and the JUnit report in it
    /// when the category names one (its path, for messages).
    Logs(String, Option<String>),
    /// Which of these required services have no ready endpoint?
    UnreadyServices(Vec<String>),
    /// The earlier run that this run reruns (`spec.rerunOf`): its frozen
    /// plan and its CategoryRuns.
    RerunSource(String),
    /// How long each category of this earlier run of the layer took.
    History(String),
}

/// The config text of a run, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigAnswer {
    /// The YAML and where it came from (for messages).
    Found {
        /// The text.
        text: String,
        /// Where it came from.
        origin: String,
    },
    /// What is missing (the ConfigMap, or its key).
    Missing(String),
}

/// The frozen plan of a run, or why there is none to use.
#[derive(Debug, Clone)]
pub enum FrozenPlanAnswer {
    /// The plan, as decoded and checked.
    Found(Arc<FrozenPlan>),
    /// Why it cannot be had (the ConfigMap is gone, or not the run's).
    Missing(String),
}

impl PartialEq for FrozenPlanAnswer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Found(a), Self::Found(b)) => Arc::ptr_eq(a, b) || a == b,
            (Self::Missing(a), Self::Missing(b)) => a == b,
            _ => false,
        }
    }
}

// A decoded plan compares equal to itself (its numbers are never NaN).
impl Eq for FrozenPlanAnswer {}

/// The earlier run of a rerun, or why it cannot be used.
#[derive(Debug, Clone)]
pub enum RerunAnswer {
    /// It finished: what the rerun takes over.
    Found(Arc<RerunSource>),
    /// It has not finished yet (its phase).
    Unfinished(String),
    /// It cannot be used: not found, or its plan is lost (why).
    Missing(String),
}

/// What a rerun takes over from its earlier run.
#[derive(Debug, Clone)]
pub struct RerunSource {
    /// The earlier run.
    pub run: TestLayerRun,
    /// Its frozen plan.
    pub plan: FrozenPlan,
    /// Its CategoryRuns, as they ended.
    pub category_runs: Vec<CategoryRun>,
}

impl PartialEq for RerunAnswer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // The same read, or reads of the same versions.
            (Self::Found(a), Self::Found(b)) => {
                let version = |s: &RerunSource| {
                    let mut v: Vec<Option<String>> = s
                        .category_runs
                        .iter()
                        .map(|c| c.metadata.resource_version.clone())
                        .collect();
                    v.push(s.run.metadata.resource_version.clone());
                    v
                };
                Arc::ptr_eq(a, b) || (a.plan == b.plan && version(a) == version(b))
            }
            (Self::Unfinished(a), Self::Unfinished(b)) | (Self::Missing(a), Self::Missing(b)) => {
                a == b
            }
            _ => false,
        }
    }
}

// Decoded objects compare equal to themselves (their numbers are never NaN).
impl Eq for RerunAnswer {}

/// Whose a Pod is, as read from the apiserver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodOwner {
    /// There is no Pod of that name (any more).
    Gone,
    /// It is controlled by the object with this uid (empty: by none).
    Of {
        /// The controller's uid.
        uid: String,
        /// The controller, in words (`CategoryRun x with uid y`).
        described: String,
    },
}

/// The log of a Pod, or why it could not be read.
pub type LogAnswer = Result<AttemptLog, String>;

/// What an attempt's log holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptLog {
    /// The end of its plain lines (the JUnit report's lines left out).
    pub text: String,
    /// What its JUnit report gave, when the category names one.
    pub report: Option<ReportRead>,
}

impl AttemptLog {
    /// A log of plain lines only.
    pub fn plain(text: impl Into<String>) -> Self {
        AttemptLog {
            text: text.into(),
            report: None,
        }
    }
}

/// A JUnit report read from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRead {
    /// Whether it could be read, and its counts.
    pub outcome: ReportOutcome,
    /// Its failing tests (attempt numbers 0: the step sets them).
    pub failed: FailedTests,
    /// All its test cases, compressed, to be kept after the Pod is gone.
    pub cases: CaseList,
}

/// A compressed list of test cases ([`crate::results::CaseListWriter`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseList {
    /// gzip of JSON lines.
    pub bytes: Arc<Vec<u8>>,
    /// Cases in it.
    pub count: usize,
    /// Cases left out to keep it bounded.
    pub left_out: u64,
}

/// What the questions were answered with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// [`Question::Config`].
    pub config: Option<ConfigAnswer>,
    /// [`Question::FrozenPlan`].
    pub frozen_plan: Option<FrozenPlanAnswer>,
    /// [`Question::PodExists`], by Pod name.
    pub pod_exists: BTreeMap<String, bool>,
    /// [`Question::PodOwner`], by Pod name.
    pub pod_owners: BTreeMap<String, PodOwner>,
    /// [`Question::Logs`], by Pod name.
    pub logs: BTreeMap<String, LogAnswer>,
    /// [`Question::UnreadyServices`]: the services without a ready endpoint.
    pub unready_services: Option<Vec<String>>,
    /// [`Question::RerunSource`].
    pub rerun: Option<RerunAnswer>,
    /// [`Question::History`]: milliseconds by category name.
    pub history: Option<BTreeMap<String, u64>>,
}

impl Answers {
    /// Whether `q` is answered.
    pub fn has(&self, q: &Question) -> bool {
        match q {
            Question::Config => self.config.is_some(),
            Question::FrozenPlan => self.frozen_plan.is_some(),
            Question::PodExists(p) => self.pod_exists.contains_key(p),
            Question::PodOwner(p) => self.pod_owners.contains_key(p),
            Question::Logs(p, _) => self.logs.contains_key(p),
            Question::UnreadyServices(_) => self.unready_services.is_some(),
            Question::RerunSource(_) => self.rerun.is_some(),
            Question::History(_) => self.history.is_some(),
        }
    }
}
