//! The whole-config check: every layer in every environment, unknown
//! layers in overrides, service addresses, and the layer dependency graph.

use std::collections::{BTreeMap, BTreeSet};

use super::Overrides;
use super::checks::check_address;
use crate::config::error::Collector;
use crate::config::names;
use crate::config::raw::ExecutionMode;
use crate::config::{Config, ConfigErrors};
use crate::layer::find_cycle;

impl Config {
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
        self.check_resource_deadlocks(&mut c);
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
}
