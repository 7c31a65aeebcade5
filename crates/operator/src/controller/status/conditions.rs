//! Pure status computation: `metav1.Condition`s that keep their transition
//! times while unchanged (so a reconcile that changes nothing writes nothing),
//! and the conditions of a run's phase.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ConditionType, LayerPhase};
use crate::plan::Phase;

/// Longest message of a condition, in characters (the full text is in the
/// status's `message` or the CategoryRuns).
pub const MAX_CONDITION_MESSAGE: usize = 512;

/// `message` cut to `max` characters, with an ellipsis when cut.
pub fn bounded(message: &str, max: usize) -> String {
    if message.chars().count() <= max {
        return message.to_string();
    }
    let mut s: String = message.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Longest note of an Event, in characters.
pub const MAX_EVENT_NOTE: usize = 1000;

/// `message` as one line: each line trimmed, lines that only point (a
/// parser's caret line, `   ^^^`) or are empty dropped, the rest joined
/// with `; `. Conditions and Events are read one line at a time (`kubectl
/// get`, `kubectl describe`, `kubectl wait`), where a second line is lost or
/// breaks the table.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l
                    .chars()
                    .all(|c| matches!(c, '^' | '~' | '-' | '|' | ' ' | '\t'))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An Event's note: one line, bounded.
pub fn event_note(text: &str) -> String {
    bounded(&one_line(text), MAX_EVENT_NOTE)
}

/// One condition (`None`: `Unknown`), keeping the transition time of
/// `previous` when the status did not change.
pub fn condition(
    previous: &[Condition],
    type_: ConditionType,
    status: Option<bool>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = match status {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    }
    .to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_.as_str() && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.as_str().to_string(),
        status,
        reason: reason.to_string(),
        message: bounded(&one_line(message), MAX_CONDITION_MESSAGE),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Why a run cannot go on, for the `Stalled` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// CamelCase reason (`InvalidConfig`, `DependencyFailed`, ...).
    pub reason: String,
    /// What is wrong.
    pub message: String,
}

/// The six conditions of a run or category in `phase`: `Succeeded`
/// (`Unknown` while it works, then whether it passed: the Tekton/Knative
/// convention, so `kubectl wait --for=condition=Succeeded=False` waits for a
/// failure), `Complete` (ended), `Failed` (ended and did not pass, as a
/// Job's: `kubectl wait --for=condition=Failed`), `Ready` (passed),
/// `Reconciling` (still working), `Stalled` (cannot go on).
pub fn phase_conditions(
    previous: &[Condition],
    terminal: Option<bool>,
    reason: &str,
    message: &str,
    stall: Option<&Stall>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let passed = terminal == Some(true);
    let done = terminal.is_some();
    let (stall_reason, stall_message) = stall.map_or(("NotStalled", ""), |s| {
        (s.reason.as_str(), s.message.as_str())
    });
    vec![
        condition(
            previous,
            ConditionType::Succeeded,
            terminal,
            reason,
            message,
            generation,
            now,
        ),
        condition(
            previous,
            ConditionType::Complete,
            Some(done),
            reason,
            message,
            generation,
            now,
        ),
        condition(
            previous,
            ConditionType::Failed,
            Some(done && !passed),
            reason,
            message,
            generation,
            now,
        ),
        condition(
            previous,
            ConditionType::Ready,
            Some(passed),
            reason,
            message,
            generation,
            now,
        ),
        condition(
            previous,
            ConditionType::Reconciling,
            Some(!done && stall.is_none()),
            reason,
            message,
            generation,
            now,
        ),
        condition(
            previous,
            ConditionType::Stalled,
            Some(stall.is_some()),
            stall_reason,
            stall_message,
            generation,
            now,
        ),
    ]
}

/// `Some(passed)` once a layer phase is final.
pub fn layer_terminal(phase: LayerPhase) -> Option<bool> {
    phase
        .is_terminal()
        .then_some(phase == LayerPhase::Succeeded)
}

/// `Some(passed)` once a category phase is final.
pub fn category_terminal(phase: Phase) -> Option<bool> {
    phase.is_terminal().then_some(phase == Phase::Succeeded)
}

/// `Ready=True` (with `reason` and `message`) and `Stalled=False`, keeping
/// the transition times of `previous`.
pub fn ready_conditions(
    previous: &[Condition],
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    vec![
        condition(
            previous,
            ConditionType::Ready,
            Some(true),
            reason,
            message,
            generation,
            now,
        ),
        condition(
            previous,
            ConditionType::Stalled,
            Some(false),
            "NotStalled",
            "",
            generation,
            now,
        ),
    ]
}

/// `Ready=False` and `Stalled=True`, both with `stall`'s reason and message.
pub fn stalled_conditions(
    previous: &[Condition],
    stall: &Stall,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    [ConditionType::Ready, ConditionType::Stalled]
        .into_iter()
        .map(|t| {
            let stalled = t == ConditionType::Stalled;
            condition(
                previous,
                t,
                Some(stalled),
                &stall.reason,
                &stall.message,
                generation,
                now,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn messages_become_one_bounded_line_without_caret_lines() {
        let parser = "cron expression \"61 * * * *\" does not parse:\n61 * * * *\n^^\n  minute out of range\n";
        assert_eq!(
            one_line(parser),
            "cron expression \"61 * * * *\" does not parse:; 61 * * * *; minute out of range"
        );
        let c = condition(
            &[],
            ConditionType::Stalled,
            Some(true),
            "InvalidSchedule",
            &format!("{}\n{}", "x".repeat(600), "^"),
            None,
            &Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        );
        assert!(!c.message.contains('\n'));
        assert_eq!(c.message.chars().count(), MAX_CONDITION_MESSAGE);
        assert_eq!(event_note("a\n\n  b  \n").as_str(), "a; b");
        assert_eq!(
            event_note(&"y".repeat(5000)).chars().count(),
            MAX_EVENT_NOTE
        );
    }

    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn transition_times_hold_while_status_holds() {
        let first = phase_conditions(&[], None, "Running", "1 of 3 done", None, Some(1), &t(100));
        assert!(first.iter().all(|c| c.last_transition_time == t(100)));
        let reconciling = first.iter().find(|c| c.type_ == "Reconciling").unwrap();
        assert_eq!(reconciling.status, "True");
        let succeeded = first.iter().find(|c| c.type_ == "Succeeded").unwrap();
        assert_eq!(succeeded.status, "Unknown", "not decided while it works");
        // Nothing changed but the message: same times, so only the message differs.
        let again = phase_conditions(
            &first,
            None,
            "Running",
            "2 of 3 done",
            None,
            Some(1),
            &t(200),
        );
        assert!(again.iter().all(|c| c.last_transition_time == t(100)));
        // Success flips Succeeded, Complete, Ready and Reconciling at the new time.
        let done = phase_conditions(
            &again,
            Some(true),
            "Succeeded",
            "all passed",
            None,
            Some(1),
            &t(300),
        );
        let get = |n: &str| done.iter().find(|c| c.type_ == n).unwrap();
        for n in ["Succeeded", "Complete", "Ready"] {
            assert_eq!(
                (get(n).status.as_str(), &get(n).last_transition_time),
                ("True", &t(300)),
                "{n}"
            );
        }
        assert_eq!(
            (
                get("Reconciling").status.as_str(),
                &get("Reconciling").last_transition_time
            ),
            ("False", &t(300))
        );
        // Failed was False from the start and stays so.
        assert_eq!(
            (
                get("Failed").status.as_str(),
                &get("Failed").last_transition_time
            ),
            ("False", &t(100))
        );
        assert_eq!(
            (
                get("Stalled").status.as_str(),
                &get("Stalled").last_transition_time
            ),
            ("False", &t(100))
        );
        assert!(done.iter().all(|c| c.observed_generation == Some(1)));
    }

    #[test]
    fn messages_are_bounded() {
        let long = "x".repeat(10_000);
        let c = phase_conditions(&[], Some(false), "Failed", &long, None, None, &t(1));
        assert!(
            c.iter()
                .all(|c| c.message.chars().count() <= MAX_CONDITION_MESSAGE)
        );
        assert!(c[0].message.ends_with('…'));
        assert_eq!(bounded("short", 10), "short");
    }

    #[test]
    fn failure_and_stall() {
        let stall = Stall {
            reason: "InvalidConfig".into(),
            message: "layers.x: unknown field".into(),
        };
        let c = phase_conditions(
            &[],
            Some(false),
            "InvalidConfig",
            "bad config",
            Some(&stall),
            Some(2),
            &t(1),
        );
        let get = |n: &str| c.iter().find(|x| x.type_ == n).unwrap();
        assert_eq!(get("Succeeded").status, "False");
        assert_eq!(get("Complete").status, "True");
        assert_eq!(
            (get("Failed").status.as_str(), get("Failed").reason.as_str()),
            ("True", "InvalidConfig")
        );
        assert_eq!(get("Ready").status, "False");
        assert_eq!(get("Reconciling").status, "False");
        assert_eq!(
            (
                get("Stalled").status.as_str(),
                get("Stalled").reason.as_str()
            ),
            ("True", "InvalidConfig")
        );
        assert_eq!(layer_terminal(LayerPhase::Running), None);
        assert_eq!(layer_terminal(LayerPhase::TimedOut), Some(false));
        assert_eq!(category_terminal(Phase::Skipped), Some(false));
    }
}
