//! The working stages of a step, once the run is frozen and past its
//! gates: every category brought up to date with its Pods, shared
//! resources claimed and served, the planner on the run's clock, the run's
//! status, and the writes put in order ([`order`](super::order)).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::attempts::{offset, stored};
use super::categories::Categories;
use super::observed::Observed;
use super::order::{Pending, order};
use super::writes::{Next, Step, note, wall_clock};
use super::{claims, deadlock, refusals, run_status};
use crate::api::{LayerPhase, TestLayerRunStatus};
use crate::controller::shared::claims::describe_claim;
use crate::layer::LayerPlan;
use crate::plan::{LayerObs, ResourceWait, plan};

/// How often a run waiting on dependencies or services looks again.
const GATE_POLL: Duration = Duration::from_secs(2);
/// At most this long between looks at a run that works, if nothing wakes it.
const IDLE_REQUEUE: Duration = Duration::from_secs(300);

/// What a working run of `layer` does at `now`: `status` as it stands after
/// the gates, `hold` what it waits for (a gate or a shared resource).
pub fn advance(
    o: &Observed,
    layer: &LayerPlan,
    status: TestLayerRunStatus,
    mut hold: Option<String>,
    now: Timestamp,
) -> Step {
    let run = o.run.as_ref();
    // Every category brought up to date with its Pods.
    let mut cats = match Categories::update(o, layer, now) {
        Ok(c) => c,
        Err(questions) => return Step::ask(questions),
    };

    // Shared resources: each one must be declared in the namespace; the
    // layer's own `uses` are claimed once its gates are open.
    let shares = layer.uses_shared_resources() && !run.spec.cancel;
    if shares
        && hold.is_none()
        && let Some(m) = o.shared.missing(layer)
    {
        hold = Some(m);
    }
    let layer_claim = shares && hold.is_none() && !claims::run_holds(&o.shared, run, layer);

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
    let mut obs: Vec<_> = cats.planner_view(layer, &clock_start, &now);
    claims::mark_granted(&o.shared, layer, &cats, &mut obs);
    let mut layer_obs = LayerObs {
        cancel: run.spec.cancel,
        hold: hold.is_some() || layer_claim,
        suspend: run.spec.suspend,
        ..LayerObs::at(
            now_offset,
            resource_wait.deadline_start(layer, Duration::ZERO, now_offset),
        )
    };
    let mut decision = plan(layer, &obs, &layer_obs);
    let mine = claims::mine(run, layer, &cats, &obs, &decision, layer_claim);
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
        decision = plan(layer, &obs, &layer_obs);
    }
    let deadlocked = deadlock::stall(&o.shared, run, &served);
    let layer_waits = served.waiting.get(&run.name_any()).cloned();
    if let Some(c) = &layer_waits {
        hold = Some(describe_claim(c));
    }
    let released = claims::releases(&o.shared, &o.pods, run, &cats, &obs, &decision, false);
    // A holder's Pod the cache does not show yet may run: asked first.
    let (released, asked) = claims::unseen_holders(o, released);
    if !asked.is_empty() {
        return Step::ask(asked);
    }
    let resource_wait = resource_wait.account(
        now_offset,
        status.start_time.is_some() && decision.blocked_on_resources,
    );
    let owners = o
        .category_runs
        .iter()
        .filter_map(|c| c.metadata.uid.as_deref())
        .collect();
    let existing = refusals::existing(o, &owners, now);
    if !existing.questions.is_empty() {
        // Whose the Pods in the way of creates are, before deciding.
        return Step::ask(existing.questions);
    }
    let mut carried = cats.carry_out(layer, &decision, &o.answers, &existing, now);
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
    let cr_writes = cats.status_writes(layer, &decision, hold.as_deref(), &cr_claims, now);
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
        layer,
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
    // The writes, in the order crash safety needs (see `order`).
    let mut events: Vec<_> = deadlocked
        .as_ref()
        .filter(|stall| !stalled_already(&status, &stall.reason))
        .map(|stall| note(run, true, &stall.reason, &stall.message))
        .into_iter()
        .collect();
    events.extend(carried.notes);
    events.extend(cr_writes.notes);
    if run_changed {
        events.extend(run_status::phase_event(run, &next_status));
    }
    // A unit given back may be this run's next claim's: stepped again at
    // once, on a view without the grants given back, rather than when the
    // deletes come back through the watch.
    let serve_again = !released.is_empty() && !served.waiting.is_empty();
    let writes = order(Pending {
        grants: served.leases,
        run_status: run_changed.then(|| next_status.clone()),
        starting,
        create_pods: carried.pods_to_create,
        test_cases: std::mem::take(&mut cats.test_cases),
        category_run_statuses: cr_writes.statuses,
        stop_pods: carried.pods_to_stop,
        delete_pods: carried.pods_to_delete,
        release: (o.shared.namespace.clone(), released),
        events,
    });

    let planner_wake = decision
        .wake_at
        .map(|w| w.saturating_sub(layer_obs.now) + Duration::from_millis(50));
    let wakes = [planner_wake, cr_writes.wake, carried.wake, cats.wake];
    let next = if serve_again {
        Next::Again
    } else {
        next_look(run, next_status.phase, hold.is_some(), wakes)
    };
    Step::write(writes, next)
}

/// Whether `status` says the run is Stalled for `reason` already.
fn stalled_already(status: &TestLayerRunStatus, reason: &str) -> bool {
    status.conditions.iter().any(|c| {
        c.type_ == crate::api::ConditionType::Stalled.as_str()
            && c.status == "True"
            && c.reason == reason
    })
}

/// When run `run` in `phase` is looked at again: at its TTL once it ended,
/// soon while it waits for a gate or a shared resource (`held`), else at
/// the earliest of `wakes` (the planner's, a category's, an attempt's), at
/// most [`IDLE_REQUEUE`] away.
fn next_look(
    run: &crate::api::TestLayerRun,
    phase: Option<LayerPhase>,
    held: bool,
    wakes: [Option<Duration>; 4],
) -> Next {
    if phase.unwrap_or(LayerPhase::Pending).is_terminal() {
        match run.spec.ttl_seconds_after_finished {
            Some(ttl) => Next::After(Duration::from_secs(ttl.max(0) as u64)),
            None => Next::AwaitChange,
        }
    } else if held {
        Next::After(GATE_POLL)
    } else {
        let wake = wakes.into_iter().flatten().min().unwrap_or(IDLE_REQUEUE);
        Next::After(wake.min(IDLE_REQUEUE))
    }
}
