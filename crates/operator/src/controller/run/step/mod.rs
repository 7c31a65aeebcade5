//! The controller's decision for one TestLayerRun, as one pure function:
//! [`step`] takes what was [`Observed`] and the time, and returns a [`Step`]:
//! the writes to make, in order, and when to look again; or the questions
//! whose answers it needs first. No I/O and no clock reads happen here, so
//! every scenario is a fast unit test (`tests.rs`), and the reconciler is a
//! loop of read → step → ask or apply.
//!
//! The pipeline: spec changes and finished runs → the frozen plan (config
//! read once, CategoryRuns created) → gates (layer dependencies, services)
//! → each category brought up to date with its Pods → the planner → the
//! writes. Ordering rules that crash safety rests on are visible in
//! [`step`]: the run's clock is recorded before its first Pod is created, a
//! stop is recorded before its Pod is deleted, and an attempt is recorded
//! only after its Pod exists (a Pod is found again by its name) or the
//! apiserver refused it (see [`refusals`]).

mod accepted;
mod attempts;
mod categories;
mod claims;
mod deadlock;
mod gates;
pub mod invalid;
mod log_results;
pub mod observed;
mod plan_freeze;
mod refusals;
mod rerun;
mod run_status;
mod spec;
pub mod writes;

#[cfg(test)]
mod tests;

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

pub use attempts::{offset, stored};
pub use observed::{
    Answers, AttemptLog, CaseList, ConfigAnswer, FrozenPlanAnswer, LogAnswer, NodeDown, Observed,
    Question, Refusal, ReportRead, RerunAnswer, RerunSource,
};
pub use spec::{resolve, spec_changed, spec_hash};
pub use writes::{Next, Step, Write};

use crate::api::LayerPhase;
use crate::controller::run::step::writes::note;
use crate::controller::run::step::writes::wall_clock;
use crate::controller::shared::claims as shared;
use crate::plan::gate::{Gate, services_gate};
use crate::plan::{LayerObs, ResourceWait, plan};
use categories::Categories;
use plan_freeze::Frozen;

/// How often a run waiting on dependencies or services looks again.
const GATE_POLL: Duration = Duration::from_secs(2);
/// Seconds a run waits for a dependency that has no run, by default.
const DEPENDENCY_WAIT_SECONDS: u32 = 3600;
/// The reason of a run whose dependency never had a run.
const DEPENDENCY_NOT_FOUND: &str = "DependencyNotFound";
/// At most this long between looks at a run that works, if nothing wakes it.
const IDLE_REQUEUE: Duration = Duration::from_secs(300);

/// Decides what to do next for the run of `o` at `now`.
pub fn step(o: &Observed, now: Timestamp) -> Step {
    let run = o.run.as_ref();
    if run.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the rest.
        return Step::idle(Next::AwaitChange);
    }
    let status = run.status.clone().unwrap_or_default();
    let hash = spec_hash(run);

    // A changed definition starts the run over (GitOps: a new spec is a new run).
    if spec_changed(status.spec_hash.as_deref(), &hash) {
        return run_status::restart(o);
    }
    if let Some(phase) = status.phase.filter(|p| p.is_terminal()) {
        let mut s = run_status::finished(o, phase, &status, now);
        // What the run and its categories held goes back.
        let crs: Vec<String> = o
            .category_runs
            .iter()
            .filter_map(|c| c.metadata.uid.clone())
            .collect();
        let held = claims::all_of(&o.shared, &o.pods, run, &crs);
        if !held.is_empty() && s.questions.is_empty() {
            s.writes
                .insert(0, Write::DeleteGrants(o.shared.namespace.clone(), held));
        }
        return s;
    }

    // CategoryRuns the controller cannot use (edited by hand, or stored
    // under an older CRD) stall the run until they are fixed.
    let planned = status.plan.as_ref().map(|p| p.count());
    let bad = invalid::unusable(o, planned);
    if !bad.is_empty() {
        return invalid::stalled_run(o, status, &bad, now);
    }

    // The frozen plan: resolved from the config once, then rebuilt from the
    // run's own objects.
    let (layer, mut status) = match plan_freeze::frozen(o, status, &hash, now) {
        Frozen::Ready(ready) => *ready,
        Frozen::Step(step) => return step,
    };

    // Gates, before the run's clock starts.
    let mut hold = None;
    if status.start_time.is_none() && !run.spec.cancel {
        let (deps, missing) = gates::dependencies(run, &layer.dependencies, &o.runs);
        let deps = if missing.is_empty() {
            status.dependency_missing_since = None;
            deps
        } else {
            // A dependency with no run may never come (deleted by its TTL
            // before this run saw it): wait for it within a bound.
            let since = status
                .dependency_missing_since
                .get_or_insert_with(|| wall_clock(now))
                .clone();
            let bound = Duration::from_secs(u64::from(
                run.spec
                    .dependency_wait_seconds
                    .unwrap_or(DEPENDENCY_WAIT_SECONDS),
            ));
            if offset(&stored(&since), &now) >= bound {
                Gate::Failed {
                    reason: crate::words::Reason::Other(DEPENDENCY_NOT_FOUND.into()),
                    message: format!(
                        "no run of {} after {}",
                        missing.join(", "),
                        crate::plan::describe::human_duration(bound)
                    ),
                }
            } else {
                deps
            }
        };
        let gate = match deps {
            Gate::Open if !layer.required_services.is_empty() => {
                let Some(unready) = &o.answers.unready_services else {
                    return Step::ask(vec![Question::UnreadyServices(
                        layer.required_services.clone(),
                    )]);
                };
                // The wait counts from when the run reached this gate.
                let since = status
                    .services_wait_start
                    .get_or_insert_with(|| wall_clock(now))
                    .clone();
                services_gate(unready, offset(&stored(&since), &now), layer.service_wait)
            }
            g => g,
        };
        match gate {
            Gate::Open => {}
            Gate::Waiting(m) => hold = Some(m),
            Gate::Failed { reason, message } => {
                return run_status::gate_failed(o, status, &layer, &reason, &message, now);
            }
        }
    }

    // Every category brought up to date with its Pods.
    let mut cats = match Categories::observe(o, &layer, now) {
        Ok(c) => c,
        Err(questions) => return Step::ask(questions),
    };

    // Shared resources: each one must be declared in the namespace; the
    // layer's own `uses` are claimed once its gates are open.
    let shares = layer.uses_shared_resources() && !run.spec.cancel;
    if shares
        && hold.is_none()
        && let Some(m) = o.shared.missing(&layer)
    {
        hold = Some(m);
    }
    let layer_claim = shares && hold.is_none() && !claims::run_holds(&o.shared, run, &layer);

    // The planner, on the run's clock, less the time shared resources held
    // it up.
    let clock_start = status.start_time.as_ref().map_or(now, stored);
    let now_offset = offset(&clock_start, &now);
    let resource_wait = ResourceWait {
        total: Duration::from_secs(status.resource_wait_seconds.unwrap_or(0)),
        since: status
            .resource_wait_since
            .as_ref()
            .map(|t| offset(&clock_start, &stored(t))),
    };
    let mut obs: Vec<_> = cats.planner_view(&layer, &clock_start, &now);
    claims::mark_granted(&o.shared, &layer, &cats, &mut obs);
    let mut layer_obs = LayerObs {
        cancel: run.spec.cancel,
        hold: hold.is_some() || layer_claim,
        suspend: run.spec.suspend,
        ..LayerObs::at(
            now_offset,
            resource_wait.deadline_start(&layer, Duration::ZERO, now_offset),
        )
    };
    let mut decision = plan(&layer, &obs, &layer_obs);
    let mine = claims::mine(run, &layer, &cats, &obs, &decision, layer_claim);
    let served = claims::serve_mine(&o.shared, run, &mine);
    if !served.granted.is_empty() {
        // Granted now: planned again with the grants, whose creates go
        // before anything they let start.
        let run_name = run.name_any();
        for (i, c) in cats.items.iter().enumerate() {
            if served.granted.contains(&c.cr.name_any())
                && let Some(o) = obs.get_mut(i)
            {
                o.granted = true;
            }
        }
        layer_obs.hold = hold.is_some() || (layer_claim && !served.granted.contains(&run_name));
        decision = plan(&layer, &obs, &layer_obs);
    }
    let deadlocked = deadlock::stall(&o.shared, run, &served);
    let layer_waits = served.waiting.get(&run.name_any()).cloned();
    if let Some(c) = &layer_waits {
        hold = Some(shared::describe_claim(c));
    }
    let released = claims::releases(&o.shared, &o.pods, run, &cats, &obs, &decision, false);
    let resource_wait = resource_wait.observe(
        now_offset,
        status.start_time.is_some() && decision.blocked_on_resources,
    );
    let mut carried = cats.carry_out(&layer, &decision, &o.answers, &o.refused, now);
    if !carried.questions.is_empty() {
        // The logs of attempts about to be stopped, read before their Pods go.
        return Step::ask(carried.questions);
    }
    let cr_claims: std::collections::BTreeMap<String, crate::api::ResourceClaim> = served
        .waiting
        .iter()
        .filter(|(holder, _)| **holder != run.name_any())
        .map(|(h, c)| (h.clone(), c.clone()))
        .collect();
    let cr_writes = cats.status_writes(&layer, &decision, hold.as_deref(), &cr_claims, now);
    // Pods of attempts that ended before their container ran (an image that
    // cannot be pulled) go, once the end is recorded below.
    carried
        .pods_to_delete
        .extend(cats.pods_to_delete.iter().cloned());

    // The run's status.
    let mut next_status = status.clone();
    let starting = carried.started > 0 && next_status.start_time.is_none();
    run_status::update(
        &mut next_status,
        run,
        &layer,
        &cats,
        decision.outcome,
        hold.as_deref(),
        now,
    );
    if let Some(stall) = &deadlocked {
        run_status::stalled_by(&mut next_status, run, stall, now);
    }
    next_status.resource_claim = layer_waits;
    next_status.resource_wait_seconds = Some(resource_wait.total.as_secs()).filter(|s| *s > 0);
    next_status.resource_wait_since = match (resource_wait.since, &status.resource_wait_since) {
        (None, _) => None,
        (Some(_), Some(t)) => Some(t.clone()),
        (Some(_), None) => Some(wall_clock(now)),
    };
    let run_changed = run.status.as_ref() != Some(&next_status);

    // The writes, in the order crash safety needs.
    let mut writes = Vec::new();
    if !served.leases.is_empty() {
        // Held before anything they let start.
        writes.push(Write::CreateGrants(served.leases));
    }
    if starting && run_changed {
        // The clock is recorded before the first Pod exists.
        writes.push(Write::RunStatus(Box::new(next_status.clone())));
    }
    if !carried.pods_to_create.is_empty() {
        writes.push(Write::CreatePods(carried.pods_to_create));
    }
    if !cats.test_cases.is_empty() {
        // Before the statuses that name them.
        writes.push(Write::CreateTestCases(std::mem::take(&mut cats.test_cases)));
    }
    if !cr_writes.statuses.is_empty() {
        // Stops are recorded here, before their Pods are deleted below.
        writes.push(Write::CategoryRunStatuses(cr_writes.statuses));
    }
    if !carried.pods_to_delete.is_empty() {
        writes.push(Write::DeletePods(carried.pods_to_delete));
    }
    if !released.is_empty() {
        writes.push(Write::DeleteGrants(o.shared.namespace.clone(), released));
    }
    if run_changed && !starting {
        writes.push(Write::RunStatus(Box::new(next_status.clone())));
    }
    if let Some(stall) = &deadlocked {
        let known = status.conditions.iter().any(|c| {
            c.type_ == crate::api::ConditionType::Stalled.as_str()
                && c.status == "True"
                && c.reason == stall.reason
        });
        if !known {
            writes.push(Write::Event(note(run, true, &stall.reason, &stall.message)));
        }
    }
    writes.extend(carried.notes.into_iter().map(Write::Event));
    writes.extend(cr_writes.notes.into_iter().map(Write::Event));
    if run_changed {
        writes.extend(run_status::phase_event(run, &next_status));
    }

    let phase = next_status.phase.unwrap_or(LayerPhase::Pending);
    let next = if phase.is_terminal() {
        match run.spec.ttl_seconds_after_finished {
            Some(ttl) => Next::After(Duration::from_secs(ttl.max(0) as u64)),
            None => Next::AwaitChange,
        }
    } else if hold.is_some() {
        Next::After(GATE_POLL)
    } else {
        let planner_wake = decision
            .wake_at
            .map(|w| w.saturating_sub(layer_obs.now) + Duration::from_millis(50));
        let wake = [planner_wake, cr_writes.wake, carried.wake, cats.wake]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(IDLE_REQUEUE);
        Next::After(wake.min(IDLE_REQUEUE))
    };
    Step::write(writes, next)
}
