//! `testlayer run --all` and `testlayer run -l a,b,c`: layers of a config
//! as a suite, in dependency order (the suite planner of
//! `testlayer-core`, the layers through the local executor); and
//! `run --rerun-failed SUITE.json`, the same suite again, only what did not
//! pass in it.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use super::common::{EXIT_BAD_INPUT, OutputFormat};
use super::run_options::{RunArgs, overrides, progress_for, save_history, stop_signal};
use crate::config::Config;
use crate::history::History;
use crate::layer::LayerPlan;
use crate::local::LocalOptions;
use crate::local::suite::{LayerEnd, run_suite};
use crate::plan::Phase;
use crate::plan::suite::{LayerState, Suite, SuiteLayer, SuiteOutcome};
use crate::report::{
    CategoryReport, ReportPlan, RunReport, SuiteJunitLayer, SuiteLayerReport, SuitePlan,
    SuiteReport, suite_junit,
};

/// The lines of one layer's end for the text summary.
fn layer_text(key: &str, end: Option<&LayerEnd>, colour: bool) -> String {
    match end {
        Some(LayerEnd::Ran(r)) => r.summary(colour),
        Some(LayerEnd::Skipped(d)) => format!("layer {key}: skipped, layer {d} did not pass\n"),
        Some(LayerEnd::Cancelled) => format!("layer {key}: cancelled before it started\n"),
        Some(LayerEnd::Error(e)) => format!("layer {key}: could not run: {e}\n"),
        Some(LayerEnd::Crashed(e)) => format!("layer {key}: failed: {e}\n"),
        None => format!("layer {key}: still running\n"),
    }
}

/// Each layer's state, as the suite's rule says from how each ended.
fn states_of(suite: &Suite, ends: &[Option<LayerEnd>]) -> Vec<LayerState> {
    let endings: Vec<_> = ends
        .iter()
        .map(|e| e.as_ref().map(LayerEnd::ending))
        .collect();
    suite.states(&endings)
}

/// The report of a layer that ran.
fn report_of(e: &Option<LayerEnd>) -> Option<&RunReport> {
    match e {
        Some(LayerEnd::Ran(r)) => Some(r.as_ref()),
        _ => None,
    }
}

/// Why a layer could not run, when it could not.
fn error_of(e: &Option<LayerEnd>) -> Option<String> {
    match e {
        Some(LayerEnd::Error(err)) => Some(err.to_string()),
        Some(LayerEnd::Crashed(why)) => Some(why.clone()),
        _ => None,
    }
}

/// One entry per layer (of the background or not): its key and how it
/// stands, `core Failed`, `service skipped (core did not pass)`.
pub(super) fn suite_line(suite: &Suite, states: &[LayerState], background: bool) -> String {
    suite
        .layers()
        .iter()
        .zip(states)
        .filter(|(l, _)| l.background == background)
        .map(|(l, s)| match s {
            LayerState::Skipped(d) => format!("{} skipped ({d} did not pass)", l.key),
            LayerState::Waiting | LayerState::Running => format!("{} running", l.key),
            s => format!("{} {}", l.key, s.word()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one layer of an earlier suite left for a rerun.
#[derive(Debug, Default)]
struct EarlierLayer {
    /// Its categories that passed, by name: carried over.
    passed: BTreeMap<String, CategoryReport>,
    /// The durations its plan was learned from.
    durations: Option<BTreeMap<String, f64>>,
}

/// An earlier suite's report, read for `--rerun-failed`: what it ran, and
/// what each layer left.
pub(super) struct EarlierSuite {
    /// The report's path, as given.
    path: String,
    plan: SuitePlan,
    layers: BTreeMap<String, EarlierLayer>,
    /// Every layer passed: nothing is run again.
    all_passed: bool,
}

impl EarlierSuite {
    /// What `report` (read from `path`) ran and left; refused when it keeps
    /// no plan to run again.
    pub(super) fn new(path: &str, report: SuiteReport) -> Result<EarlierSuite, String> {
        // A report written before suites kept their plan: the plan of a
        // layer that ran, with the suite's layers.
        let plan = report.plan.clone().or_else(|| {
            report
                .layers
                .iter()
                .find_map(|l| l.report.as_ref()?.plan.as_ref())
                .map(|p| SuitePlan {
                    config: p.config.clone(),
                    origin: p.origin.clone(),
                    layers: report.layers.iter().map(|l| l.layer.clone()).collect(),
                    environment: p.environment.clone(),
                    overrides: p.overrides.clone(),
                })
        });
        let Some(plan) = plan else {
            return Err(format!(
                "--rerun-failed {path}: the suite's report records no plan (a cluster suite's report, or no layer of it ran); use `testlayer submit --rerun-failed SUITE` for a cluster suite, or run the suite again with -c"
            ));
        };
        let all_passed = report.layers.iter().all(|l| l.state == "Passed");
        let layers = report
            .layers
            .into_iter()
            .map(|l| {
                let earlier = match l.report {
                    Some(r) => EarlierLayer {
                        passed: r
                            .categories
                            .iter()
                            .filter(|c| c.phase == Phase::Succeeded)
                            .map(|c| (c.name.clone(), c.clone()))
                            .collect(),
                        durations: r.plan.map(|p| p.durations),
                    },
                    // Skipped, cancelled before it started, or could not
                    // run: run whole.
                    None => EarlierLayer::default(),
                };
                (l.layer, earlier)
            })
            .collect();
        Ok(EarlierSuite {
            path: path.to_string(),
            plan,
            layers,
            all_passed,
        })
    }
}

/// Runs the suite of the command line, or again what did not pass in
/// `earlier`; returns the exit code: 0 when every layer not in the
/// background passed, 1 when one did not, 2 bad input, 130 cancelled.
pub(super) fn run_suite_cli(a: &RunArgs, history: &History, earlier: Option<EarlierSuite>) -> i32 {
    let plan = match &earlier {
        Some(e) => e.plan.clone(),
        None => {
            let origin = a.config.display().to_string();
            let text = match std::fs::read_to_string(&a.config) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {origin}: cannot read the file: {e}");
                    return EXIT_BAD_INPUT;
                }
            };
            SuitePlan {
                config: text,
                origin,
                layers: Vec::new(),
                environment: a.env.clone(),
                overrides: overrides(a),
            }
        }
    };
    let config = match Config::parse(&plan.config, &plan.origin) {
        Ok(c) => c,
        Err(e) => {
            for line in &e.0 {
                eprintln!("error: {line}");
            }
            return EXIT_BAD_INPUT;
        }
    };
    let keys = match &earlier {
        Some(e) => e.plan.layers.clone(),
        None => super::common::suite_keys(a.all, a.layer.as_deref(), &config),
    };
    if let Some(e) = earlier.as_ref().filter(|e| e.all_passed) {
        eprintln!(
            "note: every layer passed in {}: nothing to run again; their passes are carried over",
            e.path
        );
    }
    let mut plans: Vec<LayerPlan> = Vec::new();
    let mut wanted: Vec<ReportPlan> = Vec::new();
    let mut bad = false;
    for key in &keys {
        match config.resolve_with(key, plan.environment.as_deref(), &plan.overrides) {
            Ok(mut p) => {
                let durations = earlier
                    .as_ref()
                    .and_then(|e| e.layers.get(key)?.durations.clone())
                    .unwrap_or_else(|| history.durations(key));
                p.learn_durations(&durations);
                if let Some(c) = p.categories.iter().find(|c| c.command.is_none()) {
                    eprintln!(
                        "error: category {:?} of layer {key} has no command: set `command` on the category or the layer",
                        c.name
                    );
                    bad = true;
                }
                plans.push(p);
                wanted.push(ReportPlan {
                    config: plan.config.clone(),
                    origin: plan.origin.clone(),
                    layer: key.clone(),
                    environment: plan.environment.clone(),
                    overrides: plan.overrides.clone(),
                    durations,
                });
            }
            Err(e) => {
                for line in &e.0 {
                    eprintln!("error: {line}");
                }
                bad = true;
            }
        }
    }
    if bad {
        return EXIT_BAD_INPUT;
    }
    let suite = match Suite::new(
        plans
            .iter()
            .map(|p| SuiteLayer {
                key: p.settings.key.clone(),
                dependencies: p.settings.dependencies.clone(),
                background: p.settings.background(),
            })
            .collect(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: -l: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    // The plans in the suite's order (dependencies first).
    let mut plans: Vec<Option<LayerPlan>> = plans.into_iter().map(Some).collect();
    let mut wanted: Vec<Option<ReportPlan>> = wanted.into_iter().map(Some).collect();
    let mut ordered = Vec::with_capacity(plans.len());
    let mut ordered_wanted = Vec::with_capacity(plans.len());
    for l in suite.layers() {
        if let Some(i) = keys.iter().position(|k| *k == l.key) {
            ordered.extend(plans[i].take());
            ordered_wanted.extend(wanted[i].take());
        }
    }
    let (plans, wanted) = (ordered, ordered_wanted);
    let plan = SuitePlan {
        layers: suite.layers().iter().map(|l| l.key.clone()).collect(),
        ..plan
    };
    let categories: Vec<Vec<String>> = plans
        .iter()
        .map(|p| p.categories.iter().map(|c| c.name.clone()).collect())
        .collect();
    let carried: Vec<BTreeMap<String, CategoryReport>> = suite
        .layers()
        .iter()
        .map(|l| {
            earlier
                .as_ref()
                .and_then(|e| e.layers.get(&l.key))
                .map(|e| e.passed.clone())
                .unwrap_or_default()
        })
        .collect();
    super::common::note_outside(&suite);
    let opts = LocalOptions {
        carried: Default::default(),
        working_dir: a.workdir.clone(),
        log_dir: Some(a.log_dir.clone()),
        lock_dir: super::run_options::lock_dir(a),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let colour = std::io::stdout().is_terminal();
    let text_output = a.output == OutputFormat::Text;
    let progress = progress_for(a);
    let ends = runtime.block_on(run_suite(
        &suite,
        plans,
        carried,
        &opts,
        progress,
        stop_signal(),
        |ends| {
            // The blocking layers' outcome, as soon as it is known.
            if text_output {
                let states = states_of(&suite, ends);
                for (l, e) in suite.layers().iter().zip(ends) {
                    if !l.background {
                        print!("{}", layer_text(&l.key, e.as_ref(), colour));
                    }
                }
                println!(
                    "suite: {} — {}",
                    SuiteOutcome::of(&suite, &states).word(),
                    suite_line(&suite, &states, false)
                );
            }
            let waiting: Vec<&str> = suite
                .layers()
                .iter()
                .zip(ends)
                .filter(|(l, e)| l.background && e.is_none())
                .map(|(l, _)| l.key.as_str())
                .collect();
            if !waiting.is_empty() {
                eprintln!(
                    "waiting for background layers: {} (Ctrl-C stops them)",
                    waiting.join(", ")
                );
            }
        },
    ));

    let rerun_of = earlier.as_ref().map(|e| e.path.clone());
    let mut ends: Vec<Option<LayerEnd>> = ends.into_iter().map(Some).collect();
    for (end, wanted) in ends.iter_mut().zip(wanted) {
        if let Some(LayerEnd::Ran(r)) = end {
            r.plan = Some(wanted);
            r.rerun_of = rerun_of.clone();
            save_history(&a.history, r);
        }
    }
    let states = states_of(&suite, &ends);
    if text_output && suite.layers().iter().any(|l| l.background) {
        println!("background layers (not in the outcome):");
        for (l, e) in suite.layers().iter().zip(&ends) {
            if l.background {
                print!("{}", layer_text(&l.key, e.as_ref(), colour));
            }
        }
        println!("background: {}", suite_line(&suite, &states, true));
    }
    if let Some(path) = &a.junit {
        let errors: Vec<Option<String>> = ends.iter().map(error_of).collect();
        let layers: Vec<SuiteJunitLayer> = suite
            .layers()
            .iter()
            .enumerate()
            .map(|(i, l)| SuiteJunitLayer {
                key: &l.key,
                background: l.background,
                state: &states[i],
                report: report_of(&ends[i]),
                categories: &categories[i],
                error: errors[i].as_deref(),
            })
            .collect();
        match suite_junit(&layers) {
            Ok(xml) => {
                if let Err(e) = std::fs::write(path, xml) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("error: cannot make the JUnit report: {e}"),
        }
    }
    let outcome = SuiteOutcome::of(&suite, &states);
    if a.output == OutputFormat::Json {
        let json = SuiteReport {
            suite: None,
            outcome: outcome.word().into(),
            rerun_of,
            layers: suite
                .layers()
                .iter()
                .zip(&ends)
                .zip(&states)
                .map(|((l, e), s)| SuiteLayerReport {
                    layer: l.key.clone(),
                    run: None,
                    background: l.background,
                    state: s.word().into(),
                    skipped_because: match s {
                        LayerState::Skipped(d) => Some(d.clone()),
                        _ => None,
                    },
                    error: error_of(e),
                    report: report_of(e).cloned(),
                })
                .collect(),
            plan: Some(plan),
        };
        match serde_json::to_string_pretty(&json) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot write the JSON report: {e}"),
        }
    }
    outcome.exit_code()
}
