//! The frozen plan of a run: every CategoryRun's spec as resolved when the
//! run was accepted, kept in an immutable ConfigMap the run owns
//! (gzip-compressed JSON in `binaryData`, with a format key), so that a
//! CategoryRun deleted mid-run is recreated as it was, whatever became of
//! the config since. Its name carries a digest of its content, so creating
//! it again after a crash is the same object. Pure: encoding and decoding,
//! no I/O.

use std::collections::BTreeMap;
use std::io::{Read, Write as _};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::api::names::{FORMAT, FORMAT_KEY, PLAN_KEY};
use crate::api::names::{LABEL_CATEGORY, LABEL_LAYER, LABEL_MANAGED_BY, LABEL_RUN, MANAGER};
use crate::api::{CategoryRun, CategoryRunSpec, FrozenPlanRef, PodSettings, TestLayerRun};
use crate::controller::run::build::category_run_object;

/// Most compressed bytes a plan may have (a ConfigMap holds 1 MiB in all).
pub const MAX_COMPRESSED: usize = 1000 * 1024;
/// Most bytes a plan may decompress to (a guard against a hostile object).
const MAX_PLAIN: u64 = 512 << 20;
/// Prefix of a digest.
const DIGEST_PREFIX: &str = "sha256:";

/// What is wrong with a frozen plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrozenPlanError {
    /// The plan does not fit in a ConfigMap.
    #[error(
        "the plan is {size} bytes compressed, more than the {MAX_COMPRESSED} a ConfigMap holds: split the layer"
    )]
    TooLarge {
        /// Compressed bytes.
        size: usize,
    },
    /// The ConfigMap is not this run's frozen plan, or is damaged.
    #[error("ConfigMap {name} is not a usable frozen plan of this run: {why}")]
    Unusable {
        /// Its name.
        name: String,
        /// Why.
        why: String,
    },
}

/// Every category of a run as accepted, in config order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FrozenPlan {
    /// The layer key as a DNS label (a label of each CategoryRun).
    pub layer_k8s_name: String,
    /// The run's Pod settings, shared by every category (kept once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodSettings>,
    /// By index.
    pub categories: Vec<FrozenCategory>,
}

/// One category of a frozen plan.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FrozenCategory {
    /// The category name as a DNS label (its CategoryRun's name and label).
    pub k8s_name: String,
    /// Its CategoryRun's spec, without the shared Pod settings.
    pub spec: CategoryRunSpec,
}

impl FrozenPlan {
    /// The plan of these CategoryRuns (any order; one per index).
    pub fn of<'a>(crs: impl IntoIterator<Item = &'a CategoryRun>) -> FrozenPlan {
        let mut crs: Vec<&CategoryRun> = crs.into_iter().collect();
        crs.sort_by_key(|c| c.spec.index);
        let label = |cr: &CategoryRun, key: &str| cr.labels().get(key).cloned().unwrap_or_default();
        FrozenPlan {
            layer_k8s_name: crs
                .first()
                .map(|c| label(c, LABEL_LAYER))
                .unwrap_or_default(),
            pod: crs.first().and_then(|c| c.spec.pod.clone()),
            categories: crs
                .iter()
                .map(|cr| FrozenCategory {
                    k8s_name: label(cr, LABEL_CATEGORY),
                    spec: CategoryRunSpec {
                        pod: None,
                        ..cr.spec.clone()
                    },
                })
                .collect(),
        }
    }

    /// The CategoryRun of category `index` for `run`, as it was created.
    pub fn category_run(&self, run: &TestLayerRun, index: usize) -> Option<CategoryRun> {
        let c = self.categories.get(index)?;
        let spec = CategoryRunSpec {
            pod: self.pod.clone(),
            ..c.spec.clone()
        };
        Some(category_run_object(
            run,
            &self.layer_k8s_name,
            &c.k8s_name,
            spec,
        ))
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{DIGEST_PREFIX}{hex}")
}

/// The immutable ConfigMap holding `plan` for `run` (owned by it), and the
/// reference to record in the run's status.
pub fn encode(
    run: &TestLayerRun,
    plan: &FrozenPlan,
) -> Result<(ConfigMap, FrozenPlanRef), FrozenPlanError> {
    let json = serde_json::to_vec(plan).unwrap_or_default();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to memory does not fail.
    let compressed = gz
        .write_all(&json)
        .and_then(|()| gz.finish())
        .unwrap_or_default();
    if compressed.len() > MAX_COMPRESSED {
        return Err(FrozenPlanError::TooLarge {
            size: compressed.len(),
        });
    }
    let digest = hex_digest(&compressed);
    let short = &digest[DIGEST_PREFIX.len()..DIGEST_PREFIX.len() + 10];
    let name = format!("{}-plan-{short}", run.name_any());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: run.namespace(),
            labels: Some(BTreeMap::from([
                (LABEL_RUN.to_string(), run.name_any()),
                (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
            ])),
            owner_references: run.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            FORMAT_KEY.to_string(),
            FORMAT.to_string(),
        )])),
        binary_data: Some(BTreeMap::from([(
            PLAN_KEY.to_string(),
            ByteString(compressed),
        )])),
    };
    Ok((
        cm,
        FrozenPlanRef {
            config_map: name,
            digest,
        },
    ))
}

/// The plan in `cm`, checked to be the one `expected` names for `run`: owned
/// by the run, of this format, with the recorded digest.
pub fn decode(
    cm: &ConfigMap,
    run: &TestLayerRun,
    expected: &FrozenPlanRef,
) -> Result<FrozenPlan, FrozenPlanError> {
    let unusable = |why: String| FrozenPlanError::Unusable {
        name: cm.name_any(),
        why,
    };
    if !crate::controller::run::build::owned_by(cm, run) {
        return Err(unusable("it is not owned by the run".into()));
    }
    let format = cm.data.as_ref().and_then(|d| d.get(FORMAT_KEY));
    if format.map(String::as_str) != Some(FORMAT) {
        return Err(unusable(format!(
            "its format is {format:?}; this controller reads {FORMAT}"
        )));
    }
    let Some(ByteString(compressed)) = cm.binary_data.as_ref().and_then(|d| d.get(PLAN_KEY)) else {
        return Err(unusable(format!("it has no {PLAN_KEY}")));
    };
    if hex_digest(compressed) != expected.digest {
        return Err(unusable(format!(
            "its digest is not the recorded {}",
            expected.digest
        )));
    }
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .take(MAX_PLAIN)
        .read_to_end(&mut json)
        .map_err(|e| unusable(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| unusable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::run::step::resolve;
    use serde_json::json;

    fn run(uid: &str) -> TestLayerRun {
        serde_json::from_value(json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": "big", "namespace": "ci", "uid": uid},
            "spec": {"layer": "l", "config": {"inline": ""}, "image": "busybox", "command": "run {category}",
                     "pod": {"nodeSelector": {"pool": "tests"}}}}))
        .unwrap()
    }

    fn config(n: usize) -> String {
        let mut c = String::from("layers:\n  l:\n    execution_mode: parallel\n    categories:\n");
        for i in 0..n {
            c.push_str(&format!(
                "      - name: \"{i:04} {}\"\n        timeout_seconds: 60\n",
                "x".repeat(90)
            ));
        }
        c
    }

    #[test]
    fn a_plan_round_trips_and_recreates_each_category_run_as_it_was() {
        let r = run("u1");
        let (_, crs) = resolve(&r, &config(20), "inline").unwrap();
        let plan = FrozenPlan::of(crs.iter().rev());
        let (cm, reference) = encode(&r, &plan).unwrap();
        assert_eq!(cm.immutable, Some(true));
        assert!(reference.config_map.starts_with("big-plan-"));
        assert_eq!(cm.name_any(), reference.config_map);
        let back = decode(&cm, &r, &reference).unwrap();
        assert_eq!(back, plan);
        for (i, cr) in crs.iter().enumerate() {
            let again = back.category_run(&r, i).unwrap();
            assert_eq!(
                (&again.metadata, &again.spec),
                (&cr.metadata, &cr.spec),
                "category {i}"
            );
        }
        // The same plan is the same object (a create after a crash is a no-op).
        assert_eq!(encode(&r, &plan).unwrap().1, reference);
    }

    #[test]
    fn another_runs_or_a_damaged_plan_is_refused() {
        let r = run("u1");
        let (_, crs) = resolve(&r, &config(3), "inline").unwrap();
        let (cm, reference) = encode(&r, &FrozenPlan::of(&crs)).unwrap();
        let e = decode(&cm, &run("u2"), &reference).unwrap_err();
        assert!(e.to_string().contains("not owned by the run"), "{e}");
        let mut other = reference.clone();
        other.digest = "sha256:00".into();
        assert!(decode(&cm, &r, &other).is_err());
        let mut old = cm.clone();
        old.data = None;
        assert!(decode(&old, &r, &reference).is_err());
    }

    #[test]
    fn ten_thousand_categories_with_long_names_fit_in_a_config_map() {
        let r = run("u1");
        let (_, crs) = resolve(&r, &config(10_000), "inline").unwrap();
        let (cm, _) = encode(&r, &FrozenPlan::of(&crs)).unwrap();
        let size = cm.binary_data.as_ref().unwrap()[PLAN_KEY].0.len();
        assert!(size < 512 * 1024, "{size} bytes compressed");
    }
}
