//! The frozen plan of a run: resolved from the layer config once, when the
//! run is accepted (its layer-wide settings into the run's status, each
//! category into its CategoryRun's spec), and rebuilt from those objects on
//! every later step.

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::json;

use super::observed::{ConfigAnswer, Observed, Question};
use super::writes::{Next, Step, Write};
use super::{note, run_status};
use crate::api::{CategoryRun, CategorySummary, LayerPhase, TestLayerRun, TestLayerRunStatus};
use crate::config::{Config, Overrides};
use crate::controller::build;
use crate::layer::LayerPlan;

/// Key of the layer config in a ConfigMap when the reference names none.
pub const DEFAULT_CONFIG_KEY: &str = "test_layers.yaml";
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
    let defining = json!([
        s.layer,
        s.environment,
        s.config,
        s.image,
        s.command,
        s.overrides,
        s.pod,
        s.depends_on
    ]);
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
fn overrides(run: &TestLayerRun) -> Result<Overrides, String> {
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
    let layer = config
        .resolve_with(&run.spec.layer, run.spec.environment.as_deref(), &ov)
        .map_err(|e| e.to_string())?;
    let crs = (0..layer.categories.len())
        .map(|i| build::category_run(run, &layer, i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((layer, crs))
}

/// The frozen plan, or the step that gets it.
pub enum Frozen {
    /// The plan, and the run's status to go on from.
    Ready(Box<(LayerPlan, TestLayerRunStatus)>),
    /// What to do first.
    Step(Step),
}

/// The frozen plan of the run of `o`: from the config when the run has no
/// plan or misses CategoryRuns, else rebuilt from its objects.
pub fn frozen(o: &Observed, mut status: TestLayerRunStatus, hash: &str, now: Timestamp) -> Frozen {
    let run = o.run.as_ref();
    let complete = status.plan.as_ref().map(|p| p.categories.len()) == Some(o.category_runs.len());
    if !complete {
        let Some(answer) = &o.answers.config else {
            return Frozen::Step(Step::ask(vec![Question::Config]));
        };
        let (text, origin) = match answer {
            ConfigAnswer::Found { text, origin } => (text, origin),
            ConfigAnswer::Missing(m) => {
                return Frozen::Step(run_status::waiting_for_config(o, status, m, now));
            }
        };
        let (layer, crs) = match resolve(run, text, origin) {
            Ok(r) => r,
            Err(problem) => {
                return Frozen::Step(run_status::invalid(
                    o,
                    status,
                    "InvalidConfig",
                    &problem,
                    now,
                ));
            }
        };
        let mut writes = Vec::new();
        let mut events = Vec::new();
        if status.plan.is_none() {
            let mut snap = build::snapshot(&layer);
            snap.background |= run.spec.background;
            status.plan = Some(snap);
            status.spec_hash = Some(hash.to_string());
            status.strategy = Some(layer.strategy.into());
            status.categories = layer
                .categories
                .iter()
                .map(|c| CategorySummary::pending(&c.name))
                .collect();
            status.phase = Some(LayerPhase::Pending);
            status.message = Some("created its categories".into());
            writes.push(Write::RunStatus(Box::new(status.clone())));
            events.push(Write::Event(note(
                run,
                false,
                "Accepted",
                &format!(
                    "layer {} ({}), {} categories, {}",
                    layer.key,
                    layer.display_name,
                    layer.categories.len(),
                    layer.strategy
                ),
            )));
        }
        let existing: BTreeSet<String> = o.category_runs.iter().map(|c| c.name_any()).collect();
        let missing: Vec<CategoryRun> = crs
            .into_iter()
            .filter(|cr| !existing.contains(&cr.name_any()))
            .collect();
        if !missing.is_empty() {
            writes.push(Write::CreateCategoryRuns(missing));
        }
        if !writes.is_empty() {
            writes.extend(events);
            return Frozen::Step(Step::write(writes, Next::Again));
        }
    }
    let Some(snap) = status.plan.as_ref() else {
        return Frozen::Step(run_status::invalid(
            o,
            status,
            "Inconsistent",
            "the run has no plan",
            now,
        ));
    };
    let refs: Vec<&CategoryRun> = o.category_runs.iter().map(|c| c.as_ref()).collect();
    match build::layer_from_objects(
        &run.spec.layer,
        run.spec.environment.as_deref(),
        snap,
        &refs,
    ) {
        Ok(layer) => Frozen::Ready(Box::new((layer, status))),
        Err(e) => Frozen::Step(run_status::invalid(
            o,
            status,
            "Inconsistent",
            &e.to_string(),
            now,
        )),
    }
}
