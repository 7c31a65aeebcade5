//! Checking a config and resolving one layer in one environment.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::error::Collector;
use super::names;
use super::quantity::{format_cpu, format_memory, parse_cpu_millis, parse_memory_bytes};
use super::raw::{
    ExecutionMode, LlmMode, RawCategory, RawEnvironment, RawLayer, RawLayerLimits,
    RawLayerOverride, RawQuantities, RawResources, Strategy,
};
use super::{Config, ConfigErrors};
use crate::layer::{
    CategoryPlan, GraphError, LayerPlan, LayerSettings, Quantities, Resources, find_cycle,
    substitute_command,
};

/// Longest per-category timeout: one day.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;
/// Longest layer deadline: one week.
const MAX_DEADLINE_MINUTES: f64 = 10_080.0;
/// Most CPU one category or layer may name: 1024 cores.
const MAX_CPU_MILLIS: u64 = 1_024_000;
/// Most memory one category or layer may name: 16 TiB.
const MAX_MEMORY_BYTES: u64 = 16 << 40;
/// Most retries of either kind.
const MAX_RETRIES: i64 = 10;
/// Most categories running at once.
const MAX_PARALLEL: i64 = 10_000;
/// Default bound on waiting for required services.
const DEFAULT_SERVICE_WAIT_SECS: i64 = 300;
/// Default backoff before the first retry.
const DEFAULT_BACKOFF_SECS: f64 = 2.0;
/// Default retries after infrastructure failures.
const DEFAULT_INFRA_RETRIES: i64 = 2;

/// Settings a run gives on top of the config (command-line flags, or a
/// TestLayerRun's `overrides`); they win over everything in the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Names where they came from in errors (`command line`, `spec.overrides`).
    pub source: String,
    /// Strategy.
    pub strategy: Option<Strategy>,
    /// Most categories at once.
    pub max_parallel: Option<i64>,
    /// Fail-fast.
    pub fail_fast: Option<bool>,
    /// Retries of every category.
    pub retries: Option<i64>,
    /// Timeout multiplier.
    pub timeout_multiplier: Option<f64>,
}

impl Config {
    /// Resolves `layer` for `environment` (or the base config when `None`) into a
    /// self-contained plan, or every problem found on the way.
    pub fn resolve(
        &self,
        layer: &str,
        environment: Option<&str>,
    ) -> Result<LayerPlan, ConfigErrors> {
        self.resolve_with(layer, environment, &Overrides::default())
    }

    /// Like [`Config::resolve`], with a run's overrides applied last.
    pub fn resolve_with(
        &self,
        layer: &str,
        environment: Option<&str>,
        overrides: &Overrides,
    ) -> Result<LayerPlan, ConfigErrors> {
        let mut c = Collector::new(&self.file);
        match self.resolve_into(layer, environment, overrides, &mut c) {
            Some(p) => c.finish(p),
            None => {
                if c.is_empty() {
                    c.push("", format!("layer {layer:?} could not be resolved"));
                }
                Err(c.into_errors())
            }
        }
    }

    /// Checks every layer in the base config and in every environment, and the
    /// relations between layers.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut c = Collector::new(&self.file);
        if self.raw.layers.is_empty() {
            c.push("layers", "no layers are defined");
        }
        // Layer keys must map to distinct Kubernetes names.
        if let Err((name, e)) = names::k8s_names(self.raw.layers.keys().map(String::as_str)) {
            c.push(format!("layers.{name}"), format!("layer key: {e}"));
        }
        let envs: Vec<Option<&str>> = std::iter::once(None)
            .chain(
                self.raw
                    .environment_overrides
                    .keys()
                    .map(|e| Some(e.as_str())),
            )
            .collect();
        for key in self.raw.layers.keys() {
            for env in &envs {
                let _ = self.resolve_into(key, *env, &Overrides::default(), &mut c);
            }
        }
        for (env, o) in &self.raw.environment_overrides {
            for l in o.layers.keys() {
                if !self.raw.layers.contains_key(l) {
                    c.push(
                        format!("environment_overrides.{env}.layers.{l}"),
                        format!("unknown layer {l:?}; known layers: {}", self.known_layers()),
                    );
                }
            }
        }
        for (name, s) in &self.raw.services {
            let path = format!("services.{name}.address");
            if let Err(p) = check_address(&s.address) {
                c.push(path, p);
            }
        }
        self.check_layer_cycles(&mut c);
        let mut errs = match c.finish(()) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // The same base problem shows up once per environment: report it once.
        let mut seen = BTreeSet::new();
        errs.0
            .retain(|e| seen.insert((e.path.clone(), e.problem.clone())));
        Err(errs)
    }

    fn known_layers(&self) -> String {
        self.raw
            .layers
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn check_layer_cycles(&self, c: &mut Collector) {
        let keys: Vec<&String> = self.raw.layers.keys().collect();
        let index: BTreeMap<&str, usize> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let deps: Vec<Vec<usize>> = self
            .raw
            .layers
            .values()
            .map(|l| {
                l.dependencies
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect()
            })
            .collect();
        for (k, l) in &self.raw.layers {
            for (i, d) in l.dependencies.iter().enumerate() {
                let background = self
                    .raw
                    .layers
                    .get(d)
                    .is_some_and(|dl| dl.execution_mode == Some(ExecutionMode::Background));
                if background {
                    c.push(
                        format!("layers.{k}.dependencies[{i}]"),
                        format!("layer {d:?} runs in the background and never blocks other layers; it cannot be a dependency"),
                    );
                }
            }
        }
        if let Some(cycle) = find_cycle(&deps) {
            let names: Vec<&str> = cycle.iter().map(|&i| keys[i].as_str()).collect();
            c.push(
                format!("layers.{}.dependencies", names[0]),
                format!("layer dependency cycle: {}", names.join(" -> ")),
            );
        }
    }

    fn resolve_into(
        &self,
        key: &str,
        env: Option<&str>,
        ov: &Overrides,
        c: &mut Collector,
    ) -> Option<LayerPlan> {
        let Some(raw) = self.raw.layers.get(key) else {
            c.push(
                "layers",
                format!(
                    "unknown layer {key:?}; known layers: {}",
                    self.known_layers()
                ),
            );
            return None;
        };
        let empty_env = RawEnvironment::default();
        let empty_lo = RawLayerOverride::default();
        let (envo, ep) = match env {
            None => (&empty_env, String::new()),
            Some(e) => match self.raw.environment_overrides.get(e) {
                Some(o) => (o, format!("environment_overrides.{e}")),
                None => {
                    let known: Vec<&str> = self.environments();
                    c.push(
                        "environment_overrides",
                        format!(
                            "unknown environment {e:?}; known environments: {}",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                    return None;
                }
            },
        };
        let lo = envo.layers.get(key).unwrap_or(&empty_lo);
        let r = Resolver {
            config: self,
            key,
            raw,
            envo,
            lo,
            ov,
            lp: format!("layers.{key}"),
            ep: ep.clone(),
            elp: format!("{ep}.layers.{key}"),
        };
        r.resolve(env, c)
    }
}

struct Resolver<'a> {
    config: &'a Config,
    key: &'a str,
    raw: &'a RawLayer,
    envo: &'a RawEnvironment,
    lo: &'a RawLayerOverride,
    ov: &'a Overrides,
    /// `layers.<key>`
    lp: String,
    /// `environment_overrides.<env>`
    ep: String,
    /// `environment_overrides.<env>.layers.<key>`
    elp: String,
}

/// A value and the path it came from.
struct From<T> {
    value: T,
    path: String,
}

impl<'a> Resolver<'a> {
    /// The first value given, most specific first: this environment's layer
    /// override, this environment, the layer.
    fn pick<T: Clone>(
        &self,
        field: &str,
        layer_override: Option<&T>,
        env: Option<&T>,
        base: Option<&T>,
    ) -> Option<From<T>> {
        self.pick_over(field, None, layer_override, env, base)
    }

    /// Like `pick`, with the run's override first.
    fn pick_over<T: Clone>(
        &self,
        field: &str,
        run: Option<&T>,
        layer_override: Option<&T>,
        env: Option<&T>,
        base: Option<&T>,
    ) -> Option<From<T>> {
        if let Some(v) = run {
            return Some(From {
                value: v.clone(),
                path: format!("{}: {field}", self.ov.source),
            });
        }
        if let Some(v) = layer_override {
            return Some(From {
                value: v.clone(),
                path: format!("{}.{field}", self.elp),
            });
        }
        if let Some(v) = env {
            return Some(From {
                value: v.clone(),
                path: format!("{}.{field}", self.ep),
            });
        }
        base.map(|v| From {
            value: v.clone(),
            path: format!("{}.{field}", self.lp),
        })
    }

    fn resolve(&self, env: Option<&str>, c: &mut Collector) -> Option<LayerPlan> {
        let raw = self.raw;
        let lp = &self.lp;
        let k8s_name = match names::slug(self.key) {
            Ok(s) => s,
            Err(e) => {
                c.push(lp.clone(), format!("layer key: {e}"));
                String::new()
            }
        };
        let display_name = match &raw.name {
            Some(n) if n.trim().is_empty() => {
                c.push(format!("{lp}.name"), "must not be empty");
                self.key.to_string()
            }
            Some(n) => n.clone(),
            None => self.key.to_string(),
        };
        let execution_mode = raw.execution_mode.unwrap_or(ExecutionMode::Sequential);

        let multiplier = self
            .pick_over(
                "timeout_multiplier",
                self.ov.timeout_multiplier.as_ref(),
                self.lo.timeout_multiplier.as_ref(),
                self.envo.timeout_multiplier.as_ref(),
                raw.timeout_multiplier.as_ref(),
            )
            .map(|f| {
                if !(f.value > 0.0 && f.value <= 100.0) {
                    c.push(
                        f.path,
                        format!("must be more than 0 and at most 100, got {}", f.value),
                    );
                    1.0
                } else {
                    f.value
                }
            })
            .unwrap_or(1.0);

        let limits = merge_limits(
            raw.resource_limits.as_ref(),
            self.lo.resource_limits.as_ref(),
        );
        let limits_path = |field: &str| {
            if self
                .lo
                .resource_limits
                .as_ref()
                .is_some_and(|l| match field {
                    "cpu" => l.cpu.is_some(),
                    "memory" => l.memory.is_some(),
                    _ => l.max_parallel_instances.is_some(),
                })
            {
                format!("{}.resource_limits.{field}", self.elp)
            } else {
                format!("{lp}.resource_limits.{field}")
            }
        };
        let (max_parallel_raw, max_parallel_path) = match self.ov.max_parallel {
            Some(n) => (Some(n), format!("{}: max_parallel", self.ov.source)),
            None => (
                limits.max_parallel_instances,
                limits_path("max_parallel_instances"),
            ),
        };
        let max_parallel = max_parallel_raw.and_then(|n| {
            if !(1..=MAX_PARALLEL).contains(&n) {
                c.push(
                    max_parallel_path.clone(),
                    format!("must be between 1 and {MAX_PARALLEL}, got {n}"),
                );
                None
            } else {
                Some(n as u32)
            }
        });
        let budget = Quantities {
            cpu_millis: limits
                .cpu
                .as_deref()
                .and_then(|q| cpu(q, &limits_path("cpu"), c)),
            memory_bytes: limits
                .memory
                .as_deref()
                .and_then(|q| memory(q, &limits_path("memory"), c)),
        };

        let strategy = self
            .pick_over(
                "strategy",
                self.ov.strategy.as_ref(),
                self.lo.strategy.as_ref(),
                None,
                raw.strategy.as_ref(),
            )
            .map(|f| f.value)
            .unwrap_or(match execution_mode {
                ExecutionMode::Sequential => Strategy::Sequential,
                ExecutionMode::Parallel if max_parallel.is_some() => Strategy::ParallelLimited,
                ExecutionMode::Parallel => Strategy::ParallelUnlimited,
                ExecutionMode::Hybrid | ExecutionMode::Background => Strategy::HybridSmart,
            });
        if strategy == Strategy::ParallelLimited && max_parallel_raw.is_none() {
            c.push(
                format!("{lp}.resource_limits.max_parallel_instances"),
                "strategy PARALLEL_LIMITED needs a limit: set resource_limits.max_parallel_instances",
            );
        }

        let fail_fast = self
            .pick_over(
                "fail_fast",
                self.ov.fail_fast.as_ref(),
                self.lo.fail_fast.as_ref(),
                self.envo.fail_fast.as_ref(),
                raw.fail_fast.as_ref(),
            )
            .map(|f| f.value)
            .unwrap_or(false);

        let deadline = self
            .pick("max_duration_minutes", self.lo.max_duration_minutes.as_ref(), None, raw.max_duration_minutes.as_ref())
            .and_then(|f| {
                if !(f.value > 0.0 && f.value <= MAX_DEADLINE_MINUTES) {
                    c.push(f.path, format!("must be more than 0 and at most {MAX_DEADLINE_MINUTES} (one week), got {}", f.value));
                    None
                } else {
                    Some(Duration::from_secs_f64(f.value * 60.0 * multiplier))
                }
            });

        let mut dependencies = Vec::new();
        for (i, d) in raw.dependencies.iter().enumerate() {
            let path = format!("{lp}.dependencies[{i}]");
            if d == self.key {
                c.push(path, format!("layer {d:?} cannot depend on itself"));
            } else if !self.config.raw.layers.contains_key(d) {
                c.push(
                    path,
                    format!(
                        "unknown layer {d:?}; known layers: {}",
                        self.config.known_layers()
                    ),
                );
            } else if !dependencies.contains(d) {
                dependencies.push(d.clone());
            }
        }

        let services = self
            .pick(
                "required_services",
                self.lo.required_services.as_ref(),
                self.envo.required_services.as_ref(),
                Some(&raw.required_services),
            )
            .map(|f| {
                let mut seen = BTreeSet::new();
                for (i, s) in f.value.iter().enumerate() {
                    if let Err(p) = check_service_name(s) {
                        c.push(format!("{}[{i}]", f.path), p);
                    } else if !seen.insert(service_k8s_name(s)) {
                        c.push(
                            format!("{}[{i}]", f.path),
                            format!("service {s:?} is listed twice"),
                        );
                    }
                }
                f.value
            })
            .unwrap_or_default();
        let mut service_addresses = BTreeMap::new();
        for s in &services {
            if let Some(a) = self.config.raw.services.get(s) {
                service_addresses.insert(s.clone(), a.address.clone());
            }
        }
        let service_wait = match raw.service_wait_seconds {
            None => Duration::from_secs(DEFAULT_SERVICE_WAIT_SECS as u64),
            Some(s) if (1..=3600).contains(&s) => Duration::from_secs(s as u64),
            Some(s) => {
                c.push(
                    format!("{lp}.service_wait_seconds"),
                    format!("must be between 1 and 3600, got {s}"),
                );
                Duration::from_secs(DEFAULT_SERVICE_WAIT_SECS as u64)
            }
        };

        let llm_mode = self
            .pick(
                "llm_requirements",
                self.lo.llm_requirements.as_ref(),
                self.envo.llm_requirements.as_ref(),
                raw.llm_requirements.as_ref(),
            )
            .map(|f| f.value.mode)
            .unwrap_or(LlmMode::Mock);

        let mut layer_env = BTreeMap::new();
        for (map, base) in [
            (&raw.env, lp.clone()),
            (&self.envo.env, self.ep.clone()),
            (&self.lo.env, self.elp.clone()),
        ] {
            for (k, v) in map {
                if let Err(p) = check_env_name(k) {
                    c.push(format!("{base}.env.{k}"), p);
                }
                layer_env.insert(k.clone(), v.clone());
            }
        }
        let image = self.pick(
            "image",
            self.lo.image.as_ref(),
            self.envo.image.as_ref(),
            raw.image.as_ref(),
        );
        if let Some(f) = &image
            && f.value.trim().is_empty()
        {
            c.push(f.path.clone(), "must not be empty");
        }
        if let Some(cmd) = &raw.command
            && cmd.trim().is_empty()
        {
            c.push(format!("{lp}.command"), "must not be empty");
        }
        let default_retries = self.pick_over(
            "retries",
            self.ov.retries.as_ref(),
            self.lo.retries.as_ref(),
            None,
            raw.retries.as_ref(),
        );
        if let Some(f) = &default_retries
            && !(0..=MAX_RETRIES).contains(&f.value)
        {
            c.push(
                f.path.clone(),
                format!("must be between 0 and {MAX_RETRIES}, got {}", f.value),
            );
        }

        let cats = self.categories(
            c,
            &CategoryDefaults {
                multiplier,
                env: &layer_env,
                image: image.map(|f| f.value),
                command: raw.command.as_deref(),
                retries: default_retries
                    .map(|f| f.value.clamp(0, MAX_RETRIES) as u32)
                    .unwrap_or(0),
                resources: raw.resources.as_ref(),
                budget,
            },
        );

        let settings = LayerSettings {
            key: self.key.to_string(),
            display_name,
            k8s_name,
            environment: env.map(str::to_string),
            execution_mode,
            strategy,
            max_parallel,
            budget,
            fail_fast,
            deadline,
            timeout_multiplier: multiplier,
            dependencies,
            required_services: services,
            service_addresses,
            service_wait,
            llm_mode,
        };
        let names: Vec<String> = cats.iter().map(|c| c.name.clone()).collect();
        match LayerPlan::new(settings, cats) {
            Ok(p) => Some(p),
            Err(GraphError::Cycle(cycle)) => {
                let named: Vec<&str> = cycle.iter().map(|&i| names[i].as_str()).collect();
                c.push(
                    format!("{lp}.categories[{}].dependencies", cycle[0]),
                    format!("dependency cycle: {}", named.join(" -> ")),
                );
                None
            }
            Err(e) => {
                c.push(format!("{lp}.categories"), e.to_string());
                None
            }
        }
    }

    fn categories(&self, c: &mut Collector, d: &CategoryDefaults<'_>) -> Vec<CategoryPlan> {
        let lp = &self.lp;
        let raw_cats = &self.raw.categories;
        if raw_cats.is_empty() {
            c.push(format!("{lp}.categories"), "the layer has no categories");
            return Vec::new();
        }
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, rc) in raw_cats.iter().enumerate() {
            if let Some(first) = index.get(rc.name.as_str()) {
                c.push(
                    format!("{lp}.categories[{i}].name"),
                    format!(
                        "duplicate category name {:?} (also categories[{first}])",
                        rc.name
                    ),
                );
            } else {
                index.insert(rc.name.as_str(), i);
            }
        }
        let k8s = match names::k8s_names(index.keys().copied()) {
            Ok(m) => m,
            Err((name, e)) => {
                let i = index.get(name.as_str()).copied().unwrap_or(0);
                c.push(format!("{lp}.categories[{i}].name"), e.to_string());
                BTreeMap::new()
            }
        };
        raw_cats
            .iter()
            .enumerate()
            .map(|(i, rc)| self.category(c, d, i, rc, &index, &k8s))
            .collect()
    }

    fn category(
        &self,
        c: &mut Collector,
        d: &CategoryDefaults<'_>,
        i: usize,
        rc: &RawCategory,
        index: &BTreeMap<&str, usize>,
        k8s: &BTreeMap<String, String>,
    ) -> CategoryPlan {
        let cp = format!("{}.categories[{i}]", self.lp);
        let secs = |v: f64, field: &str, max: f64, c: &mut Collector| -> Option<f64> {
            if v.is_finite() && v > 0.0 && v <= max {
                Some(v)
            } else {
                c.push(
                    format!("{cp}.{field}"),
                    format!("must be more than 0 and at most {max} seconds, got {v}"),
                );
                None
            }
        };
        let timeout_secs = match rc.timeout_seconds {
            Some(t) => secs(t, "timeout_seconds", MAX_TIMEOUT_SECS, c).unwrap_or(1.0),
            None => {
                c.push(
                    format!("{cp}.timeout_seconds"),
                    format!("category {:?} needs a timeout_seconds", rc.name),
                );
                1.0
            }
        };
        let timeout = Duration::from_secs_f64(timeout_secs * d.multiplier);
        let mut dependencies = Vec::new();
        for (j, dep) in rc.dependencies.iter().enumerate() {
            match index.get(dep.as_str()) {
                Some(&k) if !dependencies.contains(&k) => dependencies.push(k),
                Some(_) => {}
                None => c.push(
                    format!("{cp}.dependencies[{j}]"),
                    format!(
                        "unknown category {dep:?}; categories of layer {}: {}",
                        self.key,
                        index.keys().copied().collect::<Vec<_>>().join(", ")
                    ),
                ),
            }
        }
        let command = match (&rc.command, d.command) {
            (Some(cmd), _) if cmd.trim().is_empty() => {
                c.push(format!("{cp}.command"), "must not be empty");
                None
            }
            (Some(cmd), _) => Some(substitute_command(cmd, self.key, &rc.name)),
            (None, Some(t)) => Some(substitute_command(t, self.key, &rc.name)),
            (None, None) => None,
        };
        let image = match &rc.image {
            Some(im) if im.trim().is_empty() => {
                c.push(format!("{cp}.image"), "must not be empty");
                None
            }
            Some(im) => Some(im.clone()),
            None => d.image.clone(),
        };
        let mut env = d.env.clone();
        for (k, v) in &rc.env {
            if let Err(p) = check_env_name(k) {
                c.push(format!("{cp}.env.{k}"), p);
            }
            env.insert(k.clone(), v.clone());
        }
        let resources = self.resources(c, &cp, rc.resources.as_ref(), d);
        let count = |v: Option<i64>, field: &str, default: i64, c: &mut Collector| -> u32 {
            match v {
                None => default as u32,
                Some(n) if (0..=MAX_RETRIES).contains(&n) => n as u32,
                Some(n) => {
                    c.push(
                        format!("{cp}.{field}"),
                        format!("must be between 0 and {MAX_RETRIES}, got {n}"),
                    );
                    0
                }
            }
        };
        let own_retries = if self.ov.retries.is_some() {
            None
        } else {
            rc.retries
        };
        let retries = count(own_retries, "retries", i64::from(d.retries), c);
        let infra_retries = count(rc.infra_retries, "infra_retries", DEFAULT_INFRA_RETRIES, c);
        let backoff = match rc.retry_backoff_seconds {
            None => DEFAULT_BACKOFF_SECS,
            Some(b) if b.is_finite() && (0.0..=3600.0).contains(&b) => b,
            Some(b) => {
                c.push(
                    format!("{cp}.retry_backoff_seconds"),
                    format!("must be between 0 and 3600 seconds, got {b}"),
                );
                DEFAULT_BACKOFF_SECS
            }
        };
        let estimate = rc
            .expected_duration_seconds
            .and_then(|e| secs(e, "expected_duration_seconds", MAX_TIMEOUT_SECS, c))
            .map(|e| Duration::from_secs_f64(e * d.multiplier).min(timeout))
            .unwrap_or(timeout);
        for (field, v) in [
            ("junit_report", &rc.junit_report),
            ("working_dir", &rc.working_dir),
        ] {
            if v.as_ref().is_some_and(|s| s.trim().is_empty()) {
                c.push(format!("{cp}.{field}"), "must not be empty");
            }
        }
        CategoryPlan {
            name: rc.name.clone(),
            k8s_name: k8s.get(&rc.name).cloned().unwrap_or_default(),
            timeout,
            priority_order: rc.priority_order.unwrap_or(i as i64 + 1),
            dependencies,
            command,
            image,
            env,
            resources,
            retries,
            infra_retries,
            retry_backoff: Duration::from_secs_f64(backoff),
            estimate,
            junit_report: rc.junit_report.clone(),
            working_dir: rc.working_dir.clone(),
        }
    }

    fn resources(
        &self,
        c: &mut Collector,
        cp: &str,
        own: Option<&RawResources>,
        d: &CategoryDefaults<'_>,
    ) -> Resources {
        let field = |pick: fn(&RawResources) -> Option<&RawQuantities>,
                     q: fn(&RawQuantities) -> Option<&String>| {
            if let Some(v) = own.and_then(pick).and_then(q) {
                return Some((v.clone(), cp.to_string()));
            }
            d.resources
                .and_then(pick)
                .and_then(q)
                .map(|v| (v.clone(), self.lp.clone()))
        };
        fn req(r: &RawResources) -> Option<&RawQuantities> {
            r.requests.as_ref()
        }
        fn lim(r: &RawResources) -> Option<&RawQuantities> {
            r.limits.as_ref()
        }
        fn cpu_of(q: &RawQuantities) -> Option<&String> {
            q.cpu.as_ref()
        }
        fn mem_of(q: &RawQuantities) -> Option<&String> {
            q.memory.as_ref()
        }
        let mut out = Resources::default();
        for (slot, which, pick) in [
            (
                &mut out.requests,
                "requests",
                req as fn(&RawResources) -> Option<&RawQuantities>,
            ),
            (&mut out.limits, "limits", lim),
        ] {
            if let Some((v, base)) = field(pick, cpu_of) {
                slot.cpu_millis = cpu(&v, &format!("{base}.resources.{which}.cpu"), c);
            }
            if let Some((v, base)) = field(pick, mem_of) {
                slot.memory_bytes = memory(&v, &format!("{base}.resources.{which}.memory"), c);
            }
        }
        if let (Some(r), Some(l)) = (out.requests.cpu_millis, out.limits.cpu_millis)
            && r > l
        {
            c.push(
                format!("{cp}.resources.requests.cpu"),
                format!(
                    "request {} is more than the limit {}",
                    format_cpu(r),
                    format_cpu(l)
                ),
            );
        }
        if let (Some(r), Some(l)) = (out.requests.memory_bytes, out.limits.memory_bytes)
            && r > l
        {
            c.push(
                format!("{cp}.resources.requests.memory"),
                format!(
                    "request {} is more than the limit {}",
                    format_memory(r),
                    format_memory(l)
                ),
            );
        }
        let size = out.budget_size();
        if let (Some(need), Some(have)) = (size.cpu_millis, d.budget.cpu_millis)
            && need > have
        {
            c.push(
                format!("{cp}.resources"),
                format!(
                    "needs cpu {} but the layer's resource_limits.cpu is {}: it could never start",
                    format_cpu(need),
                    format_cpu(have)
                ),
            );
        }
        if let (Some(need), Some(have)) = (size.memory_bytes, d.budget.memory_bytes)
            && need > have
        {
            c.push(
                    format!("{cp}.resources"),
                    format!(
                        "needs memory {} but the layer's resource_limits.memory is {}: it could never start",
                        format_memory(need),
                        format_memory(have)
                    ),
                );
        }
        out
    }
}

struct CategoryDefaults<'a> {
    multiplier: f64,
    env: &'a BTreeMap<String, String>,
    image: Option<String>,
    command: Option<&'a str>,
    retries: u32,
    resources: Option<&'a RawResources>,
    budget: Quantities,
}

fn merge_limits(base: Option<&RawLayerLimits>, over: Option<&RawLayerLimits>) -> RawLayerLimits {
    let base = base.cloned().unwrap_or_default();
    let Some(o) = over else { return base };
    RawLayerLimits {
        cpu: o.cpu.clone().or(base.cpu),
        memory: o.memory.clone().or(base.memory),
        max_parallel_instances: o.max_parallel_instances.or(base.max_parallel_instances),
    }
}

fn cpu(q: &str, path: &str, c: &mut Collector) -> Option<u64> {
    match parse_cpu_millis(q) {
        None => {
            c.push(
                path,
                format!("{q:?} is not a CPU quantity (write e.g. 500m, 1 or 2.5)"),
            );
            None
        }
        Some(0) => {
            c.push(path, "must be more than zero");
            None
        }
        Some(m) if m > MAX_CPU_MILLIS => {
            c.push(
                path,
                format!(
                    "{q} is more than any node has (at most {} cores)",
                    MAX_CPU_MILLIS / 1000
                ),
            );
            None
        }
        Some(m) => Some(m),
    }
}

fn memory(q: &str, path: &str, c: &mut Collector) -> Option<u64> {
    match parse_memory_bytes(q) {
        None => {
            c.push(
                path,
                format!("{q:?} is not a memory quantity (write e.g. 512Mi or 2Gi)"),
            );
            None
        }
        Some(0) => {
            c.push(path, "must be more than zero");
            None
        }
        Some(b) if b > MAX_MEMORY_BYTES => {
            c.push(
                path,
                format!("{q} is more than any node has (at most 16Ti)"),
            );
            None
        }
        Some(b) => Some(b),
    }
}

fn check_env_name(k: &str) -> Result<(), String> {
    let mut chars = k.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{k:?} is not a valid environment variable name (letters, digits and _, not starting with a digit)"
        ))
    }
}

/// The Kubernetes Service name a required service refers to: lower case, `_` as `-`.
pub fn service_k8s_name(s: &str) -> String {
    s.to_ascii_lowercase().replace('_', "-")
}

fn check_service_name(s: &str) -> Result<(), String> {
    let k = service_k8s_name(s);
    let ok = names::is_dns_label(&k) && k.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} cannot name a Kubernetes Service (letters, digits, - and _, starting with a letter)"
        ))
    }
}

fn check_address(a: &str) -> Result<(), String> {
    match a.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(format!("{a:?} is not a host:port address")),
    }
}
