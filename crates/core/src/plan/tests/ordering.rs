//! Which category starts when: priority, dependencies, limits and budget,
//! and the longest remaining path first.

use super::*;

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
