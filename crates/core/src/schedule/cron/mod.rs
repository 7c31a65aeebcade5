//! A cron schedule in a time zone, meaning what a Kubernetes CronJob's
//! `spec.schedule` means: kube-controller-manager (v1.34) parses it with
//! github.com/robfig/cron/v3 v3.0.1's `ParseStandard`, the time zone given
//! as a `TZ=` prefix, and steps from tick to tick with its `Next`. This is
//! a port of both (`parse.rs`, `next.rs`), proven equal to the Go original
//! by `tests/cron_reference.rs`, which compares them on thousands of
//! expressions, zones and start times.
//!
//! In short: five fields (minute hour day-of-month month day-of-week, 0-6
//! with 0 Sunday, names `jan` and `mon` in any case, lists, ranges, steps,
//! `*` and `?`), or a macro (`@yearly`, `@annually`, `@monthly`, `@weekly`,
//! `@daily`, `@midnight`, `@hourly`, `@every 1h30m`). When both day of
//! month and day of week are restricted (neither is `*` or `?`), a day
//! matches when EITHER does: `0 2 1 * 1` runs on every 1st and every
//! Monday. Our extension, not a CronJob's: six fields, seconds first.

mod next;
mod parse;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use parse::Spec;

/// Most ticks looked at in one scan for the latest due one.
pub(crate) const SCAN: usize = 10_000;

/// What is wrong with a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse: one line naming the field and
    /// what is wrong, e.g. `cron expression "61 * * * *": minute 61 is out
    /// of range 0-59`.
    #[error("cron expression {expr:?}: {why}")]
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
    spec: Spec,
    tz: TimeZone,
}

/// The whole second at or before `t`, as a Unix second.
fn floor_second(t: Timestamp) -> i64 {
    let s = t.as_second();
    if t.subsec_nanosecond() < 0 { s - 1 } else { s }
}

impl Cron {
    /// Parses `expr` in time zone `tz` (an IANA name; UTC when `None`).
    /// `expr` is what a Kubernetes CronJob takes: five fields (minute, hour,
    /// day of month, month, day of week 0-6 with 0 Sunday) or a macro
    /// (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
    /// `@hourly`, `@every DURATION`); or, our extension, six fields with
    /// seconds first. A `TZ=` or `CRON_TZ=` prefix is refused: the time zone
    /// is `tz`.
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Cron, ScheduleError> {
        let spec = parse::parse(expr).map_err(|e| ScheduleError::Cron {
            expr: expr.to_string(),
            why: e.to_string(),
        })?;
        let tz = match tz {
            None => TimeZone::UTC,
            Some(name) => {
                TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.to_string()))?
            }
        };
        Ok(Cron {
            text: expr.to_string(),
            spec,
            tz,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first tick after `t`, as robfig's `Next` finds it; none when
    /// there is no tick within about five years (robfig's zero time):
    /// `0 0 30 2 *` never ticks, nor does `0 0 29 2 *` after 2096 until
    /// 2104. As robfig's, not always strictly after `t`: around a zone
    /// change that is not on a whole hour (America/St_Johns until 2011,
    /// Pacific/Chatham), the walk can step back into the repeated time and
    /// return a tick at or before `t` (see [`Cron::next_strictly_after`]).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let second = match self.spec {
            Spec::Fields(ref f) => next::next(f, &self.tz, floor_second(t))?,
            Spec::Every { seconds } => floor_second(t).checked_add(seconds)?,
        };
        Timestamp::from_second(second).ok()
    }

    /// The first tick strictly after `t`: [`Cron::next_after`], and where
    /// that is not after `t`, `next_after` from a minute later, and so on
    /// for at most three hours (the longest zone change); none past that.
    pub fn next_strictly_after(&self, t: Timestamp) -> Option<Timestamp> {
        let mut from = t;
        for _ in 0..=180 {
            let n = self.next_after(from)?;
            if n > t {
                return Some(n);
            }
            from = from.checked_add(jiff::SignedDuration::from_secs(60)).ok()?;
        }
        None
    }

    /// The first tick strictly after `t` of the ticks counted from
    /// `since`: for fields or a macro, the first tick after `t` whatever
    /// `since` is; for `@every`, `since` plus a whole number of delays (as a
    /// CronJob counts them from its last tick).
    pub fn next_from(&self, since: Timestamp, t: Timestamp) -> Option<Timestamp> {
        match self.spec {
            Spec::Fields(_) => self.next_strictly_after(t.max(since)),
            Spec::Every { seconds } => {
                let base = floor_second(since);
                let k = (floor_second(t) - base).div_euclid(seconds).max(0) + 1;
                Timestamp::from_second(base.checked_add(k.checked_mul(seconds)?)?).ok()
            }
        }
    }

    /// The latest tick in `(since, now]`, and how many ticks fell there,
    /// counted up to a bound (10,000; past it, at least that many). Past
    /// the bound, the latest tick is found in ever larger spans back from
    /// `now` (a minute, an hour, a day, ...), so the work stays bounded
    /// whatever the schedule and however long it was down.
    pub fn latest_due(&self, since: Timestamp, now: Timestamp) -> (Option<Timestamp>, usize) {
        if let Spec::Every { seconds } = self.spec {
            // since + k·delay for k = 1, 2, ...: counted, not stepped.
            let base = floor_second(since);
            let k = (floor_second(now) - base).div_euclid(seconds);
            if k < 1 {
                return (None, 0);
            }
            let latest = base
                .checked_add(k.saturating_mul(seconds))
                .and_then(|s| Timestamp::from_second(s).ok());
            return (latest, usize::try_from(k).unwrap_or(SCAN).min(SCAN));
        }
        let scan = |from: Timestamp| {
            let mut latest = None;
            let mut count = 0;
            let mut t = from;
            while let Some(n) = self.next_strictly_after(t) {
                if n > now || count == SCAN {
                    break;
                }
                latest = Some(n);
                count += 1;
                t = n;
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

#[cfg(test)]
mod tests;
