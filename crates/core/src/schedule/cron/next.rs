//! The next tick of a cron schedule: robfig/cron v3.0.1's
//! `SpecSchedule.Next` (`spec.go`), step by step, with Go's `time.Date`
//! and `AddDate` in the schedule's time zone, so that it lands where a
//! Kubernetes CronJob lands, through daylight saving changes too.
//!
//! What that means on a daylight saving change, as on a CronJob:
//! - the walk looks for the month, then the day, then the hour, minute and
//!   second, on the wall clock; when a field does not match it goes to the
//!   start of that unit (Go's `time.Date` with the lower fields zero) and
//!   adds one unit (a month or a day by the calendar, an hour or a minute
//!   by the clock), starting over from the month whenever a unit wraps;
//! - a tick in the hour skipped in spring does not run that day
//!   (`30 2 * * *` in Europe/Berlin skips 29 March 2026): stepping the
//!   clock by the hour never shows 02:xx;
//! - a tick in the hour repeated in autumn runs twice, once in each
//!   (`30 2 * * *` in Europe/Berlin runs at 00:30 and 01:30 UTC on 25
//!   October 2026);
//! - where midnight is skipped (America/Sao_Paulo until 2019), adding a day
//!   lands off midnight and the hour is moved back to 0 or on to the next
//!   midnight; a wall time that does not exist is resolved as `time.Date`
//!   resolves it (looking up the offset at the wall time read as UTC, and
//!   again at the instant that gives);
//! - where a change is not on a whole hour (Australia/Lord_Howe's half
//!   hour, America/St_Johns at 00:01 until 2011, Pacific/Chatham at 02:45),
//!   the minute walk crosses it without looking at the hour again, so a
//!   tick can land in the hour after the one written, or (stepping back
//!   into a repeated time) at or before the start: robfig's quirks, kept.
//!
//! No tick by the end of the fifth calendar year after the start's (in the
//! zone) is none: robfig returns the zero time there, and we `None`. The walk is bounded besides: at most [`MAX_STEPS`] steps (a step
//! per day and per month looked at, so a walk over the five years takes a
//! few thousand at most), and a schedule with nothing to match (a field
//! written `,`) is known to be none before any.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::parse::{Fields, STAR};

/// Most steps one walk takes before it gives up (none).
pub(super) const MAX_STEPS: u32 = 100_000;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
const MINUTE: i64 = 60;

/// A moment as the clock on the wall in the zone shows it.
#[derive(Debug, Clone, Copy)]
struct Local {
    year: i64,
    /// 1-12.
    month: i64,
    /// 1-31.
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// 0 Sunday ... 6 Saturday.
    weekday: i64,
}

/// The zone's offset from UTC at `unix`, in seconds; none outside the
/// range of times jiff handles.
fn offset(tz: &TimeZone, unix: i64) -> Option<i64> {
    let ts = Timestamp::from_second(unix).ok()?;
    Some(i64::from(tz.to_offset(ts).seconds()))
}

/// The wall clock in `tz` at `unix`.
fn local(tz: &TimeZone, unix: i64) -> Option<Local> {
    let wall = unix.checked_add(offset(tz, unix)?)?;
    let days = wall.div_euclid(DAY);
    let secs = wall.rem_euclid(DAY);
    let (year, month, day) = civil_from_days(days);
    Some(Local {
        year,
        month,
        day,
        hour: secs / HOUR,
        minute: secs % HOUR / MINUTE,
        second: secs % MINUTE,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7),
    })
}

/// Go's `norm`: `lo` into `0..base`, the overflow carried into `hi`.
fn norm(hi: i64, lo: i64, base: i64) -> (i64, i64) {
    (hi + lo.div_euclid(base), lo.rem_euclid(base))
}

/// Go's `time.Date(year, month, day, hour, min, sec, 0, tz)` as a Unix
/// second: fields out of range carry over (day 32 is the next month's
/// first); a wall time that does not exist or exists twice is resolved as
/// Go resolves it, by looking up the offset at the wall time read as UTC,
/// and again at the instant that gives.
fn date(
    tz: &TimeZone,
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    min: i64,
    sec: i64,
) -> Option<i64> {
    let (year, m0) = norm(year, month - 1, 12);
    let (min, sec) = norm(min, sec, 60);
    let (hour, min) = norm(hour, min, 60);
    let (day, hour) = norm(day, hour, 24);
    let days = days_from_civil(year, m0 + 1, 1).checked_add(day - 1)?;
    let wall = days
        .checked_mul(DAY)?
        .checked_add(hour * HOUR + min * MINUTE + sec)?;
    let first = offset(tz, wall)?;
    // Go: with the offset found, if the instant is outside that offset's
    // span, the offset at the instant; either way the offset at it.
    let offset = if first == 0 {
        0
    } else {
        offset(tz, wall - first)?
    };
    wall.checked_sub(offset)
}

/// Go's `t.AddDate(0, months, days)` in `tz`.
fn add_date(tz: &TimeZone, t: i64, months: i64, days: i64) -> Option<i64> {
    let l = local(tz, t)?;
    date(
        tz,
        l.year,
        l.month + months,
        l.day + days,
        l.hour,
        l.minute,
        l.second,
    )
}

/// Whether value `v` is in set `bits`.
fn has(bits: u64, v: i64) -> bool {
    (0..63).contains(&v) && bits >> v & 1 == 1
}

/// robfig's `dayMatches`: day of month AND day of week when either was
/// written `*` or `?`, day of month OR day of week when both are
/// restricted (as in Vixie cron).
fn day_matches(f: &Fields, l: &Local) -> bool {
    let dom = has(f.dom, l.day);
    let dow = has(f.dow, l.weekday);
    if (f.dom | f.dow) & STAR != 0 {
        dom && dow
    } else {
        dom || dow
    }
}

/// The first tick of `f` in `tz` after Unix second `after` (the whole
/// second at or before the moment asked about), as robfig's `Next`; none
/// when there is none within five years or the walk is past its bound.
pub(super) fn next(f: &Fields, tz: &TimeZone, after: i64) -> Option<i64> {
    walk(f, tz, after, &mut 0)
}

/// [`next`], counting its steps in `steps`.
fn walk(f: &Fields, tz: &TimeZone, after: i64, steps: &mut u32) -> Option<i64> {
    if f.never() {
        return None;
    }
    let mut step = || {
        *steps += 1;
        (*steps <= MAX_STEPS).then_some(())
    };
    // The second after; the lower fields are zeroed once one is added to.
    let mut t = after.checked_add(1)?;
    let mut added = false;
    let year_limit = local(tz, t)?.year + 5;
    'wrap: loop {
        let mut l = local(tz, t)?;
        if l.year > year_limit {
            return None;
        }
        while !has(f.month, l.month) {
            step()?;
            if !added {
                added = true;
                t = date(tz, l.year, l.month, 1, 0, 0, 0)?;
            }
            t = add_date(tz, t, 1, 0)?;
            l = local(tz, t)?;
            if l.month == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(f, &l) {
            step()?;
            if !added {
                added = true;
                t = date(tz, l.year, l.month, l.day, 0, 0, 0)?;
            }
            t = add_date(tz, t, 0, 1)?;
            l = local(tz, t)?;
            // Off midnight (the zone skipped it): back to 0, or on to the
            // next midnight.
            if l.hour != 0 {
                if l.hour > 12 {
                    t += (24 - l.hour) * HOUR;
                } else {
                    t -= l.hour * HOUR;
                }
                l = local(tz, t)?;
            }
            if l.day == 1 {
                continue 'wrap;
            }
        }
        while !has(f.hour, l.hour) {
            step()?;
            if !added {
                added = true;
                t = date(tz, l.year, l.month, l.day, l.hour, 0, 0)?;
            }
            t += HOUR;
            l = local(tz, t)?;
            if l.hour == 0 {
                continue 'wrap;
            }
        }
        while !has(f.minute, l.minute) {
            step()?;
            if !added {
                added = true;
                // Go's Truncate(time.Minute), on the instant.
                t -= t.rem_euclid(MINUTE);
            }
            t += MINUTE;
            l = local(tz, t)?;
            if l.minute == 0 {
                continue 'wrap;
            }
        }
        while !has(f.second, l.second) {
            step()?;
            // Truncate(time.Second) leaves a whole second as it is.
            added = true;
            t += 1;
            l = local(tz, t)?;
            if l.second == 0 {
                continue 'wrap;
            }
        }
        return Some(t);
    }
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip() {
        for days in (-800_000..800_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn a_walk_takes_a_few_thousand_steps_at_most() {
        let fields = |expr: &str| match super::super::parse::parse(expr) {
            Ok(super::super::parse::Spec::Fields(f)) => f,
            other => panic!("{expr}: {other:?}"),
        };
        let mut most = 0;
        for zone in [
            "UTC",
            "Europe/Berlin",
            "America/Sao_Paulo",
            "America/St_Johns",
            "Australia/Lord_Howe",
        ] {
            let tz = TimeZone::get(zone).unwrap();
            for expr in [
                "0 0 30 2 *",
                "0 0 31 2,4,6,9,11 *",
                "59 23 31 * 1",
                "59 23 29 2 *",
                "30 2 * * *",
                "0 0 1 1 *",
                "0 0 1 1 0",
                "* * * * *",
                "0 0 , * *",
            ] {
                let f = fields(expr);
                for year in [2010, 2016, 2026, 2096] {
                    let mut steps = 0;
                    let from = days_from_civil(year, 3, 1) * DAY;
                    walk(&f, &tz, from, &mut steps);
                    most = most.max(steps);
                }
            }
        }
        // A step per day looked at, and per month: under a thousand here
        // (day 31 of the short months), never more than the days of six
        // years and their months.
        assert!((300..1_000).contains(&most), "{most}");
        const { assert!(MAX_STEPS > 20 * 6 * 366) };
    }

    #[test]
    fn go_date_resolves_a_skipped_or_repeated_wall_time_as_go_does() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let ny = TimeZone::get("America/New_York").unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap().as_second();
        // Skipped: Berlin (east of UTC) forward, New York (west) back.
        assert_eq!(
            date(&berlin, 2026, 3, 29, 2, 30, 0),
            Some(at("2026-03-29T01:30:00Z"))
        );
        assert_eq!(
            date(&ny, 2026, 3, 8, 2, 30, 0),
            Some(at("2026-03-08T06:30:00Z"))
        );
        // Repeated: Berlin the second time, New York the first.
        assert_eq!(
            date(&berlin, 2026, 10, 25, 2, 30, 0),
            Some(at("2026-10-25T01:30:00Z"))
        );
        assert_eq!(
            date(&ny, 2026, 11, 1, 1, 30, 0),
            Some(at("2026-11-01T05:30:00Z"))
        );
        // Carries: 31 January plus a month is 3 March.
        let utc = TimeZone::UTC;
        let jan31 = at("2026-01-31T10:00:00Z");
        assert_eq!(
            add_date(&utc, jan31, 1, 0),
            Some(at("2026-03-03T10:00:00Z"))
        );
    }
}
