//! A resolved layer: one environment's view of a layer, self-contained and
//! checked, with everything the planner and the executors need.
//!
//! This file holds the plan types; `graph` checks the category dependency
//! graph and computes its derived facts; `command` substitutes command
//! templates.

mod command;
mod graph;

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::config::raw::{ExecutionMode, LlmMode, Strategy};
pub use command::{ATTEMPT_ENV, substitute_command};
pub use graph::{GraphError, find_cycle};

use graph::{Derived, derive};

/// CPU in millicores and memory in bytes; `None` when not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quantities {
    /// Millicores.
    pub cpu_millis: Option<u64>,
    /// Bytes.
    pub memory_bytes: Option<u64>,
}

/// Requests and limits of one category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// Guaranteed.
    pub requests: Quantities,
    /// Maximum.
    pub limits: Quantities,
}

impl Resources {
    /// What a running category counts against the layer budget: its limit where
    /// set, else its request, else nothing.
    pub fn budget_size(&self) -> Quantities {
        Quantities {
            cpu_millis: self.limits.cpu_millis.or(self.requests.cpu_millis),
            memory_bytes: self.limits.memory_bytes.or(self.requests.memory_bytes),
        }
    }
}

/// One category of a resolved layer.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryPlan {
    /// Name as written in the config.
    pub name: String,
    /// Kubernetes name part (DNS label, unique in the layer).
    pub k8s_name: String,
    /// Per-attempt timeout, multiplier applied.
    pub timeout: Duration,
    /// Lower starts first among equals.
    pub priority_order: i64,
    /// Indices of the categories that must succeed first.
    pub dependencies: Vec<usize>,
    /// Shell command line, templates substituted.
    pub command: Option<String>,
    /// Container image.
    pub image: Option<String>,
    /// Environment (layer env, environment overrides and category env merged).
    pub env: BTreeMap<String, String>,
    /// Requests and limits.
    pub resources: Resources,
    /// Retries after failed test attempts.
    pub retries: u32,
    /// Retries after infrastructure failures.
    pub infra_retries: u32,
    /// Backoff before the first retry; doubles for each further one.
    pub retry_backoff: Duration,
    /// Expected duration for planning (known duration, else the timeout).
    pub estimate: Duration,
    /// Where the estimate comes from.
    pub estimate_source: EstimateSource,
    /// JUnit XML the category writes.
    pub junit_report: Option<String>,
    /// Working directory for local runs.
    pub working_dir: Option<String>,
    /// Quarantined test ids and patterns (the layer's, then its own).
    pub quarantine: Vec<String>,
    /// Its failure fails neither the layer nor fail-fast, and its
    /// dependents still run.
    pub allow_failure: bool,
    /// Units of shared resources each attempt holds while it runs, by
    /// resource name.
    pub uses: BTreeMap<String, u32>,
}

impl CategoryPlan {
    /// A category with defaults for everything but name and timeout (for tests and
    /// simulations).
    pub fn new(name: &str, timeout: Duration) -> Self {
        CategoryPlan {
            name: name.to_string(),
            k8s_name: crate::config::names::slug(name).unwrap_or_else(|_| "category".into()),
            timeout,
            priority_order: 0,
            dependencies: Vec::new(),
            command: None,
            image: None,
            env: BTreeMap::new(),
            resources: Resources::default(),
            retries: 0,
            infra_retries: 2,
            retry_backoff: Duration::from_secs(1),
            estimate: timeout,
            estimate_source: EstimateSource::Timeout,
            junit_report: None,
            working_dir: None,
            quarantine: Vec::new(),
            allow_failure: false,
            uses: BTreeMap::new(),
        }
    }

    /// Backoff before attempt number `attempt` (2 or more) given the attempts that
    /// failed before it: the base doubled per earlier retry, at most ten minutes.
    pub fn backoff_before(&self, failed_before: u32) -> Duration {
        let doublings = failed_before.saturating_sub(1).min(16);
        (self.retry_backoff * 2u32.pow(doublings)).min(Duration::from_secs(600))
    }
}

/// A layer resolved for one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlan {
    /// Key in the config (`fast_feedback`).
    pub key: String,
    /// Display name (`Fast Feedback`).
    pub display_name: String,
    /// Kubernetes name part.
    pub k8s_name: String,
    /// Environment the overrides came from.
    pub environment: Option<String>,
    /// Mode as written.
    pub execution_mode: ExecutionMode,
    /// Strategy the planner follows.
    pub strategy: Strategy,
    /// Nobody waits for the result.
    pub background: bool,
    /// Most categories running at once (`None`: no limit).
    pub max_parallel: Option<u32>,
    /// Layer-wide CPU and memory budget of running categories.
    pub budget: Quantities,
    /// Cancel everything at the first failure.
    pub fail_fast: bool,
    /// Whole-layer deadline, multiplier applied.
    pub deadline: Option<Duration>,
    /// The multiplier that was applied.
    pub timeout_multiplier: f64,
    /// Layer keys that must have passed first.
    pub dependencies: Vec<String>,
    /// Services that must be ready first.
    pub required_services: Vec<String>,
    /// Addresses of required services for local runs.
    pub service_addresses: BTreeMap<String, String>,
    /// Bound on waiting for required services.
    pub service_wait: Duration,
    /// LLM mode.
    pub llm_mode: LlmMode,
    /// Units of shared resources the layer holds from its start to its
    /// end, by resource name.
    pub uses: BTreeMap<String, u32>,
    /// Whether time spent waiting for shared resources counts against the
    /// deadline.
    pub deadline_counts_resource_wait: bool,
    /// Capacities of the shared resources the config declares (what local
    /// runs use; in a cluster the resources' objects say).
    pub capacities: BTreeMap<String, u32>,
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

/// Where a category's planning estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EstimateSource {
    /// Nothing better is known: its timeout.
    #[default]
    Timeout,
    /// The config's `expected_duration_seconds`.
    Config,
    /// What an earlier run of the layer measured.
    History,
}

impl EstimateSource {
    /// How people read it.
    pub fn as_str(self) -> &'static str {
        match self {
            EstimateSource::Timeout => "timeout",
            EstimateSource::Config => "config",
            EstimateSource::History => "learned",
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
        let s = settings;
        Ok(LayerPlan {
            key: s.key,
            display_name: s.display_name,
            k8s_name: s.k8s_name,
            environment: s.environment,
            background: s.execution_mode == ExecutionMode::Background,
            execution_mode: s.execution_mode,
            strategy: s.strategy,
            max_parallel: s.max_parallel,
            budget: s.budget,
            fail_fast: s.fail_fast,
            deadline: s.deadline,
            timeout_multiplier: s.timeout_multiplier,
            dependencies: s.dependencies,
            required_services: s.required_services,
            service_addresses: s.service_addresses,
            service_wait: s.service_wait,
            llm_mode: s.llm_mode,
            uses: s.uses,
            deadline_counts_resource_wait: s.deadline_counts_resource_wait,
            capacities: s.capacities,
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
        env.insert("TESTLAYER_LAYER".into(), self.key.clone());
        env.insert("TESTLAYER_CATEGORY".into(), name.unwrap_or_default());
        env.insert(
            "TESTLAYER_ENVIRONMENT".into(),
            self.environment.clone().unwrap_or_default(),
        );
        env.insert("TESTLAYER_LLM_MODE".into(), self.llm_mode.to_string());
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
        !self.uses.is_empty() || self.categories.iter().any(|c| !c.uses.is_empty())
    }

    /// The limit on running categories the strategy enforces.
    pub fn effective_parallelism(&self) -> Option<u32> {
        match self.strategy {
            Strategy::Sequential => Some(1),
            _ => self.max_parallel,
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
