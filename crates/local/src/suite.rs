//! The whole suite on this machine: each layer through [`run_layer`], as
//! the suite planner ([`Suite`]) says, layers without a dependency between
//! them at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::layer::LayerPlan;
use crate::plan::suite::{LayerEnding, LayerState, Suite, SuiteStep};
use crate::progress::{LayerPrefixed, Progress};
use crate::report::{CategoryReport, RunReport};
use crate::{CancelSignal, LocalError, LocalOptions, run_layer};

/// How one layer of a suite ended.
#[derive(Debug)]
pub enum LayerEnd {
    /// It ran (its outcome is in the report).
    Ran(Box<RunReport>),
    /// It did not run: this dependency did not pass.
    Skipped(String),
    /// It did not run: the suite was cancelled first.
    Cancelled,
    /// It could not start (no command, a service without an address).
    Error(LocalError),
    /// Its task failed (a defect): why.
    Crashed(String),
}

impl LayerEnd {
    /// How it ended, as [`Suite::states`] reads it.
    pub fn ending(&self) -> LayerEnding {
        match self {
            LayerEnd::Ran(r) => LayerEnding::Ran(r.outcome),
            LayerEnd::Skipped(d) => LayerEnding::DependencyNotPassed(Some(d.clone())),
            LayerEnd::Cancelled => LayerEnding::NotStarted,
            LayerEnd::Error(_) | LayerEnd::Crashed(_) => LayerEnding::Broken,
        }
    }

    /// The suite planner's word for it.
    pub fn state(&self) -> LayerState {
        match self {
            LayerEnd::Ran(r) if r.outcome == crate::plan::LayerOutcome::Succeeded => {
                LayerState::Passed
            }
            // Stopped by a signal while it ran: as it happened, not Failed.
            LayerEnd::Ran(r) if r.outcome == crate::plan::LayerOutcome::Cancelled => {
                LayerState::Cancelled
            }
            LayerEnd::Ran(_) | LayerEnd::Error(_) | LayerEnd::Crashed(_) => LayerState::Failed,
            LayerEnd::Skipped(d) => LayerState::Skipped(d.clone()),
            LayerEnd::Cancelled => LayerState::Cancelled,
        }
    }
}

/// Runs the suite of `plans` (in `suite`'s order) to its end; calls
/// `blocking_done` once, as soon as every layer not in the background has
/// ended (with every layer's end so far), and returns every layer's end.
/// `carried[i]`, when there is one, holds the categories of layer `i` that
/// passed in an earlier run (a rerun of what failed): carried over, not run
/// again ([`LocalOptions::carried`]).
pub async fn run_suite(
    suite: &Suite,
    plans: Vec<LayerPlan>,
    carried: Vec<BTreeMap<String, CategoryReport>>,
    opts: &LocalOptions,
    progress: Arc<dyn Progress>,
    cancel: CancelSignal,
    mut blocking_done: impl FnMut(&[Option<LayerEnd>]),
) -> Vec<LayerEnd> {
    let n = plans.len();
    let total: usize = plans.iter().map(|p| p.categories.len()).sum();
    progress.suite_started(n, total);
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(async move {
        cancel.await;
        let _ = cancel_tx.send(true);
    });
    let mut bases = Vec::with_capacity(n);
    let mut base = 0;
    for p in &plans {
        bases.push(base);
        base += p.categories.len();
    }
    let plans: Vec<Arc<LayerPlan>> = plans.into_iter().map(Arc::new).collect();
    let mut states = vec![LayerState::Waiting; n];
    let mut ends: Vec<Option<LayerEnd>> = (0..n).map(|_| None).collect();
    let mut running: JoinSet<(usize, Result<RunReport, LocalError>)> = JoinSet::new();
    let mut tasks = std::collections::HashMap::new();
    let mut told = false;
    loop {
        let cancelled = *cancel_rx.borrow();
        for step in suite.next(&states, cancelled) {
            match step {
                SuiteStep::Start(i) => {
                    states[i] = LayerState::Running;
                    let plan = plans[i].clone();
                    let mut opts = opts.clone();
                    if let Some(c) = carried.get(i) {
                        opts.carried = c.clone();
                    }
                    opts.log_dir = opts.log_dir.map(|d| d.join(&plan.settings.k8s_name));
                    let layer_progress: Arc<dyn Progress> = Arc::new(LayerPrefixed::new(
                        progress.clone(),
                        &plan.settings.key,
                        bases[i],
                    ));
                    let mut rx = cancel_rx.clone();
                    let task = running.spawn(async move {
                        let cancel: CancelSignal = Box::pin(async move {
                            // Cancelled, or the suite is gone.
                            let _ = rx.wait_for(|c| *c).await;
                        });
                        (i, run_layer(&plan, &opts, layer_progress, cancel).await)
                    });
                    tasks.insert(task.id(), i);
                }
                SuiteStep::Skip(i, because) => {
                    progress.note(&format!(
                        "layer {}: skipped, layer {because} did not pass",
                        plans[i].settings.key
                    ));
                    states[i] = LayerState::Skipped(because.clone());
                    ends[i] = Some(LayerEnd::Skipped(because));
                }
            }
        }
        if !told && suite.blocking_done(&states) {
            told = true;
            blocking_done(&ends);
        }
        if states.iter().all(LayerState::is_done) {
            break;
        }
        let mut rx = cancel_rx.clone();
        tokio::select! {
            joined = running.join_next_with_id() => match joined {
                Some(Ok((_, (i, result)))) => {
                    let end = match result {
                        Ok(r) => LayerEnd::Ran(Box::new(r)),
                        Err(e) => LayerEnd::Error(e),
                    };
                    states[i] = end.state();
                    ends[i] = Some(end);
                }
                Some(Err(e)) => {
                    // A layer's task panicked: a defect, said, not hidden;
                    // the layer counts as failed.
                    if let Some(&i) = tasks.get(&e.id()) {
                        progress.note(&format!("layer {}: its task failed: {e}", plans[i].settings.key));
                        states[i] = LayerState::Failed;
                        ends[i] = Some(LayerEnd::Crashed(e.to_string()));
                    }
                }
                None => {
                    // Nothing runs and nothing may start: cancelled.
                    for (i, s) in states.iter_mut().enumerate() {
                        if !s.is_done() {
                            *s = LayerState::Cancelled;
                            ends[i] = Some(LayerEnd::Cancelled);
                        }
                    }
                }
            },
            _ = rx.wait_for(|c| *c), if !cancelled => {
                progress.note("cancelling the suite: running layers are stopped, waiting ones do not start");
            }
        }
    }
    watcher.abort();
    progress.finished();
    ends.into_iter()
        .map(|e| e.unwrap_or(LayerEnd::Cancelled))
        .collect()
}
