//! The run's own status and the steps that end or restart a run: pure
//! functions from what was observed to the status to write.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::attempts::offset;
use super::categories::Categories;
use super::observed::Observed;
use super::refusals;
use super::writes::{Next, Step, Write};
use super::writes::{note, wall_clock};
use crate::api::{
    CategoryRunStatus, CategorySummary, FlakyCounts, LISTED_FAILURES, LayerPhase,
    MAX_LISTED_CATEGORIES, PhaseCounts, TestCounts, TestLayerRun, TestLayerRunStatus,
};
use crate::controller::status::conditions::{
    Stall, category_terminal, layer_terminal, phase_conditions,
};
use crate::controller::status::note::Note;
use crate::controller::status::reasons::StallReason;
use crate::layer::LayerPlan;
use crate::plan::describe::human_duration;
use crate::plan::{LayerOutcome, Phase};
use crate::words::Reason;

/// How often a run whose ConfigMap is missing looks again.
const CONFIG_POLL: Duration = Duration::from_secs(10);
/// Longest message kept in a status.
const MAX_MESSAGE: usize = 4000;

/// The run's status after this step: categories summed, phase, message and
/// conditions. Its size does not grow with the run: counts per phase, the
/// first [`LISTED_FAILURES`] failures, and the per-category list only while
/// the run has at most [`MAX_LISTED_CATEGORIES`] categories.
pub fn update(
    status: &mut TestLayerRunStatus,
    run: &TestLayerRun,
    layer: &LayerPlan,
    cats: &Categories,
    outcome: Option<LayerOutcome>,
    hold: Option<&str>,
    now: Timestamp,
) {
    let wall = wall_clock(now);
    let mut total = TestCounts::default();
    let mut any_counts = false;
    let mut flaky = FlakyCounts::default();
    let mut phases = PhaseCounts::default();
    let mut failed = Vec::new();
    let mut failed_names = Vec::new();
    let mut allowed = Vec::new();
    let mut quarantined = 0u64;
    let small = layer.categories.len() <= MAX_LISTED_CATEGORIES;
    let mut summaries = Vec::new();
    for (i, c) in cats.items.iter().enumerate() {
        if let Some(n) = c.status.counts {
            total.add(n);
            any_counts = true;
        }
        flaky.categories += u32::from(c.status.flaky);
        flaky.tests = flaky.tests.saturating_add(c.status.flaky_tests.total());
        let phase = c.status.phase.unwrap_or(Phase::Pending);
        phases.add(phase);
        let reason = c.status.reason.clone().filter(Reason::is_notable);
        let name = &layer.categories[i].name;
        quarantined = quarantined.saturating_add(c.status.quarantined_tests.total());
        if c.status.allowed_failure {
            if allowed.len() < LISTED_FAILURES {
                allowed.push(name.clone());
            }
        } else if matches!(phase, Phase::Failed | Phase::TimedOut) && failed.len() < LISTED_FAILURES
        {
            failed_names.push(name.clone());
            failed.push(match &reason {
                Some(r) => format!("{name} ({r})"),
                None => format!("{name} ({phase})"),
            });
        }
        if small {
            summaries.push(CategorySummary {
                name: name.clone(),
                phase,
                attempts: c.status.attempt_count,
                reason,
                counts: c.status.counts,
            });
        }
    }
    if phases.running > 0 {
        status.start_time.get_or_insert_with(|| wall.clone());
    }
    let phase = match outcome {
        Some(LayerOutcome::Succeeded) => LayerPhase::Succeeded,
        Some(LayerOutcome::Failed) => LayerPhase::Failed,
        Some(LayerOutcome::TimedOut) => LayerPhase::TimedOut,
        Some(LayerOutcome::Cancelled) => LayerPhase::Cancelled,
        None if status.start_time.is_some() => LayerPhase::Running,
        None => LayerPhase::Pending,
    };
    if phase.is_terminal() {
        status.completion_time.get_or_insert_with(|| wall.clone());
        if let (Some(s), Some(e)) = (&status.start_time, &status.completion_time) {
            status.duration = Some(human_duration(offset(&s.0, &e.0)));
        }
    }
    let allowed_n = cats
        .items
        .iter()
        .filter(|c| c.status.allowed_failure)
        .count() as u32;
    let (reason, mut message) =
        run_message(phase, &phases, (&failed, allowed_n), hold, run.spec.suspend);
    if allowed_n > 0 {
        message.push_str(&format!(
            "; failed as allowed: {}",
            bounded_list(&allowed, allowed_n)
        ));
    }
    // Categories held up by shared resources other runs hold: the first
    // one's line, and how many.
    if !phase.is_terminal() && hold.is_none() && !run.spec.suspend {
        let waiting: Vec<&CategoryRunStatus> = cats
            .items
            .iter()
            .map(|c| &c.status)
            .filter(|s| s.resource_claim.is_some())
            .collect();
        if let Some(first) = waiting.first().and_then(|s| s.message.as_deref()) {
            message = if phases.running == 0 {
                first.to_string()
            } else {
                format!("{message}; {} waiting for shared resources", waiting.len())
            };
        }
    }
    // Pods the apiserver refuses: the run cannot go on until they are created.
    let stall = refusals::run_stall(
        cats.items
            .iter()
            .map(|c| (c.cr.spec.category.as_str(), &c.status)),
    );
    status.phase = Some(phase);
    status.progress = Some(format!("{}/{}", phases.finished(), phases.total()));
    status.counts = any_counts.then_some(total);
    status.flaky = (flaky != FlakyCounts::default()).then_some(flaky);
    status.message = Some(message.clone());
    status.phases = Some(phases);
    status.failed_categories = failed_names;
    status.allowed_failures = allowed;
    status.quarantined_tests = quarantined;
    status.categories = summaries;
    status.observed_generation = run.metadata.generation;
    status.conditions = phase_conditions(
        &status.conditions,
        layer_terminal(phase),
        &reason,
        &message,
        stall.as_ref(),
        run.metadata.generation,
        &wall,
    );
}

/// Marks a run that still works as `Stalled` by `stall` (shared resources
/// that runs waiting for each other keep), its message saying why.
pub fn stalled_by(
    status: &mut TestLayerRunStatus,
    run: &TestLayerRun,
    stall: &Stall,
    now: Timestamp,
) {
    if status.phase.is_some_and(|p| p.is_terminal()) {
        return;
    }
    let reason = status
        .conditions
        .iter()
        .find(|c| c.type_ == crate::api::ConditionType::Succeeded.as_str())
        .map_or_else(|| Reason::Pending.to_string(), |c| c.reason.clone());
    let message: String = stall.message.chars().take(MAX_MESSAGE).collect();
    // Transition times from the stored conditions: `update` has just set
    // `Stalled` to false in `status`.
    let stored = run
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    status.conditions = phase_conditions(
        &stored,
        None,
        &reason,
        &message,
        Some(stall),
        run.metadata.generation,
        &wall_clock(now),
    );
    status.message = Some(message);
}

/// The Event of a run whose phase changed.
pub fn phase_event(run: &TestLayerRun, next: &TestLayerRunStatus) -> Option<Note> {
    let was = run.status.as_ref().and_then(|s| s.phase);
    let phase = next.phase?;
    if was == Some(phase) {
        return None;
    }
    let warning = matches!(phase, LayerPhase::Failed | LayerPhase::TimedOut);
    Some(note(
        run,
        warning,
        phase.as_str(),
        next.message.as_deref().unwrap_or_default(),
    ))
}

/// `first` (at most [`LISTED_FAILURES`] entries) of `total`, with "and N
/// more" when there are more.
fn bounded_list(first: &[String], total: u32) -> String {
    if first.is_empty() {
        return "-".into();
    }
    let more = (total as usize).saturating_sub(first.len());
    let mut s = first.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

/// The run's reason and message; `failed`: the first failed categories
/// (not allowed to fail), and how many failed as allowed.
fn run_message(
    phase: LayerPhase,
    phases: &PhaseCounts,
    (failed, allowed): (&[String], u32),
    gate: Option<&str>,
    suspended: bool,
) -> (String, String) {
    let bad = (phases.failed + phases.timed_out).saturating_sub(allowed);
    match phase {
        LayerPhase::Succeeded if allowed > 0 => (
            "Succeeded".into(),
            format!(
                "{} of {} categories passed",
                phases.succeeded,
                phases.total()
            ),
        ),
        LayerPhase::Succeeded => (
            "Succeeded".into(),
            format!("all {} categories passed", phases.total()),
        ),
        LayerPhase::Failed => (
            "Failed".into(),
            format!(
                "failed: {}; skipped: {}",
                bounded_list(failed, bad),
                phases.skipped
            ),
        ),
        LayerPhase::TimedOut => ("TimedOut".into(), "the layer deadline passed".into()),
        LayerPhase::Cancelled => ("Cancelled".into(), "the run was cancelled".into()),
        _ if suspended => (
            "Suspended".into(),
            "suspended: nothing new starts and running categories were stopped".into(),
        ),
        _ if gate.is_some() => ("Waiting".into(), gate.unwrap_or_default().to_string()),
        LayerPhase::Pending => ("Pending".into(), "starting".into()),
        LayerPhase::Running => (
            "Running".into(),
            format!(
                "{} running, {} waiting, {} done{}",
                phases.running,
                phases.waiting + phases.pending,
                phases.finished(),
                if bad == 0 {
                    String::new()
                } else {
                    format!("; failed: {}", bounded_list(failed, bad))
                }
            ),
        ),
    }
}

/// Bad config or an inconsistent run: Failed and Stalled, nothing created.
pub fn invalid(
    o: &Observed,
    mut status: TestLayerRunStatus,
    reason: &str,
    problem: &str,
    now: Timestamp,
) -> Step {
    status.spec_hash = Some(super::spec::spec_hash(&o.run));
    fail_run(o, status, reason, problem, now)
}

/// Ends a run as Failed and Stalled (it cannot go on) and says why.
fn fail_run(
    o: &Observed,
    status: TestLayerRunStatus,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Step {
    let stall = Stall {
        reason: reason.into(),
        message: message.into(),
    };
    end_run(
        o,
        status,
        LayerPhase::Failed,
        Some(&stall),
        reason,
        message,
        now,
    )
}

/// Ends a run in `phase` before it started, saying why (Stalled with
/// `stall`, when it cannot go on).
fn end_run(
    o: &Observed,
    mut status: TestLayerRunStatus,
    phase: LayerPhase,
    stall: Option<&Stall>,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Step {
    let run = o.run.as_ref();
    let wall = wall_clock(now);
    status.phase = Some(phase);
    status.message = Some(message.chars().take(MAX_MESSAGE).collect());
    status.observed_generation = run.metadata.generation;
    status.completion_time.get_or_insert_with(|| wall.clone());
    status.conditions = phase_conditions(
        &status.conditions,
        Some(false),
        reason,
        message,
        stall,
        run.metadata.generation,
        &wall,
    );
    if run.status.as_ref() == Some(&status) {
        return Step::idle(Next::AwaitChange);
    }
    let warning = matches!(phase, LayerPhase::Failed | LayerPhase::TimedOut);
    Step::write(
        vec![
            Write::RunStatus(Box::new(status)),
            Write::Event(note(run, warning, reason, message)),
        ],
        Next::AwaitChange,
    )
}

/// The run's ConfigMap (or its key) is missing: Pending and Stalled, and a
/// look again later.
pub fn waiting_for_config(
    o: &Observed,
    status: TestLayerRunStatus,
    problem: &str,
    now: Timestamp,
) -> Step {
    waiting(
        o,
        status,
        StallReason::ConfigNotFound.as_str(),
        problem,
        true,
        now,
    )
}

/// A run that cannot be accepted yet: Pending, saying why (`reason`,
/// `problem`), `Stalled` when only someone's action helps, and looked at
/// again every [`CONFIG_POLL`].
pub fn waiting(
    o: &Observed,
    mut status: TestLayerRunStatus,
    reason: &str,
    problem: &str,
    stalled: bool,
    now: Timestamp,
) -> Step {
    let run = o.run.as_ref();
    let wall = wall_clock(now);
    let stall = stalled.then(|| Stall {
        reason: reason.into(),
        message: problem.into(),
    });
    status.phase = Some(LayerPhase::Pending);
    status.message = Some(problem.into());
    status.observed_generation = run.metadata.generation;
    status.conditions = phase_conditions(
        &status.conditions,
        None,
        reason,
        problem,
        stall.as_ref(),
        run.metadata.generation,
        &wall,
    );
    if run.status.as_ref() == Some(&status) {
        return Step::idle(Next::After(CONFIG_POLL));
    }
    Step::write(
        vec![
            Write::RunStatus(Box::new(status)),
            Write::Event(note(run, stalled, reason, problem)),
        ],
        Next::After(CONFIG_POLL),
    )
}

/// A dependency or service gate that cannot open: every category is
/// skipped and the run fails; or, when what it waited on was cancelled
/// (`DependencyCancelled`), every category and the run
/// are cancelled.
pub fn gate_failed(
    o: &Observed,
    mut status: TestLayerRunStatus,
    layer: &LayerPlan,
    reason: &Reason,
    message: &str,
    now: Timestamp,
) -> Step {
    let cancelled = *reason == crate::words::Reason::DependencyCancelled;
    let (phase, category_reason) = if cancelled {
        (Phase::Cancelled, Reason::Cancelled)
    } else {
        (Phase::Skipped, reason.clone())
    };
    let wall = wall_clock(now);
    let mut statuses = Vec::new();
    for cr in &o.category_runs {
        let mut st = cr.status.clone().unwrap_or_default();
        st.phase = Some(phase);
        st.reason = Some(category_reason.clone());
        st.message = Some(message.into());
        st.completion_time.get_or_insert_with(|| wall.clone());
        st.conditions = phase_conditions(
            &st.conditions,
            category_terminal(phase),
            category_reason.as_str(),
            message,
            None,
            cr.metadata.generation,
            &wall,
        );
        if cr.status.as_ref() != Some(&st) {
            statuses.push((cr.name_any(), st));
        }
    }
    let n = layer.categories.len();
    status.progress = Some(format!("{n}/{n}"));
    status.phases = Some(if cancelled {
        PhaseCounts {
            cancelled: n as u32,
            ..PhaseCounts::default()
        }
    } else {
        PhaseCounts {
            skipped: n as u32,
            ..PhaseCounts::default()
        }
    });
    status.failed_categories = Vec::new();
    status.categories = if n <= MAX_LISTED_CATEGORIES {
        layer
            .categories
            .iter()
            .map(|c| CategorySummary {
                name: c.name.clone(),
                phase,
                attempts: 0,
                reason: Some(category_reason.clone()),
                counts: None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut step = if cancelled {
        end_run(
            o,
            status,
            LayerPhase::Cancelled,
            None,
            reason.as_str(),
            message,
            now,
        )
    } else {
        fail_run(o, status, reason.as_str(), message, now)
    };
    if !statuses.is_empty() {
        step.writes.insert(0, Write::CategoryRunStatuses(statuses));
    }
    step
}

/// The spec changed: delete what the old spec made and start over.
pub fn restart(o: &Observed) -> Step {
    let run = o.run.as_ref();
    let mut writes = Vec::new();
    let crs: Vec<String> = o.category_runs.iter().map(|c| c.name_any()).collect();
    if !crs.is_empty() {
        writes.push(Write::DeleteCategoryRuns(crs));
    }
    // Pods go with their CategoryRuns; delete them now so none keeps running.
    let pods: Vec<String> = o.pods.iter().map(|p| p.name_any()).collect();
    if !pods.is_empty() {
        writes.push(Write::DeletePods(pods));
    }
    writes.push(Write::RunStatus(Box::new(TestLayerRunStatus {
        observed_generation: run.metadata.generation,
        message: Some("the spec changed: starting over".into()),
        ..Default::default()
    })));
    writes.push(Write::Event(note(
        run,
        false,
        "Restarted",
        "the spec changed: the run starts over",
    )));
    Step::write(writes, Next::After(Duration::from_secs(1)))
}

/// A finished run: deleted once its TTL passed.
pub fn finished(
    o: &Observed,
    _phase: LayerPhase,
    status: &TestLayerRunStatus,
    now: Timestamp,
) -> Step {
    let Some(ttl) = o.run.spec.ttl_seconds_after_finished else {
        return Step::idle(Next::AwaitChange);
    };
    let done = status.completion_time.as_ref().map_or(now, |t| t.0);
    let age = offset(&done, &now);
    let ttl = Duration::from_secs(ttl.max(0) as u64);
    if age < ttl {
        return Step::idle(Next::After(ttl - age + Duration::from_millis(100)));
    }
    Step::write(vec![Write::DeleteRun], Next::AwaitChange)
}
