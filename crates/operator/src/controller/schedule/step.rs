//! The decision for one TestLayerSchedule, pure: over the schedule, its runs
//! in the cache and its layer config at `now`, which runs to cancel, create
//! and delete, the status, and when to look again.
//!
//! Restart-safe by construction: the tick last acted on is the later of the
//! status's `lastScheduleTime` and the newest tick among the schedule's own
//! runs (a controller that created a tick's runs and died before writing
//! its status does not start that tick again), and a tick's runs are named
//! after it, so creating them twice is a create conflict, never a second
//! run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::names::LABEL_SCHEDULE;
use crate::api::{
    ConcurrencyPolicy, LayerPhase, MAX_TICK_HISTORY, ScheduledRun, TestLayerRun, TestLayerSchedule,
    TestLayerScheduleStatus, TickAction, TickRecord,
};
use crate::controller::launch::decision::ScheduleNote;
use crate::controller::launch::decision::ScheduleStep;
use crate::controller::launch::decision::stalled_step;
use crate::controller::launch::decision::wait_until;
use crate::controller::launch::ticks::{
    Problem, TickGroup, TickNames, refresh_phases, template_layers, tick_groups, tick_names,
    tick_runs, upkeep,
};
use crate::controller::status::conditions::ready_conditions;
use crate::controller::status::reasons::StallReason;
use crate::plan::suite::Suite;
use testlayer_core::schedule::{self, Cron, ScheduleObs, Tick};

/// What the reconcile read for a schedule.
#[derive(Debug, Clone)]
pub struct ScheduleObserved {
    /// The schedule.
    pub schedule: Arc<TestLayerSchedule>,
    /// Its runs (labelled and owned by it).
    pub runs: Vec<Arc<TestLayerRun>>,
    /// The layer config of its template and where it came from, or why it
    /// cannot be read.
    pub config: Result<(String, String), Problem>,
}

/// What schedule `o.schedule` does at `now`.
pub fn step(o: &ScheduleObserved, now: Timestamp) -> ScheduleStep {
    let s = &o.schedule;
    let stored = s.status.clone().unwrap_or_default();
    let checked = check(o);
    let (cron, suite) = match checked {
        Ok(c) => c,
        Err(p) => return stalled(s, &stored, &p, now),
    };
    let groups = tick_groups(&o.runs);
    let mut out = ScheduleStep::default();

    // The latest tick acted on, from the status and from the runs.
    let stored_last = stored.last_schedule_time.as_ref().map(|t| t.0);
    let newest_group = groups.last();
    let last = stored_last.max(newest_group.map(|g| g.at));

    // A tick whose runs were only partly created (the controller stopped
    // between creates, before its status said the tick was started): the
    // rest are created now.
    if let Some(g) = newest_group
        && g.runs.len() < g.expected
        && stored.last_run.as_ref().is_none_or(|r| r.name != g.name)
        && let Ok((name, names)) = tick_names(&s.name_any(), &suite, &g.at.as_second().to_string())
        && name == g.name
    {
        let all = tick_runs(
            (s.as_ref(), LABEL_SCHEDULE),
            &s.spec.template,
            &suite,
            TickNames {
                group: &name,
                runs: &names,
                at: g.at,
            },
            &BTreeMap::new(),
        );
        out.create
            .extend(all.into_iter().filter(|r| !g.runs.contains(&r.name_any())));
    }

    let active: Vec<&TickGroup> = groups.iter().filter(|g| !g.ended()).collect();
    let obs = ScheduleObs {
        now,
        created: s.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
        last,
        starting_deadline: s
            .spec
            .starting_deadline_seconds
            .map(|d| Duration::from_secs(d.max(0).unsigned_abs())),
        suspend: s.spec.suspend,
        policy: match s.spec.concurrency_policy {
            ConcurrencyPolicy::Allow => schedule::ConcurrencyPolicy::Allow,
            ConcurrencyPolicy::Forbid => schedule::ConcurrencyPolicy::Forbid,
            ConcurrencyPolicy::Replace => schedule::ConcurrencyPolicy::Replace,
        },
        active: active.len(),
    };
    let tick = schedule::due(&cron, &obs);

    let mut history = stored.history.clone();
    let mut last_run = stored.last_run.clone();
    let mut last_schedule_time = stored.last_schedule_time.clone();
    // A tick recorded by its runs but not by the status.
    if let Some(g) = newest_group
        && stored_last.is_none_or(|t| t < g.at)
    {
        last_schedule_time = Some(Time(g.at));
        last_run = Some(scheduled(g));
        // The ticks between the one recorded and this one were passed over
        // when it started, as they would have been counted then.
        let since = stored_last.unwrap_or(obs.created).max(obs.created);
        let (_, due) = cron.latest_due(since, g.at);
        let missed = u64::try_from(due.saturating_sub(1)).unwrap_or(u64::MAX);
        history.insert(0, started(g.name.clone(), g.at, Some(missed)));
    }
    let next = match &tick {
        Tick::Wait { next } => *next,
        Tick::Start {
            at,
            replace,
            missed,
            next,
        } => {
            match tick_names(&s.name_any(), &suite, &at.as_second().to_string()) {
                Ok((name, names)) => {
                    if *replace {
                        out.cancel = active.iter().flat_map(|g| g.cancellable.clone()).collect();
                    }
                    let runs = tick_runs(
                        (s.as_ref(), LABEL_SCHEDULE),
                        &s.spec.template,
                        &suite,
                        TickNames {
                            group: &name,
                            runs: &names,
                            at: *at,
                        },
                        &BTreeMap::new(),
                    );
                    out.create.extend(runs);
                    let missed = u64::try_from(*missed).unwrap_or(u64::MAX);
                    let mut note = format!("started {name} for the tick at {at}");
                    if missed > 0 {
                        note.push_str(&format!(
                            " ({missed} earlier tick(s) passed while the controller was away; only this one runs)"
                        ));
                    }
                    if !out.cancel.is_empty() {
                        note.push_str(&format!(
                            "; cancelled {} (concurrencyPolicy Replace)",
                            out.cancel.join(", ")
                        ));
                    }
                    out.events.push(ScheduleNote {
                        warning: false,
                        reason: "TickStarted".into(),
                        note,
                    });
                    history.insert(0, started(name.clone(), *at, Some(missed)));
                    last_run = Some(ScheduledRun {
                        name,
                        scheduled_at: Time(*at),
                        runs: names,
                        phase: Some(LayerPhase::Pending),
                    });
                    last_schedule_time = Some(Time(*at));
                }
                Err(p) => return stalled(s, &stored, &p, now),
            }
            *next
        }
        Tick::Skip { at, next } => {
            let going: Vec<&str> = active.iter().map(|g| g.name.as_str()).collect();
            out.events.push(ScheduleNote {
                warning: false,
                reason: "TickSkipped".into(),
                note: format!(
                    "skipped the tick at {at}: {} still running (concurrencyPolicy Forbid)",
                    going.join(", ")
                ),
            });
            history.insert(0, record(*at, TickAction::Skipped));
            last_schedule_time = Some(Time(*at));
            *next
        }
        Tick::Missed { at, next } => {
            out.events.push(ScheduleNote {
                warning: true,
                reason: "TickMissed".into(),
                note: format!(
                    "missed the tick at {at}: it is past its starting deadline ({}s)",
                    s.spec.starting_deadline_seconds.unwrap_or_default()
                ),
            });
            history.insert(0, record(*at, TickAction::Missed));
            last_schedule_time = Some(Time(*at));
            *next
        }
    };

    // How each remembered tick's runs stand.
    history.truncate(MAX_TICK_HISTORY);
    let entries = history
        .iter_mut()
        .map(|h| (h.name.as_deref(), &mut h.phase));
    refresh_phases(&groups, entries, &mut last_run);
    let last_successful_time = groups
        .iter()
        .filter(|g| g.phase == LayerPhase::Succeeded)
        .map(|g| g.at)
        .chain(stored.last_successful_time.as_ref().map(|t| t.0))
        .max()
        .map(Time);

    let (delete, active_runs) = upkeep(
        &groups,
        s.spec.successful_runs_history_limit,
        s.spec.failed_runs_history_limit,
        &out.create,
    );
    out.delete = delete;

    let t = Time(now);
    let generation = s.metadata.generation;
    let (ready_reason, ready_message) = if s.spec.suspend {
        ("Suspended", "suspended: no tick starts".to_string())
    } else {
        match next {
            Some(n) => ("Scheduled", format!("next tick at {n}")),
            None => ("NoMoreTicks", "the schedule never ticks again".to_string()),
        }
    };
    let status = TestLayerScheduleStatus {
        observed_generation: generation,
        conditions: ready_conditions(
            &stored.conditions,
            ready_reason,
            // The next tick is in `nextScheduleTime`: a message naming it
            // would be one more write per tick for no news.
            if s.spec.suspend { &ready_message } else { "" },
            generation,
            &t,
        ),
        message: None,
        last_schedule_time,
        next_schedule_time: if s.spec.suspend { None } else { next.map(Time) },
        last_successful_time,
        last_run,
        active: active_runs,
        history,
    };
    if Some(&status) != s.status.as_ref() {
        out.status = Some(status);
    }
    out.requeue = if s.spec.suspend {
        None
    } else {
        next.map(|n| wait_until(now, n))
    };
    out
}

/// The cron expression and the suite of a valid schedule, or what is wrong.
fn check(o: &ScheduleObserved) -> Result<(Cron, Suite), Problem> {
    let spec = &o.schedule.spec;
    let cron = Cron::parse(&spec.schedule, spec.time_zone.as_deref()).map_err(|e| match e {
        schedule::ScheduleError::TimeZone(_) => Problem::new("spec.timeZone", e.to_string()),
        schedule::ScheduleError::Cron { .. } => Problem::new("spec.schedule", e.to_string()),
    })?;
    let (text, origin) = o.config.clone()?;
    let suite = template_layers(&spec.layers, &spec.template, &text, &origin)?;
    Ok((cron, suite))
}

fn started(name: String, at: Timestamp, missed: Option<u64>) -> TickRecord {
    TickRecord {
        at: Time(at),
        action: TickAction::Started,
        name: Some(name),
        phase: Some(LayerPhase::Pending),
        missed_before: missed.filter(|m| *m > 0),
    }
}

fn record(at: Timestamp, action: TickAction) -> TickRecord {
    TickRecord {
        at: Time(at),
        action,
        name: None,
        phase: None,
        missed_before: None,
    }
}

fn scheduled(g: &TickGroup) -> ScheduledRun {
    ScheduledRun {
        name: g.name.clone(),
        scheduled_at: Time(g.at),
        runs: g.runs.clone(),
        phase: Some(g.phase),
    }
}

/// The step of a schedule that cannot tick: `Stalled=True` and `Ready=False`
/// naming the field, no next tick, nothing created; a Warning Event when
/// that is new.
pub fn stalled(
    s: &TestLayerSchedule,
    stored: &TestLayerScheduleStatus,
    p: &Problem,
    now: Timestamp,
) -> ScheduleStep {
    let generation = s.metadata.generation;
    let previous = (&stored.conditions[..], stored.message.as_deref());
    stalled_step(
        s.status.as_ref(),
        previous,
        (StallReason::InvalidSchedule.as_str(), p),
        generation,
        now,
        |conditions, message| TestLayerScheduleStatus {
            observed_generation: generation,
            conditions,
            message: Some(message),
            next_schedule_time: None,
            ..stored.clone()
        },
    )
}
