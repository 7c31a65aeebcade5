//! Where each setting comes from: the run's [`Overrides`], this
//! environment's layer override, this environment, and the layer itself,
//! most specific first.

use crate::config::Config;
use crate::config::raw::{RawEnvironment, RawLayer, RawLayerLimits, RawLayerOverride, Strategy};

/// Settings a run gives on top of the config (command-line flags, or a
/// TestLayerRun's `overrides`); they win over everything in the file.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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

pub(super) struct Resolver<'a> {
    pub(super) config: &'a Config,
    pub(super) key: &'a str,
    pub(super) raw: &'a RawLayer,
    pub(super) envo: &'a RawEnvironment,
    pub(super) lo: &'a RawLayerOverride,
    pub(super) ov: &'a Overrides,
    /// `layers.<key>`
    pub(super) lp: String,
    /// `environment_overrides.<env>`
    pub(super) ep: String,
    /// `environment_overrides.<env>.layers.<key>`
    pub(super) elp: String,
}

/// A value and the path it came from.
pub(super) struct From<T> {
    pub(super) value: T,
    pub(super) path: String,
}

impl<'a> Resolver<'a> {
    /// The first value given, most specific first: this environment's layer
    /// override, this environment, the layer.
    pub(super) fn pick<T: Clone>(
        &self,
        field: &str,
        layer_override: Option<&T>,
        env: Option<&T>,
        base: Option<&T>,
    ) -> Option<From<T>> {
        self.pick_over(field, None, layer_override, env, base)
    }

    /// Like `pick`, with the run's override first.
    pub(super) fn pick_over<T: Clone>(
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
}

pub(super) fn merge_limits(
    base: Option<&RawLayerLimits>,
    over: Option<&RawLayerLimits>,
) -> RawLayerLimits {
    let base = base.cloned().unwrap_or_default();
    let Some(o) = over else { return base };
    RawLayerLimits {
        cpu: o.cpu.clone().or(base.cpu),
        memory: o.memory.clone().or(base.memory),
        max_parallel_instances: o.max_parallel_instances.or(base.max_parallel_instances),
    }
}
