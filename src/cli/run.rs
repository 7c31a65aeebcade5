//! `testlayer run`: a layer on this machine.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::ValueEnum;

use super::{EXIT_BAD_INPUT, LayerArgs, OutputFormat};
use crate::config::{Config, Overrides};
use crate::layer::Strategy;
use crate::local::{LocalOptions, PlainProgress, Progress, Silent, TerminalProgress, run_layer};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, lines otherwise.
    Auto,
    /// Bars.
    Bars,
    /// Timestamped lines.
    Plain,
    /// Nothing.
    None,
}

/// Strategy names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StrategyArg {
    /// One at a time.
    Sequential,
    /// All ready at once.
    ParallelUnlimited,
    /// Up to the limit, by priority.
    ParallelLimited,
    /// Up to the limit, critical path first.
    HybridSmart,
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::Sequential => Strategy::Sequential,
            StrategyArg::ParallelUnlimited => Strategy::ParallelUnlimited,
            StrategyArg::ParallelLimited => Strategy::ParallelLimited,
            StrategyArg::HybridSmart => Strategy::HybridSmart,
        }
    }
}

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Layer, config and environment.
    #[command(flatten)]
    pub layer: LayerArgs,
    /// Report format on standard output.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Directory for full logs, one file per attempt.
    #[arg(long, default_value = ".testlayer/logs")]
    pub log_dir: PathBuf,
    /// Directory commands run in.
    #[arg(long, default_value = ".")]
    pub workdir: PathBuf,
    /// How progress is shown (on standard error).
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Echo every output line, prefixed with its category (plain progress only).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Override the strategy.
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// Override the parallel limit.
    #[arg(long)]
    pub max_parallel: Option<i64>,
    /// Override fail-fast.
    #[arg(long)]
    pub fail_fast: Option<bool>,
    /// Override retries of every category.
    #[arg(long)]
    pub retries: Option<i64>,
    /// Override the timeout multiplier.
    #[arg(long)]
    pub timeout_multiplier: Option<f64>,
}

/// Runs the layer and returns the exit code: 0 passed, 1 failed or timed out,
/// 2 bad input, 130 cancelled.
pub fn run(a: &RunArgs) -> i32 {
    let overrides = Overrides {
        source: "command line".into(),
        strategy: a.strategy.map(Into::into),
        max_parallel: a.max_parallel,
        fail_fast: a.fail_fast,
        retries: a.retries,
        timeout_multiplier: a.timeout_multiplier,
    };
    let l = &a.layer;
    let plan = match Config::load(&l.config)
        .and_then(|c| c.resolve_with(&l.layer, l.env.as_deref(), &overrides))
    {
        Ok(p) => p,
        Err(e) => {
            for line in &e.0 {
                eprintln!("error: {line}");
            }
            return EXIT_BAD_INPUT;
        }
    };
    let stderr_tty = std::io::stderr().is_terminal();
    let progress: Arc<dyn Progress> = match (a.progress, stderr_tty) {
        (ProgressMode::None, _) => Arc::new(Silent),
        (ProgressMode::Bars, _) | (ProgressMode::Auto, true) if !a.verbose => {
            Arc::new(TerminalProgress::new())
        }
        _ => Arc::new(PlainProgress::new(a.verbose)),
    };
    let opts = LocalOptions {
        working_dir: a.workdir.clone(),
        log_dir: Some(a.log_dir.join(&plan.k8s_name)),
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
    let report = runtime.block_on(async {
        let cancel = Box::pin(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        });
        run_layer(&plan, &opts, progress, cancel).await
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                crate::local::LocalError::NoCommand { .. }
                | crate::local::LocalError::ServiceWithoutAddress(_) => EXIT_BAD_INPUT,
                _ => 1,
            };
        }
    };
    super::print_reports(&report, a.output, a.junit.as_deref())
}
