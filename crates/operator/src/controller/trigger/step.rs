//! The decision for one TestLayerTrigger, pure: over the trigger, the
//! resources it watches (as read), its runs in the cache and its layer
//! config at `now`, which runs to cancel, create and delete, the status, and
//! when to look again.
//!
//! Exactly once per revision: a firing's runs are named after the resource
//! and the revision (a firing repeated after a restart is a create
//! conflict), and each resource's last handled revision is kept in the
//! status. Resources there before the trigger began watching have their
//! current revision recorded, not run.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::rollout::{Path, Rollout, rollout};
use crate::api::names::LABEL_TRIGGER;
use crate::api::names::{ANNOTATION_IMAGE, ANNOTATION_REVISION, ANNOTATION_TRIGGERED_BY};
use crate::api::{
    ConcurrencyPolicy, FiringRecord, LayerPhase, MAX_TICK_HISTORY, MAX_WATCHED, PendingRevision,
    ScheduledRun, TestLayerRun, TestLayerTrigger, TestLayerTriggerStatus, TickAction, WatchedState,
};
use crate::controller::launch::decision::{ScheduleNote, ScheduleStep, stalled_step, wait_until};
use crate::controller::launch::ticks::{
    Problem, TickGroup, TickNames, refresh_phases, template_layers, tick_groups, tick_names,
    tick_runs, upkeep,
};
use crate::controller::status::conditions::ready_conditions;
use crate::controller::status::conditions::{bounded, one_line};
use crate::controller::status::reasons::StallReason;
use crate::plan::suite::Suite;

/// What the reconcile read for a trigger.
#[derive(Debug, Clone)]
pub struct TriggerObserved {
    /// The trigger.
    pub trigger: Arc<TestLayerTrigger>,
    /// Its runs (labelled and owned by it).
    pub runs: Vec<Arc<TestLayerRun>>,
    /// Its layer config and where it came from, or why it cannot be read.
    pub config: Result<(String, String), Problem>,
    /// The resources it watches, as stored, or why they cannot be read.
    pub watched: Result<Vec<Value>, Problem>,
}

/// What trigger `o.trigger` does at `now` (the same shape of decision as a
/// schedule's).
pub fn step(o: &TriggerObserved, now: Timestamp) -> ScheduleStep<TestLayerTriggerStatus> {
    let t = &o.trigger;
    let stored = t.status.clone().unwrap_or_default();
    let (suite, path) = match check(o) {
        Ok(c) => c,
        Err(p) => return stalled(t, &stored, &p, now),
    };
    let watched = match &o.watched {
        Ok(w) => w,
        Err(p) => return stalled(t, &stored, p, now),
    };
    let spec = &t.spec;
    let since = stored.watching_since.as_ref().map_or(now, |s| s.0);
    let groups = tick_groups(&o.runs);
    let by_name: BTreeMap<&str, &TickGroup> = groups.iter().map(|g| (g.name.as_str(), g)).collect();
    let mut active = groups.iter().filter(|g| !g.ended()).count();
    let mut out = ScheduleStep::default();
    let mut history = stored.history.clone();
    let mut last_run = stored.last_run.clone();
    let mut last_revision = stored.last_revision.clone();
    let mut wake: Option<Timestamp> = None;
    let delay = SignedDuration::from_secs(i64::from(spec.delay_seconds.unwrap_or(0)));
    let known: BTreeMap<&str, &WatchedState> = stored
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r))
        .collect();

    let mut resources = Vec::new();
    let mut objects: Vec<&Value> = watched.iter().collect();
    objects.sort_by_key(|v| {
        v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    for obj in objects.into_iter().take(MAX_WATCHED) {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let r: Rollout = match rollout(
            obj,
            &spec.watch.api_version,
            &spec.watch.kind,
            path.as_ref(),
        ) {
            Ok(r) => r,
            Err(e) => {
                return stalled(
                    t,
                    &stored,
                    &Problem::new("spec.watch.kind", e.to_string()),
                    now,
                );
            }
        };
        let created = obj["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(|c| c.parse::<Timestamp>().ok());
        let mut state = match known.get(name.as_str()) {
            Some(s) => (*s).clone(),
            None => {
                let before = stored.watching_since.is_none() || created.is_some_and(|c| c < since);
                WatchedState {
                    name: name.clone(),
                    // There before the trigger watched: its finished
                    // revision is where it stands, not a new rollout.
                    revision: if before && r.finished {
                        r.revision.clone()
                    } else {
                        None
                    },
                    pending: None,
                }
            }
        };
        let fresh = match (&r.revision, r.finished) {
            (Some(rev), true) if state.revision.as_ref() != Some(rev) => Some(rev.clone()),
            _ => None,
        };
        let Some(rev) = fresh else {
            state.pending = None;
            resources.push(state);
            continue;
        };
        if delay.as_secs() > 0 {
            let finished_at = match &state.pending {
                Some(p) if p.revision == rev => p.finished_at.0,
                // Whole seconds, rounded up, as the status keeps it: the
                // delay is never cut short by the rounding.
                _ => whole_second_up(now),
            };
            state.pending = Some(PendingRevision {
                revision: rev.clone(),
                finished_at: Time(finished_at),
            });
            let due = finished_at.checked_add(delay).unwrap_or(finished_at);
            if now < due {
                wake = Some(wake.map_or(due, |w| w.min(due)));
                resources.push(state);
                continue;
            }
        }
        state.pending = None;
        state.revision = Some(rev.clone());
        let resource = format!("{}/{name}", spec.watch.kind);
        let suffix = digest(&format!("{name}@{rev}"));
        let (group, names) = match tick_names(&t.name_any(), &suite, &suffix) {
            Ok(n) => n,
            Err(p) => return stalled(t, &stored, &p, now),
        };
        let record = |action, group: Option<String>| FiringRecord {
            at: Time(now),
            resource: resource.clone(),
            revision: rev.clone(),
            image: r.image.clone(),
            action,
            phase: group.as_ref().map(|_| LayerPhase::Pending),
            name: group,
        };
        // Runs of this firing exist (a firing the controller did not get
        // to record): it is completed, whatever the policy.
        let again = by_name.get(group.as_str());
        if again.is_none()
            && (spec.suspend
                || (spec.concurrency_policy == ConcurrencyPolicy::Forbid && active > 0))
        {
            let why = if spec.suspend {
                "the trigger is suspended"
            } else {
                "runs of an earlier revision are going (concurrencyPolicy Forbid)"
            };
            out.events.push(ScheduleNote {
                warning: false,
                reason: "RevisionSkipped".into(),
                note: format!("{resource} finished rolling out revision {rev}; not run: {why}"),
            });
            history.insert(0, record(TickAction::Skipped, None));
            resources.push(state);
            continue;
        }
        if again.is_none() && spec.concurrency_policy == ConcurrencyPolicy::Replace {
            out.cancel.extend(
                groups
                    .iter()
                    .filter(|g| !g.ended())
                    .flat_map(|g| g.cancellable.clone()),
            );
        }
        let mut annotations = BTreeMap::from([
            (ANNOTATION_TRIGGERED_BY.to_string(), resource.clone()),
            (ANNOTATION_REVISION.to_string(), rev.clone()),
        ]);
        if let Some(image) = &r.image {
            annotations.insert(ANNOTATION_IMAGE.into(), image.clone());
        }
        let mut runs = tick_runs(
            (t.as_ref(), LABEL_TRIGGER),
            &spec.template,
            &suite,
            TickNames {
                group: &group,
                runs: &names,
                at: now,
            },
            &annotations,
        );
        for run in &mut runs {
            let pod = run.spec.pod.get_or_insert_with(Default::default);
            for (k, v) in [
                ("TESTLAYER_TRIGGER_RESOURCE", Some(resource.clone())),
                ("TESTLAYER_TRIGGER_REVISION", Some(rev.clone())),
                ("TESTLAYER_TRIGGER_IMAGE", r.image.clone()),
            ] {
                if let Some(v) = v {
                    pod.env.push(EnvVar {
                        name: k.into(),
                        value: Some(v),
                        value_from: None,
                    });
                }
            }
        }
        if let Some(g) = again {
            runs.retain(|r| !g.runs.contains(&r.name_any()));
        } else {
            active += 1;
        }
        out.events.push(ScheduleNote {
            warning: false,
            reason: "RevisionStarted".into(),
            note: format!("{resource} finished rolling out revision {rev}: started {group}"),
        });
        history.insert(0, record(TickAction::Started, Some(group.clone())));
        last_run = Some(ScheduledRun {
            name: group.clone(),
            scheduled_at: Time(now),
            runs: names.clone(),
            phase: Some(LayerPhase::Pending),
        });
        last_revision = Some(rev.clone());
        out.create.extend(runs);
        resources.push(state);
    }

    history.truncate(MAX_TICK_HISTORY);
    let entries = history
        .iter_mut()
        .map(|h| (h.name.as_deref(), &mut h.phase));
    refresh_phases(&groups, entries, &mut last_run);
    let (delete, active_runs) = upkeep(
        &groups,
        spec.successful_runs_history_limit,
        spec.failed_runs_history_limit,
        &out.create,
    );
    out.delete = delete;
    let time = Time(now);
    let generation = t.metadata.generation;
    let (reason, mut message) = if spec.suspend {
        (
            "Suspended",
            "suspended: rollouts are recorded, not run".to_string(),
        )
    } else {
        ("Watching", String::new())
    };
    if watched.len() > MAX_WATCHED {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(&format!(
            "watching the first {MAX_WATCHED} of {} {} by name; narrow spec.watch.selector",
            watched.len(),
            spec.watch.kind
        ));
    }
    let status = TestLayerTriggerStatus {
        observed_generation: generation,
        conditions: ready_conditions(&stored.conditions, reason, &message, generation, &time),
        message: None,
        watching_since: Some(stored.watching_since.clone().unwrap_or(Time(now))),
        last_revision,
        resources,
        last_run,
        active: active_runs,
        history,
    };
    if Some(&status) != t.status.as_ref() {
        out.status = Some(status);
    }
    out.requeue = wake.map(|w| wait_until(now, w));
    out
}

/// The suite and revision path of a valid trigger, or what is wrong.
fn check(o: &TriggerObserved) -> Result<(Suite, Option<Path>), Problem> {
    let spec = &o.trigger.spec;
    let w = &spec.watch;
    if w.name.is_some() == w.selector.is_some() {
        return Err(Problem::new(
            "spec.watch",
            "name one resource (name) or select resources by label (selector), one of the two",
        ));
    }
    if w.namespace.as_deref() == Some("") {
        return Err(Problem::new(
            "spec.watch.namespace",
            "empty: leave it out to watch the trigger's own namespace",
        ));
    }
    let path = w
        .revision_path
        .as_deref()
        .map(Path::parse)
        .transpose()
        .map_err(|e| Problem::new("spec.watch.revisionPath", e.to_string()))?;
    if super::rollout::is_secret(&w.api_version, &w.kind) {
        secret_revision(w.revision_path.as_deref(), path.as_ref())?;
    }
    if path.is_none() && !super::rollout::known_kind(&w.api_version, &w.kind) {
        // The kind is what is wrong (or incomplete): the field the docs
        // (`docs/usage/schedules-and-triggers.md`) name, and the one a user
        // looks at.
        return Err(Problem::new(
            "spec.watch.kind",
            super::rollout::NoRevision(w.kind.clone()).to_string(),
        ));
    }
    let (text, origin) = o.config.clone()?;
    let suite = template_layers(&spec.layers, &spec.template, &text, &origin)?;
    Ok((suite, path))
}

/// A Secret is watched only for a revision in its metadata: its values
/// would otherwise be copied where the trigger's readers see them.
fn secret_revision(written: Option<&str>, path: Option<&Path>) -> Result<(), Problem> {
    const FROM: &str = "a trigger takes the revision of a Secret only from its metadata: \
        .metadata.resourceVersion, .metadata.generation or one of .metadata.annotations \
        (not kubectl.kubernetes.io/last-applied-configuration, which holds its data)";
    match (written, path) {
        (_, Some(p)) if p.is_metadata_revision() => Ok(()),
        (Some(w), _) => Err(Problem::new(
            "spec.watch.revisionPath",
            format!(
                "{FROM}; {} would copy a value of the Secret into the trigger's status and its runs",
                bounded(&one_line(w), 100)
            ),
        )),
        (None, _) => Err(Problem::new(
            "spec.watch.kind",
            format!(
                "a Secret has no revision of its own: name one in spec.watch.revisionPath; {FROM}"
            ),
        )),
    }
}

fn whole_second_up(t: Timestamp) -> Timestamp {
    let up = i64::from(t.subsec_nanosecond() > 0);
    Timestamp::from_second(t.as_second() + up).unwrap_or(t)
}

/// A short digest naming a firing: the same for the same resource and
/// revision.
fn digest(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The step of a trigger that cannot work: `Stalled=True`, `Ready=False`
/// naming the field; nothing created.
fn stalled(
    t: &TestLayerTrigger,
    stored: &TestLayerTriggerStatus,
    p: &Problem,
    now: Timestamp,
) -> ScheduleStep<TestLayerTriggerStatus> {
    let generation = t.metadata.generation;
    let previous = (&stored.conditions[..], stored.message.as_deref());
    stalled_step(
        t.status.as_ref(),
        previous,
        (StallReason::InvalidTrigger.as_str(), p),
        generation,
        now,
        |conditions, message| TestLayerTriggerStatus {
            observed_generation: generation,
            conditions,
            message: Some(message),
            ..stored.clone()
        },
    )
}
