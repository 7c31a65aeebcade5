//! Benchmark of the foundation: planner efficiency and cost, and local executor
//! overhead. A program that prints figures: `cargo bench --bench foundation`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use testlayer::layer::{CategoryPlan, LayerPlan, LayerSettings, Strategy};
use testlayer::local::{LocalOptions, Silent, run_layer};
use testlayer::plan::sim::{AttemptScript, Scenario, Scripted, simulate};
use testlayer::plan::{CategoryObs, LayerObs, plan};

const SEED: u64 = 0x7e57_1a7e;

/// A random layer: a DAG over `n` categories with random durations (also the
/// estimates HYBRID_SMART plans with), and the scenario where each passes.
fn random_layer(
    rng: &mut SmallRng,
    n: usize,
    limit: u32,
    strategy: Strategy,
) -> (LayerPlan, Scenario) {
    let mut cats = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    for i in 0..n {
        // Mostly short, some long: a skewed spread like real suites.
        let secs: f64 = if rng.random_bool(0.15) {
            rng.random_range(60.0..600.0)
        } else {
            rng.random_range(1.0..60.0)
        };
        let d = Duration::from_secs_f64(secs);
        let mut c = CategoryPlan::new(&format!("c{i}"), d * 2);
        c.estimate = d;
        c.priority_order = i as i64;
        if i > 0 {
            let k = rng.random_range(0..=3usize.min(i));
            for _ in 0..k {
                let dep = rng.random_range(0..i);
                if !c.dependencies.contains(&dep) {
                    c.dependencies.push(dep);
                }
            }
        }
        cats.push(c);
        durations.push(d);
    }
    let layer =
        LayerPlan::new(LayerSettings::new("bench", strategy, Some(limit)), cats).expect("acyclic");
    let scenario = Scenario {
        attempts: durations
            .iter()
            .map(|&d| {
                vec![AttemptScript {
                    duration: d,
                    end: Scripted::Pass,
                }]
            })
            .collect(),
        ..Scenario::default()
    };
    (layer, scenario)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

fn efficiency() {
    const LAYERS: usize = 250;
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut smart = Vec::new();
    let mut fifo = Vec::new();
    for _ in 0..LAYERS {
        let n = rng.random_range(10..300);
        let limit = rng.random_range(2..17);
        let layer_seed: u64 = rng.random();
        let ratio = |strategy| {
            let (layer, scenario) =
                random_layer(&mut SmallRng::seed_from_u64(layer_seed), n, limit, strategy);
            let work: Duration = scenario.attempts.iter().map(|a| a[0].duration).sum();
            let bound = layer.critical_path().max(work / limit).as_secs_f64();
            let r = simulate(&layer, &scenario).expect("simulation");
            r.makespan.as_secs_f64() / bound
        };
        smart.push(ratio(Strategy::HybridSmart));
        fifo.push(ratio(Strategy::ParallelLimited));
    }
    // Per DAG, before sorting: how often HYBRID_SMART is at least as good.
    let smart_wins = smart.iter().zip(&fifo).filter(|(s, f)| s <= f).count();
    let strictly = smart.iter().zip(&fifo).filter(|(s, f)| s < f).count();
    for v in [&mut smart, &mut fifo] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "(a) planner efficiency: makespan / max(critical path, work / limit), {LAYERS} random DAGs of 10-299 categories, limits 2-16, seed {SEED:#x}"
    );
    println!(
        "    {:<34} {:>7} {:>7} {:>7} {:>7}",
        "strategy", "median", "p90", "worst", "mean"
    );
    for (name, v) in [
        ("HYBRID_SMART", &smart),
        ("FIFO (PARALLEL_LIMITED, config order)", &fifo),
    ] {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "    {:<34} {:>7.3} {:>7.3} {:>7.3} {:>7.3}",
            name,
            percentile(v, 0.5),
            percentile(v, 0.9),
            v[v.len() - 1],
            mean
        );
    }
    println!("    targets: HYBRID_SMART median <= 1.05, worst <= 1.25");
    println!(
        "    same DAG, both strategies: HYBRID_SMART as short or shorter on {smart_wins}/{LAYERS}, strictly shorter on {strictly}/{LAYERS}"
    );
}

/// (d): HYBRID_SMART on layers whose timeouts are 2-10x the true
/// durations, planned with the timeouts only and with durations learned
/// from an earlier run (the true durations with +-20% noise); the run's own
/// durations have +-10% noise.
fn learned(sizes: std::ops::Range<usize>, limits: std::ops::Range<u32>) {
    const LAYERS: usize = 250;
    let mut rng = SmallRng::seed_from_u64(SEED ^ 0x1ea7);
    let (mut with_timeouts, mut with_learned) = (Vec::new(), Vec::new());
    for _ in 0..LAYERS {
        let n = rng.random_range(sizes.clone());
        let limit = rng.random_range(limits.clone());
        let (mut layer, _) = random_layer(&mut rng, n, limit, Strategy::HybridSmart);
        let mut history = std::collections::BTreeMap::new();
        let mut actual = std::collections::BTreeMap::new();
        for c in &mut layer.categories {
            let truth = c.estimate.as_secs_f64();
            c.timeout = Duration::from_secs_f64(truth * rng.random_range(2.0..10.0));
            // Nothing configured: the timeout stands in.
            c.estimate = c.timeout;
            history.insert(c.name.clone(), truth * rng.random_range(0.8..1.2));
            actual.insert(c.name.clone(), truth * rng.random_range(0.9..1.1));
        }
        let timeouts_only = LayerPlan::new(
            LayerSettings::new("bench", Strategy::HybridSmart, Some(limit)),
            layer.categories.clone(),
        )
        .expect("acyclic");
        let mut learned = timeouts_only.clone();
        learned.learn_durations(&history);
        let mut truth = timeouts_only.clone();
        truth.learn_durations(&actual);
        let scenario = Scenario {
            attempts: layer
                .categories
                .iter()
                .map(|c| {
                    vec![AttemptScript {
                        duration: Duration::from_secs_f64(actual[&c.name]),
                        end: Scripted::Pass,
                    }]
                })
                .collect(),
            ..Scenario::default()
        };
        let work: f64 = actual.values().sum();
        let bound = truth
            .critical_path()
            .as_secs_f64()
            .max(work / f64::from(limit));
        let ratio = |l: &LayerPlan| {
            simulate(l, &scenario)
                .expect("simulation")
                .makespan
                .as_secs_f64()
                / bound
        };
        with_timeouts.push(ratio(&timeouts_only));
        with_learned.push(ratio(&learned));
    }
    let wins = with_learned
        .iter()
        .zip(&with_timeouts)
        .filter(|(l, t)| l <= t)
        .count();
    let ratio_of_means = with_timeouts.iter().sum::<f64>() / with_learned.iter().sum::<f64>();
    for v in [&mut with_timeouts, &mut with_learned] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "    {LAYERS} random DAGs of {}-{} categories, limits {}-{}:",
        sizes.start,
        sizes.end - 1,
        limits.start,
        limits.end - 1
    );
    println!(
        "    {:<34} {:>7} {:>7} {:>7} {:>7}",
        "estimates", "median", "p90", "worst", "mean"
    );
    for (name, v) in [
        ("timeouts only", &with_timeouts),
        ("learned from the last run", &with_learned),
    ] {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "    {:<34} {:>7.3} {:>7.3} {:>7.3} {:>7.3}",
            name,
            percentile(v, 0.5),
            percentile(v, 0.9),
            v[v.len() - 1],
            mean
        );
    }
    println!(
        "    same DAG: learned as short or shorter on {wins}/{LAYERS}; mean makespan, timeouts / learned: {ratio_of_means:.3}"
    );
}

fn cost() {
    const N: usize = 10_000;
    let mut rng = SmallRng::seed_from_u64(SEED + 1);
    let t = Instant::now();
    let (layer, _) = random_layer(&mut rng, N, 64, Strategy::HybridSmart);
    let build = t.elapsed();
    let obs = vec![CategoryObs::default(); N];
    let mut first = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let d = plan(&layer, &obs, &LayerObs::at(Duration::ZERO, Duration::ZERO));
        first.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(d);
    }
    // A whole simulated run: every planner call of a 10,000-category layer.
    let (layer2, scenario) = random_layer(
        &mut SmallRng::seed_from_u64(SEED + 2),
        N,
        64,
        Strategy::HybridSmart,
    );
    let t = Instant::now();
    let r = simulate(&layer2, &scenario).expect("simulation");
    let whole = t.elapsed();
    first.sort_by(f64::total_cmp);
    println!("(b) planner cost, {N} categories, HYBRID_SMART, limit 64:");
    println!(
        "    building the plan (graph checks, topological order, critical paths): {:.1} ms",
        build.as_secs_f64() * 1e3
    );
    println!(
        "    one planning call on the fresh layer: median {:.2} ms, worst {:.2} ms (target < 50 ms)",
        percentile(&first, 0.5),
        first[first.len() - 1]
    );
    println!(
        "    whole simulated run: {} planner calls in {:.0} ms, {:.2} ms per call",
        r.plan_calls,
        whole.as_secs_f64() * 1e3,
        whole.as_secs_f64() * 1e3 / r.plan_calls as f64
    );
}

fn executor(runtime: &tokio::runtime::Runtime, command: &str, ideal_each: Duration) {
    const N: usize = 200;
    const PAR: u32 = 8;
    let cats: Vec<CategoryPlan> = (0..N)
        .map(|i| {
            let mut c = CategoryPlan::new(&format!("c{i}"), Duration::from_secs(60));
            c.command = Some(command.to_string());
            c
        })
        .collect();
    let layer = LayerPlan::new(
        LayerSettings::new("overhead", Strategy::ParallelLimited, Some(PAR)),
        cats,
    )
    .expect("layer");
    let opts = LocalOptions {
        carried: Default::default(),
        working_dir: ".".into(),
        log_dir: None,
        lock_dir: std::env::temp_dir().join("testlayer-bench-locks"),
    };
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let r = runtime
            .block_on(run_layer(
                &layer,
                &opts,
                Arc::new(Silent),
                Box::pin(std::future::pending()),
            ))
            .expect("run");
        assert_eq!(r.outcome, testlayer::plan::LayerOutcome::Succeeded);
        runs.push(t.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    let wall = runs[1];
    let waves = N.div_ceil(PAR as usize) as f64;
    let ideal = waves * ideal_each.as_secs_f64();
    println!(
        "    `{command}`: wall {:.3} s (median of 3), ideal {:.3} s, overhead {:.2} ms per category (target < 5 ms)",
        wall,
        ideal,
        (wall - ideal) * 1e3 / N as f64
    );
}

fn main() {
    println!(
        "testlayer foundation benchmark ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    efficiency();
    cost();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("(c) local executor overhead, 200 categories at parallelism 8:");
    executor(&runtime, "true", Duration::ZERO);
    executor(&runtime, "sleep 0.1", Duration::from_millis(100));
    println!(
        "(d) learned durations: HYBRID_SMART makespan / max(critical path, work / limit) of the run's true durations; timeouts 2-10x the true durations, history +-20%, the run +-10%, seed {:#x}",
        SEED ^ 0x1ea7
    );
    learned(10..300, 2..17);
    learned(10..41, 4..17);
    learned(10..41, 2..5);
}
