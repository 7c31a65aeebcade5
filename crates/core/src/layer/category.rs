//! One category of a resolved layer: its command, limits, timeouts,
//! retries, dependencies and planning estimate.

use std::collections::BTreeMap;
use std::time::Duration;

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
