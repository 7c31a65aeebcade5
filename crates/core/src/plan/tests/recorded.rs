//! Recorded ends and stops: an end once recorded is never decided again,
//! and a stale view gives the same ends.

use super::*;

#[test]
fn a_recorded_end_is_never_decided_again() {
    let l = layer(Strategy::ParallelUnlimited, None, vec![cat("a", &[])]);
    let done = CategoryObs {
        granted: false,
        attempts: vec![AttemptObs {
            started_at: s(0),
            stop: None,
            ended: Some((s(1), AttemptOutcome::Succeeded)),
        }],
        terminal: Some(Terminal {
            phase: Phase::Succeeded,
            cause: Cause::Passed,
        }),
    };
    let d = plan(&l, &[done], &LayerObs::at(s(2), s(0)));
    assert!(d.actions.is_empty());
    assert_eq!(d.outcome, Some(LayerOutcome::Succeeded));
}

#[test]
fn a_stale_view_after_a_cancel_gives_the_same_ends() {
    // a runs, c waits on it; the run is cancelled.
    let l = layer(
        Strategy::ParallelUnlimited,
        None,
        vec![cat("a", &[]), cat("c", &[0])],
    );
    let running = CategoryObs {
        granted: false,
        attempts: vec![AttemptObs {
            started_at: s(0),
            stop: None,
            ended: None,
        }],
        terminal: None,
    };
    let obs = LayerObs {
        cancel: true,
        ..LayerObs::at(s(5), s(0))
    };
    let first = plan(&l, &[running, CategoryObs::default()], &obs);
    let cancelled = Terminal {
        phase: Phase::Cancelled,
        cause: Cause::CancelRequested,
    };
    assert!(first.actions.contains(&Action::Finish {
        category: 1,
        terminal: cancelled
    }));
    // Asked again once a has ended as cancelled, but without c's recorded end
    // (an executor whose cache is behind): c still ends Cancelled, not Skipped.
    let a_done = CategoryObs {
        granted: false,
        attempts: vec![AttemptObs {
            started_at: s(0),
            stop: None,
            ended: Some((s(6), AttemptOutcome::Stopped)),
        }],
        terminal: Some(cancelled),
    };
    let again = plan(
        &l,
        &[a_done, CategoryObs::default()],
        &LayerObs { now: s(7), ..obs },
    );
    assert!(
        again.actions.contains(&Action::Finish {
            category: 1,
            terminal: cancelled
        }),
        "{:?}",
        again.actions
    );
    // The same after a layer deadline.
    let mut settings = LayerSettings::new("t", Strategy::ParallelUnlimited, None);
    settings.deadline = Some(s(3));
    let l = LayerPlan::new(settings, vec![cat("a", &[]), cat("c", &[0])]).unwrap();
    let timed_out = Terminal {
        phase: Phase::TimedOut,
        cause: Cause::LayerDeadline,
    };
    let a_done = CategoryObs {
        granted: false,
        attempts: vec![AttemptObs {
            started_at: s(0),
            stop: None,
            ended: Some((s(4), AttemptOutcome::Stopped)),
        }],
        terminal: Some(timed_out),
    };
    let d = plan(
        &l,
        &[a_done, CategoryObs::default()],
        &LayerObs::at(s(5), s(0)),
    );
    assert!(
        d.actions.contains(&Action::Finish {
            category: 1,
            terminal: Terminal {
                phase: Phase::Cancelled,
                cause: Cause::LayerDeadline
            }
        }),
        "{:?}",
        d.actions
    );
}

#[test]
fn a_recorded_stop_decides_the_end_however_the_attempt_ended() {
    let mut c = cat("a", &[]);
    c.retries = 3;
    let l = layer(Strategy::ParallelUnlimited, None, vec![c]);
    let cancelled = Terminal {
        phase: Phase::Cancelled,
        cause: Cause::CancelRequested,
    };
    // Still running with a stop recorded: the stop is asked for again, and
    // nothing else is decided (not even when the cancel is no longer seen).
    let mut a = AttemptObs::running(s(0));
    a.stop = Some(Stop::End(cancelled));
    let running = CategoryObs {
        granted: false,
        attempts: vec![a],
        terminal: None,
    };
    let d = plan(&l, &[running], &LayerObs::at(s(3), s(0)));
    assert_eq!(
        d.actions,
        vec![Action::Stop {
            category: 0,
            stop: Stop::End(cancelled)
        }]
    );
    assert_eq!(d.phases, vec![Phase::Running]);
    // Ended, as a failure or a pass: it ends as the stop said, retries unused.
    for outcome in [
        AttemptOutcome::Failed { infra: false },
        AttemptOutcome::Succeeded,
        AttemptOutcome::Stopped,
    ] {
        a.ended = Some((s(4), outcome));
        let ended = CategoryObs {
            granted: false,
            attempts: vec![a],
            terminal: None,
        };
        let d = plan(&l, &[ended], &LayerObs::at(s(5), s(0)));
        assert_eq!(
            d.actions,
            vec![Action::Finish {
                category: 0,
                terminal: cancelled
            }]
        );
        assert_eq!(d.outcome, Some(LayerOutcome::Cancelled));
    }
    // An interrupted attempt that ended failing uses no retry: it starts again.
    let mut c = cat("a", &[]);
    c.retries = 0;
    let l = layer(Strategy::ParallelUnlimited, None, vec![c]);
    let mut a = AttemptObs::ended(s(0), s(2), AttemptOutcome::Failed { infra: false });
    a.stop = Some(Stop::Interrupt);
    let d = plan(
        &l,
        &[CategoryObs {
            granted: false,
            attempts: vec![a],
            terminal: None,
        }],
        &LayerObs::at(s(3), s(0)),
    );
    assert_eq!(
        d.actions,
        vec![Action::Start {
            category: 0,
            attempt: 2
        }]
    );
}

#[test]
fn a_timeout_decided_on_a_stale_view_gives_way_to_an_end_in_time() {
    let mut a = cat("a", &[]);
    a.timeout = s(10);
    let l = layer(Strategy::ParallelUnlimited, None, vec![a]);
    let timed_out = Terminal {
        phase: Phase::TimedOut,
        cause: Cause::Timeout,
    };
    let ended = |at, outcome| CategoryObs {
        granted: false,
        attempts: vec![AttemptObs {
            started_at: s(0),
            stop: Some(Stop::End(timed_out)),
            ended: Some((s(at), outcome)),
        }],
        terminal: None,
    };
    let finish = |obs: CategoryObs| {
        plan(&l, &[obs], &LayerObs::at(s(12), s(0)))
            .actions
            .into_iter()
            .find_map(|a| match a {
                Action::Finish { terminal, .. } => Some(terminal),
                _ => None,
            })
    };
    // The executor learned of the end only after the timeout was due, and
    // recorded a stop: the attempt had passed at 3 s, and that stands.
    assert_eq!(
        finish(ended(3, AttemptOutcome::Succeeded)).map(|t| t.phase),
        Some(Phase::Succeeded)
    );
    // Ended past its timeout, or stopped by the executor: timed out.
    assert_eq!(
        finish(ended(11, AttemptOutcome::Succeeded)),
        Some(timed_out)
    );
    assert_eq!(finish(ended(3, AttemptOutcome::Stopped)), Some(timed_out));
    // A stop of another kind (a cancel) is kept, whenever it ended.
    let cancelled = Terminal {
        phase: Phase::Cancelled,
        cause: Cause::CancelRequested,
    };
    let mut obs = ended(3, AttemptOutcome::Succeeded);
    obs.attempts[0].stop = Some(Stop::End(cancelled));
    assert_eq!(finish(obs), Some(cancelled));
}
