//! What the planner says while it starts nothing: hold, and when to wake up.

use super::*;

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
            granted: false,
            attempts: vec![AttemptObs {
                started_at: s(10),
                stop: None,
                ended: None,
            }],
            terminal: None,
        },
        CategoryObs {
            granted: false,
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
