//! Whose outcome a finished run tells, and what came before it: the run
//! alone, or the suite it belongs to (told once, by one of its runs, when
//! the last of them ended), and the outcome of the previous run (or suite)
//! for `OnChange`. Pure: over the runs of the namespace as observed.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::names::{ANNOTATION_SUITE_LAYERS, LABEL_SCHEDULE, LABEL_SUITE, LABEL_TRIGGER};
use crate::api::{LayerPhase, TestLayerRun};

/// What a finished run tells.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Its own outcome (also that of a run alone in a suite of one layer).
    Alone(LayerPhase),
    /// Its suite's outcome: it leads the suite (the first of its runs by
    /// name) and every run of the suite ended. `runs`: the suite's runs,
    /// by name.
    Suite {
        /// The suite's label.
        suite: String,
        /// Its outcome.
        outcome: LayerPhase,
        /// Its runs, by name.
        runs: Vec<Arc<TestLayerRun>>,
    },
    /// The suite has runs that did not end (or were not made) yet: its
    /// leader looks again.
    SuiteRunning,
    /// Another run of the suite tells the suite's outcome.
    NotLeader,
}

/// The outcome of a suite whose runs ended in `phases`: Succeeded when
/// all succeeded, else Failed when any failed, else TimedOut when any timed
/// out, else Cancelled.
pub fn suite_outcome(phases: impl IntoIterator<Item = LayerPhase>) -> LayerPhase {
    let mut worst = LayerPhase::Succeeded;
    for p in phases {
        let rank = |p: LayerPhase| match p {
            LayerPhase::Failed => 3,
            LayerPhase::TimedOut => 2,
            LayerPhase::Cancelled => 1,
            _ => 0,
        };
        if rank(p) > rank(worst) {
            worst = p;
        }
    }
    worst
}

fn phase(r: &TestLayerRun) -> Option<LayerPhase> {
    r.status
        .as_ref()
        .and_then(|s| s.phase)
        .filter(|p| p.is_terminal())
}

fn label<'a>(r: &'a TestLayerRun, key: &str) -> Option<&'a str> {
    r.labels().get(key).map(String::as_str)
}

/// Created before `b` (by creation time, then name).
fn before(a: &TestLayerRun, b: &TestLayerRun) -> bool {
    let key = |r: &TestLayerRun| {
        (
            r.metadata.creation_timestamp.clone().map(|t| t.0),
            r.name_any(),
        )
    };
    key(a) < key(b)
}

/// What the finished `run` tells, among `runs` (every run of its
/// namespace, itself included or not).
pub fn scope(run: &Arc<TestLayerRun>, runs: &[Arc<TestLayerRun>]) -> Option<Scope> {
    let own = phase(run)?;
    let Some(suite) = label(run, LABEL_SUITE) else {
        return Some(Scope::Alone(own));
    };
    let mut members: BTreeMap<String, Arc<TestLayerRun>> = runs
        .iter()
        .filter(|r| label(r, LABEL_SUITE) == Some(suite))
        .map(|r| (r.name_any(), r.clone()))
        .collect();
    members.insert(run.name_any(), run.clone());
    let layers: Vec<&str> = run
        .annotations()
        .get(ANNOTATION_SUITE_LAYERS)
        .map(|l| {
            l.split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    // A suite of one layer (a schedule's or trigger's tick of one layer)
    // is its run.
    if layers.len() <= 1 && members.len() == 1 {
        return Some(Scope::Alone(own));
    }
    if members.keys().next() != Some(&run.name_any()) {
        return Some(Scope::NotLeader);
    }
    let all_made = layers
        .iter()
        .all(|l| members.values().any(|r| r.spec.layer == *l));
    let phases: Option<Vec<LayerPhase>> = members.values().map(|r| phase(r)).collect();
    match phases {
        Some(phases) if all_made => Some(Scope::Suite {
            suite: suite.to_string(),
            outcome: suite_outcome(phases),
            runs: members.into_values().collect(),
        }),
        _ => Some(Scope::SuiteRunning),
    }
}

/// The outcome of the run before `run` whose outcome `OnChange` compares
/// with: the latest finished run created before it of the same layer and,
/// when `run` was made by a schedule (or trigger), of the same one.
pub fn previous_run(run: &TestLayerRun, runs: &[Arc<TestLayerRun>]) -> Option<LayerPhase> {
    let maker = |r: &TestLayerRun| {
        label(r, LABEL_SCHEDULE)
            .map(|s| ("s", s.to_string()))
            .or_else(|| label(r, LABEL_TRIGGER).map(|t| ("t", t.to_string())))
    };
    let mine = maker(run);
    runs.iter()
        .filter(|r| r.name_any() != run.name_any() && r.spec.layer == run.spec.layer)
        .filter(|r| mine.is_none() || maker(r) == mine)
        .filter(|r| before(r, run))
        .filter_map(|r| phase(r).map(|p| (r, p)))
        .max_by(|(a, _), (b, _)| {
            if before(a, b) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        })
        .map(|(_, p)| p)
}

/// The outcome of the suite before the suite led by `leader`: the latest
/// other suite of the same schedule (or trigger, or else of the same
/// layers) whose runs all ended, by the creation of its first run.
pub fn previous_suite(leader: &TestLayerRun, runs: &[Arc<TestLayerRun>]) -> Option<LayerPhase> {
    let suite = label(leader, LABEL_SUITE)?;
    let maker = |r: &TestLayerRun| {
        (
            label(r, LABEL_SCHEDULE).map(String::from),
            label(r, LABEL_TRIGGER).map(String::from),
            r.annotations().get(ANNOTATION_SUITE_LAYERS).cloned(),
        )
    };
    let mine = maker(leader);
    let mut suites: BTreeMap<&str, Vec<&Arc<TestLayerRun>>> = BTreeMap::new();
    for r in runs {
        if let Some(s) = label(r, LABEL_SUITE)
            && s != suite
            && maker(r) == mine
        {
            suites.entry(s).or_default().push(r);
        }
    }
    suites
        .into_values()
        .filter_map(|members| {
            let first = members.iter().copied().min_by(|a, b| {
                if before(a, b) {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            })?;
            if !before(first, leader) {
                return None;
            }
            let phases: Option<Vec<LayerPhase>> = members.iter().map(|r| phase(r)).collect();
            Some((first.clone(), suite_outcome(phases?)))
        })
        .max_by(|(a, _), (b, _)| {
            if before(a, b) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        })
        .map(|(_, p)| p)
}
