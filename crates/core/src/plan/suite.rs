//! The whole suite: layers in dependency order. A layer starts when every
//! layer it depends on (of those in the suite) passed; a layer whose
//! dependency did not pass is skipped, naming it; background layers start as
//! soon as they may and nobody waits for them. Pure: states in, what to do
//! next out.

/// One layer of a suite, as the suite planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteLayer {
    /// The layer key.
    pub key: String,
    /// Keys of the layers it depends on.
    pub dependencies: Vec<String>,
    /// A background layer: it blocks nothing and the outcome leaves it out.
    pub background: bool,
}

/// Where one layer of a suite stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerState {
    /// Not started.
    Waiting,
    /// Running.
    Running,
    /// Ended: passed.
    Passed,
    /// Ended: failed, timed out or cancelled.
    Failed,
    /// Not run: the named dependency did not pass.
    Skipped(String),
    /// Stopped by the user (a signal) while it ran, or not run because the
    /// suite was cancelled first.
    Cancelled,
}

impl LayerState {
    /// Whether it ended (or will never run).
    pub fn is_done(&self) -> bool {
        !matches!(self, LayerState::Waiting | LayerState::Running)
    }

    /// The word reports use: `Passed`, `Failed`, `Skipped`, `Cancelled`
    /// (`Running` while it has not ended).
    pub fn word(&self) -> &'static str {
        match self {
            LayerState::Passed => "Passed",
            LayerState::Failed => "Failed",
            LayerState::Skipped(_) => "Skipped",
            LayerState::Cancelled => "Cancelled",
            LayerState::Waiting | LayerState::Running => "Running",
        }
    }
}

/// How one layer of a suite ended, as its executor saw it: what
/// [`Suite::states`] turns into the layer's [`LayerState`], the same for
/// both executors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEnding {
    /// It ran to this outcome (stopped by a signal or a cancel: `Cancelled`).
    Ran(LayerOutcome),
    /// It did not start: a dependency did not pass (the named one when the
    /// executor knows it; a run's gate in the cluster names a run).
    DependencyNotPassed(Option<String>),
    /// It did not start: the suite was cancelled first.
    NotStarted,
    /// It could not run (bad input found late, a defect).
    Broken,
}

/// How a suite ended, as its text, JSON report, JUnit file and exit code
/// say, locally and in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteOutcome {
    /// Every layer not in the background passed.
    Succeeded,
    /// One of them did not pass, and none was cancelled.
    Failed,
    /// One of them was stopped by the user, or never started because of
    /// it: the suite did not run to its end, whatever else failed.
    Cancelled,
}

/// The exit code of a suite or layer cancelled by Ctrl-C, SIGTERM or a
/// cancel request.
pub const EXIT_CANCELLED: i32 = 130;

impl SuiteOutcome {
    /// The outcome of `suite` whose layers stand as `states`: background
    /// layers are left out.
    pub fn of(suite: &Suite, states: &[LayerState]) -> SuiteOutcome {
        let blocking = || {
            suite
                .layers
                .iter()
                .zip(states)
                .filter(|(l, _)| !l.background)
                .map(|(_, s)| s)
        };
        if blocking().all(|s| *s == LayerState::Passed) {
            SuiteOutcome::Succeeded
        } else if blocking().any(|s| *s == LayerState::Cancelled) {
            SuiteOutcome::Cancelled
        } else {
            SuiteOutcome::Failed
        }
    }

    /// `Succeeded`, `Failed` or `Cancelled`.
    pub fn word(self) -> &'static str {
        match self {
            SuiteOutcome::Succeeded => "Succeeded",
            SuiteOutcome::Failed => "Failed",
            SuiteOutcome::Cancelled => "Cancelled",
        }
    }

    /// 0, 1, or 130 ([`EXIT_CANCELLED`]).
    pub fn exit_code(self) -> i32 {
        match self {
            SuiteOutcome::Succeeded => 0,
            SuiteOutcome::Failed => 1,
            SuiteOutcome::Cancelled => EXIT_CANCELLED,
        }
    }
}

use super::LayerOutcome;

/// What to do next with a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuiteStep {
    /// Start layer `i`.
    Start(usize),
    /// Skip layer `i`: its dependency (the key) did not pass.
    Skip(usize, String),
}

/// The layers a suite runs, checked: dependencies on layers outside the
/// suite are dropped (they are not waited for), and the order is one in
/// which every layer comes after those it depends on.
#[derive(Debug, Clone)]
pub struct Suite {
    layers: Vec<SuiteLayer>,
    /// Indices of each layer's dependencies within the suite.
    deps: Vec<Vec<usize>>,
    /// Dependencies dropped because the suite does not hold them: (layer, dependency).
    pub outside: Vec<(String, String)>,
}

/// What is wrong with a suite.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    /// The same layer twice.
    #[error("layer {0} is named twice")]
    Duplicate(String),
    /// A dependency cycle.
    #[error("layer dependency cycle: {0}")]
    Cycle(String),
}

impl Suite {
    /// The suite of `layers`, put in dependency order (each after those it
    /// depends on; the order given breaks ties).
    pub fn new(layers: Vec<SuiteLayer>) -> Result<Suite, SuiteError> {
        let checked = Suite::unordered(layers)?;
        // Kahn's algorithm, always taking the first ready layer as given.
        let n = checked.layers.len();
        let mut placed = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            let next = (0..n).find(|&i| !placed[i] && checked.deps[i].iter().all(|&d| placed[d]));
            let Some(i) = next else { break };
            placed[i] = true;
            order.push(i);
        }
        let outside = checked.outside;
        let layers = order.iter().map(|&i| checked.layers[i].clone()).collect();
        let mut ordered = Suite::unordered(layers)?;
        ordered.outside = outside;
        Ok(ordered)
    }

    fn unordered(layers: Vec<SuiteLayer>) -> Result<Suite, SuiteError> {
        let index: std::collections::BTreeMap<&str, usize> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.key.as_str(), i))
            .collect();
        if index.len() != layers.len() {
            let mut seen = std::collections::BTreeSet::new();
            let twice = layers
                .iter()
                .find(|l| !seen.insert(l.key.as_str()))
                .map(|l| l.key.clone())
                .unwrap_or_default();
            return Err(SuiteError::Duplicate(twice));
        }
        let mut outside = Vec::new();
        let deps: Vec<Vec<usize>> = layers
            .iter()
            .map(|l| {
                l.dependencies
                    .iter()
                    .filter_map(|d| match index.get(d.as_str()) {
                        Some(&j) => Some(j),
                        None => {
                            outside.push((l.key.clone(), d.clone()));
                            None
                        }
                    })
                    .collect()
            })
            .collect();
        if let Some(cycle) = crate::layer::find_cycle(&deps) {
            let names: Vec<&str> = cycle.iter().map(|&i| layers[i].key.as_str()).collect();
            return Err(SuiteError::Cycle(names.join(" -> ")));
        }
        Ok(Suite {
            layers,
            deps,
            outside,
        })
    }

    /// The layers, as given.
    pub fn layers(&self) -> &[SuiteLayer] {
        &self.layers
    }

    /// What to do now, given each layer's state (`states[i]` is layer
    /// `i`'s): layers whose dependencies all passed start, layers with a
    /// dependency that failed or was skipped are skipped (skips cascade
    /// within one call); a layer whose dependency was cancelled waits, to be
    /// cancelled with the suite. `cancelled`: the suite is being cancelled,
    /// nothing starts.
    pub fn next(&self, states: &[LayerState], cancelled: bool) -> Vec<SuiteStep> {
        let mut states = states.to_vec();
        let mut steps = Vec::new();
        loop {
            let mut changed = false;
            for i in 0..self.layers.len() {
                if states[i] != LayerState::Waiting {
                    continue;
                }
                // A dependency cancelled by the user is no failure: its
                // dependents are not run either, and end Cancelled with the
                // suite, not Skipped.
                let failed = self.deps[i].iter().find(|&&d| {
                    states[d].is_done()
                        && !matches!(states[d], LayerState::Passed | LayerState::Cancelled)
                });
                if let Some(&d) = failed {
                    let key = self.layers[d].key.clone();
                    states[i] = LayerState::Skipped(key.clone());
                    steps.push(SuiteStep::Skip(i, key));
                    changed = true;
                } else if !cancelled
                    && self.deps[i]
                        .iter()
                        .all(|&d| states[d] == LayerState::Passed)
                {
                    states[i] = LayerState::Running;
                    steps.push(SuiteStep::Start(i));
                    changed = true;
                }
            }
            if !changed {
                return steps;
            }
        }
    }

    /// Whether every layer that is not in the background has ended.
    pub fn blocking_done(&self, states: &[LayerState]) -> bool {
        self.layers
            .iter()
            .zip(states)
            .all(|(l, s)| l.background || s.is_done())
    }

    /// Whether every layer that is not in the background passed.
    pub fn passed(&self, states: &[LayerState]) -> bool {
        self.layers
            .iter()
            .zip(states)
            .all(|(l, s)| l.background || *s == LayerState::Passed)
    }

    /// Each layer's state from how it ended (`ends[i]` is layer `i`'s;
    /// `None`: not yet, `Running`): a layer that ran is `Passed`, `Failed`
    /// (failed or timed out) or `Cancelled`; one that could not run is
    /// `Failed`; one that never started because the suite was cancelled is
    /// `Cancelled`; one whose dependency did not pass is `Skipped`, naming
    /// the first dependency that failed or was skipped, and `Cancelled` when
    /// what it waited on was only cancelled (a cancel is no failure, as
    /// [`Suite::next`] says).
    pub fn states(&self, ends: &[Option<LayerEnding>]) -> Vec<LayerState> {
        let mut states: Vec<LayerState> = Vec::with_capacity(self.layers.len());
        for (i, end) in ends.iter().enumerate().take(self.layers.len()) {
            let state = match end {
                None => LayerState::Running,
                Some(LayerEnding::Ran(LayerOutcome::Succeeded)) => LayerState::Passed,
                Some(LayerEnding::Ran(LayerOutcome::Cancelled)) | Some(LayerEnding::NotStarted) => {
                    LayerState::Cancelled
                }
                Some(LayerEnding::Ran(LayerOutcome::Failed | LayerOutcome::TimedOut))
                | Some(LayerEnding::Broken) => LayerState::Failed,
                Some(LayerEnding::DependencyNotPassed(named)) => {
                    // Dependencies come first in a suite's order, so theirs
                    // are known.
                    let of = |d: usize| states.get(d).cloned().unwrap_or(LayerState::Running);
                    let named = named
                        .as_ref()
                        .and_then(|k| self.deps[i].iter().find(|&&d| self.layers[d].key == *k));
                    let failed = named
                        .into_iter()
                        .chain(&self.deps[i])
                        .find(|&&d| matches!(of(d), LayerState::Failed | LayerState::Skipped(_)));
                    match failed {
                        Some(&d) => LayerState::Skipped(self.layers[d].key.clone()),
                        None if self.deps[i].iter().any(|&d| of(d) == LayerState::Cancelled) => {
                            LayerState::Cancelled
                        }
                        // No dependency of the suite explains it (one
                        // outside it, or an executor's mistake): it did not
                        // pass.
                        None => LayerState::Failed,
                    }
                }
            };
            states.push(state);
        }
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layer(key: &str, deps: &[&str], background: bool) -> SuiteLayer {
        SuiteLayer {
            key: key.into(),
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
            background,
        }
    }

    fn reference() -> Suite {
        Suite::new(vec![
            layer("fast", &[], false),
            layer("core", &["fast"], false),
            layer("service", &["core"], false),
            layer("e2e", &["fast"], true),
        ])
        .unwrap()
    }

    #[test]
    fn layers_start_in_dependency_order_and_background_ones_as_soon_as_they_may() {
        let s = reference();
        use LayerState::*;
        assert_eq!(
            s.next(&[Waiting, Waiting, Waiting, Waiting], false),
            [SuiteStep::Start(0)]
        );
        assert_eq!(
            s.next(&[Passed, Waiting, Waiting, Waiting], false),
            [SuiteStep::Start(1), SuiteStep::Start(3)]
        );
        assert!(!s.blocking_done(&[Passed, Passed, Running, Running]));
        assert!(s.blocking_done(&[Passed, Passed, Passed, Running]));
        assert!(
            s.passed(&[Passed, Passed, Passed, Failed]),
            "background is left out"
        );
    }

    #[test]
    fn a_cancelled_layer_skips_nothing_its_dependents_wait_to_be_cancelled() {
        let s = reference();
        use LayerState::*;
        assert_eq!(s.next(&[Cancelled, Waiting, Waiting, Waiting], true), []);
        assert!(!s.passed(&[Cancelled, Cancelled, Cancelled, Cancelled]));
    }

    #[test]
    fn a_failed_layer_skips_its_dependents_naming_it_and_cancel_starts_nothing() {
        let s = reference();
        use LayerState::*;
        assert_eq!(
            s.next(&[Failed, Waiting, Waiting, Waiting], false),
            [
                SuiteStep::Skip(1, "fast".into()),
                SuiteStep::Skip(2, "core".into()),
                SuiteStep::Skip(3, "fast".into()),
            ]
        );
        assert_eq!(s.next(&[Passed, Waiting, Waiting, Waiting], true), []);
        assert!(!s.passed(&[
            Failed,
            Skipped("fast".into()),
            Skipped("core".into()),
            Skipped("fast".into())
        ]));
    }

    #[test]
    fn dependencies_outside_the_suite_are_not_waited_for_and_cycles_are_named() {
        // Put in dependency order, the given order breaking ties.
        let s = Suite::new(vec![
            layer("service", &["core"], false),
            layer("core", &["fast"], false),
            layer("fast", &[], false),
            layer("docs", &[], false),
        ])
        .unwrap();
        let keys: Vec<&str> = s.layers().iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["fast", "core", "service", "docs"]);
        let s = Suite::new(vec![layer("core", &["fast"], false)]).unwrap();
        assert_eq!(s.outside, [("core".to_string(), "fast".to_string())]);
        assert_eq!(s.next(&[LayerState::Waiting], false), [SuiteStep::Start(0)]);
        let e = Suite::new(vec![layer("a", &["b"], false), layer("b", &["a"], false)]).unwrap_err();
        assert!(
            matches!(e, SuiteError::Cycle(ref c) if c.contains("a") && c.contains("b")),
            "{e}"
        );
        assert_eq!(
            Suite::new(vec![layer("a", &[], false), layer("a", &[], false)]).unwrap_err(),
            SuiteError::Duplicate("a".into())
        );
    }

    /// A suite with two independent blocking chains and a background
    /// layer: fast -> core -> service <- docs, and e2e (background) on fast.
    fn two_chains() -> Suite {
        Suite::new(vec![
            layer("fast", &[], false),
            layer("core", &["fast"], false),
            layer("docs", &[], false),
            layer("service", &["core", "docs"], false),
            layer("e2e", &["fast"], true),
        ])
        .unwrap()
    }

    /// Every way a layer ends, against the states the command-line reference
    /// (`docs/reference/command-line.md`) lists
    /// (`Passed`, `Failed`, `Skipped` naming the dependency, `Cancelled`),
    /// and the suite's outcome and exit code for each combination.
    #[test]
    fn every_way_a_layer_ends_gives_the_state_outcome_and_exit_code_the_readme_lists() {
        use LayerEnding::*;
        use LayerOutcome as O;
        let s = two_chains();
        let keys: Vec<&str> = s.layers().iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["fast", "core", "docs", "service", "e2e"]);
        let dnp = || Some(DependencyNotPassed(None));
        let ran = |o| Some(Ran(o));
        // (what happened, how each layer ended [fast, core, docs, service,
        // e2e], each layer's state, the suite's outcome, its exit code)
        #[allow(clippy::type_complexity)]
        let table: Vec<(&str, [Option<LayerEnding>; 5], [&str; 5], &str, i32)> = vec![
            (
                "every layer passed",
                [
                    ran(O::Succeeded),
                    ran(O::Succeeded),
                    ran(O::Succeeded),
                    ran(O::Succeeded),
                    ran(O::Succeeded),
                ],
                ["Passed", "Passed", "Passed", "Passed", "Passed"],
                "Succeeded",
                0,
            ),
            (
                "a layer failed: its dependents are skipped naming it, the background one too",
                [ran(O::Failed), dnp(), ran(O::Succeeded), dnp(), dnp()],
                [
                    "Failed",
                    "Skipped(fast)",
                    "Passed",
                    "Skipped(core)",
                    "Skipped(fast)",
                ],
                "Failed",
                1,
            ),
            (
                "a layer timed out: Failed, as a failure",
                [
                    ran(O::Succeeded),
                    ran(O::TimedOut),
                    ran(O::Succeeded),
                    Some(DependencyNotPassed(Some("core".into()))),
                    ran(O::Succeeded),
                ],
                ["Passed", "Failed", "Passed", "Skipped(core)", "Passed"],
                "Failed",
                1,
            ),
            (
                "a layer could not run (no command, a defect): Failed",
                [Some(Broken), dnp(), ran(O::Succeeded), dnp(), dnp()],
                [
                    "Failed",
                    "Skipped(fast)",
                    "Passed",
                    "Skipped(core)",
                    "Skipped(fast)",
                ],
                "Failed",
                1,
            ),
            (
                "stopped by a signal while core ran: core Cancelled, service never started",
                [
                    ran(O::Succeeded),
                    ran(O::Cancelled),
                    ran(O::Succeeded),
                    Some(NotStarted),
                    ran(O::Cancelled),
                ],
                ["Passed", "Cancelled", "Passed", "Cancelled", "Cancelled"],
                "Cancelled",
                130,
            ),
            (
                "in the cluster, service's gate saw core Cancelled: waiting on a cancelled layer is Cancelled",
                [
                    ran(O::Succeeded),
                    ran(O::Cancelled),
                    ran(O::Succeeded),
                    dnp(),
                    ran(O::Succeeded),
                ],
                ["Passed", "Cancelled", "Passed", "Cancelled", "Passed"],
                "Cancelled",
                130,
            ),
            (
                "cancelled before anything started",
                [
                    Some(NotStarted),
                    Some(NotStarted),
                    Some(NotStarted),
                    Some(NotStarted),
                    Some(NotStarted),
                ],
                [
                    "Cancelled",
                    "Cancelled",
                    "Cancelled",
                    "Cancelled",
                    "Cancelled",
                ],
                "Cancelled",
                130,
            ),
            (
                "docs failed while core was cancelled: the suite did not run to its end, Cancelled",
                [
                    ran(O::Succeeded),
                    ran(O::Cancelled),
                    ran(O::Failed),
                    dnp(),
                    ran(O::Succeeded),
                ],
                ["Passed", "Cancelled", "Failed", "Skipped(docs)", "Passed"],
                "Cancelled",
                130,
            ),
            (
                "the background layer failed: not in the outcome",
                [
                    ran(O::Succeeded),
                    ran(O::Succeeded),
                    ran(O::Succeeded),
                    ran(O::Succeeded),
                    ran(O::Failed),
                ],
                ["Passed", "Passed", "Passed", "Passed", "Failed"],
                "Succeeded",
                0,
            ),
            (
                "the background layer was cancelled after the others passed: not in the outcome",
                [
                    ran(O::Succeeded),
                    ran(O::Succeeded),
                    ran(O::Succeeded),
                    ran(O::Succeeded),
                    ran(O::Cancelled),
                ],
                ["Passed", "Passed", "Passed", "Passed", "Cancelled"],
                "Succeeded",
                0,
            ),
            (
                "the background layer never started (cancelled with the suite)",
                [
                    ran(O::Succeeded),
                    ran(O::Failed),
                    ran(O::Succeeded),
                    dnp(),
                    Some(NotStarted),
                ],
                ["Passed", "Failed", "Passed", "Skipped(core)", "Cancelled"],
                "Failed",
                1,
            ),
            (
                "the background layer still runs when the others have ended",
                [
                    ran(O::Succeeded),
                    ran(O::Failed),
                    ran(O::Succeeded),
                    dnp(),
                    None,
                ],
                ["Passed", "Failed", "Passed", "Skipped(core)", "Running"],
                "Failed",
                1,
            ),
        ];
        for (what, ends, want, outcome, code) in table {
            let states = s.states(&ends);
            let got: Vec<String> = states
                .iter()
                .map(|st| match st {
                    LayerState::Skipped(d) => format!("Skipped({d})"),
                    st => st.word().to_string(),
                })
                .collect();
            assert_eq!(got, want, "{what}");
            for st in states.iter().filter(|st| st.is_done()) {
                assert!(
                    ["Passed", "Failed", "Skipped", "Cancelled"].contains(&st.word()),
                    "{what}: {st:?}"
                );
            }
            let o = SuiteOutcome::of(&s, &states);
            assert_eq!(o.word(), outcome, "{what}");
            assert_eq!(o.exit_code(), code, "{what}");
            assert_eq!(s.passed(&states), code == 0, "{what}");
        }
    }

    proptest! {
        /// Every way a suite ends, driven as both executors drive it: the
        /// planner's steps, random layer outcomes, and a cancel (a signal,
        /// or a cancel of the runs) at a random round, after which a layer
        /// that runs may still end on its own first. The states
        /// [`Suite::states`] gives from how each layer ended, as the local
        /// executor tells it (skips naming their dependency, layers that
        /// never started) and as the cluster does (a run whose gate failed
        /// names no layer; a run cancelled before it started ran to
        /// Cancelled), are the planner's; a layer is Cancelled only when a
        /// cancel came before it ended and it was not skipped for a
        /// failure; Skipped names a dependency that failed or was skipped;
        /// the outcome is Cancelled (130) exactly when a blocking layer was
        /// cancelled, Succeeded (0) exactly when every blocking layer
        /// passed, else Failed (1).
        #[test]
        fn every_suite_end_is_told_alike_by_both_executors(
            n in 1usize..9,
            edges in proptest::collection::vec((0usize..9, 0usize..9), 0..20),
            outcomes in proptest::collection::vec(0u8..4, 9),
            background in proptest::collection::vec(any::<bool>(), 9),
            cancel_at in proptest::option::of(0usize..6),
            races in proptest::collection::vec(any::<bool>(), 9),
        ) {
            let mut deps: Vec<Vec<String>> = vec![Vec::new(); n];
            for (a, b) in edges {
                let (a, b) = (a % n, b % n);
                if a > b && !deps[a].contains(&format!("l{b}")) { deps[a].push(format!("l{b}")); }
            }
            let s = Suite::new((0..n).map(|i| SuiteLayer {
                key: format!("l{i}"), dependencies: deps[i].clone(), background: background[i],
            }).collect()).unwrap();
            let index = |k: &str| s.layers().iter().position(|l| l.key == k).unwrap();
            let own = |i: usize| match outcomes[i] {
                0 => LayerOutcome::Failed,
                1 => LayerOutcome::TimedOut,
                _ => LayerOutcome::Succeeded,
            };
            let mut states = vec![LayerState::Waiting; n];
            let mut local: Vec<Option<LayerEnding>> = vec![None; n];
            let mut cluster: Vec<Option<LayerEnding>> = vec![None; n];
            let mut open_at_cancel = vec![false; n];
            let mut cancelled = false;
            for round in 0..40 {
                if cancel_at == Some(round) && !cancelled {
                    cancelled = true;
                    for i in 0..n {
                        open_at_cancel[i] = !states[i].is_done();
                    }
                }
                for step in s.next(&states, cancelled) {
                    match step {
                        SuiteStep::Start(i) => states[i] = LayerState::Running,
                        SuiteStep::Skip(i, d) => {
                            local[i] = Some(LayerEnding::DependencyNotPassed(Some(d.clone())));
                            cluster[i] = Some(LayerEnding::DependencyNotPassed(None));
                            states[i] = LayerState::Skipped(d);
                        }
                    }
                }
                // What runs ends: on its own, or stopped by the cancel
                // (unless it ends on its own first).
                for i in 0..n {
                    if states[i] == LayerState::Running {
                        let o = if cancelled && !races[i] { LayerOutcome::Cancelled } else { own(i) };
                        local[i] = Some(LayerEnding::Ran(o));
                        cluster[i] = Some(LayerEnding::Ran(o));
                        states[i] = s.states(&local)[i].clone();
                    }
                }
                if states.iter().all(LayerState::is_done) { break; }
                if cancelled && !states.contains(&LayerState::Running)
                    && s.next(&states, true).is_empty() {
                    // Nothing runs and nothing may start: what waits is
                    // cancelled with the suite. In the cluster it was
                    // cancelled too, or its gate saw a cancelled dependency.
                    for i in 0..n {
                        if !states[i].is_done() {
                            states[i] = LayerState::Cancelled;
                            local[i] = Some(LayerEnding::NotStarted);
                            cluster[i] = Some(if races[i] {
                                LayerEnding::Ran(LayerOutcome::Cancelled)
                            } else if deps[i].iter().any(|d| states[index(d)] == LayerState::Cancelled) {
                                LayerEnding::DependencyNotPassed(None)
                            } else {
                                LayerEnding::NotStarted
                            });
                        }
                    }
                }
            }
            prop_assert!(states.iter().all(LayerState::is_done), "no end: {states:?}");
            prop_assert_eq!(&s.states(&local), &states);
            // The cluster's gate names no layer: its Skipped names one of
            // the dependencies that failed, not always the one the planner
            // saw first.
            let told = s.states(&cluster);
            for (c, st) in told.iter().zip(&states) {
                prop_assert_eq!(std::mem::discriminant(c), std::mem::discriminant(st));
            }
            for (i, st) in states.iter().chain(&told).enumerate() {
                let i = i % n;
                match st {
                    LayerState::Cancelled => prop_assert!(open_at_cancel[i], "l{i} cancelled with no cancel before it ended"),
                    LayerState::Skipped(d) => {
                        prop_assert!(s.layers()[i].dependencies.contains(d));
                        prop_assert!(matches!(states[index(d)], LayerState::Failed | LayerState::Skipped(_)));
                    }
                    _ => {}
                }
            }
            let blocking: Vec<&LayerState> = s.layers().iter().zip(&states)
                .filter(|(l, _)| !l.background).map(|(_, st)| st).collect();
            let o = SuiteOutcome::of(&s, &states);
            prop_assert_eq!(o.exit_code() == 130, blocking.contains(&&LayerState::Cancelled));
            prop_assert_eq!(o.exit_code() == 0, blocking.iter().all(|st| **st == LayerState::Passed));
            prop_assert!(cancelled || o != SuiteOutcome::Cancelled);
            prop_assert_eq!(o.exit_code(), match o {
                SuiteOutcome::Succeeded => 0, SuiteOutcome::Failed => 1, SuiteOutcome::Cancelled => 130,
            });
        }
    }

    proptest! {
        /// Driven to its end with random outcomes: every layer ends, none
        /// starts before its dependencies passed, and a layer is skipped
        /// exactly when a dependency did not pass.
        #[test]
        fn every_suite_runs_to_an_end_that_respects_dependencies(
            n in 1usize..12,
            edges in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
            outcomes in proptest::collection::vec(any::<bool>(), 12),
            background in proptest::collection::vec(any::<bool>(), 12),
        ) {
            let mut deps: Vec<Vec<String>> = vec![Vec::new(); n];
            for (a, b) in edges {
                let (a, b) = (a % n, b % n);
                if a > b { deps[a].push(format!("l{b}")); }
            }
            let layers: Vec<SuiteLayer> = (0..n).map(|i| SuiteLayer {
                key: format!("l{i}"), dependencies: deps[i].clone(), background: background[i],
            }).collect();
            let s = Suite::new(layers).unwrap();
            let mut states = vec![LayerState::Waiting; n];
            let mut rounds = 0;
            while states.iter().any(|x| !x.is_done()) {
                rounds += 1;
                prop_assert!(rounds < 100, "no end: {states:?}");
                for step in s.next(&states, false) {
                    match step {
                        SuiteStep::Start(i) => {
                            for d in &deps[i] {
                                let j: usize = d[1..].parse().unwrap();
                                prop_assert_eq!(&states[j], &LayerState::Passed);
                            }
                            states[i] = LayerState::Running;
                        }
                        SuiteStep::Skip(i, d) => {
                            let j: usize = d[1..].parse().unwrap();
                            prop_assert!(states[j].is_done() && states[j] != LayerState::Passed);
                            states[i] = LayerState::Skipped(d);
                        }
                    }
                }
                // Every running layer ends.
                for i in 0..n {
                    if states[i] == LayerState::Running {
                        states[i] = if outcomes[i] { LayerState::Passed } else { LayerState::Failed };
                    }
                }
            }
        }
    }
}
