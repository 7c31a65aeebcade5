//! A resolved layer: one environment's view of a layer, self-contained and
//! checked, with everything the planner and the executors need.
//!
//! This file holds the plan types; `graph` checks the category dependency
//! graph and computes its derived facts; `command` substitutes command
//! templates.

mod category;
mod command;
mod graph;

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::config::raw::{ExecutionMode, LlmMode, Strategy};
pub use category::{CategoryPlan, EstimateSource, Quantities, Resources};
pub use command::{ATTEMPT_ENV, substitute_command};
pub use graph::{GraphError, find_cycle};

use graph::{Derived, derive};

/// A layer resolved for one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlan {
    /// The layer-wide settings, as resolved.
    pub settings: LayerSettings,
    /// The categories.
    pub categories: Vec<CategoryPlan>,
    derived: Derived,
}

/// The settings of a layer apart from its categories.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSettings {
    /// Key in the config.
    pub key: String,
    /// Display name.
    pub display_name: String,
    /// Kubernetes name part.
    pub k8s_name: String,
    /// Environment name.
    pub environment: Option<String>,
    /// Mode as written.
    pub execution_mode: ExecutionMode,
    /// Strategy.
    pub strategy: Strategy,
    /// Most categories at once.
    pub max_parallel: Option<u32>,
    /// CPU and memory budget.
    pub budget: Quantities,
    /// Fail-fast.
    pub fail_fast: bool,
    /// Deadline.
    pub deadline: Option<Duration>,
    /// Multiplier applied.
    pub timeout_multiplier: f64,
    /// Layer dependencies.
    pub dependencies: Vec<String>,
    /// Required services.
    pub required_services: Vec<String>,
    /// Local service addresses.
    pub service_addresses: BTreeMap<String, String>,
    /// Bound on waiting for services.
    pub service_wait: Duration,
    /// LLM mode.
    pub llm_mode: LlmMode,
    /// Shared resources held for the whole layer.
    pub uses: BTreeMap<String, u32>,
    /// Whether waiting for shared resources counts against the deadline.
    pub deadline_counts_resource_wait: bool,
    /// Declared capacities of shared resources.
    pub capacities: BTreeMap<String, u32>,
}

impl LayerSettings {
    /// Nobody waits for the result (the execution mode `background`).
    pub fn background(&self) -> bool {
        self.execution_mode == ExecutionMode::Background
    }

    /// Plain settings for a layer with the given strategy and limit (for tests and
    /// simulations).
    pub fn new(key: &str, strategy: Strategy, max_parallel: Option<u32>) -> Self {
        LayerSettings {
            key: key.to_string(),
            display_name: key.to_string(),
            k8s_name: crate::config::names::slug(key).unwrap_or_else(|_| "layer".into()),
            environment: None,
            execution_mode: match strategy {
                Strategy::Sequential => ExecutionMode::Sequential,
                Strategy::ParallelUnlimited | Strategy::ParallelLimited => ExecutionMode::Parallel,
                Strategy::HybridSmart => ExecutionMode::Hybrid,
            },
            strategy,
            max_parallel,
            budget: Quantities::default(),
            fail_fast: false,
            deadline: None,
            timeout_multiplier: 1.0,
            dependencies: Vec::new(),
            required_services: Vec::new(),
            service_addresses: BTreeMap::new(),
            service_wait: Duration::from_secs(60),
            llm_mode: LlmMode::Mock,
            uses: BTreeMap::new(),
            deadline_counts_resource_wait: false,
            capacities: BTreeMap::new(),
        }
    }
}

impl LayerPlan {
    /// The plan with the durations an earlier run measured (`history`:
    /// seconds by category name) as the estimates of the categories whose
    /// config names none (their timeout stood in), each at most its
    /// timeout; the critical paths computed again. Returns how many
    /// estimates were learned.
    pub fn learn_durations(&mut self, history: &BTreeMap<String, f64>) -> usize {
        let mut learned = 0;
        for c in &mut self.categories {
            let Some(&secs) = history.get(&c.name) else {
                continue;
            };
            if c.estimate_source != EstimateSource::Timeout || !secs.is_finite() || secs < 0.0 {
                continue;
            }
            c.estimate = Duration::from_secs_f64(secs.min(c.timeout.as_secs_f64()));
            c.estimate_source = EstimateSource::History;
            learned += 1;
        }
        if learned > 0
            && let Ok(d) = derive(&self.categories)
        {
            self.derived = d;
        }
        learned
    }

    /// Builds a plan, checking the dependency graph and computing its derived facts.
    pub fn new(settings: LayerSettings, categories: Vec<CategoryPlan>) -> Result<Self, GraphError> {
        let derived = derive(&categories)?;
        Ok(LayerPlan {
            settings,
            categories,
            derived,
        })
    }

    /// Categories that depend directly on category `i`.
    pub fn dependents(&self, i: usize) -> &[usize] {
        &self.derived.dependents[i]
    }

    /// All categories, every one after those it depends on.
    pub fn topo_order(&self) -> &[usize] {
        &self.derived.topo_order
    }

    /// Longest chain of estimates from category `i` (itself included) to the end
    /// of the layer: the `HYBRID_SMART` priority.
    pub fn remaining_path(&self, i: usize) -> Duration {
        self.derived.remaining_path[i]
    }

    /// The longest chain of estimates through the whole layer.
    pub fn critical_path(&self) -> Duration {
        self.derived
            .remaining_path
            .iter()
            .copied()
            .max()
            .unwrap_or_default()
    }

    /// The environment testlayer gives the command of category `i`: the
    /// category's own `env`, then `TESTLAYER_LAYER`, `TESTLAYER_CATEGORY`,
    /// `TESTLAYER_ENVIRONMENT`, `TESTLAYER_LLM_MODE` and, in a cluster,
    /// `TESTLAYER_RUN`. Each attempt adds [`ATTEMPT_ENV`].
    pub fn command_env(&self, i: usize, run: Option<&str>) -> BTreeMap<String, String> {
        let mut env = self
            .categories
            .get(i)
            .map(|c| c.env.clone())
            .unwrap_or_default();
        let name = self.categories.get(i).map(|c| c.name.clone());
        env.insert("TESTLAYER_LAYER".into(), self.settings.key.clone());
        env.insert("TESTLAYER_CATEGORY".into(), name.unwrap_or_default());
        env.insert(
            "TESTLAYER_ENVIRONMENT".into(),
            self.settings.environment.clone().unwrap_or_default(),
        );
        env.insert(
            "TESTLAYER_LLM_MODE".into(),
            self.settings.llm_mode.to_string(),
        );
        if let Some(run) = run {
            env.insert("TESTLAYER_RUN".into(), run.to_string());
        }
        env
    }

    /// Index of the category with this name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        // The index of names, unless the categories were changed since.
        match self.derived.by_name.get(name) {
            Some(&i) if self.categories.get(i).is_some_and(|c| c.name == name) => Some(i),
            _ => self.categories.iter().position(|c| c.name == name),
        }
    }

    /// Whether the layer or any of its categories uses shared resources.
    pub fn uses_shared_resources(&self) -> bool {
        !self.settings.uses.is_empty() || self.categories.iter().any(|c| !c.uses.is_empty())
    }

    /// The limit on running categories the strategy enforces.
    pub fn effective_parallelism(&self) -> Option<u32> {
        match self.settings.strategy {
            Strategy::Sequential => Some(1),
            _ => self.settings.max_parallel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(name: &str, secs: u64, deps: &[usize]) -> CategoryPlan {
        let mut c = CategoryPlan::new(name, Duration::from_secs(secs));
        c.dependencies = deps.to_vec();
        c
    }

    #[test]
    fn derived_facts() {
        let cats = vec![
            cat("a", 10, &[]),
            cat("b", 5, &[0]),
            cat("c", 30, &[0]),
            cat("d", 1, &[1, 2]),
        ];
        let p = LayerPlan::new(
            LayerSettings::new("l", Strategy::HybridSmart, Some(2)),
            cats,
        )
        .unwrap();
        assert_eq!(p.topo_order(), &[0, 1, 2, 3]);
        assert_eq!(p.remaining_path(0), Duration::from_secs(41));
        assert_eq!(p.remaining_path(1), Duration::from_secs(6));
        assert_eq!(p.critical_path(), Duration::from_secs(41));
        assert_eq!(p.dependents(0), &[1, 2]);
    }
}
