//! The layer config file exactly as written: serde types that reject unknown fields.
//!
//! Numbers that users get wrong (timeouts, retries, sizes) are read as wide signed
//! or floating types so that validation, not the parser, says what is wrong with them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// The whole file: layers by key, and per-environment overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Layers by key (the key is how runs and other layers refer to a layer).
    #[serde(deserialize_with = "unique_keys")]
    pub layers: BTreeMap<String, RawLayer>,
    /// Overrides applied when a run names an environment.
    #[serde(default, deserialize_with = "unique_keys")]
    pub environment_overrides: BTreeMap<String, RawEnvironment>,
    /// Addresses of required services for local runs (`host:port`), by service name.
    #[serde(default, deserialize_with = "unique_keys")]
    pub services: BTreeMap<String, RawService>,
    /// Shared resources that categories of different runs take turns on
    /// (a staging database, a licence-limited sandbox), by name. Their
    /// capacity here is the one local runs use; in a cluster each one's
    /// `TestLayerResource` object says it.
    #[serde(default, deserialize_with = "unique_keys")]
    pub resources: BTreeMap<String, RawSharedResource>,
}

/// A shared resource as declared.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSharedResource {
    /// Units that may be held at once (1, the default: a mutex).
    pub capacity: Option<i64>,
    /// Free text.
    pub description: Option<String>,
}

/// One entry of a `uses` list: a resource name (one unit), or a name with a
/// number of units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawUse {
    /// The resource.
    pub name: String,
    /// Units wanted (1 when only the name is written).
    pub units: i64,
}

impl<'de> Deserialize<'de> for RawUse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Units {
            name: String,
            #[serde(default = "one")]
            units: i64,
        }
        fn one() -> i64 {
            1
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Use {
            Name(String),
            Units(Units),
        }
        match Use::deserialize(d) {
            Ok(Use::Name(name)) => Ok(RawUse { name, units: 1 }),
            Ok(Use::Units(u)) => Ok(RawUse {
                name: u.name,
                units: u.units,
            }),
            Err(_) => Err(serde::de::Error::custom(
                "expected a resource name, or a mapping `{name: NAME, units: N}`",
            )),
        }
    }
}

/// How a layer's categories are run, as the original format names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// One at a time, in priority order.
    Sequential,
    /// All that are ready at once (bounded by the layer limit when set).
    Parallel,
    /// Dependency-aware with a parallel limit, critical path first.
    Hybrid,
    /// Like hybrid, and nothing waits for the result.
    Background,
}

/// The execution strategy the planner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Strategy {
    /// One category at a time, by priority order.
    #[serde(rename = "SEQUENTIAL", alias = "sequential")]
    Sequential,
    /// Every ready category starts at once.
    #[serde(rename = "PARALLEL_UNLIMITED", alias = "parallel_unlimited")]
    ParallelUnlimited,
    /// Ready categories start in priority order up to the parallel limit.
    #[serde(rename = "PARALLEL_LIMITED", alias = "parallel_limited")]
    ParallelLimited,
    /// Ready categories start longest-remaining-path first, up to the limit.
    #[serde(rename = "HYBRID_SMART", alias = "hybrid_smart")]
    HybridSmart,
}

impl Strategy {
    /// The name used in the config and in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Sequential => "SEQUENTIAL",
            Strategy::ParallelUnlimited => "PARALLEL_UNLIMITED",
            Strategy::ParallelLimited => "PARALLEL_LIMITED",
            Strategy::HybridSmart => "HYBRID_SMART",
        }
    }

    /// Parses the config name (either case).
    pub fn parse(s: &str) -> Option<Strategy> {
        match s.to_ascii_uppercase().as_str() {
            "SEQUENTIAL" => Some(Strategy::Sequential),
            "PARALLEL_UNLIMITED" => Some(Strategy::ParallelUnlimited),
            "PARALLEL_LIMITED" => Some(Strategy::ParallelLimited),
            "HYBRID_SMART" => Some(Strategy::HybridSmart),
            _ => None,
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Strategy {
    type Err = crate::words::UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::parse(s).ok_or_else(|| crate::words::UnknownWord {
            kind: "strategy",
            value: s.to_string(),
            expected: "SEQUENTIAL, PARALLEL_UNLIMITED, PARALLEL_LIMITED or HYBRID_SMART".into(),
        })
    }
}

/// Whether tests talk to a mocked or a real LLM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmMode {
    /// A mock (the default).
    #[default]
    Mock,
    /// The real service.
    Real,
}

impl LlmMode {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            LlmMode::Mock => "mock",
            LlmMode::Real => "real",
        }
    }
}

impl std::fmt::Display for LlmMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LlmMode {
    type Err = crate::words::UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mock" => Ok(LlmMode::Mock),
            "real" => Ok(LlmMode::Real),
            _ => Err(crate::words::UnknownWord {
                kind: "LLM mode",
                value: s.to_string(),
                expected: "mock or real".into(),
            }),
        }
    }
}

/// `llm_requirements` block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLlm {
    /// `mock` or `real`.
    pub mode: LlmMode,
}

/// One layer as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayer {
    /// Display name.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// `sequential | parallel | hybrid | background`.
    pub execution_mode: Option<ExecutionMode>,
    /// Explicit strategy; by default derived from `execution_mode`.
    pub strategy: Option<Strategy>,
    /// Whole-layer deadline in minutes.
    pub max_duration_minutes: Option<f64>,
    /// The categories.
    #[serde(default)]
    pub categories: Vec<RawCategory>,
    /// Layers that must have passed first.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Services that must be ready first.
    #[serde(default)]
    pub required_services: Vec<String>,
    /// LLM mode.
    pub llm_requirements: Option<RawLlm>,
    /// Cancel everything on the first failure.
    pub fail_fast: Option<bool>,
    /// Layer-wide CPU, memory and parallelism limits.
    pub resource_limits: Option<RawLayerLimits>,
    /// Multiplies every timeout and the layer deadline.
    pub timeout_multiplier: Option<f64>,
    /// Default image for categories.
    pub image: Option<String>,
    /// Default command for categories; `{category}` and `{layer}` are substituted.
    pub command: Option<String>,
    /// Environment variables for every category.
    #[serde(default, deserialize_with = "unique_keys")]
    pub env: BTreeMap<String, String>,
    /// Default retries for categories.
    pub retries: Option<i64>,
    /// Default resources for categories.
    pub resources: Option<RawResources>,
    /// How long to wait for required services before failing.
    pub service_wait_seconds: Option<i64>,
    /// Test ids (or `*`/`?` patterns) whose failures fail no category of
    /// the layer.
    #[serde(default)]
    pub quarantine: Vec<String>,
    /// Shared resources the layer holds from its start to its end.
    #[serde(default)]
    pub uses: Vec<RawUse>,
    /// Whether time spent waiting for shared resources counts against
    /// `max_duration_minutes` (by default it does not).
    pub deadline_counts_resource_wait: Option<bool>,
}

/// Layer-wide limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayerLimits {
    /// Total CPU of categories running at once.
    #[serde(default, deserialize_with = "quantity")]
    pub cpu: Option<String>,
    /// Total memory of categories running at once.
    #[serde(default, deserialize_with = "quantity")]
    pub memory: Option<String>,
    /// Most categories running at once.
    pub max_parallel_instances: Option<i64>,
}

/// Requests and limits of one category.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    /// What the category is guaranteed.
    pub requests: Option<RawQuantities>,
    /// What the category may use at most.
    pub limits: Option<RawQuantities>,
}

/// CPU and memory quantities in Kubernetes notation (`500m`, `2`, `512Mi`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuantities {
    /// CPU.
    #[serde(default, deserialize_with = "quantity")]
    pub cpu: Option<String>,
    /// Memory.
    #[serde(default, deserialize_with = "quantity")]
    pub memory: Option<String>,
}

/// One category as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCategory {
    /// Name, unique in the layer.
    pub name: String,
    /// Per-attempt timeout.
    pub timeout_seconds: Option<f64>,
    /// Lower runs first.
    pub priority_order: Option<i64>,
    /// Categories of the same layer that must succeed first.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Shell command line.
    pub command: Option<String>,
    /// Container image.
    pub image: Option<String>,
    /// Extra environment.
    #[serde(default, deserialize_with = "unique_keys")]
    pub env: BTreeMap<String, String>,
    /// Requests and limits.
    pub resources: Option<RawResources>,
    /// Retries after a failed test attempt.
    pub retries: Option<i64>,
    /// Retries after an infrastructure failure (eviction, node loss, image pull).
    pub infra_retries: Option<i64>,
    /// Backoff before the first retry; doubles each retry.
    pub retry_backoff_seconds: Option<f64>,
    /// Known duration, used to plan `HYBRID_SMART` (defaults to the timeout).
    pub expected_duration_seconds: Option<f64>,
    /// A JUnit XML file the category writes, read for test counts.
    pub junit_report: Option<String>,
    /// Working directory for local runs, relative to where `testlayer run` starts.
    pub working_dir: Option<String>,
    /// Test ids (or `*`/`?` patterns) whose failures do not fail the
    /// category, added to the layer's.
    #[serde(default)]
    pub quarantine: Vec<String>,
    /// The category's failure is reported but fails neither the layer nor
    /// fail-fast, and its dependents still run.
    pub allow_failure: Option<bool>,
    /// Shared resources each attempt holds while it runs.
    #[serde(default)]
    pub uses: Vec<RawUse>,
}

/// Overrides for one environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    /// LLM mode for every layer.
    pub llm_requirements: Option<RawLlm>,
    /// Services every layer needs (replaces the layer's list).
    pub required_services: Option<Vec<String>>,
    /// Multiplies every timeout and deadline.
    pub timeout_multiplier: Option<f64>,
    /// Fail-fast for every layer.
    pub fail_fast: Option<bool>,
    /// Extra environment for every category.
    #[serde(default, deserialize_with = "unique_keys")]
    pub env: BTreeMap<String, String>,
    /// Default image for every layer.
    pub image: Option<String>,
    /// Overrides for single layers, applied after the ones above.
    #[serde(default, deserialize_with = "unique_keys")]
    pub layers: BTreeMap<String, RawLayerOverride>,
}

/// Overrides for one layer in one environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayerOverride {
    /// LLM mode.
    pub llm_requirements: Option<RawLlm>,
    /// Required services (replaces).
    pub required_services: Option<Vec<String>>,
    /// Timeout multiplier.
    pub timeout_multiplier: Option<f64>,
    /// Fail-fast.
    pub fail_fast: Option<bool>,
    /// Strategy.
    pub strategy: Option<Strategy>,
    /// Layer limits (replaces the fields given).
    pub resource_limits: Option<RawLayerLimits>,
    /// Deadline in minutes.
    pub max_duration_minutes: Option<f64>,
    /// Extra environment.
    #[serde(default, deserialize_with = "unique_keys")]
    pub env: BTreeMap<String, String>,
    /// Default image.
    pub image: Option<String>,
    /// Default retries.
    pub retries: Option<i64>,
}

/// A service's address for local runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// `host:port` that accepts TCP connections when the service is ready.
    pub address: String,
}

/// Reads a quantity written as a string (`"500m"`) or a bare number (`2`, `0.5`).
fn quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Visit;
    impl<'v> serde::de::Visitor<'v> for Visit {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a quantity like 500m, 2 or 512Mi")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'v>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(Visit)
        }
    }
    d.deserialize_any(Visit)
}

/// Reads a mapping into a map, refusing keys given twice (YAML parsers otherwise
/// keep the last one silently).
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Visit<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(k) = m.next_key::<String>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                }
                let v = m.next_value()?;
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visit(std::marker::PhantomData))
}
