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
}

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
