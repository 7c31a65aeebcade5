//! The options of `testlayer run` and what they make: overrides, progress,
//! the stop signal, the history file and the lock directory.

use super::common::OutputFormat;
use crate::config::Overrides;
use crate::history::History;
use crate::layer::Strategy;
use crate::local::{CancelSignal, PlainProgress, Progress, Silent, TerminalProgress};
use crate::report::RunReport;
use clap::ValueEnum;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The lock directory of shared resources the run uses.
pub(super) fn lock_dir(a: &RunArgs) -> PathBuf {
    a.lock_dir
        .clone()
        .unwrap_or_else(crate::local::locks::default_lock_dir)
}

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

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Layer config file.
    #[arg(long, short = 'c', default_value = "config/test_layers.yaml")]
    pub config: PathBuf,
    /// Layer key, e.g. `fast_feedback`; several, comma-separated, run as a
    /// suite in dependency order.
    #[arg(long, short = 'l', required_unless_present_any = ["rerun_failed", "all"])]
    pub layer: Option<String>,
    /// Run every layer of the config as a suite, in dependency order.
    #[arg(long, conflicts_with_all = ["layer", "rerun_failed"])]
    pub all: bool,
    /// Environment whose overrides apply (test, development, staging, production, ...).
    #[arg(long, short = 'e')]
    pub env: Option<String>,
    /// Run again only what did not pass in the run this JSON report
    /// (`--output json`) describes: the plan it ran (its config as read
    /// then), its passes carried over.
    #[arg(
        long,
        value_name = "REPORT.json",
        conflicts_with_all = ["config", "layer", "env", "strategy", "max_parallel", "fail_fast", "retries", "timeout_multiplier"]
    )]
    pub rerun_failed: Option<PathBuf>,
    /// Report format on standard output.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Directory for full logs, one file per attempt.
    #[arg(long, default_value = ".testlayer/logs")]
    pub log_dir: PathBuf,
    /// Durations measured by earlier runs, which HYBRID_SMART plans with
    /// where the config names no `expected_duration_seconds`; updated after
    /// each run.
    #[arg(
        long,
        env = "TESTLAYER_HISTORY",
        default_value = ".testlayer/history.json"
    )]
    pub history: PathBuf,
    /// Directory commands run in.
    #[arg(long, default_value = ".")]
    pub workdir: PathBuf,
    /// Machine-wide directory of the locks of shared resources (`uses:`),
    /// which every run on this machine must share; by default
    /// `testlayer-locks` in the system's temporary directory.
    #[arg(long, env = "TESTLAYER_LOCK_DIR", value_name = "DIR")]
    pub lock_dir: Option<PathBuf>,
    /// How progress is shown (on standard error).
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Echo every output line, prefixed with its category (plain progress only).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

/// Overrides of the layer's settings for one run (`run` and `submit`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OverrideArgs {
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

impl OverrideArgs {
    /// The overrides, for the planner (`source` names them in errors).
    pub(super) fn to_overrides(&self) -> Overrides {
        Overrides {
            source: "command line".into(),
            strategy: self.strategy.map(Into::into),
            max_parallel: self.max_parallel,
            fail_fast: self.fail_fast,
            retries: self.retries,
            timeout_multiplier: self.timeout_multiplier,
        }
    }

    /// The overrides as a TestLayerRun's `spec.overrides`, if any is set.
    #[cfg(feature = "cluster")]
    pub(super) fn to_spec(&self) -> Option<serde_json::Value> {
        let mut o = serde_json::Map::new();
        if let Some(s) = self.strategy {
            o.insert("strategy".into(), Strategy::from(s).as_str().into());
        }
        if let Some(n) = self.max_parallel {
            o.insert("maxParallel".into(), n.into());
        }
        if let Some(b) = self.fail_fast {
            o.insert("failFast".into(), b.into());
        }
        if let Some(n) = self.retries {
            o.insert("retries".into(), n.into());
        }
        if let Some(m) = self.timeout_multiplier {
            o.insert("timeoutMultiplier".into(), m.to_string().into());
        }
        (!o.is_empty()).then_some(serde_json::Value::Object(o))
    }
}

/// The command line's overrides of the config.
pub(super) fn overrides(a: &RunArgs) -> Overrides {
    a.overrides.to_overrides()
}

/// How progress is shown, as the flags and the terminal say.
pub(super) fn progress_for(a: &RunArgs) -> Arc<dyn Progress> {
    let stderr_tty = std::io::stderr().is_terminal();
    match (a.progress, stderr_tty) {
        (ProgressMode::None, _) => Arc::new(Silent),
        (ProgressMode::Bars, _) | (ProgressMode::Auto, true) if !a.verbose => {
            Arc::new(TerminalProgress::new())
        }
        _ => Arc::new(PlainProgress::new(a.verbose)),
    }
}

/// Resolves on Ctrl-C or SIGTERM: what stops a local run.
pub(super) fn stop_signal() -> CancelSignal {
    Box::pin(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            } => {}
        }
    })
}

/// The history file at `path`: a new history when there is none yet (or
/// the file is empty). A file that is not a testlayer history (other JSON,
/// not JSON, a newer format) or cannot be read is refused, saying what it
/// is: it is never written over, and nothing runs.
pub(super) fn open_history(path: &Path) -> Result<History, String> {
    let shown = path.display();
    let left = "it was left untouched and nothing was run: give --history (or TESTLAYER_HISTORY) a file of its own, or move this one away";
    match read_history(path) {
        Ok(h) => Ok(h),
        Err(why) => Err(format!("history file {shown} (--history) {why}; {left}")),
    }
}

/// The history at `path` (none yet: a new one), or why that file is not
/// one, as a phrase that follows its name.
pub(super) fn read_history(path: &Path) -> Result<History, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(History::default()),
        Err(e) => return Err(format!("cannot be read ({e})")),
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| "is not text, so it is no testlayer history".to_string())?;
    History::parse(&text).map_err(|e| e.to_string())
}

/// Records what `report` measured in the history file at `path`, read
/// again first (another layer of the suite, or another run, may have
/// written it since): written whole to a file of its own in the same
/// directory, flushed to disk, then renamed over the old one, so a crash
/// never leaves half a file. A file that has meanwhile become something
/// else than a history is left as it is. A failure is said, not fatal.
pub(super) fn save_history(path: &Path, report: &RunReport) {
    let now = jiff::Timestamp::now();
    let ended_at = jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string();
    let shown = path.display();
    let mut history = match read_history(path) {
        Ok(h) => h,
        Err(why) => {
            eprintln!(
                "warning: history file {shown} {why}; it was left untouched, and what this run measured was not recorded"
            );
            return;
        }
    };
    history.record(report, ended_at);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "history.json".into());
    let tmp = path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, history.to_text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("warning: history file {shown}: cannot write it: {e}");
    }
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
