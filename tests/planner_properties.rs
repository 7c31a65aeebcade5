//! Property tests of the planner over random layers and outcomes, driven through
//! the simulated executor. The invariants are checked on the event trace, not
//! with the planner's own bookkeeping.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use testlayer::layer::{CategoryPlan, LayerPlan, LayerSettings, Quantities, Strategy};
use testlayer::plan::sim::{AttemptScript, Scenario, Scripted, SimEventKind, SimResult, simulate};
use testlayer::plan::{AttemptOutcome, Cause, LayerOutcome, Phase};

#[derive(Debug, Clone)]
struct Case {
    layer: LayerPlan,
    scenario: Scenario,
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn strategy_of(i: u8) -> Strategy {
    match i % 4 {
        0 => Strategy::Sequential,
        1 => Strategy::ParallelUnlimited,
        2 => Strategy::ParallelLimited,
        _ => Strategy::HybridSmart,
    }
}

prop_compose! {
    fn case()(n in 1usize..24)(
        n in Just(n),
        edges in proptest::collection::vec((0usize..24, 0usize..24, any::<bool>()), 0..48),
        perm_seed in any::<u64>(),
        strategy in 0u8..4,
        limit in proptest::option::of(1u32..5),
        budget in proptest::option::of(2u64..8),
        fail_fast in any::<bool>(),
        deadline in proptest::option::of(20u64..400),
        cancel_at in proptest::option::of(1u64..300),
        suspend in proptest::option::of((1u64..100, 1u64..100)),
        cats in proptest::collection::vec(
            (1u64..60, 0u32..3, 0u32..3, 0u64..4, 1u64..4,
             proptest::collection::vec((0u64..90, 0u8..10), 1..4), 0u8..5),
            24),
    ) -> Case {
        // Random DAG: edges only from later to earlier positions of a random order.
        let mut order: Vec<usize> = (0..n).collect();
        let mut s = perm_seed;
        for i in (1..n).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut categories: Vec<CategoryPlan> = (0..n)
            .map(|i| {
                let (timeout, retries, infra, backoff, size, _, allow) = &cats[i];
                let mut c = CategoryPlan::new(&format!("c{i}"), secs(*timeout));
                c.retries = *retries;
                c.infra_retries = *infra;
                c.retry_backoff = secs(*backoff);
                c.resources.limits.cpu_millis = Some(*size * 1000);
                c.priority_order = (i as i64 * 7) % 5;
                c.allow_failure = *allow == 0;
                c
            })
            .collect();
        for (a, b, keep) in edges {
            let (a, b) = (a % n, b % n);
            if keep && a != b {
                let (from, to) = if a < b { (order[b], order[a]) } else { (order[a], order[b]) };
                if !categories[from].dependencies.contains(&to) {
                    categories[from].dependencies.push(to);
                }
            }
        }
        let strategy = strategy_of(strategy);
        let limit = if strategy == Strategy::ParallelLimited { Some(limit.unwrap_or(2)) } else { limit };
        let mut settings = LayerSettings::new("prop", strategy, limit);
        settings.fail_fast = fail_fast;
        settings.deadline = deadline.map(secs);
        // Budget at least as large as the largest category, so every one fits.
        settings.budget = Quantities { cpu_millis: budget.map(|b| b.max(3) * 1000), memory_bytes: None };
        let layer = LayerPlan::new(settings, categories).expect("acyclic by construction");
        let attempts = cats[..n]
            .iter()
            .map(|(.., script, _)| {
                script
                    .iter()
                    .map(|&(d, e)| AttemptScript {
                        duration: secs(d),
                        end: match e { 0..=6 => Scripted::Pass, 7 | 8 => Scripted::Fail, _ => Scripted::InfraFail },
                    })
                    .collect()
            })
            .collect();
        let scenario = Scenario {
            attempts,
            cancel_at: cancel_at.filter(|c| c % 3 == 0).map(secs),
            suspend: suspend.filter(|s| s.0 % 4 == 0).map(|(a, len)| (secs(a), secs(a + len))),
        };
        Case { layer, scenario }
    }
}

/// Whether category `i`, finished as `f`, lets its dependents run and its
/// layer pass: it succeeded, or it may fail and failed on its own.
fn satisfied(layer: &LayerPlan, i: usize, f: Option<(Duration, Phase, Cause)>) -> bool {
    match f {
        Some((_, Phase::Succeeded, _)) => true,
        Some((_, phase, cause)) => {
            layer.categories[i].allow_failure
                && phase.is_failure()
                && matches!(
                    cause,
                    Cause::TestsFailed | Cause::InfraFailed | Cause::Timeout
                )
        }
        None => false,
    }
}

/// Checks every invariant on the trace; returns a description of the first broken one.
fn check(case: &Case, r: &SimResult) -> Result<(), String> {
    let layer = &case.layer;
    let n = layer.categories.len();
    let limit = layer.effective_parallelism().unwrap_or(u32::MAX) as usize;
    let mut running: BTreeMap<usize, Duration> = BTreeMap::new();
    let mut finished: Vec<Option<(Duration, Phase, Cause)>> = vec![None; n];
    let mut first_failure: Option<Duration> = None;
    let mut last_end: Vec<Option<(Duration, AttemptOutcome)>> = vec![None; n];
    for ev in &r.trace {
        let i = ev.category;
        match ev.kind {
            SimEventKind::Started(attempt) => {
                if finished[i].is_some() {
                    return Err(format!("{i} started after it ended"));
                }
                for &d in &layer.categories[i].dependencies {
                    if !satisfied(layer, d, finished[d]) {
                        return Err(format!(
                            "{i} started at {:?} before dependency {d} succeeded or failed as allowed",
                            ev.at
                        ));
                    }
                }
                if layer.settings.fail_fast && first_failure.is_some() {
                    return Err(format!("{i} started after a failure under fail-fast"));
                }
                if let Some((end, AttemptOutcome::Failed { .. })) = last_end[i] {
                    let failed_before = r.categories[i].attempts[..attempt as usize - 1]
                        .iter()
                        .filter(|a| matches!(a.ended, Some((_, AttemptOutcome::Failed { .. }))))
                        .count() as u32;
                    let backoff = layer.categories[i].backoff_before(failed_before);
                    if ev.at < end + backoff {
                        return Err(format!(
                            "{i} retried at {:?}, before its backoff ended",
                            ev.at
                        ));
                    }
                }
                running.insert(i, ev.at);
                if running.len() > limit {
                    return Err(format!(
                        "{} running at {:?}, limit {limit}",
                        running.len(),
                        ev.at
                    ));
                }
                if let Some(cap) = layer.settings.budget.cpu_millis {
                    let used: u64 = running
                        .keys()
                        .map(|&j| {
                            layer.categories[j]
                                .resources
                                .budget_size()
                                .cpu_millis
                                .unwrap_or(0)
                        })
                        .sum();
                    if used > cap {
                        return Err(format!("cpu {used} running at {:?}, budget {cap}", ev.at));
                    }
                }
            }
            SimEventKind::Ended(outcome) => {
                let Some(start) = running.remove(&i) else {
                    return Err(format!("{i} ended without running"));
                };
                let took = ev.at - start;
                let timeout = layer.categories[i].timeout;
                match outcome {
                    AttemptOutcome::TimedOut if took != timeout => {
                        return Err(format!("{i} timed out after {took:?}, timeout {timeout:?}"));
                    }
                    AttemptOutcome::Succeeded | AttemptOutcome::Failed { .. } if took > timeout => {
                        return Err(format!("{i} ran {took:?}, past its timeout {timeout:?}"));
                    }
                    _ => {}
                }
                last_end[i] = Some((ev.at, outcome));
            }
            SimEventKind::Finished(t) => {
                if finished[i].is_some() {
                    return Err(format!("{i} finished twice"));
                }
                if running.contains_key(&i) {
                    return Err(format!("{i} finished while running"));
                }
                if !t.phase.is_terminal() {
                    return Err(format!("{i} finished in non-terminal {:?}", t.phase));
                }
                finished[i] = Some((ev.at, t.phase, t.cause));
                if t.phase.is_failure()
                    && !satisfied(layer, i, finished[i])
                    && first_failure.is_none()
                {
                    first_failure = Some(ev.at);
                }
            }
        }
    }
    if !running.is_empty() {
        return Err(format!("still running at the end: {running:?}"));
    }
    for (i, f) in finished.iter().enumerate() {
        let Some((_, phase, cause)) = f else {
            return Err(format!("{i} never finished"));
        };
        let attempts = &r.categories[i].attempts;
        let count = |infra| {
            attempts
                .iter()
                .filter(|a| a.ended.map(|e| e.1) == Some(AttemptOutcome::Failed { infra }))
                .count() as u32
        };
        if count(false) > layer.categories[i].retries + 1
            || count(true) > layer.categories[i].infra_retries + 1
        {
            return Err(format!("{i} retried too often: {attempts:?}"));
        }
        if *phase == Phase::Skipped {
            let Cause::DependencyFailed(d) = cause else {
                return Err(format!("{i} skipped for {cause:?}"));
            };
            if !layer.categories[i].dependencies.contains(d) || satisfied(layer, *d, finished[*d]) {
                return Err(format!("{i} skipped though dependency {d} did not fail"));
            }
        }
        if *phase == Phase::Succeeded
            && attempts.last().and_then(|a| a.ended).map(|e| e.1) != Some(AttemptOutcome::Succeeded)
        {
            return Err(format!("{i} succeeded without a passing attempt"));
        }
    }
    if let (true, Some(t)) = (layer.settings.fail_fast, first_failure)
        && r.makespan != t
    {
        return Err(format!(
            "fail-fast: failure at {t:?} but the layer ran until {:?}",
            r.makespan
        ));
    }
    if let Some(d) = layer.settings.deadline
        && r.makespan > d
    {
        return Err(format!(
            "ran until {:?}, past the deadline {d:?}",
            r.makespan
        ));
    }
    let all_passed = finished
        .iter()
        .enumerate()
        .all(|(i, f)| satisfied(layer, i, *f));
    if all_passed != (r.outcome == LayerOutcome::Succeeded) {
        return Err(format!(
            "outcome {:?} but all passed = {all_passed}",
            r.outcome
        ));
    }
    if r.outcome == LayerOutcome::Cancelled && case.scenario.cancel_at.is_none() {
        return Err("cancelled without a cancel request".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn planner_invariants_hold(case in case()) {
        let r = simulate(&case.layer, &case.scenario);
        prop_assert!(r.is_ok(), "simulation failed: {:?}", r.err());
        let r = r.unwrap();
        if let Err(e) = check(&case, &r) {
            prop_assert!(false, "{e}\nlayer: {:?}\nscenario: {:?}\ntrace: {:?}", case.layer.categories.iter().map(|c| (&c.name, &c.dependencies, c.timeout)).collect::<Vec<_>>(), case.scenario, r.trace);
        }
    }

    #[test]
    fn planning_is_deterministic(case in case()) {
        let a = simulate(&case.layer, &case.scenario);
        let b = simulate(&case.layer, &case.scenario);
        prop_assert_eq!(a, b);
    }
}

/// Seeing an unchanged state twice must not start anything twice: the planner is
/// asked again after a restart with the same observations.
#[test]
fn replanning_the_same_state_is_idempotent_for_recorded_starts() {
    use testlayer::plan::{Action, AttemptObs, CategoryObs, LayerObs, plan};
    let mut cats = Vec::new();
    for i in 0..4 {
        cats.push(CategoryPlan::new(&format!("c{i}"), secs(10)));
    }
    cats[3].dependencies = vec![0];
    let layer = LayerPlan::new(
        LayerSettings::new("l", Strategy::ParallelLimited, Some(2)),
        cats,
    )
    .unwrap();
    let mut obs = vec![CategoryObs::default(); 4];
    let d = plan(&layer, &obs, &LayerObs::at(secs(0), secs(0)));
    let starts: Vec<usize> = d
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { category, .. } => Some(*category),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![0, 1]);
    for &i in &starts {
        obs[i].attempts.push(AttemptObs::running(secs(0)));
    }
    // Same state, asked again (as after a controller restart): nothing new.
    let again = plan(&layer, &obs, &LayerObs::at(secs(1), secs(0)));
    assert!(again.actions.is_empty(), "{:?}", again.actions);
}
