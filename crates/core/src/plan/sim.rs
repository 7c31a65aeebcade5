//! A discrete-event simulation of an executor that follows the planner: for the
//! property tests and the planner benchmark. Pure: time is simulated.

use std::time::Duration;

use super::planner::plan;
use super::state::{
    Action, AttemptObs, AttemptOutcome, CategoryObs, LayerObs, LayerOutcome, Terminal,
};
use crate::layer::LayerPlan;

/// How a simulated attempt ends if nobody stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scripted {
    /// Exit 0.
    Pass,
    /// Tests fail.
    Fail,
    /// Infrastructure fails.
    InfraFail,
}

/// One simulated attempt: how long it runs and how it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptScript {
    /// Run time.
    pub duration: Duration,
    /// End.
    pub end: Scripted,
}

/// The scripted attempts of every category; a category runs out of script by
/// repeating its last entry (or passing instantly when it has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scenario {
    /// Per category, attempts in order.
    pub attempts: Vec<Vec<AttemptScript>>,
    /// When a user cancels, if they do.
    pub cancel_at: Option<Duration>,
    /// A window in which the layer is suspended.
    pub suspend: Option<(Duration, Duration)>,
}

/// Something that happened in a simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimEventKind {
    /// Attempt number started.
    Started(u32),
    /// The running attempt ended.
    Ended(AttemptOutcome),
    /// The category ended.
    Finished(Terminal),
}

/// A timed event of one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimEvent {
    /// When.
    pub at: Duration,
    /// Category index.
    pub category: usize,
    /// What.
    pub kind: SimEventKind,
}

/// The end of a simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimResult {
    /// How the layer ended.
    pub outcome: LayerOutcome,
    /// When.
    pub makespan: Duration,
    /// Everything that happened, in order.
    pub trace: Vec<SimEvent>,
    /// Final observations.
    pub categories: Vec<CategoryObs>,
    /// How many times the planner was asked.
    pub plan_calls: usize,
}

/// A simulation that cannot go on: a planner bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// Nothing runs, nothing is scheduled, and the layer has not ended.
    #[error("stuck at {0:?}: nothing runs or is scheduled and the layer has not ended")]
    Stuck(Duration),
    /// The planner asked for something impossible.
    #[error("at {at:?}: {what}")]
    Invalid {
        /// When.
        at: Duration,
        /// What.
        what: String,
    },
    /// More planner calls than any layer of this size needs.
    #[error("no end after {0} planner calls")]
    TooManySteps(usize),
}

/// Runs `layer` against `scenario` with an executor that does exactly what the
/// planner says and stops attempts instantly.
pub fn simulate(layer: &LayerPlan, scenario: &Scenario) -> Result<SimResult, SimError> {
    let n = layer.categories.len();
    let mut cats = vec![CategoryObs::default(); n];
    let mut running: Vec<Option<(Duration, AttemptOutcome)>> = vec![None; n];
    let mut trace = Vec::new();
    let mut now = Duration::ZERO;
    let max_calls = 64 + n * 64;
    let mut calls = 0;
    let bad = |at, what: String| SimError::Invalid { at, what };
    loop {
        calls += 1;
        if calls > max_calls {
            return Err(SimError::TooManySteps(calls));
        }
        let mut obs = LayerObs::at(now, Duration::ZERO);
        obs.cancel = scenario.cancel_at.is_some_and(|c| now >= c);
        obs.suspend = scenario.suspend.is_some_and(|(a, b)| now >= a && now < b);
        let d = plan(layer, &cats, &obs);
        let mut replan = false;
        for a in &d.actions {
            match *a {
                Action::Start {
                    category: i,
                    attempt,
                } => {
                    if running[i].is_some() || cats[i].terminal.is_some() {
                        return Err(bad(now, format!("start of {i} that runs or ended")));
                    }
                    if attempt as usize != cats[i].attempts.len() + 1 {
                        return Err(bad(now, format!("attempt {attempt} of {i} out of order")));
                    }
                    let script = scenario
                        .attempts
                        .get(i)
                        .and_then(|s| s.get(cats[i].attempts.len()).or(s.last()))
                        .copied()
                        .unwrap_or(AttemptScript {
                            duration: Duration::ZERO,
                            end: Scripted::Pass,
                        });
                    let outcome = match script.end {
                        Scripted::Pass => AttemptOutcome::Succeeded,
                        Scripted::Fail => AttemptOutcome::Failed { infra: false },
                        Scripted::InfraFail => AttemptOutcome::Failed { infra: true },
                    };
                    cats[i].attempts.push(AttemptObs::running(now));
                    running[i] = Some((now + script.duration, outcome));
                    trace.push(SimEvent {
                        at: now,
                        category: i,
                        kind: SimEventKind::Started(attempt),
                    });
                }
                Action::Finish {
                    category: i,
                    terminal,
                } => {
                    if cats[i].terminal.is_some() {
                        return Err(bad(now, format!("{i} ended twice")));
                    }
                    if running[i].is_some() {
                        return Err(bad(now, format!("finish of {i} that runs")));
                    }
                    cats[i].terminal = Some(terminal);
                    trace.push(SimEvent {
                        at: now,
                        category: i,
                        kind: SimEventKind::Finished(terminal),
                    });
                }
                Action::Stop { category: i, stop } => {
                    if running[i].is_none() {
                        return Err(bad(now, format!("stop of {i} that does not run")));
                    }
                    // Record the stop, then stop at once.
                    if let Some(last) = cats[i].attempts.last_mut() {
                        last.stop.get_or_insert(stop);
                    }
                    end_attempt(
                        &mut cats[i],
                        &mut running[i],
                        &mut trace,
                        now,
                        i,
                        AttemptOutcome::Stopped,
                    );
                    replan = true;
                }
            }
        }
        if let Some(outcome) = d.outcome {
            if running.iter().any(Option::is_some) {
                return Err(bad(now, "layer ended with attempts running".into()));
            }
            return Ok(SimResult {
                outcome,
                makespan: now,
                trace,
                categories: cats,
                plan_calls: calls,
            });
        }
        if replan {
            continue;
        }
        let mut next = d.wake_at;
        let mut earliest = |t: Duration| next = Some(next.map_or(t, |n: Duration| n.min(t)));
        for (end, _) in running.iter().flatten() {
            earliest(*end);
        }
        for t in [
            scenario.cancel_at,
            scenario.suspend.map(|s| s.0),
            scenario.suspend.map(|s| s.1),
        ]
        .into_iter()
        .flatten()
        {
            if t > now {
                earliest(t);
            }
        }
        let Some(next) = next else {
            return Err(SimError::Stuck(now));
        };
        now = next.max(now);
        for i in 0..n {
            if let Some((end, outcome)) = running[i]
                && end <= now
            {
                end_attempt(&mut cats[i], &mut running[i], &mut trace, end, i, outcome);
            }
        }
    }
}

fn end_attempt(
    cat: &mut CategoryObs,
    running: &mut Option<(Duration, AttemptOutcome)>,
    trace: &mut Vec<SimEvent>,
    at: Duration,
    i: usize,
    outcome: AttemptOutcome,
) {
    if let Some(last) = cat.attempts.last_mut() {
        last.ended = Some((at, outcome));
    }
    *running = None;
    trace.push(SimEvent {
        at,
        category: i,
        kind: SimEventKind::Ended(outcome),
    });
}
