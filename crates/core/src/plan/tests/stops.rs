//! Stopping attempts and the layer: timeouts, the layer deadline, fail-fast
//! and cancel.

use super::*;

#[test]
fn timeouts_stop_the_attempt_and_mark_it_timed_out() {
    let mut cats = vec![cat("slow", &[]), cat("after", &[0])];
    cats[0].timeout = s(10);
    let l = layer(Strategy::ParallelUnlimited, None, cats);
    let r = simulate(
        &l,
        &Scenario {
            attempts: vec![pass(60), pass(1)],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        terminal(&r, 0),
        Terminal {
            phase: Phase::TimedOut,
            cause: Cause::Timeout
        }
    );
    // Stopped by the executor, with the stop recorded that ended it.
    assert_eq!(
        r.categories[0].attempts[0].ended,
        Some((s(10), AttemptOutcome::Stopped))
    );
    assert_eq!(
        r.categories[0].attempts[0].stop,
        Some(Stop::End(Terminal {
            phase: Phase::TimedOut,
            cause: Cause::Timeout
        }))
    );
    assert_eq!(terminal(&r, 1).phase, Phase::Skipped);
    assert_eq!(r.makespan, s(10));
}

#[test]
fn layer_deadline_times_out_running_and_cancels_waiting() {
    let mut settings = LayerSettings::new("t", Strategy::Sequential, None);
    settings.deadline = Some(s(30));
    let l = LayerPlan::new(settings, vec![cat("a", &[]), cat("b", &[]), cat("c", &[])]).unwrap();
    let r = simulate(
        &l,
        &Scenario {
            attempts: vec![pass(20), pass(20), pass(20)],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(terminal(&r, 0).phase, Phase::Succeeded);
    assert_eq!(
        terminal(&r, 1),
        Terminal {
            phase: Phase::TimedOut,
            cause: Cause::LayerDeadline
        }
    );
    assert_eq!(
        terminal(&r, 2),
        Terminal {
            phase: Phase::Cancelled,
            cause: Cause::LayerDeadline
        }
    );
    assert_eq!(r.outcome, LayerOutcome::TimedOut);
    assert_eq!(r.makespan, s(30));
}

#[test]
fn fail_fast_cancels_running_and_waiting() {
    let mut settings = LayerSettings::new("t", Strategy::ParallelLimited, Some(2));
    settings.fail_fast = true;
    let l = LayerPlan::new(
        settings,
        vec![cat("a", &[]), cat("b", &[]), cat("c", &[]), cat("d", &[0])],
    )
    .unwrap();
    let r = simulate(
        &l,
        &Scenario {
            attempts: vec![script(&[(3, Scripted::Fail)]), pass(50), pass(1), pass(1)],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(terminal(&r, 0).phase, Phase::Failed);
    assert_eq!(
        terminal(&r, 1),
        Terminal {
            phase: Phase::Cancelled,
            cause: Cause::FailFast(0)
        }
    );
    assert_eq!(
        r.categories[1].attempts[0].ended,
        Some((s(3), AttemptOutcome::Stopped))
    );
    assert_eq!(
        terminal(&r, 2),
        Terminal {
            phase: Phase::Cancelled,
            cause: Cause::FailFast(0)
        }
    );
    assert_eq!(
        terminal(&r, 3),
        Terminal {
            phase: Phase::Skipped,
            cause: Cause::DependencyFailed(0)
        }
    );
    assert_eq!(r.makespan, s(3));
    assert_eq!(r.outcome, LayerOutcome::Failed);
}

#[test]
fn cancel_stops_everything() {
    let l = layer(
        Strategy::ParallelLimited,
        Some(1),
        vec![cat("a", &[]), cat("b", &[])],
    );
    let r = simulate(
        &l,
        &Scenario {
            attempts: vec![pass(50), pass(50)],
            cancel_at: Some(s(5)),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        terminal(&r, 0),
        Terminal {
            phase: Phase::Cancelled,
            cause: Cause::CancelRequested
        }
    );
    assert_eq!(
        terminal(&r, 1),
        Terminal {
            phase: Phase::Cancelled,
            cause: Cause::CancelRequested
        }
    );
    assert_eq!(r.outcome, LayerOutcome::Cancelled);
    assert_eq!(r.makespan, s(5));
}
