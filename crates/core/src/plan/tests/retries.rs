//! Attempts after the first: retries with back-off, infrastructure and test
//! failures told apart, and suspension.

use super::*;

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
