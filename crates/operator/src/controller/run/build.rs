//! Pure builders: the CategoryRuns of a run from its resolved layer, the Pod of
//! one attempt from a CategoryRun, and the layer plan back from those objects
//! (a run follows what it froze at its start, not later config edits).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, Pod, PodSecurityContext, PodSpec, ResourceRequirements,
    SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::api::names::{
    CONTAINER, LABEL_ATTEMPT, LABEL_CATEGORY, LABEL_KUEUE_QUEUE, LABEL_LAYER, LABEL_MANAGED_BY,
    LABEL_RUN, MANAGER,
};
use crate::api::{
    Amounts, CategoryResources, CategoryRun, CategoryRunSpec, PlanSnapshot, TestLayerRun,
};
use crate::config::names::short_hash;
use crate::config::quantity::{format_cpu, format_memory};
use crate::layer::{
    ATTEMPT_ENV, CategoryPlan, EstimateSource, LayerPlan, LayerSettings, Quantities, Resources,
    substitute_command,
};
use crate::results::wrapped_command;

pub mod test_cases;

/// Longest CategoryRun name, so `<name>-<attempt>` stays a valid DNS label
/// (Pod host names are cut at 63 characters).
const MAX_CATEGORY_RUN_NAME: usize = 58;
/// Extra seconds past the category timeout after which the kubelet itself
/// stops a Pod (a backstop for a controller that is down).
const DEADLINE_BACKSTOP_SECS: i64 = 60;
/// Grace period of a stopped Pod.
const STOP_GRACE_SECS: i64 = 10;
/// User and group the restricted defaults run as.
const NON_ROOT_ID: i64 = 1000;

/// What cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// A category has no image, and the run names none.
    #[error(
        "category {category:?} has no image: set `image` in the layer config or `spec.image` on the TestLayerRun"
    )]
    NoImage {
        /// The category.
        category: String,
    },
    /// A category has no command, and the run names none.
    #[error(
        "category {category:?} has no command: set `command` in the layer config or `spec.command` on the TestLayerRun"
    )]
    NoCommand {
        /// The category.
        category: String,
    },
    /// The objects of a run do not form a plan (edited by hand, or from another version).
    #[error("the run's plan cannot be rebuilt: {0}")]
    Inconsistent(String),
}

/// Whether `owner` (by uid) is among the owners of `obj`.
pub fn owned_by<K: Resource>(obj: &K, owner: &impl Resource) -> bool {
    let uid = owner.meta().uid.as_deref();
    obj.meta()
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| Some(r.uid.as_str()) == uid))
}

/// `<run>-<category>`, shortened with a hash of the full name when too long.
pub fn category_run_name(run: &str, category_k8s_name: &str) -> String {
    let full = format!("{run}-{category_k8s_name}");
    if full.len() <= MAX_CATEGORY_RUN_NAME {
        return full;
    }
    let hash = short_hash(&full);
    let keep = MAX_CATEGORY_RUN_NAME - hash.len() - 1;
    let head = full[..keep].trim_end_matches('-');
    format!("{head}-{hash}")
}

/// The Pod name of attempt `attempt` of a CategoryRun.
pub fn pod_name(category_run: &str, attempt: u32) -> String {
    format!("{category_run}-{attempt}")
}

/// A label value from any name: the slug, cut to 63 characters.
fn label_value(s: &str) -> String {
    let slug = crate::config::names::slug(s).unwrap_or_default();
    slug.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// The layer-wide settings to freeze in the run's status.
pub fn snapshot(layer: &LayerPlan) -> PlanSnapshot {
    PlanSnapshot {
        display_name: layer.settings.display_name.clone(),
        strategy: layer.settings.strategy.into(),
        max_parallel: layer.settings.max_parallel,
        budget: amounts(layer.settings.budget),
        fail_fast: layer.settings.fail_fast,
        background: layer.settings.background(),
        deadline_seconds: layer.settings.deadline.map(|d| d.as_secs_f64()),
        timeout_multiplier: layer.settings.timeout_multiplier,
        layer_dependencies: layer.settings.dependencies.clone(),
        required_services: layer.settings.required_services.clone(),
        service_wait_seconds: layer.settings.service_wait.as_secs_f64(),
        llm_mode: layer.settings.llm_mode.into(),
        category_count: layer.categories.len() as u32,
        categories: Vec::new(),
        frozen: None,
        uses: layer.settings.uses.clone(),
        deadline_counts_resource_wait: layer.settings.deadline_counts_resource_wait,
    }
}

fn amounts(q: Quantities) -> Amounts {
    Amounts {
        cpu_millis: q.cpu_millis,
        memory_bytes: q.memory_bytes,
    }
}

fn quantities(a: Amounts) -> Quantities {
    Quantities {
        cpu_millis: a.cpu_millis,
        memory_bytes: a.memory_bytes,
    }
}

/// The CategoryRun of category `i` of `layer` for `run`.
pub fn category_run(
    run: &TestLayerRun,
    layer: &LayerPlan,
    i: usize,
) -> Result<CategoryRun, BuildError> {
    let c = &layer.categories[i];
    let image = c
        .image
        .clone()
        .or_else(|| run.spec.image.clone())
        .ok_or_else(|| BuildError::NoImage {
            category: c.name.clone(),
        })?;
    let command = c
        .command
        .clone()
        .or_else(|| {
            run.spec
                .command
                .as_deref()
                .map(|t| substitute_command(t, &layer.settings.key, &c.name))
        })
        .ok_or_else(|| BuildError::NoCommand {
            category: c.name.clone(),
        })?;
    let run_name = run.name_any();
    let env = layer.command_env(i, Some(&run_name));
    let spec = CategoryRunSpec {
        run_name: run_name.clone(),
        layer: layer.settings.key.clone(),
        category: c.name.clone(),
        index: i as u32,
        priority_order: c.priority_order,
        expected_duration_seconds: (c.estimate != c.timeout).then_some(c.estimate.as_secs_f64()),
        image,
        command,
        env,
        resources: CategoryResources {
            requests: amounts(c.resources.requests),
            limits: amounts(c.resources.limits),
        },
        timeout_seconds: c.timeout.as_secs_f64(),
        retries: c.retries,
        infra_retries: c.infra_retries,
        retry_backoff_seconds: c.retry_backoff.as_secs_f64(),
        dependencies: c
            .dependencies
            .iter()
            .map(|&d| layer.categories[d].name.clone())
            .collect(),
        junit_report: c.junit_report.clone(),
        quarantine: c.quarantine.clone(),
        allow_failure: c.allow_failure,
        passed_in: None,
        pod: run.spec.pod.clone(),
        uses: c.uses.clone(),
    };
    Ok(category_run_object(
        run,
        &layer.settings.k8s_name,
        &c.k8s_name,
        spec,
    ))
}

/// The CategoryRun of `run` with this spec: its name, labels and owner
/// reference (`layer_k8s_name` and `category_k8s_name` are the layer's and
/// the category's names as DNS labels).
pub fn category_run_object(
    run: &TestLayerRun,
    layer_k8s_name: &str,
    category_k8s_name: &str,
    spec: CategoryRunSpec,
) -> CategoryRun {
    let run_name = run.name_any();
    let mut cr = CategoryRun::new(&category_run_name(&run_name, category_k8s_name), spec);
    cr.metadata.namespace = run.namespace();
    cr.metadata.labels = Some(BTreeMap::from([
        (LABEL_RUN.to_string(), run_name),
        (LABEL_LAYER.to_string(), layer_k8s_name.to_string()),
        (LABEL_CATEGORY.to_string(), category_k8s_name.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
    ]));
    cr.metadata.owner_references = run.controller_owner_ref(&()).map(|r| vec![r]);
    cr
}

/// Seconds as a duration: none for what is not a positive number, and at
/// most what a duration holds (the values are checked before; this only
/// keeps an unchecked one from ending the process).
fn seconds(s: f64) -> Duration {
    if !(s.is_finite() && s > 0.0) {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
}

/// The layer plan of a run, rebuilt from its frozen settings and its
/// CategoryRuns (in any order; exactly one per index of the plan). A run
/// accepted by an older controller also has the category names in the
/// snapshot, which must match.
pub fn layer_from_objects(
    key: &str,
    environment: Option<&str>,
    snap: &PlanSnapshot,
    runs: &[&CategoryRun],
) -> Result<LayerPlan, BuildError> {
    let bad = |m: String| BuildError::Inconsistent(m);
    let strategy = *snap
        .strategy
        .get()
        .map_err(|s| bad(format!("status.plan.strategy: unknown strategy {s:?}")))?;
    let llm_mode = *snap
        .llm_mode
        .get()
        .map_err(|m| bad(format!("status.plan.llmMode: unknown LLM mode {m:?}")))?;
    let n = snap.count();
    let mut by_index: Vec<Option<&CategoryRun>> = vec![None; n];
    for cr in runs {
        let i = cr.spec.index as usize;
        let named = snap
            .categories
            .get(i)
            .is_none_or(|c| *c == cr.spec.category);
        if let Some(Some(other)) = by_index.get(i) {
            return Err(bad(format!(
                "CategoryRun {}: spec.index: {i} is the index of CategoryRun {} too",
                cr.name_any(),
                other.name_any()
            )));
        }
        if i >= n || !named {
            return Err(bad(format!(
                "CategoryRun {}: spec.index: category {:?} at index {i} is not in the plan",
                cr.name_any(),
                cr.spec.category
            )));
        }
        by_index[i] = Some(cr);
    }
    let by_index: Vec<&CategoryRun> = by_index
        .into_iter()
        .enumerate()
        .map(|(i, slot)| {
            slot.ok_or_else(|| {
                bad(match snap.categories.get(i) {
                    Some(name) => format!("the CategoryRun of category {name:?} is missing"),
                    None => format!("the CategoryRun of category {i} (0-based) is missing"),
                })
            })
        })
        .collect::<Result<_, _>>()?;
    let index: BTreeMap<&str, usize> = by_index
        .iter()
        .enumerate()
        .map(|(i, cr)| (cr.spec.category.as_str(), i))
        .collect();
    let mut categories = Vec::with_capacity(n);
    for cr in by_index {
        let s = &cr.spec;
        let timeout = seconds(s.timeout_seconds);
        let mut c = CategoryPlan::new(&s.category, timeout);
        c.k8s_name = cr
            .labels()
            .get(LABEL_CATEGORY)
            .cloned()
            .unwrap_or_else(|| label_value(&s.category));
        c.priority_order = s.priority_order;
        c.dependencies = s
            .dependencies
            .iter()
            .map(|d| {
                index.get(d.as_str()).copied().ok_or_else(|| {
                    bad(format!(
                        "category {:?} depends on unknown {d:?}",
                        s.category
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        c.command = Some(s.command.clone());
        c.image = Some(s.image.clone());
        c.env = s.env.clone();
        c.resources = Resources {
            requests: quantities(s.resources.requests),
            limits: quantities(s.resources.limits),
        };
        c.retries = s.retries;
        c.infra_retries = s.infra_retries;
        c.retry_backoff = seconds(s.retry_backoff_seconds);
        c.estimate = s.expected_duration_seconds.map(seconds).unwrap_or(timeout);
        if s.expected_duration_seconds.is_some() {
            // Frozen: from the config or learned when the run started.
            c.estimate_source = EstimateSource::Config;
        }
        c.junit_report = s.junit_report.clone();
        c.quarantine = s.quarantine.clone();
        c.allow_failure = s.allow_failure;
        c.uses = s.uses.clone();
        categories.push(c);
    }
    let mut settings = LayerSettings::new(key, strategy, snap.max_parallel);
    settings.display_name = snap.display_name.clone();
    settings.environment = environment.map(str::to_string);
    settings.budget = quantities(snap.budget);
    settings.fail_fast = snap.fail_fast;
    settings.deadline = snap.deadline_seconds.map(seconds);
    settings.timeout_multiplier = snap.timeout_multiplier;
    settings.dependencies = snap.layer_dependencies.clone();
    settings.required_services = snap.required_services.clone();
    settings.service_wait = seconds(snap.service_wait_seconds);
    settings.llm_mode = llm_mode;
    settings.uses = snap.uses.clone();
    settings.deadline_counts_resource_wait = snap.deadline_counts_resource_wait;
    LayerPlan::new(settings, categories).map_err(|e| bad(e.to_string()))
}

/// The Pod of attempt `attempt` (1-based) of a CategoryRun.
pub fn attempt_pod(cr: &CategoryRun, attempt: u32) -> Pod {
    let s = &cr.spec;
    let pod = s.pod.clone().unwrap_or_default();
    let cr_name = cr.name_any();
    let mut env: Vec<EnvVar> = s
        .env
        .iter()
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            value_from: None,
        })
        .collect();
    env.push(EnvVar {
        name: ATTEMPT_ENV.into(),
        value: Some(attempt.to_string()),
        value_from: None,
    });
    // The run's pod env may hold secret references; it wins over plain values.
    env.retain(|e| !pod.env.iter().any(|p| p.name == e.name));
    env.extend(pod.env.iter().cloned());

    let defaults = pod.resources.clone().unwrap_or_default();
    let pick = |own: Option<String>, defaults: &Option<BTreeMap<String, Quantity>>, key: &str| {
        own.map(Quantity)
            .or_else(|| defaults.as_ref().and_then(|d| d.get(key).cloned()))
            .map(|q| (key.to_string(), q))
    };
    let (req, lim) = (s.resources.requests, s.resources.limits);
    let requests: BTreeMap<String, Quantity> = [
        pick(req.cpu_millis.map(format_cpu), &defaults.requests, "cpu"),
        pick(
            req.memory_bytes.map(format_memory),
            &defaults.requests,
            "memory",
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let limits: BTreeMap<String, Quantity> = [
        pick(lim.cpu_millis.map(format_cpu), &defaults.limits, "cpu"),
        pick(
            lim.memory_bytes.map(format_memory),
            &defaults.limits,
            "memory",
        ),
    ]
    .into_iter()
    .flatten()
    .collect();

    let restricted = !pod.unrestricted;
    // A category with a JUnit report prints it to its log when its command
    // ends (the log is the one channel out of every container). Its
    // message policy is `File`: the end of its log, which a failed
    // container's message falls back to otherwise, is the report.
    let (command, message_policy) = match &s.junit_report {
        Some(report) => (wrapped_command(&s.command, report), "File"),
        None => (
            vec!["/bin/sh".into(), "-c".into(), s.command.clone()],
            "FallbackToLogsOnError",
        ),
    };
    let container = Container {
        name: CONTAINER.into(),
        image: Some(s.image.clone()),
        command: Some(command),
        env: Some(env),
        env_from: (!pod.env_from.is_empty()).then(|| pod.env_from.clone()),
        resources: Some(ResourceRequirements {
            requests: (!requests.is_empty()).then_some(requests),
            limits: (!limits.is_empty()).then_some(limits),
            ..ResourceRequirements::default()
        }),
        termination_message_policy: Some(message_policy.into()),
        security_context: restricted.then(|| SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };

    let mut labels = pod.labels.clone();
    labels.extend(cr.labels().iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert(LABEL_ATTEMPT.into(), attempt.to_string());
    if let Some(q) = &pod.queue_name {
        labels.insert(LABEL_KUEUE_QUEUE.into(), q.clone());
    }
    let timeout_secs = s.timeout_seconds.max(0.0).ceil() as i64;
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(&cr_name, attempt)),
            namespace: cr.namespace(),
            labels: Some(labels),
            annotations: (!pod.annotations.is_empty()).then(|| pod.annotations.clone()),
            owner_references: cr.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            containers: vec![container],
            active_deadline_seconds: Some(timeout_secs + DEADLINE_BACKSTOP_SECS),
            termination_grace_period_seconds: Some(STOP_GRACE_SECS),
            service_account_name: pod.service_account_name.clone(),
            automount_service_account_token: Some(pod.service_account_name.is_some()),
            enable_service_links: Some(false),
            node_selector: (!pod.node_selector.is_empty()).then(|| pod.node_selector.clone()),
            tolerations: (!pod.tolerations.is_empty()).then(|| pod.tolerations.clone()),
            image_pull_secrets: (!pod.image_pull_secrets.is_empty())
                .then(|| pod.image_pull_secrets.clone()),
            security_context: restricted.then(|| PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(NON_ROOT_ID),
                run_as_group: Some(NON_ROOT_ID),
                fs_group: Some(NON_ROOT_ID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests;
