//! Ages and durations as kubectl prints them (`45s`, `3m12s`, `5h`, `2d3h`).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// `d` as kubectl's `HumanDuration` prints an age: seconds up to two
/// minutes, then minutes and seconds, minutes, hours and minutes, hours,
/// days and hours, days, years.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86_400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        match s % 60 {
            0 => format!("{m}m"),
            r => format!("{m}m{r}s"),
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            r => format!("{h}h{r}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{days}d"),
            r => format!("{days}d{r}h"),
        }
    } else if h < 24 * 365 * 2 {
        format!("{days}d")
    } else {
        format!("{}y", days / 365)
    }
}

/// The time from `from` to `to` (zero if `to` is earlier).
pub fn between(from: &Time, to: Timestamp) -> Duration {
    to.duration_since(from.0)
        .try_into()
        .unwrap_or(Duration::ZERO)
}

/// How long something that started at `start` ran: until `end`, or until
/// `now` while it goes on; `-` before it started.
pub fn ran(start: Option<&Time>, end: Option<&Time>, now: Timestamp) -> String {
    match start {
        None => "-".to_string(),
        Some(s) => human(between(s, end.map_or(now, |e| e.0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (192, "3m12s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (5 * 3600, "5h"),
            (30 * 3600, "30h"),
            (2 * 86_400 + 3 * 3600, "2d3h"),
            (10 * 86_400, "10d"),
            (800 * 86_400, "2y"),
        ];
        for (s, want) in cases {
            assert_eq!(human(Duration::from_secs(s)), want, "{s}");
        }
    }

    #[test]
    fn a_duration_runs_to_its_end_or_to_now() {
        let t = |s| Time(Timestamp::from_second(s).unwrap());
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(ran(None, None, now), "-");
        assert_eq!(ran(Some(&t(900)), None, now), "100s");
        assert_eq!(ran(Some(&t(900)), Some(&t(930)), now), "30s");
        assert_eq!(ran(Some(&t(2_000)), None, now), "0s");
    }
}
