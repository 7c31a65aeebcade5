//! Scenario tests of the planner: one behaviour each, by hand.

use std::time::Duration;

use super::sim::{AttemptScript, Scenario, Scripted, SimEventKind, simulate};
use super::*;
use crate::layer::{CategoryPlan, LayerPlan, LayerSettings, Quantities, Strategy};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn cat(name: &str, deps: &[usize]) -> CategoryPlan {
    let mut c = CategoryPlan::new(name, s(100));
    c.dependencies = deps.to_vec();
    c
}

fn layer(strategy: Strategy, limit: Option<u32>, cats: Vec<CategoryPlan>) -> LayerPlan {
    LayerPlan::new(LayerSettings::new("t", strategy, limit), cats).unwrap()
}

fn pass(secs: u64) -> Vec<AttemptScript> {
    vec![AttemptScript {
        duration: s(secs),
        end: Scripted::Pass,
    }]
}

fn script(list: &[(u64, Scripted)]) -> Vec<AttemptScript> {
    list.iter()
        .map(|&(d, end)| AttemptScript {
            duration: s(d),
            end,
        })
        .collect()
}

fn starts(r: &sim::SimResult) -> Vec<(u64, usize, u32)> {
    r.trace
        .iter()
        .filter_map(|e| match e.kind {
            SimEventKind::Started(a) => Some((e.at.as_secs(), e.category, a)),
            _ => None,
        })
        .collect()
}

fn terminal(r: &sim::SimResult, i: usize) -> Terminal {
    r.categories[i].terminal.unwrap()
}

#[test]
fn sequential_runs_by_priority_one_at_a_time() {
    let mut cats = vec![cat("a", &[]), cat("b", &[]), cat("c", &[])];
    cats[0].priority_order = 3;
    cats[1].priority_order = 1;
    cats[2].priority_order = 2;
    let l = layer(Strategy::Sequential, None, cats);
    let r = simulate(
        &l,
        &Scenario {
            attempts: vec![pass(1), pass(2), pass(3)],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(starts(&r), vec![(0, 1, 1), (2, 2, 1), (5, 0, 1)]);
    assert_eq!(r.outcome, LayerOutcome::Succeeded);
    assert_eq!(r.makespan, s(6));
}

#[test]
fn dependencies_wait_and_failures_skip_dependents_transitively() {
    let l = layer(
        Strategy::ParallelUnlimited,
        None,
        vec![cat("a", &[]), cat("b", &[0]), cat("c", &[1]), cat("d", &[])],
    );
    let r = simulate(
        &l,
        &Scenario {
            attempts: vec![script(&[(5, Scripted::Fail)]), pass(1), pass(1), pass(7)],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(starts(&r), vec![(0, 0, 1), (0, 3, 1)]);
    assert_eq!(
        terminal(&r, 0),
        Terminal {
            phase: Phase::Failed,
            cause: Cause::TestsFailed
        }
    );
    assert_eq!(
        terminal(&r, 1),
        Terminal {
            phase: Phase::Skipped,
            cause: Cause::DependencyFailed(0)
        }
    );
    assert_eq!(
        terminal(&r, 2),
        Terminal {
            phase: Phase::Skipped,
            cause: Cause::DependencyFailed(1)
        }
    );
    assert_eq!(terminal(&r, 3).phase, Phase::Succeeded);
    assert_eq!(r.outcome, LayerOutcome::Failed);
    assert_eq!(r.makespan, s(7));
}

#[test]
fn parallel_limit_and_budget_hold_back_starts() {
    let mut cats: Vec<CategoryPlan> = (0..4).map(|i| cat(&format!("c{i}"), &[])).collect();
    for c in &mut cats {
        c.resources.limits.cpu_millis = Some(1500);
    }
    let mut settings = LayerSettings::new("t", Strategy::ParallelLimited, Some(3));
    settings.budget = Quantities {
        cpu_millis: Some(3000),
        memory_bytes: None,
    };
    let l = LayerPlan::new(settings, cats).unwrap();
    let d = plan(
        &l,
        &vec![CategoryObs::default(); 4],
        &LayerObs::at(s(0), s(0)),
    );
    assert_eq!(
        d.actions.len(),
        2,
        "budget allows two of 1.5 CPU in 3 CPU: {:?}",
        d.actions
    );
    assert_eq!(d.waiting[2], Some(WaitReason::Budget));
}

#[test]
fn hybrid_smart_starts_the_longest_remaining_path_first() {
    // a (1s) -> b (50s) is the long chain; c, d are 10s each.
    let mut cats = vec![cat("c", &[]), cat("d", &[]), cat("a", &[]), cat("b", &[2])];
    for (c, est) in cats.iter_mut().zip([10, 10, 1, 50]) {
        c.estimate = s(est);
    }
    let l = layer(Strategy::HybridSmart, Some(1), cats.clone());
    let d = plan(
        &l,
        &vec![CategoryObs::default(); 4],
        &LayerObs::at(s(0), s(0)),
    );
    assert_eq!(
        d.actions,
        vec![Action::Start {
            category: 2,
            attempt: 1
        }]
    );
    let fifo = layer(Strategy::ParallelLimited, Some(1), cats);
    let d = plan(
        &fifo,
        &vec![CategoryObs::default(); 4],
        &LayerObs::at(s(0), s(0)),
    );
    assert_eq!(
        d.actions,
        vec![Action::Start {
            category: 0,
            attempt: 1
        }]
    );
}

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
fn retries_back_off_and_tell_infrastructure_from_test_failures() {
    let mut c = cat("flaky", &[]);
    c.retries = 1;
    c.infra_retries = 1;
    c.retry_backoff = s(4);
    let l = layer(Strategy::ParallelUnlimited, None, vec![c]);
    // infra failure, test failure, test failure again: infra retry + test retry used, then Failed.
    let r = simulate(
        &l,
        &Scenario {
            attempts: vec![script(&[
                (1, Scripted::InfraFail),
                (1, Scripted::Fail),
                (1, Scripted::Fail),
            ])],
            ..Default::default()
        },
    )
    .unwrap();
    // Backoff doubles per earlier failure: 4s after the first, 8s after the second.
    assert_eq!(starts(&r), vec![(0, 0, 1), (5, 0, 2), (14, 0, 3)]);
    assert_eq!(
        terminal(&r, 0),
        Terminal {
            phase: Phase::Failed,
            cause: Cause::TestsFailed
        }
    );

    let r = simulate(
        &l,
        &Scenario {
            attempts: vec![script(&[
                (1, Scripted::InfraFail),
                (1, Scripted::InfraFail),
            ])],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        terminal(&r, 0),
        Terminal {
            phase: Phase::Failed,
            cause: Cause::InfraFailed
        }
    );

    let r = simulate(
        &l,
        &Scenario {
            attempts: vec![script(&[(1, Scripted::Fail), (1, Scripted::Pass)])],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(terminal(&r, 0).phase, Phase::Succeeded);
    assert_eq!(r.categories[0].attempts.len(), 2);
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

#[test]
fn suspension_interrupts_and_resumes_without_using_retries() {
    let l = layer(Strategy::ParallelUnlimited, None, vec![cat("a", &[])]);
    let r = simulate(
        &l,
        &Scenario {
            attempts: vec![pass(10)],
            suspend: Some((s(4), s(20))),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(starts(&r), vec![(0, 0, 1), (20, 0, 2)]);
    assert_eq!(
        r.categories[0].attempts[0].ended,
        Some((s(4), AttemptOutcome::Stopped))
    );
    assert_eq!(r.outcome, LayerOutcome::Succeeded);
    assert_eq!(r.makespan, s(30));
}

#[test]
fn hold_starts_nothing_and_says_why() {
    let l = layer(
        Strategy::ParallelUnlimited,
        None,
        vec![cat("a", &[]), cat("b", &[0])],
    );
    let obs = LayerObs {
        hold: true,
        ..LayerObs::at(s(0), s(0))
    };
    let d = plan(&l, &[CategoryObs::default(), CategoryObs::default()], &obs);
    assert!(d.actions.is_empty());
    assert_eq!(
        d.waiting,
        vec![Some(WaitReason::Hold), Some(WaitReason::Dependency(0))]
    );
    assert_eq!(d.phases, vec![Phase::Waiting, Phase::Waiting]);
}

#[test]
fn wake_up_is_the_earliest_timeout_backoff_or_deadline() {
    let mut settings = LayerSettings::new("t", Strategy::ParallelUnlimited, None);
    settings.deadline = Some(s(500));
    let mut cats = vec![cat("a", &[]), cat("b", &[])];
    cats[0].timeout = s(30);
    cats[1].retries = 1;
    cats[1].retry_backoff = s(7);
    let l = LayerPlan::new(settings, cats).unwrap();
    let obs = vec![
        CategoryObs {
            attempts: vec![AttemptObs {
                started_at: s(10),
                stop: None,
                ended: None,
            }],
            terminal: None,
        },
        CategoryObs {
            attempts: vec![AttemptObs {
                started_at: s(0),
                stop: None,
                ended: Some((s(12), AttemptOutcome::Failed { infra: false })),
            }],
            terminal: None,
        },
    ];
    let d = plan(&l, &obs, &LayerObs::at(s(15), s(0)));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.waiting[1], Some(WaitReason::Backoff(s(19))));
    assert_eq!(d.wake_at, Some(s(19)));
}

#[test]
fn a_recorded_end_is_never_decided_again() {
    let l = layer(Strategy::ParallelUnlimited, None, vec![cat("a", &[])]);
    let done = CategoryObs {
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
