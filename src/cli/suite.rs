//! `testlayer run --all` and `testlayer run -l a,b,c`: layers of a config
//! as a suite, in dependency order (the suite planner of
//! `testlayer-core`, the layers through the local executor).

use std::io::IsTerminal;

use super::run::{RunArgs, load_history, overrides, progress_for, save_history, stop_signal};
use super::{EXIT_BAD_INPUT, OutputFormat};
use crate::config::Config;
use crate::layer::LayerPlan;
use crate::local::LocalOptions;
use crate::local::suite::{LayerEnd, run_suite};
use crate::plan::suite::{LayerState, Suite, SuiteLayer};
use crate::report::{ReportPlan, RunReport};

/// Exit code of a suite cancelled by Ctrl-C or SIGTERM.
const EXIT_CANCELLED: i32 = 130;

/// One layer of the suite's JSON report.
#[derive(serde::Serialize)]
struct SuiteLayerJson<'a> {
    layer: &'a str,
    background: bool,
    /// `Passed`, `Failed`, `Skipped`, `Cancelled`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped_because: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a RunReport>,
}

/// The suite's JSON report.
#[derive(serde::Serialize)]
struct SuiteJson<'a> {
    /// `Succeeded` when every layer not in the background passed,
    /// `Cancelled` when one was stopped by the user, else `Failed`.
    outcome: &'static str,
    layers: Vec<SuiteLayerJson<'a>>,
}

fn state_word(s: &LayerState) -> &'static str {
    match s {
        LayerState::Passed => "Passed",
        LayerState::Failed => "Failed",
        LayerState::Skipped(_) => "Skipped",
        LayerState::Cancelled => "Cancelled",
        LayerState::Waiting | LayerState::Running => "Running",
    }
}

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

/// How a suite ended, as its text, JSON report and exit code say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SuiteOutcome {
    /// Every layer not in the background passed.
    Succeeded,
    /// One of them was stopped by the user (or never started for it).
    Cancelled,
    /// One of them did not pass.
    Failed,
}

impl SuiteOutcome {
    fn of(suite: &Suite, states: &[LayerState]) -> Self {
        if suite.passed(states) {
            SuiteOutcome::Succeeded
        } else if suite
            .layers()
            .iter()
            .zip(states)
            .any(|(l, s)| !l.background && *s == LayerState::Cancelled)
        {
            SuiteOutcome::Cancelled
        } else {
            SuiteOutcome::Failed
        }
    }

    fn word(self) -> &'static str {
        match self {
            SuiteOutcome::Succeeded => "Succeeded",
            SuiteOutcome::Cancelled => "Cancelled",
            SuiteOutcome::Failed => "Failed",
        }
    }

    fn exit_code(self) -> i32 {
        match self {
            SuiteOutcome::Succeeded => 0,
            SuiteOutcome::Cancelled => EXIT_CANCELLED,
            SuiteOutcome::Failed => 1,
        }
    }
}

/// One line per layer: its key and how it stands.
fn suite_line(suite: &Suite, ends: &[Option<LayerEnd>], background: bool) -> String {
    suite
        .layers()
        .iter()
        .zip(ends)
        .filter(|(l, _)| l.background == background)
        .map(|(l, e)| {
            let state = e.as_ref().map(LayerEnd::state);
            match state {
                Some(LayerState::Skipped(d)) => format!("{} skipped ({d} did not pass)", l.key),
                Some(s) => format!("{} {}", l.key, state_word(&s)),
                None => format!("{} running", l.key),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the suite; returns the exit code: 0 when every layer not in the
/// background passed, 1 when one did not, 2 bad input, 130 cancelled.
pub(super) fn run_suite_cli(a: &RunArgs) -> i32 {
    let origin = a.config.display().to_string();
    let text = match std::fs::read_to_string(&a.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {origin}: cannot read the file: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let config = match Config::parse(&text, &origin) {
        Ok(c) => c,
        Err(e) => {
            for line in &e.0 {
                eprintln!("error: {line}");
            }
            return EXIT_BAD_INPUT;
        }
    };
    let keys = super::suite_keys(a.all, a.layer.as_deref(), &config);
    let overrides = overrides(a);
    let history = load_history(&a.history);
    let mut plans: Vec<LayerPlan> = Vec::new();
    let mut wanted: Vec<ReportPlan> = Vec::new();
    let mut bad = false;
    for key in &keys {
        match config.resolve_with(key, a.env.as_deref(), &overrides) {
            Ok(mut p) => {
                let durations = history.durations(key);
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
                    config: text.clone(),
                    origin: origin.clone(),
                    layer: key.clone(),
                    environment: a.env.clone(),
                    overrides: overrides.clone(),
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
                key: p.key.clone(),
                dependencies: p.dependencies.clone(),
                background: p.background,
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
    super::note_outside(&suite);
    let opts = LocalOptions {
        carried: Default::default(),
        working_dir: a.workdir.clone(),
        log_dir: Some(a.log_dir.clone()),
        lock_dir: super::run::lock_dir(a),
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
        &opts,
        progress,
        stop_signal(),
        |ends| {
            // The blocking layers' outcome, as soon as it is known.
            if text_output {
                for (l, e) in suite.layers().iter().zip(ends) {
                    if !l.background {
                        print!("{}", layer_text(&l.key, e.as_ref(), colour));
                    }
                }
                let states: Vec<LayerState> = ends
                    .iter()
                    .map(|e| e.as_ref().map_or(LayerState::Running, LayerEnd::state))
                    .collect();
                println!(
                    "suite: {} — {}",
                    SuiteOutcome::of(&suite, &states).word(),
                    suite_line(&suite, ends, false)
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

    let mut ends: Vec<Option<LayerEnd>> = ends.into_iter().map(Some).collect();
    for (end, plan) in ends.iter_mut().zip(wanted) {
        if let Some(LayerEnd::Ran(r)) = end {
            r.plan = Some(plan);
            save_history(&a.history, r);
        }
    }
    let states: Vec<LayerState> = ends
        .iter()
        .map(|e| e.as_ref().map_or(LayerState::Cancelled, LayerEnd::state))
        .collect();
    if text_output && suite.layers().iter().any(|l| l.background) {
        println!("background layers (not in the outcome):");
        for (l, e) in suite.layers().iter().zip(&ends) {
            if l.background {
                print!("{}", layer_text(&l.key, e.as_ref(), colour));
            }
        }
        println!("background: {}", suite_line(&suite, &ends, true));
    }
    let reports: Vec<&RunReport> = ends
        .iter()
        .filter_map(|e| match e {
            Some(LayerEnd::Ran(r)) => Some(r.as_ref()),
            _ => None,
        })
        .collect();
    if let Some(path) = &a.junit {
        match RunReport::suite_junit(&reports) {
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
        let json = SuiteJson {
            outcome: outcome.word(),
            layers: suite
                .layers()
                .iter()
                .zip(&ends)
                .zip(&states)
                .map(|((l, e), s)| SuiteLayerJson {
                    layer: &l.key,
                    background: l.background,
                    state: state_word(s),
                    skipped_because: match e {
                        Some(LayerEnd::Skipped(d)) => Some(d.as_str()),
                        _ => None,
                    },
                    error: match e {
                        Some(LayerEnd::Error(err)) => Some(err.to_string()),
                        Some(LayerEnd::Crashed(why)) => Some(why.clone()),
                        _ => None,
                    },
                    report: match e {
                        Some(LayerEnd::Ran(r)) => Some(r.as_ref()),
                        _ => None,
                    },
                })
                .collect(),
        };
        match serde_json::to_string_pretty(&json) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot write the JSON report: {e}"),
        }
    }
    outcome.exit_code()
}
