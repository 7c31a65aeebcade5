//! Checking a config and resolving one layer in one environment: the
//! entry points on [`Config`], the limits every check uses, and the
//! re-exports of this module's public items.
//!
//! The work is split by concern: `overrides` (where a setting comes from),
//! `layer` (the layer's own settings), `category` (each category),
//! `resources` (CPU and memory), `shared` (shared resources), `validate` (the whole-config check) and
//! `checks` (names and addresses).

mod bounds;
mod category;
mod checks;
mod layer;
mod overrides;
mod resources;
mod shared;
mod validate;

pub use checks::service_k8s_name;
pub use overrides::Overrides;
pub use shared::{MAX_CAPACITY, resource_k8s_name};

use super::error::Collector;
use super::raw::{RawEnvironment, RawLayerOverride};
use super::{Config, ConfigErrors};
use crate::layer::LayerPlan;
use overrides::Resolver;

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

    fn known_layers(&self) -> String {
        self.raw
            .layers
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
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
