//! Schedules of runs: a cron expression in a time zone, and the pure
//! decision of what a schedule does at a moment (start the run of a tick,
//! skip it, call it missed, or wait), restart-safe by construction: the run
//! of a tick has a name made from the tick, so a second create of it is a
//! conflict, never a second run.

use std::time::Duration;

use jiff::Timestamp;

mod cron;

pub use cron::{Cron, ScheduleError};

/// What a schedule does when its tick is due and runs of it are active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConcurrencyPolicy {
    /// Start the new run beside them.
    #[default]
    Allow,
    /// Skip the new run.
    Forbid,
    /// Cancel them and start the new run.
    Replace,
}

/// What is known of a schedule at `now`.
#[derive(Debug, Clone)]
pub struct ScheduleObs {
    /// The moment of the decision.
    pub now: Timestamp,
    /// When the schedule was created (ticks before it are not due).
    pub created: Timestamp,
    /// The tick last acted on (started, skipped or missed), from status.
    pub last: Option<Timestamp>,
    /// A tick later than this after it is due is missed.
    pub starting_deadline: Option<Duration>,
    /// Nothing starts while suspended.
    pub suspend: bool,
    /// With active runs.
    pub policy: ConcurrencyPolicy,
    /// Runs of the schedule that have not ended.
    pub active: usize,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// Nothing is due; look again at `next` (none: the schedule never
    /// ticks again).
    Wait {
        /// The next tick.
        next: Option<Timestamp>,
    },
    /// Start the run of tick `at` (cancelling the active runs first when
    /// `replace`); `missed` earlier ticks since the last one acted on are
    /// not run (one run for a downtime, not one per tick missed; counted up
    /// to 10,000).
    Start {
        /// The tick.
        at: Timestamp,
        /// Cancel the active runs first.
        replace: bool,
        /// Earlier ticks not run.
        missed: usize,
        /// The tick after.
        next: Option<Timestamp>,
    },
    /// Tick `at` is due, but a run is active and the policy forbids another.
    Skip {
        /// The tick.
        at: Timestamp,
        /// The tick after.
        next: Option<Timestamp>,
    },
    /// Tick `at` (the latest due) is past its starting deadline: not run.
    Missed {
        /// The tick.
        at: Timestamp,
        /// The tick after.
        next: Option<Timestamp>,
    },
}

/// What schedule `cron` does at `o.now`: the latest tick due since the last
/// one acted on (or since the schedule was created) is started, skipped, or
/// missed; earlier ones due in the same span are counted, not run.
pub fn due(cron: &Cron, o: &ScheduleObs) -> Tick {
    let since = o.last.unwrap_or(o.created).max(o.created);
    let next = cron.next_from(since, o.now);
    if o.suspend {
        return Tick::Wait { next };
    }
    let (latest, count) = cron.latest_due(since, o.now);
    let Some(at) = latest else {
        return Tick::Wait { next };
    };
    let late = o.now.duration_since(at).unsigned_abs();
    if o.starting_deadline.is_some_and(|d| late > d) {
        return Tick::Missed { at, next };
    }
    match (o.policy, o.active) {
        (ConcurrencyPolicy::Forbid, n) if n > 0 => Tick::Skip { at, next },
        (policy, n) => Tick::Start {
            at,
            replace: policy == ConcurrencyPolicy::Replace && n > 0,
            missed: count.saturating_sub(1),
            next,
        },
    }
}

/// The name of the run of tick `at` of schedule `schedule`: the same for
/// the same tick, so that creating it twice (a restart at the tick) is a
/// conflict; at most 63 characters.
pub fn run_name(schedule: &str, at: Timestamp) -> String {
    let secs = at.as_second().to_string();
    let room = 63usize.saturating_sub(secs.len() + 1);
    let stem: String = schedule.chars().take(room).collect();
    format!("{}-{secs}", stem.trim_end_matches('-'))
}

/// The finished runs to delete so that at most `keep_succeeded` that passed
/// and `keep_failed` that did not remain, the oldest first: `runs` are
/// (name, when it finished, whether it passed).
pub fn over_history(
    runs: &[(String, Timestamp, bool)],
    keep_succeeded: usize,
    keep_failed: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for (passed, keep) in [(true, keep_succeeded), (false, keep_failed)] {
        let mut of: Vec<&(String, Timestamp, bool)> =
            runs.iter().filter(|r| r.2 == passed).collect();
        // Newest first; the ones past `keep` go.
        of.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out.extend(of.into_iter().skip(keep).map(|r| r.0.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn obs(now: &str, last: Option<&str>) -> ScheduleObs {
        ScheduleObs {
            now: at(now),
            created: at("2026-01-01T00:00:00Z"),
            last: last.map(at),
            starting_deadline: None,
            suspend: false,
            policy: ConcurrencyPolicy::Allow,
            active: 0,
        }
    }

    #[test]
    fn the_latest_due_tick_starts_and_earlier_missed_ones_are_counted_not_run() {
        let c = Cron::parse("0 * * * *", None).unwrap();
        // Nothing due yet.
        assert_eq!(
            due(
                &c,
                &obs("2026-12-01T10:30:00Z", Some("2026-12-01T10:00:00Z"))
            ),
            Tick::Wait {
                next: Some(at("2026-12-01T11:00:00Z"))
            }
        );
        // Down from 10:00 to 13:20: one run, for 13:00; 11:00 and 12:00 missed.
        assert_eq!(
            due(
                &c,
                &obs("2026-12-01T13:20:00Z", Some("2026-12-01T10:00:00Z"))
            ),
            Tick::Start {
                at: at("2026-12-01T13:00:00Z"),
                replace: false,
                missed: 2,
                next: Some(at("2026-12-01T14:00:00Z")),
            }
        );
        // Acted on (the tick recorded): asked again at once, nothing more.
        assert_eq!(
            due(
                &c,
                &obs("2026-12-01T13:20:01Z", Some("2026-12-01T13:00:00Z"))
            ),
            Tick::Wait {
                next: Some(at("2026-12-01T14:00:00Z"))
            }
        );
        // The first tick after the schedule was made, not before.
        let mut o = obs("2026-12-01T13:20:00Z", None);
        o.created = at("2026-12-01T13:10:00Z");
        assert!(matches!(due(&c, &o), Tick::Wait { .. }));
    }

    #[test]
    fn deadline_policy_and_suspend() {
        let c = Cron::parse("0 * * * *", None).unwrap();
        let mut o = obs("2026-12-01T13:20:00Z", Some("2026-12-01T12:00:00Z"));
        o.starting_deadline = Some(Duration::from_secs(600));
        assert!(
            matches!(due(&c, &o), Tick::Missed { at: t, .. } if t == at("2026-12-01T13:00:00Z"))
        );
        o.starting_deadline = Some(Duration::from_secs(3600));
        o.active = 1;
        o.policy = ConcurrencyPolicy::Forbid;
        assert!(matches!(due(&c, &o), Tick::Skip { .. }));
        o.policy = ConcurrencyPolicy::Replace;
        assert!(matches!(due(&c, &o), Tick::Start { replace: true, .. }));
        o.policy = ConcurrencyPolicy::Allow;
        assert!(matches!(due(&c, &o), Tick::Start { replace: false, .. }));
        o.suspend = true;
        assert!(matches!(due(&c, &o), Tick::Wait { .. }));
    }

    #[test]
    fn a_tick_every_second_for_a_year_is_bounded_work() {
        let c = Cron::parse("* * * * * *", None).unwrap();
        let started = std::time::Instant::now();
        let t = due(
            &c,
            &obs("2026-12-01T00:00:00Z", Some("2026-01-01T00:00:00Z")),
        );
        assert!(
            matches!(t, Tick::Start { at: a, .. } if a == at("2026-12-01T00:00:00Z")),
            "{t:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn run_names_are_the_tick_s_and_bounded() {
        let t = at("2026-12-01T13:00:00Z");
        assert_eq!(run_name("nightly", t), "nightly-1796130000");
        assert_eq!(run_name("nightly", t), run_name("nightly", t));
        let long = run_name(&"x".repeat(80), t);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-1796130000"));
    }

    #[test]
    fn history_keeps_the_newest_of_each_kind() {
        let runs: Vec<(String, Timestamp, bool)> = (0..5)
            .map(|i| {
                (
                    format!("r{i}"),
                    Timestamp::from_second(1_800_000_000 + i).unwrap(),
                    i % 2 == 0,
                )
            })
            .collect();
        // Passed: r0 r2 r4; failed: r1 r3.
        assert_eq!(over_history(&runs, 2, 1), ["r0", "r1"]);
        assert_eq!(over_history(&runs, 0, 0).len(), 5);
        assert!(over_history(&runs, 3, 3).is_empty());
    }
}
