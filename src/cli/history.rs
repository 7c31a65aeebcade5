//! `testlayer history LAYER`: the last outcomes and durations of a layer,
//! and the tests that failed or flaked most, from what is kept: the runs a
//! cluster keeps (until their TTL), or the local history file (`--local`).

use std::path::PathBuf;

use super::common::EXIT_BAD_INPUT;
use super::trend_view::render;
use crate::trend::{PastRun, trend};

/// Options of `testlayer history`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// The layer key, e.g. `fast_feedback`.
    pub layer: String,
    /// How many of the newest finished runs to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub last: u32,
    /// How many tests to name among those that failed and flaked most.
    #[arg(long, default_value_t = 10)]
    pub top: u32,
    /// Read the local history file (what `testlayer run` records) instead
    /// of the cluster (a build without the cluster verbs always does).
    #[arg(long)]
    pub local: bool,
    /// The local history file.
    #[arg(
        long,
        env = "TESTLAYER_HISTORY",
        default_value = ".testlayer/history.json"
    )]
    pub history: PathBuf,
    #[cfg(feature = "cluster")]
    #[command(flatten)]
    pub target: super::cluster_args::Target,
}

/// Runs `history`; returns the exit code.
pub fn history(a: &HistoryArgs) -> i32 {
    #[cfg(feature = "cluster")]
    if !a.local {
        return super::cluster_args::with_client(&a.target, |client, ns| async move {
            let last = a.last as usize;
            match super::history_cluster::past_runs(&client, &ns, &a.layer, last, None).await {
                Ok(runs) => show(a, runs),
                Err(e) => {
                    eprintln!(
                        "error: cannot read the runs of layer {} in namespace {ns}: {e}",
                        a.layer
                    );
                    1
                }
            }
        });
    }
    let runs = match local_runs(a) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    show(a, runs)
}

/// The runs of the layer the local history file keeps.
fn local_runs(a: &HistoryArgs) -> Result<Vec<PastRun>, String> {
    let h = super::run_options::read_history(&a.history)
        .map_err(|why| format!("history file {} (--history) {why}", a.history.display()))?;
    Ok(h.runs(&a.layer).to_vec())
}

/// Prints the trend of `runs`; exit code 0.
fn show(a: &HistoryArgs, runs: Vec<PastRun>) -> i32 {
    let t = trend(runs, a.last as usize, a.top as usize);
    print!("{}", render(&a.layer, &t));
    0
}
