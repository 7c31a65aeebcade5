//! `testlayer run`: a layer on this machine.

use super::common::EXIT_BAD_INPUT;
use crate::cli::run_options::RunArgs;
use crate::cli::run_options::lock_dir;
use crate::cli::run_options::open_history;
use crate::cli::run_options::overrides;
use crate::cli::run_options::progress_for;
use crate::cli::run_options::save_history;
use crate::cli::run_options::stop_signal;
use crate::config::Config;
use crate::history::History;
use crate::local::{LocalOptions, run_layer};
use crate::plan::Phase;
use crate::report::{EarlierReport, ReportPlan, RunReport};

/// What to run: the config file, layer and overrides of the command line,
/// or the plan of an earlier run's report (`--rerun-failed`), with that
/// report; or an earlier suite's report, run again as a suite.
enum WhatToRun {
    Layer(ReportPlan, Option<Box<RunReport>>),
    Suite(Box<super::suite::EarlierSuite>),
}

fn what_to_run(a: &RunArgs, history: &History) -> Result<WhatToRun, String> {
    let Some(path) = &a.rerun_failed else {
        let config = std::fs::read_to_string(&a.config)
            .map_err(|e| format!("{}: cannot read the file: {e}", a.config.display()))?;
        let layer = a.layer.clone().unwrap_or_default();
        let plan = ReportPlan {
            config,
            origin: a.config.display().to_string(),
            durations: history.durations(&layer),
            layer,
            environment: a.env.clone(),
            overrides: overrides(a),
        };
        return Ok(WhatToRun::Layer(plan, None));
    };
    let shown = path.display();
    let text = std::fs::read(path)
        .map_err(|e| format!("--rerun-failed {shown}: cannot read the file: {e}"))?;
    let text = String::from_utf8(text).map_err(|_| {
        format!(
            "--rerun-failed {shown}: is not text, so not a JSON report of `testlayer run --output json`"
        )
    })?;
    let report = match EarlierReport::parse(&text) {
        Ok(EarlierReport::Layer(r)) => r,
        Ok(EarlierReport::Suite(s)) => {
            return super::suite::EarlierSuite::new(&shown.to_string(), *s)
                .map(|e| WhatToRun::Suite(Box::new(e)));
        }
        Err(why) => return Err(format!("--rerun-failed {shown}: {why}")),
    };
    let plan = report.plan.clone().ok_or_else(|| {
        format!(
            "--rerun-failed {shown}: the report records no plan (a cluster run's report, or one written before reports kept their plan); use `testlayer submit --rerun-failed RUN` for a cluster run, or run the layer again with -c"
        )
    })?;
    if report
        .categories
        .iter()
        .all(|c| c.phase == Phase::Succeeded)
    {
        eprintln!(
            "note: every category passed in {shown}: nothing to run again; their passes are carried over"
        );
    }
    Ok(WhatToRun::Layer(plan, Some(report)))
}

/// Runs the layer and returns the exit code: 0 passed, 1 failed or timed out,
/// 2 bad input, 130 cancelled.
pub fn run(a: &RunArgs) -> i32 {
    // A history file that is not one is refused before anything runs.
    let history = match open_history(&a.history) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    if a.all || a.layer.as_deref().is_some_and(|l| l.contains(',')) {
        return super::suite::run_suite_cli(a, &history, None);
    }
    let (what, earlier) = match what_to_run(a, &history) {
        Ok(WhatToRun::Layer(what, earlier)) => (what, earlier),
        Ok(WhatToRun::Suite(earlier)) => {
            return super::suite::run_suite_cli(a, &history, Some(*earlier));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let mut plan = match Config::parse(&what.config, &what.origin)
        .and_then(|c| c.resolve_with(&what.layer, what.environment.as_deref(), &what.overrides))
    {
        Ok(p) => p,
        Err(e) => {
            for line in &e.0 {
                eprintln!("error: {line}");
            }
            return EXIT_BAD_INPUT;
        }
    };
    // Estimates learned from earlier runs, frozen with the plan.
    plan.learn_durations(&what.durations);
    // The passes of the earlier run, by name.
    let carried = earlier
        .as_ref()
        .map(|r| {
            r.categories
                .iter()
                .filter(|c| c.phase == Phase::Succeeded)
                .map(|c| (c.name.clone(), c.clone()))
                .collect()
        })
        .unwrap_or_default();
    let progress = progress_for(a);
    let opts = LocalOptions {
        carried,
        working_dir: a.workdir.clone(),
        log_dir: Some(a.log_dir.join(&plan.settings.k8s_name)),
        lock_dir: lock_dir(a),
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
    let report = runtime.block_on(async { run_layer(&plan, &opts, progress, stop_signal()).await });
    let report = match report {
        Ok(mut r) => {
            r.plan = Some(what);
            r.rerun_of = a.rerun_failed.as_ref().map(|p| p.display().to_string());
            flaky_note(&history, &r);
            save_history(&a.history, &r);
            r
        }
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                crate::local::LocalError::NoCommand { .. }
                | crate::local::LocalError::ServiceWithoutAddress(_)
                | crate::local::LocalError::Locks(
                    crate::local::locks::LockError::CapacityDiffers { .. }
                    | crate::local::locks::LockError::Undeclared(_),
                ) => EXIT_BAD_INPUT,
                _ => 1,
            };
        }
    };
    super::common::print_reports(&report, a.output, a.junit.as_deref())
}

/// Says on stderr which of `report`'s failing or flaky tests were flaky
/// across the layer's last runs in `history` (read before this run).
fn flaky_note(history: &History, report: &crate::report::RunReport) {
    use super::trend_view::{NOTE_AT_LEAST, NOTE_RUNS, flaky_note};
    let now = crate::trend::PastRun::from_report(report, String::from("~now"));
    let earlier = history.runs(&report.layer);
    let (named, looked) = crate::trend::flaky_across(&now, earlier, NOTE_RUNS, NOTE_AT_LEAST);
    if let Some(note) = flaky_note(&named, looked) {
        eprint!("{note}");
    }
}
