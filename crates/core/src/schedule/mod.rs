//! Schedules of runs: a cron expression in a time zone, and the pure
//! decision of what a schedule does at a moment (start the run of a tick,
//! skip it, call it missed, or wait), restart-safe by construction: the run
//! of a tick has a name made from the tick, so a second create of it is a
//! conflict, never a second run.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Most ticks looked at in one scan for the latest due one.
const SCAN: usize = 10_000;

/// What is wrong with a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("cron expression {expr:?} {why}")]
    Cron {
        /// As written.
        expr: String,
        /// Why.
        why: String,
    },
    /// The time zone is not one this machine knows.
    #[error("time zone {0:?} is not a known IANA time zone (such as Europe/Berlin or UTC)")]
    TimeZone(String),
}

/// A cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Cron {
    text: String,
    schedule: jiff_cron::Schedule,
    tz: TimeZone,
}

/// The day-of-week field of a 5-field cron (0 or 7 Sunday, 1 Monday, ... 6
/// Saturday, names as they are) in the 1-7 numbering (1 Sunday) of the
/// parser underneath.
fn day_of_week(field: &str) -> Result<String, String> {
    let shift = |n: &str| -> Result<u32, String> {
        let v: u32 = n
            .parse()
            .map_err(|_| format!("has day of week {n:?}, not 0-7 or a name"))?;
        match v {
            0 | 7 => Ok(1),
            1..=6 => Ok(v + 1),
            _ => Err(format!("has day of week {v}, not 0-7")),
        }
    };
    let numeric = |s: &str| s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty();
    let mut out = Vec::new();
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (item, None),
        };
        let step = step.map(|s| format!("/{s}")).unwrap_or_default();
        let mapped = if base == "*" || base == "?" {
            base.to_string()
        } else if let Some((a, b)) = base.split_once('-') {
            if numeric(a) && numeric(b) {
                let (a_raw, b_raw): (u32, u32) = (a.parse().unwrap_or(99), b.parse().unwrap_or(99));
                if a_raw > 7 || b_raw > 7 || a_raw > b_raw {
                    return Err(format!("has day-of-week range {base:?}, not within 0-7"));
                }
                if b_raw == 7 {
                    if !step.is_empty() {
                        return Err(format!(
                            "has day-of-week range {base:?} with a step; write the days out"
                        ));
                    }
                    // ...through Sunday: the days up to Saturday, and Sunday.
                    if a_raw <= 1 {
                        "*".to_string()
                    } else {
                        format!("{}-7,1", shift(a)?)
                    }
                } else {
                    format!("{}-{}", shift(a)?, shift(b)?)
                }
            } else {
                base.to_string()
            }
        } else if numeric(base) {
            shift(base)?.to_string()
        } else {
            base.to_string()
        };
        out.push(format!("{mapped}{step}"));
    }
    Ok(out.join(","))
}

impl Cron {
    /// Parses `expr` in time zone `tz` (an IANA name; UTC when `None`).
    /// `expr` is what a Kubernetes CronJob takes: five fields (minute, hour,
    /// day of month, month, day of week with 0 or 7 for Sunday) or a macro
    /// (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
    /// `@hourly`); or six fields, seconds first.
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Cron, ScheduleError> {
        let bad = |why: String| ScheduleError::Cron {
            expr: expr.to_string(),
            why,
        };
        let trimmed = expr.trim();
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let full = match trimmed {
            "@annually" => "@yearly".to_string(),
            "@midnight" => "@daily".to_string(),
            m if m.starts_with('@') => m.to_string(),
            _ => match fields.len() {
                5 => format!(
                    "0 {} {} {} {} {}",
                    fields[0],
                    fields[1],
                    fields[2],
                    fields[3],
                    day_of_week(fields[4]).map_err(bad)?
                ),
                6 => format!(
                    "{} {} {} {} {} {}",
                    fields[0],
                    fields[1],
                    fields[2],
                    fields[3],
                    fields[4],
                    day_of_week(fields[5]).map_err(bad)?
                ),
                n => {
                    return Err(bad(format!(
                        "has {n} fields; a cron schedule has 5 (minute hour day-of-month month day-of-week), or 6 with seconds first"
                    )));
                }
            },
        };
        let schedule: jiff_cron::Schedule = full
            .parse()
            .map_err(|e: jiff_cron::error::Error| bad(format!("does not parse: {e}")))?;
        let tz = match tz {
            None => TimeZone::UTC,
            Some(name) => {
                TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.to_string()))?
            }
        };
        Ok(Cron {
            text: expr.to_string(),
            schedule,
            tz,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.schedule
            .after(t.to_zoned(self.tz.clone()))
            .next()
            .map(|z| z.timestamp())
    }

    /// The latest tick in `(since, now]`, and how many ticks fell there,
    /// counted up to a bound ([`SCAN`]; past it, at least that many). Past
    /// the bound, the latest tick is found in ever larger spans back from
    /// `now` (a minute, an hour, a day, ...), so the work stays bounded
    /// whatever the schedule and however long it was down.
    pub fn latest_due(&self, since: Timestamp, now: Timestamp) -> (Option<Timestamp>, usize) {
        let scan = |from: Timestamp| {
            let mut latest = None;
            let mut count = 0;
            for z in self.schedule.after(from.to_zoned(self.tz.clone())) {
                let t = z.timestamp();
                if t > now || count == SCAN {
                    break;
                }
                latest = Some(t);
                count += 1;
            }
            (latest, count)
        };
        let (latest, count) = scan(since);
        if count < SCAN {
            return (latest, count);
        }
        const HOUR: i64 = 3600;
        for span in [
            60,
            HOUR,
            24 * HOUR,
            7 * 24 * HOUR,
            31 * 24 * HOUR,
            366 * 24 * HOUR,
        ] {
            let from = now
                .checked_sub(jiff::SignedDuration::from_secs(span))
                .unwrap_or(since)
                .max(since);
            let (recent, n) = scan(from);
            if n < SCAN && recent.is_some() {
                return (recent, count);
            }
        }
        (latest, count)
    }
}

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
    let next = cron.next_after(o.now.max(since));
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
    fn five_fields_mean_what_a_cronjob_means_in_the_time_zone_given() {
        // Weekdays at 09:00 in Berlin: after Saturday comes Monday.
        let c = Cron::parse("0 9 * * 1-5", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            c.next_after(at("2026-12-05T10:00:00Z")),
            Some(at("2026-12-07T08:00:00Z"))
        );
        // Sunday is 0 and 7.
        for sunday in ["0 12 * * 0", "0 12 * * 7", "0 12 * * SUN"] {
            let c = Cron::parse(sunday, None).unwrap();
            assert_eq!(
                c.next_after(at("2026-12-01T00:00:00Z")),
                Some(at("2026-12-06T12:00:00Z")),
                "{sunday}"
            );
        }
        // Friday through Sunday.
        let c = Cron::parse("0 0 * * 5-7", None).unwrap();
        let ticks: Vec<Timestamp> = [
            "2026-12-03T12:00:00Z",
            "2026-12-04T12:00:00Z",
            "2026-12-05T12:00:00Z",
        ]
        .iter()
        .map(|t| c.next_after(at(t)).unwrap())
        .collect();
        assert_eq!(
            ticks,
            [
                at("2026-12-04T00:00:00Z"),
                at("2026-12-05T00:00:00Z"),
                at("2026-12-06T00:00:00Z")
            ]
        );
        // Macros, and seconds first with six fields.
        let c = Cron::parse("@daily", None).unwrap();
        assert_eq!(
            c.next_after(at("2026-12-01T10:00:00Z")),
            Some(at("2026-12-02T00:00:00Z"))
        );
        let c = Cron::parse("*/5 * * * * *", None).unwrap();
        assert_eq!(
            c.next_after(at("2026-12-01T10:00:01Z")),
            Some(at("2026-12-01T10:00:05Z"))
        );
    }

    #[test]
    fn a_daylight_saving_change_neither_skips_nor_doubles_a_daily_tick() {
        // 02:30 does not exist in Berlin on 2026-03-29.
        let c = Cron::parse("30 1 * * *", Some("Europe/Berlin")).unwrap();
        let first = c.next_after(at("2026-03-28T12:00:00Z")).unwrap();
        let second = c.next_after(first).unwrap();
        assert_eq!(first, at("2026-03-29T00:30:00Z"));
        assert_eq!(second, at("2026-03-29T23:30:00Z"), "one tick a day");
    }

    #[test]
    fn bad_expressions_and_time_zones_are_named() {
        let e = Cron::parse("61 * * * *", None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cron expression \"61 * * * *\" does not parse"),
            "{e}"
        );
        let e = Cron::parse("* * *", None).unwrap_err();
        assert!(e.to_string().contains("has 3 fields"), "{e}");
        let e = Cron::parse("0 0 * * 9", None).unwrap_err();
        assert!(e.to_string().contains("day of week 9"), "{e}");
        let e = Cron::parse("@daily", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(e, ScheduleError::TimeZone("Mars/Olympus".into()));
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

    proptest::proptest! {
        /// The latest due tick is the one found by stepping tick by tick.
        #[test]
        fn the_latest_due_tick_is_the_last_one_stepped_to(
            expr in proptest::sample::select(vec![
                "*/7 * * * *", "0 */3 * * *", "15 9 * * 1-5", "0 0 1 * *", "30 2 * * 0", "*/20 * * * * *",
            ]),
            zone in proptest::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
            since in 0i64..(90 * 86_400),
            span in 0i64..(3 * 86_400),
        ) {
            let c = Cron::parse(expr, Some(zone)).unwrap();
            let since = Timestamp::from_second(1_790_000_000 + since).unwrap();
            let now = Timestamp::from_second(since.as_second() + span).unwrap();
            let mut stepped = None;
            let mut count = 0;
            let mut t = since;
            while let Some(n) = c.next_after(t) {
                if n > now { break; }
                stepped = Some(n);
                count += 1;
                t = n;
            }
            proptest::prop_assert_eq!(c.latest_due(since, now), (stepped, count.min(SCAN)));
        }
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
