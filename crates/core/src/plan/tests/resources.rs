//! Shared resources: a category that uses one starts only with its grant,
//! keeps its slot while it waits, and the executor is told what to claim.

use super::*;

fn user(name: &str, resource: &str) -> CategoryPlan {
    let mut c = cat(name, &[]);
    c.uses.insert(resource.to_string(), 1);
    c
}

#[test]
fn a_category_starts_only_with_its_grant_and_keeps_its_slot_meanwhile() {
    let l = layer(
        Strategy::ParallelLimited,
        Some(1),
        vec![user("a", "db"), cat("b", &[])],
    );
    let idle = vec![CategoryObs::default(), CategoryObs::default()];
    let d = plan(&l, &idle, &LayerObs::at(s(0), s(0)));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.claims, vec![0]);
    assert_eq!(
        d.waiting,
        vec![Some(WaitReason::Resource), Some(WaitReason::Slot)]
    );
    assert_eq!(d.phases, vec![Phase::Waiting, Phase::Waiting]);
    assert!(d.blocked_on_resources);

    let mut granted = idle.clone();
    granted[0].granted = true;
    let d = plan(&l, &granted, &LayerObs::at(s(1), s(0)));
    assert_eq!(
        d.actions,
        vec![Action::Start {
            category: 0,
            attempt: 1
        }]
    );
    assert!(d.claims.is_empty());
    assert!(!d.blocked_on_resources);
}

#[test]
fn others_run_beside_a_waiting_category_and_the_layer_is_not_blocked() {
    let l = layer(
        Strategy::ParallelUnlimited,
        None,
        vec![user("a", "db"), cat("b", &[])],
    );
    let idle = vec![CategoryObs::default(), CategoryObs::default()];
    let d = plan(&l, &idle, &LayerObs::at(s(0), s(0)));
    assert_eq!(
        d.actions,
        vec![Action::Start {
            category: 1,
            attempt: 1
        }]
    );
    assert_eq!(d.claims, vec![0]);
    // b starts now: the layer is not held up.
    assert!(!d.blocked_on_resources);
}

#[test]
fn a_claim_keeps_its_budget_and_ends_with_a_cancel() {
    let mut settings = LayerSettings::new("t", Strategy::ParallelUnlimited, None);
    settings.budget = Quantities {
        cpu_millis: Some(1000),
        memory_bytes: None,
    };
    let mut a = user("a", "db");
    a.resources.limits.cpu_millis = Some(800);
    let mut b = cat("b", &[]);
    b.resources.limits.cpu_millis = Some(800);
    let l = LayerPlan::new(settings, vec![a, b]).unwrap();
    let idle = vec![CategoryObs::default(), CategoryObs::default()];
    let d = plan(&l, &idle, &LayerObs::at(s(0), s(0)));
    assert_eq!(d.claims, vec![0]);
    assert_eq!(d.waiting[1], Some(WaitReason::Budget));

    let mut granted = idle.clone();
    granted[0].granted = true;
    let cancel = LayerObs {
        cancel: true,
        ..LayerObs::at(s(1), s(0))
    };
    let d = plan(&l, &granted, &cancel);
    assert!(d.claims.is_empty(), "a cancelled layer claims nothing");
    assert!(
        !d.actions.iter().any(|a| matches!(a, Action::Start { .. })),
        "{:?}",
        d.actions
    );
    assert_eq!(d.outcome, Some(LayerOutcome::Cancelled));
}

#[test]
fn a_retry_claims_again_after_its_backoff() {
    let mut a = user("a", "db");
    a.retries = 1;
    a.retry_backoff = s(5);
    let l = layer(Strategy::Sequential, None, vec![a]);
    let failed = vec![CategoryObs {
        attempts: vec![AttemptObs::ended(
            s(0),
            s(3),
            AttemptOutcome::Failed { infra: false },
        )],
        ..Default::default()
    }];
    let d = plan(&l, &failed, &LayerObs::at(s(4), s(0)));
    assert!(d.claims.is_empty(), "no grant is held through a backoff");
    assert_eq!(d.waiting[0], Some(WaitReason::Backoff(s(8))));
    let d = plan(&l, &failed, &LayerObs::at(s(8), s(0)));
    assert_eq!(d.claims, vec![0]);
}
