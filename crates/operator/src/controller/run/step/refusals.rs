//! Pods the apiserver refuses to create (admission such as Pod Security, a
//! quota, validation, a missing ServiceAccount): what a step decides from
//! the refusals this controller remembers ([`Refusal`]).
//!
//! A refused attempt is recorded as an attempt that has started (its clock
//! runs from the first create, so its timeout and the layer deadline end it
//! as they would a Pod that never runs) with reason `PodCreateFailed` and the
//! apiserver's words, and no Pod. Its category shows reason
//! `PodCreateFailed`, the run and the category are `Stalled`, and one
//! Warning Event says so; each is written when the refusal starts, changes
//! its words or ends, not on every retry. The create is retried after
//! [`backoff`]: 2 s, doubling, at most 60 s.
//!
//! The refusals are remembered in memory only: after a controller restart
//! the status still shows the refusal, the first step tries the create at
//! once, and the backoff starts again from 2 s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::attempts::offset;
use super::observed::{Observed, PodOwner, Question, Refusal};
use super::writes::note;
use crate::api::{AttemptStatus, CategoryRun, CategoryRunStatus};
use crate::controller::status::conditions::{Stall, bounded};
use crate::controller::status::note::Note;
use crate::words::{AttemptReason, Reason};

/// The wait before the first retry.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// The longest wait between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest apiserver message kept in an attempt.
const MAX_REFUSAL_MESSAGE: usize = 1000;

/// The wait after `count` refusals in a row: 2 s, doubling, at most 60 s.
pub fn backoff(count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// Whether `a` is an attempt whose Pod was refused and not created since
/// (it has not ended).
pub fn is_refused(a: &AttemptStatus) -> bool {
    a.completion_time.is_none() && a.reason == Some(AttemptReason::PodCreateFailed)
}

/// Records on `a` that its Pod was refused as `r` says.
pub fn mark(a: &mut AttemptStatus, r: &Refusal) {
    a.reason = Some(AttemptReason::PodCreateFailed);
    a.message = Some(bounded(&r.message, MAX_REFUSAL_MESSAGE));
}

/// How long until a refused Pod is created again: `None` when it is due
/// now (also when this controller remembers no refusal of it: it restarted).
pub fn retry_in(r: Option<&Refusal>, now: Timestamp) -> Option<Duration> {
    let r = r?;
    let waited = offset(&r.last, &now);
    let wait = backoff(r.count);
    (waited < wait).then(|| wait - waited)
}

/// What the step makes of the Pod creates that met a Pod of their name.
#[derive(Debug, Default)]
pub struct Existing {
    /// The refusals to decide from: those remembered, and each Pod of
    /// another owner in the way of an attempt's (never adopted: its create
    /// waits, looked at again every [`FIRST_BACKOFF`], until it is gone).
    pub refused: BTreeMap<String, Refusal>,
    /// Pods that are the attempts' own though the cache does not show them
    /// yet (a create whose answer was lost): started, not created again.
    pub ours: BTreeSet<String>,
    /// Whose Pods to ask the apiserver, when the cache does not say.
    pub questions: Vec<Question>,
}

/// Decides, for every Pod whose create met one of its name (`o.existing`),
/// whose it is: from the cache when it shows the Pod, else from the
/// apiserver's answer (asked for when missing). `owners`: the uids of the
/// run's CategoryRuns.
pub fn existing(o: &Observed, owners: &BTreeSet<&str>, now: Timestamp) -> Existing {
    let mut out = Existing {
        refused: o.refused.clone(),
        ..Existing::default()
    };
    for name in &o.existing {
        let cached = o.pods.iter().find(|p| p.name_any() == *name);
        let owner = match cached {
            Some(p) => match p
                .owner_references()
                .iter()
                .find(|r| r.controller == Some(true))
            {
                Some(r) => PodOwner::Of {
                    uid: r.uid.clone(),
                    described: format!("{} {} with uid {}", r.kind, r.name, r.uid),
                },
                None => PodOwner::Of {
                    uid: String::new(),
                    described: "no owner".into(),
                },
            },
            None => match o.answers.pod_owners.get(name) {
                Some(a) => a.clone(),
                None => {
                    out.questions.push(Question::PodOwner(name.clone()));
                    continue;
                }
            },
        };
        match owner {
            // Gone: its create is tried again.
            PodOwner::Gone => {}
            // The attempt's own: the cache shows it (synced already) or
            // will.
            PodOwner::Of { uid, .. } if owners.contains(uid.as_str()) => {
                if cached.is_none() {
                    out.ours.insert(name.clone());
                }
            }
            PodOwner::Of { described, .. } => {
                let message = format!(
                    "pod {name} exists and belongs to another owner ({described}); waiting for it to be removed"
                );
                let first = out.refused.get(name).map_or(now, |r| r.first);
                out.refused.insert(
                    name.clone(),
                    Refusal {
                        message,
                        first,
                        last: now,
                        count: 1,
                    },
                );
            }
        }
    }
    out
}

/// The sentence of a category whose attempt `a` is refused.
pub fn describe(a: &AttemptStatus) -> String {
    format!(
        "the apiserver refused to create Pod {}: {}; retrying",
        a.pod_name,
        a.message.as_deref().unwrap_or("no message")
    )
}

/// The sentence added to the end of a category whose last attempt's Pod
/// was never created.
pub fn never_created(st: &CategoryRunStatus) -> Option<String> {
    let a = st
        .attempts
        .last()
        .filter(|a| a.reason == Some(AttemptReason::PodCreateFailed))?;
    Some(format!(
        "its Pod {} was never created: {}",
        a.pod_name,
        a.message.as_deref().unwrap_or("no message")
    ))
}

/// The refused attempt of a category that is not being stopped, if any.
pub fn open_refusal(st: &CategoryRunStatus) -> Option<&AttemptStatus> {
    st.attempts
        .last()
        .filter(|a| is_refused(a) && a.stop.is_none())
}

/// The stall of a category whose Pod is refused.
pub fn category_stall(st: &CategoryRunStatus) -> Option<Stall> {
    open_refusal(st).map(|a| Stall {
        reason: Reason::PodCreateFailed.to_string(),
        message: describe(a),
    })
}

/// The stall of a run some of whose categories (by name) have their Pods
/// refused: the first one named, with how many more there are.
pub fn run_stall<'a>(
    cats: impl Iterator<Item = (&'a str, &'a CategoryRunStatus)>,
) -> Option<Stall> {
    let refused: Vec<(&str, &AttemptStatus)> = cats
        .filter_map(|(name, st)| open_refusal(st).map(|a| (name, a)))
        .collect();
    let (name, a) = refused.first()?;
    let more = match refused.len() - 1 {
        0 => String::new(),
        1 => " (and 1 more category)".to_string(),
        n => format!(" (and {n} more categories)"),
    };
    Some(Stall {
        reason: Reason::PodCreateFailed.to_string(),
        message: format!("category {name:?}: {}{more}", describe(a)),
    })
}

/// The Warning Event of a category whose refusal is new or has new words
/// in `next` (compared with what its CategoryRun records).
pub fn changed(cr: &CategoryRun, next: &CategoryRunStatus) -> Option<Note> {
    let now = open_refusal(next)?;
    let before = cr.status.as_ref().and_then(open_refusal);
    if before.is_some_and(|b| b.number == now.number && b.message == now.message) {
        return None;
    }
    Some(note(
        cr,
        true,
        Reason::PodCreateFailed.as_str(),
        &describe(now),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_two_seconds_to_a_minute() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(0), FIRST_BACKOFF);
    }

    #[test]
    fn a_retry_is_due_after_its_backoff_or_at_once_when_nothing_is_remembered() {
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        let r = Refusal {
            message: "quota".into(),
            first: t(100),
            last: t(110),
            count: 3,
        };
        assert_eq!(retry_in(Some(&r), t(111)), Some(Duration::from_secs(7)));
        assert_eq!(retry_in(Some(&r), t(118)), None);
        assert_eq!(retry_in(None, t(111)), None);
        let next = Refusal::after(Some(&r), "quota again", t(118));
        assert_eq!((next.first, next.last, next.count), (t(100), t(118), 4));
    }
}
