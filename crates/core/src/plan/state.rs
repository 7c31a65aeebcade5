//! What the planner is told (observations) and what it says (decisions).

use std::time::Duration;

/// Phase of a category.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub enum Phase {
    /// Not looked at yet.
    Pending,
    /// Waiting on dependencies, services, a free slot or a retry backoff.
    Waiting,
    /// An attempt is running.
    Running,
    /// Passed.
    Succeeded,
    /// Failed after its retries.
    Failed,
    /// Stopped at its timeout, or running when the layer deadline passed.
    TimedOut,
    /// Cancelled: fail-fast, a cancel request, or the layer deadline.
    Cancelled,
    /// Not run because a dependency did not succeed.
    Skipped,
}

impl Phase {
    /// Whether the category is done.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Phase::Succeeded | Phase::Failed | Phase::TimedOut | Phase::Cancelled | Phase::Skipped
        )
    }

    /// Whether a category in this phase counts as a failure for fail-fast.
    pub fn is_failure(self) -> bool {
        matches!(self, Phase::Failed | Phase::TimedOut)
    }

    /// The name shown in status and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Waiting => "Waiting",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::TimedOut => "TimedOut",
            Phase::Cancelled => "Cancelled",
            Phase::Skipped => "Skipped",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttemptOutcome {
    /// Exit code 0.
    Succeeded,
    /// The tests failed (`infra: false`) or the infrastructure did (eviction,
    /// node loss, image pull, OOM of the runtime: `infra: true`).
    Failed {
        /// Infrastructure rather than test failure.
        infra: bool,
    },
    /// Ran past its time and was ended by the node (a Pod's
    /// `activeDeadlineSeconds` backstop), not by a stop the planner asked for.
    TimedOut,
    /// Ended because the executor stopped it (killed, Pod deleted). What that
    /// means for the category is the attempt's recorded [`Stop`], not this.
    Stopped,
}

/// Why the executor stops a running attempt, decided by the planner and
/// recorded on the attempt before the executor acts on it; once the attempt
/// has ended, the planner ends (or restarts) its category as the stop says.
/// Executors never interpret it beyond recording it and stopping the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stop {
    /// End the category as this once the attempt has stopped (timeout,
    /// fail-fast, cancel, layer deadline).
    End(Terminal),
    /// Suspension: the category is started again later as a new attempt,
    /// which uses no retry.
    Interrupt,
}

/// One attempt as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptObs {
    /// When it started, on the layer's clock.
    pub started_at: Duration,
    /// The stop recorded for it, once the planner asked for one.
    pub stop: Option<Stop>,
    /// When it ended and how; `None` while it runs.
    pub ended: Option<(Duration, AttemptOutcome)>,
}

impl AttemptObs {
    /// An attempt that started at `at` and runs.
    pub fn running(at: Duration) -> Self {
        AttemptObs {
            started_at: at,
            stop: None,
            ended: None,
        }
    }

    /// An attempt that started at `at` and ended at `end` as `outcome`.
    pub fn ended(at: Duration, end: Duration, outcome: AttemptOutcome) -> Self {
        AttemptObs {
            started_at: at,
            stop: None,
            ended: Some((end, outcome)),
        }
    }
}

/// Why a category ended the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cause {
    /// Its last attempt passed.
    Passed,
    /// Its tests failed and no retries were left.
    TestsFailed,
    /// The infrastructure failed and no infrastructure retries were left.
    InfraFailed,
    /// It ran past its own timeout.
    Timeout,
    /// The layer's deadline passed.
    LayerDeadline,
    /// A dependency (index) did not succeed.
    DependencyFailed(usize),
    /// Fail-fast after the failure of the category with this index.
    FailFast(usize),
    /// The run was cancelled.
    CancelRequested,
}

/// A category's end, once decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Terminal {
    /// The final phase.
    pub phase: Phase,
    /// Why.
    pub cause: Cause,
}

/// Everything observed about one category.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryObs {
    /// Attempts in order; at most the last one is running.
    pub attempts: Vec<AttemptObs>,
    /// The recorded end, once a decision made it final.
    pub terminal: Option<Terminal>,
    /// Its next attempt holds the shared resources it uses (a grant the
    /// executor obtained after the planner asked for it in
    /// [`Decision::claims`]). Irrelevant for a category that uses none.
    pub granted: bool,
}

impl CategoryObs {
    /// The attempt still running, if any.
    pub fn running(&self) -> Option<&AttemptObs> {
        self.attempts.last().filter(|a| a.ended.is_none())
    }
}

/// Layer-wide inputs besides the categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerObs {
    /// Now, on the layer's clock (the same clock as the attempt times).
    pub now: Duration,
    /// When the layer started (its deadline counts from here).
    pub started_at: Duration,
    /// A user asked to cancel.
    pub cancel: bool,
    /// Start nothing new (waiting for services, or layer dependencies).
    pub hold: bool,
    /// Suspended: start nothing new and interrupt what runs; interrupted attempts
    /// are started again on resume and do not count as retries.
    pub suspend: bool,
}

impl LayerObs {
    /// A layer observed at `now` that started at `started_at`, with no requests.
    pub fn at(now: Duration, started_at: Duration) -> Self {
        LayerObs {
            now,
            started_at,
            cancel: false,
            hold: false,
            suspend: false,
        }
    }
}

/// Why a category is not started yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WaitReason {
    /// A dependency (index) has not succeeded yet.
    Dependency(usize),
    /// The parallel limit is reached.
    Slot,
    /// The layer's CPU or memory budget is used up.
    Budget,
    /// Backing off before a retry, until this time.
    Backoff(Duration),
    /// Ready, with its slot and budget kept, but the shared resources it
    /// uses are held by others.
    Resource,
    /// The layer holds (suspended, or waiting for services).
    Hold,
}

/// One thing the executor must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start attempt number `attempt` (1-based) of a category.
    Start {
        /// Category index.
        category: usize,
        /// Attempt number.
        attempt: u32,
    },
    /// Record `stop` on the running attempt (unless one is recorded), then
    /// stop the attempt. Repeated until the attempt is seen ended; the planner
    /// then finishes or restarts the category as the recorded stop says.
    Stop {
        /// Category index.
        category: usize,
        /// Why.
        stop: Stop,
    },
    /// Record the category as ended (nothing is running for it).
    Finish {
        /// Category index.
        category: usize,
        /// What to record.
        terminal: Terminal,
    },
}

/// How a whole layer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LayerOutcome {
    /// Every category passed.
    Succeeded,
    /// Some category failed, timed out or was skipped.
    Failed,
    /// The layer deadline passed.
    TimedOut,
    /// A user cancelled.
    Cancelled,
}

impl LayerOutcome {
    /// The name shown in status and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerOutcome::Succeeded => "Succeeded",
            LayerOutcome::Failed => "Failed",
            LayerOutcome::TimedOut => "TimedOut",
            LayerOutcome::Cancelled => "Cancelled",
        }
    }
}

/// What the planner decided at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do now.
    pub actions: Vec<Action>,
    /// The phase of every category once the actions are applied (stops count as
    /// running until they are seen ended).
    pub phases: Vec<Phase>,
    /// Why each waiting category waits.
    pub waiting: Vec<Option<WaitReason>>,
    /// When to ask again at the latest, if nothing else happens first.
    pub wake_at: Option<Duration>,
    /// Set once every category has ended.
    pub outcome: Option<LayerOutcome>,
    /// Categories ready to start but for their shared resources: the
    /// executor asks for their grants, and plans again once any is granted.
    /// A grant lasts one attempt; the executor gives it back when the
    /// attempt ends, and gives back any grant of a category not in this
    /// list and not running.
    pub claims: Vec<usize>,
    /// Nothing runs and some category waits for a shared resource: the
    /// layer is held up by other runs (time the deadline need not count).
    pub blocked_on_resources: bool,
}
