//! A run's spec as the step reads it: its digest (a changed spec starts the
//! run over), its overrides, and the plan it resolves to. Pure.

use crate::api::{CategoryRun, TestLayerRun};
use crate::config::{Config, Overrides};
use crate::controller::run::build;
use crate::layer::LayerPlan;
use kube::ResourceExt;
use serde_json::json;
use std::collections::BTreeMap;

/// Longest TestLayerRun name: it is a label value on every object of the run.
const MAX_RUN_NAME: usize = 63;

/// Prefix of a spec hash in the current format.
const HASH_PREFIX: &str = "sha256:";

/// Digest of the spec fields that define what runs (everything but
/// `cancel`, `suspend`, `background` and `ttlSecondsAfterFinished`): SHA-256
/// of their JSON, whose field order is the API types' and whose maps are
/// sorted, so it is the same on every build of the controller.
pub fn spec_hash(run: &TestLayerRun) -> String {
    use sha2::{Digest, Sha256};
    let s = &run.spec;
    let mut defining = json!([
        s.layer,
        s.environment,
        s.config,
        s.image,
        s.command,
        s.overrides,
        s.pod,
        s.depends_on
    ]);
    // Only when set, so that the hash of every other run stays as it was.
    if let (Some(of), Some(list)) = (&s.rerun_of, defining.as_array_mut()) {
        list.push(json!({ "rerunOf": of }));
    }
    let digest = Sha256::digest(defining.to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{HASH_PREFIX}{hex}")
}

/// Whether a recorded spec hash says the spec changed. A hash in an older
/// format (from an earlier version of the controller) is no change: an
/// upgrade never starts a run over.
pub fn spec_changed(recorded: Option<&str>, current: &str) -> bool {
    recorded.is_some_and(|h| h.starts_with(HASH_PREFIX) && h != current)
}

/// Overrides of a run's spec, as the config resolver takes them.
pub fn overrides(run: &TestLayerRun) -> Result<Overrides, String> {
    let mut o = Overrides {
        source: "spec.overrides".into(),
        ..Overrides::default()
    };
    if let Some(ov) = &run.spec.overrides {
        if let Some(s) = &ov.strategy {
            o.strategy = Some(*s.get().map_err(|s| {
                format!("spec.overrides.strategy: unknown strategy {s:?}; use SEQUENTIAL, PARALLEL_UNLIMITED, PARALLEL_LIMITED or HYBRID_SMART")
            })?);
        }
        o.max_parallel = ov.max_parallel.map(i64::from);
        o.fail_fast = ov.fail_fast;
        o.retries = ov.retries.map(i64::from);
        if let Some(m) = &ov.timeout_multiplier {
            o.timeout_multiplier = Some(
                m.get()
                    .map_err(|m| {
                        format!("spec.overrides.timeoutMultiplier: {m:?} is not a number")
                    })?
                    .0,
            );
        }
    }
    Ok(o)
}

/// Validates and resolves a run (pure): its layer plan and the CategoryRuns
/// it owns, or every problem as one message.
pub fn resolve(
    run: &TestLayerRun,
    config_text: &str,
    origin: &str,
) -> Result<(LayerPlan, Vec<CategoryRun>), String> {
    resolve_learning(run, config_text, origin, &BTreeMap::new())
}

/// [`resolve`], with the durations an earlier run of the layer measured
/// (`history`: seconds by category) as the estimates of categories whose
/// config names none; frozen into the CategoryRuns' specs.
pub fn resolve_learning(
    run: &TestLayerRun,
    config_text: &str,
    origin: &str,
    history: &BTreeMap<String, f64>,
) -> Result<(LayerPlan, Vec<CategoryRun>), String> {
    let name = run.name_any();
    if name.len() > MAX_RUN_NAME {
        return Err(format!(
            "metadata.name: {name:?} is {} characters long; a TestLayerRun name may have at most {MAX_RUN_NAME}",
            name.len()
        ));
    }
    let src = &run.spec.config;
    if src.inline.is_some() == src.config_map_ref.is_some() {
        return Err("spec.config: set exactly one of configMapRef and inline".into());
    }
    let ov = overrides(run)?;
    let config = Config::parse(config_text, origin).map_err(|e| e.to_string())?;
    let mut layer = config
        .resolve_with(&run.spec.layer, run.spec.environment.as_deref(), &ov)
        .map_err(|e| e.to_string())?;
    layer.learn_durations(history);
    let crs = (0..layer.categories.len())
        .map(|i| build::category_run(run, &layer, i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((layer, crs))
}
