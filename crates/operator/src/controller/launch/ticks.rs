//! The runs of a tick, pure: which layers a template runs (checked against
//! the layer config), the runs one tick creates, and the ticks that a
//! schedule's runs in the cache came from, with how each ended.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use crate::api::names::ANNOTATION_SCHEDULED_AT;
use crate::api::names::{ANNOTATION_SUITE_LAYERS, LABEL_SUITE};
use crate::api::{LayerPhase, RunTemplate, ScheduledRun, TestLayerRun};
use crate::config::Config;
use crate::plan::suite::{Suite, SuiteLayer};

/// Longest name of an object that is also a label value.
const MAX_NAME: usize = 63;

/// A field of the owner that is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its path, e.g. `spec.layers[1]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The layers a template runs, in dependency order: `layers` (field
/// `spec.layers`), or the template's own layer; each checked against the
/// layer config `text` (from `origin`).
pub fn template_layers(
    layers: &[String],
    template: &RunTemplate,
    text: &str,
    origin: &str,
) -> Result<Suite, Problem> {
    let own = &template.spec.0.layer;
    let keys: Vec<(String, &String)> = match (layers.is_empty(), own.is_empty()) {
        (true, true) => {
            return Err(Problem::new(
                "spec.template.spec.layer",
                "name the layer to run (or list several in spec.layers)",
            ));
        }
        (false, false) => {
            return Err(Problem::new(
                "spec.layers",
                format!("set either spec.layers or spec.template.spec.layer ({own:?}), not both"),
            ));
        }
        (true, false) => vec![("spec.template.spec.layer".into(), own)],
        (false, true) => layers
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("spec.layers[{i}]"), l))
            .collect(),
    };
    if template.spec.0.rerun_of.is_some() {
        return Err(Problem::new(
            "spec.template.spec.rerunOf",
            "runs created on a schedule or trigger cannot rerun one earlier run",
        ));
    }
    let config = Config::parse(text, origin)
        .map_err(|e| Problem::new("spec.template.spec.config", e.to_string()))?;
    let env = template.spec.0.environment.as_deref();
    if let Some(e) = env
        && !config.environments().contains(&e)
    {
        let known = config.environments();
        return Err(Problem::new(
            "spec.template.spec.environment",
            format!(
                "{origin} has no environment {e:?} in its environment_overrides (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    let mut out = Vec::new();
    for (field, key) in keys {
        let p = config
            .resolve(key, env)
            .map_err(|e| Problem::new(field, e.to_string()))?;
        out.push(SuiteLayer {
            key: p.settings.key.clone(),
            dependencies: p.settings.dependencies.clone(),
            background: p.settings.background(),
        });
    }
    Suite::new(out).map_err(|e| Problem::new("spec.layers", e.to_string()))
}

/// The name of a tick's (or firing's) group (its suite) and of each of its
/// runs, within 63 characters: `STEM-SUFFIX` for one layer,
/// `STEM-SUFFIX-LAYER` for several (`STEM` is the owner's name, cut where
/// needed; a schedule's suffix is the tick in seconds).
pub fn tick_names(
    owner: &str,
    suite: &Suite,
    suffix: &str,
) -> Result<(String, Vec<String>), Problem> {
    let slugs: Vec<String> = suite
        .layers()
        .iter()
        .map(|l| crate::config::names::slug(&l.key).unwrap_or_else(|_| "layer".into()))
        .collect();
    let single = slugs.len() == 1;
    let longest = if single {
        0
    } else {
        slugs.iter().map(|s| s.len() + 1).max().unwrap_or(0)
    };
    let room = MAX_NAME.saturating_sub(suffix.len() + 1 + longest);
    if room == 0 {
        return Err(Problem::new(
            "spec.layers",
            "a layer's name is too long for the names of its runs (63 characters)",
        ));
    }
    let stem: String = owner.chars().take(room).collect();
    let group = format!("{}-{suffix}", stem.trim_end_matches('-'));
    let runs = if single {
        vec![group.clone()]
    } else {
        slugs.iter().map(|s| format!("{group}-{s}")).collect()
    };
    Ok((group, runs))
}

/// The names and moment of one tick's (or firing's) runs.
#[derive(Debug, Clone, Copy)]
pub struct TickNames<'a> {
    /// The group (suite) name.
    pub group: &'a str,
    /// One run name per layer of the suite, in its order.
    pub runs: &'a [String],
    /// The tick.
    pub at: Timestamp,
}

/// The runs of a tick: one per layer of `suite`, in its order, named as
/// `tick` says, labelled as one suite (so that they gate on each other and
/// on no other run) and with `owner_label` set to the name of `owner`,
/// which owns them; with `extra_annotations` besides the template's.
pub fn tick_runs<K: Resource<DynamicType = ()>>(
    (owner, owner_label): (&K, &str),
    template: &RunTemplate,
    suite: &Suite,
    tick: TickNames<'_>,
    extra_annotations: &BTreeMap<String, String>,
) -> Vec<TestLayerRun> {
    let TickNames {
        group,
        runs: names,
        at,
    } = tick;
    let keys: Vec<&str> = suite.layers().iter().map(|l| l.key.as_str()).collect();
    let meta = template.metadata.clone().unwrap_or_default();
    let owner_ref = OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    suite
        .layers()
        .iter()
        .zip(names)
        .map(|(layer, name)| {
            let mut labels = meta.labels.clone();
            labels.insert(owner_label.into(), owner.name_any());
            labels.insert(LABEL_SUITE.into(), group.into());
            let mut annotations = meta.annotations.clone();
            annotations.extend(extra_annotations.clone());
            annotations.insert(ANNOTATION_SCHEDULED_AT.into(), at.to_string());
            annotations.insert(ANNOTATION_SUITE_LAYERS.into(), keys.join(","));
            let mut spec = template.spec.0.clone();
            spec.layer = layer.key.clone();
            TestLayerRun {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: owner.namespace(),
                    labels: Some(labels),
                    annotations: Some(annotations),
                    owner_references: Some(vec![owner_ref.clone()]),
                    ..Default::default()
                },
                spec,
                status: None,
            }
        })
        .collect()
}

/// The runs of one tick found in the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct TickGroup {
    /// The suite's name (the run's, for one layer).
    pub name: String,
    /// The tick.
    pub at: Timestamp,
    /// Its runs' names, as created.
    pub runs: Vec<String>,
    /// Runs the suite should have (from its annotation).
    pub expected: usize,
    /// How it stands: Pending or Running until every run not in the
    /// background ended, then Succeeded when each of those did, else the
    /// end of the first that did not (over the runs that exist: a run
    /// deleted by its TTL no longer counts).
    pub phase: LayerPhase,
    /// Names of its runs that have not ended.
    pub unfinished: Vec<String>,
    /// Of those, the ones not being cancelled.
    pub cancellable: Vec<String>,
}

impl TickGroup {
    /// Whether every run of the tick has ended (background ones too).
    pub fn ended(&self) -> bool {
        self.unfinished.is_empty()
    }
}

/// The ticks `runs` (an owner's runs) came from, oldest first; runs
/// without a readable tick are left out.
pub fn tick_groups(runs: &[Arc<TestLayerRun>]) -> Vec<TickGroup> {
    let mut by_name: BTreeMap<String, Vec<&TestLayerRun>> = BTreeMap::new();
    for r in runs {
        let group = r
            .labels()
            .get(LABEL_SUITE)
            .cloned()
            .unwrap_or_else(|| r.name_any());
        by_name.entry(group).or_default().push(r);
    }
    let mut out: Vec<TickGroup> = by_name
        .into_iter()
        .filter_map(|(name, runs)| {
            let at = runs.iter().find_map(|r| {
                r.annotations()
                    .get(ANNOTATION_SCHEDULED_AT)?
                    .parse::<Timestamp>()
                    .ok()
            })?;
            let expected = runs
                .iter()
                .find_map(|r| r.annotations().get(ANNOTATION_SUITE_LAYERS))
                .map_or(1, |l| l.split(',').count());
            Some(group(name, at, expected, &runs))
        })
        .collect();
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.name.cmp(&b.name)));
    out
}

fn group(name: String, at: Timestamp, expected: usize, runs: &[&TestLayerRun]) -> TickGroup {
    let phase_of = |r: &TestLayerRun| {
        r.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(LayerPhase::Pending)
    };
    let background = |r: &TestLayerRun| {
        r.status
            .as_ref()
            .and_then(|s| s.plan.as_ref())
            .is_some_and(|p| p.background)
    };
    let mut names: Vec<String> = runs.iter().map(|r| r.name_any()).collect();
    names.sort();
    let unfinished: Vec<&&TestLayerRun> =
        runs.iter().filter(|r| !phase_of(r).is_terminal()).collect();
    let cancellable = unfinished
        .iter()
        .filter(|r| !r.spec.cancel)
        .map(|r| r.name_any())
        .collect();
    let unfinished = unfinished.iter().map(|r| r.name_any()).collect();
    let counted: Vec<&&TestLayerRun> = runs.iter().filter(|r| !background(r)).collect();
    let phase = if counted.iter().any(|r| phase_of(r) == LayerPhase::Running) {
        LayerPhase::Running
    } else if counted.iter().any(|r| !phase_of(r).is_terminal()) {
        LayerPhase::Pending
    } else {
        counted
            .iter()
            .map(|r| phase_of(r))
            .find(|p| *p != LayerPhase::Succeeded)
            .unwrap_or(LayerPhase::Succeeded)
    };
    TickGroup {
        name,
        at,
        runs: names,
        expected,
        phase,
        unfinished,
        cancellable,
    }
}

/// Runs of finished groups kept per outcome when the spec says nothing.
pub const DEFAULT_HISTORY_LIMIT: u32 = 3;

/// The runs of ended groups past the history limits (`keep_succeeded` and
/// `keep_failed` groups, 3 each when unset), to delete; and every run that
/// has not ended, with those being created, sorted.
pub fn upkeep(
    groups: &[TickGroup],
    keep_succeeded: Option<u32>,
    keep_failed: Option<u32>,
    creating: &[TestLayerRun],
) -> (Vec<String>, Vec<String>) {
    let ended: Vec<(String, Timestamp, bool)> = groups
        .iter()
        .filter(|g| g.ended())
        .map(|g| (g.name.clone(), g.at, g.phase == LayerPhase::Succeeded))
        .collect();
    let limit = |l: Option<u32>| usize::try_from(l.unwrap_or(DEFAULT_HISTORY_LIMIT)).unwrap_or(0);
    let drop =
        testlayer_core::schedule::over_history(&ended, limit(keep_succeeded), limit(keep_failed));
    let delete = groups
        .iter()
        .filter(|g| drop.contains(&g.name))
        .flat_map(|g| g.runs.clone())
        .collect();
    let mut active: Vec<String> = groups.iter().flat_map(|g| g.unfinished.clone()).collect();
    active.extend(creating.iter().map(|r| r.name_any()));
    active.sort();
    active.dedup();
    (delete, active)
}

/// Brings the phases of remembered ticks or firings (`entries`: each one's
/// group name and phase) and of `last_run` up to date with `groups`; a
/// group no longer there (its runs deleted) keeps the phase it had.
pub fn refresh_phases<'a>(
    groups: &[TickGroup],
    entries: impl Iterator<Item = (Option<&'a str>, &'a mut Option<LayerPhase>)>,
    last_run: &mut Option<ScheduledRun>,
) {
    let phase = |name: &str| groups.iter().find(|g| g.name == name).map(|g| g.phase);
    for (name, p) in entries {
        if let Some(now) = name.and_then(phase) {
            *p = Some(now);
        }
    }
    if let Some(r) = last_run
        && let Some(now) = phase(&r.name)
    {
        r.phase = Some(now);
    }
}
