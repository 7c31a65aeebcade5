//! Resolving a layer's own settings (name, strategy, parallelism, budget,
//! deadline, dependencies, services, environment, defaults for its
//! categories) into a [`LayerPlan`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::bounds::{DEFAULT_SERVICE_WAIT_SECS, MAX_DEADLINE_MINUTES, MAX_PARALLEL, MAX_RETRIES};
use super::category::CategoryDefaults;
use super::checks::{check_env_name, check_service_name, service_k8s_name};
use super::overrides::{Resolver, merge_limits};
use super::resources::{cpu, memory};
use crate::config::error::Collector;
use crate::config::names;
use crate::config::raw::{ExecutionMode, LlmMode, Strategy};
use crate::layer::{GraphError, LayerPlan, LayerSettings, Quantities};

impl Resolver<'_> {
    pub(super) fn resolve(&self, env: Option<&str>, c: &mut Collector) -> Option<LayerPlan> {
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

        let capacities = self.config.declared_capacities(c);
        let uses = self.uses(c, &format!("{lp}.uses"), &raw.uses, &capacities);
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
                quarantine: &raw.quarantine,
                capacities: &capacities,
                layer_uses: &uses,
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
            uses,
            deadline_counts_resource_wait: raw.deadline_counts_resource_wait.unwrap_or(false),
            capacities,
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
}
