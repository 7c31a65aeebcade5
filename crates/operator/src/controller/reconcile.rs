//! The TestLayerRun reconciler, a pipeline: dereference (config, owned
//! objects) → validate and build (pure) → gates (dependencies, services) →
//! plan (pure) → apply (create and delete Pods) → update the status of the
//! CategoryRuns and of the run, each only when it changed.
//!
//! One reconciler drives a run's CategoryRuns and their Pods: one writer per
//! object (no conflicts between controllers), and the planner sees the whole
//! layer at once. Every Pod has a deterministic name, so a restart at any
//! moment neither loses nor repeats an attempt.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::attempts::{
    self, INTERRUPTED, category_obs, complete_lost, stop_terminal, sync_attempts,
};
use super::build::{self, CONTAINER, LABEL_ATTEMPT, LABEL_CATEGORY, LABEL_RUN};
use super::context::{Context, ControllerError, FIELD_MANAGER};
use super::gates::{self, Gate};
use super::status::{Stall, category_terminal, layer_terminal, phase_conditions};
use crate::api::{
    CategoryRun, CategoryRunStatus, CategorySummary, LayerPhase, TestCounts, TestLayerRun,
    TestLayerRunStatus,
};
use crate::config::{Config, Overrides};
use crate::layer::{LayerPlan, Strategy};
use crate::plan::describe::{describe_terminal, describe_wait, human_duration, reason_code};
use crate::plan::{Action, LayerObs, LayerOutcome, Phase, WaitReason, plan};
use crate::results::{LogTail, OutputScanner};

/// Key of the layer config in a ConfigMap when the reference names none.
pub const DEFAULT_CONFIG_KEY: &str = "test_layers.yaml";
/// Longest TestLayerRun name: it is a label value on every object of the run.
const MAX_RUN_NAME: usize = 63;
/// How often a run waiting on dependencies or services looks again.
const GATE_POLL: Duration = Duration::from_secs(2);
/// Log bytes read from a finished attempt for test counts.
const LOG_READ_BYTES: i64 = 1 << 20;
/// Bounds of the log tail kept in a CategoryRun's status.
const TAIL_LINES: usize = 40;
const TAIL_BYTES: usize = 4096;
/// Writes a reconcile sends to the apiserver at once.
const CONCURRENT_WRITES: usize = 32;
/// At most this often when nothing else wakes a running run up.
const IDLE_REQUEUE: Duration = Duration::from_secs(300);

fn now() -> Time {
    Time(Timestamp::now())
}

/// Hash of the spec fields that define what runs.
pub fn spec_hash(run: &TestLayerRun) -> String {
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
    let mut h = std::collections::hash_map::DefaultHasher::new();
    defining.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Overrides of a run's spec, as the config resolver takes them.
fn overrides(run: &TestLayerRun) -> Result<Overrides, String> {
    let mut o = Overrides {
        source: "spec.overrides".into(),
        ..Overrides::default()
    };
    if let Some(ov) = &run.spec.overrides {
        if let Some(s) = &ov.strategy {
            o.strategy = Some(Strategy::parse(s).ok_or_else(|| {
                format!("spec.overrides.strategy: unknown strategy {s:?}; use SEQUENTIAL, PARALLEL_UNLIMITED, PARALLEL_LIMITED or HYBRID_SMART")
            })?);
        }
        o.max_parallel = ov.max_parallel.map(i64::from);
        o.fail_fast = ov.fail_fast;
        o.retries = ov.retries.map(i64::from);
        if let Some(m) = &ov.timeout_multiplier {
            o.timeout_multiplier =
                Some(m.trim().parse::<f64>().map_err(|_| {
                    format!("spec.overrides.timeoutMultiplier: {m:?} is not a number")
                })?);
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

/// Reconciles one TestLayerRun.
pub async fn reconcile(
    run: Arc<TestLayerRun>,
    ctx: Arc<Context>,
) -> Result<Requeue, ControllerError> {
    let _timer = ctx.metrics.reconcile();
    let began = std::time::Instant::now();
    if run.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove CategoryRuns and Pods.
        return Ok(Requeue::await_change());
    }
    let ns = run
        .namespace()
        .ok_or(ControllerError::Incomplete("namespace"))?;
    let name = run.name_any();
    let mut status = run.status.clone().unwrap_or_default();
    let hash = spec_hash(&run);

    // A changed definition starts the run over (GitOps: a new spec is a new run).
    if status.spec_hash.as_deref().is_some_and(|h| h != hash) {
        return restart(&run, &ctx, &ns).await;
    }

    // TTL after finishing.
    if let Some(phase) = status.phase.filter(|p| p.is_terminal()) {
        return finished(&run, &ctx, &ns, phase, &status).await;
    }

    // Dereference and build the plan.
    let mut owned: Vec<Arc<CategoryRun>> = ctx
        .category_runs
        .state()
        .into_iter()
        .filter(|cr| {
            cr.namespace().as_deref() == Some(&ns)
                && cr.spec.run_name == name
                && owned_by(cr.as_ref(), run.as_ref())
        })
        .collect();
    if status.plan.as_ref().map(|p| p.categories.len()) != Some(owned.len()) {
        {
            let (text, origin) = match config_text(&run, &ctx, &ns).await {
                Ok(t) => t,
                Err(Deref::Missing(m)) => {
                    return waiting_for_config(&run, &ctx, &ns, status, &m).await;
                }
                Err(Deref::Api(e)) => return Err(e),
            };
            let (layer, crs) = match resolve(&run, &text, &origin) {
                Ok(r) => r,
                Err(problem) => {
                    return invalid(&run, &ctx, &ns, status, "InvalidConfig", &problem).await;
                }
            };
            if status.plan.is_none() {
                let mut snap = build::snapshot(&layer);
                snap.background |= run.spec.background;
                status.plan = Some(snap);
                status.spec_hash = Some(hash.clone());
                status.strategy = Some(layer.strategy.as_str().to_string());
                status.categories = layer
                    .categories
                    .iter()
                    .map(|c| CategorySummary::pending(&c.name))
                    .collect();
                status.phase = Some(LayerPhase::Pending);
                status.message = Some("created its categories".into());
                write_run_status(&ctx, &run, &status).await?;
                publish(
                    &ctx,
                    run.as_ref(),
                    EventType::Normal,
                    "Accepted",
                    &format!(
                        "layer {} ({}), {} categories, {}",
                        layer.key,
                        layer.display_name,
                        layer.categories.len(),
                        layer.strategy.as_str()
                    ),
                )
                .await;
            }
            let api: Api<CategoryRun> = Api::namespaced(ctx.client.clone(), &ns);
            // The cache may not show every CategoryRun created a moment ago:
            // ask the apiserver which exist rather than creating them again.
            let lp = kube::api::ListParams::default().labels(&format!("{LABEL_RUN}={name}"));
            let listed = api
                .list_metadata(&lp)
                .await
                .map_err(ControllerError::kube(format!(
                    "listing the CategoryRuns of {name}"
                )))?;
            let existing: std::collections::BTreeSet<String> = listed
                .items
                .iter()
                .map(|o| o.name_any())
                .chain(owned.iter().map(|o| o.name_any()))
                .collect();
            let missing: Vec<CategoryRun> = crs
                .into_iter()
                .filter(|cr| !existing.contains(&cr.name_any()))
                .collect();
            let created = create_all(&api, missing, "CategoryRun").await?;
            owned.extend(created.into_iter().map(Arc::new));
            if owned.len() != layer.categories.len() {
                // Some exist but are not cached yet: they arrive through the watch.
                return Ok(Requeue::requeue(Duration::from_millis(500)));
            }
        }
    }
    let Some(snap) = status.plan.as_ref() else {
        return Err(ControllerError::Incomplete("plan"));
    };
    let refs: Vec<&CategoryRun> = owned.iter().map(|c| c.as_ref()).collect();
    let layer = match build::layer_from_objects(
        &run.spec.layer,
        run.spec.environment.as_deref(),
        snap,
        &refs,
    ) {
        Ok(l) => l,
        Err(e) => return invalid(&run, &ctx, &ns, status, "Inconsistent", &e.to_string()).await,
    };
    let snap_layers = status
        .plan
        .as_ref()
        .map(|p| p.layer_dependencies.clone())
        .unwrap_or_default();

    // Gates: layer dependencies and services, before the run's clock starts.
    let mut hold = false;
    let mut gate_message = None;
    if status.start_time.is_none() && !run.spec.cancel {
        let gate = match gates::dependencies(&run, &snap_layers, &ctx.runs.state()) {
            Gate::Open if !layer.required_services.is_empty() => {
                let unready =
                    gates::unready_services(&ctx.client, &ns, &layer.required_services).await?;
                let waited = run
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(Duration::ZERO, |c| {
                        attempts::offset(&c.0, &Timestamp::now())
                    });
                if unready.is_empty() {
                    Gate::Open
                } else if waited > layer.service_wait {
                    Gate::Failed {
                        reason: "ServicesNotReady".into(),
                        message: format!(
                            "services without ready endpoints after {}: {}",
                            human_duration(layer.service_wait),
                            unready.join(", ")
                        ),
                    }
                } else {
                    Gate::Waiting(format!(
                        "waiting for ready endpoints of {}",
                        unready.join(", ")
                    ))
                }
            }
            g => g,
        };
        match gate {
            Gate::Open => {}
            Gate::Waiting(m) => {
                hold = true;
                gate_message = Some(m);
            }
            Gate::Failed { reason, message } => {
                return gate_failed(&run, &ctx, &ns, status, &layer, &owned, &reason, &message)
                    .await;
            }
        }
    }

    // Observe: bring every CategoryRun's attempts up to date with its Pods.
    let wall = now();
    let mut crs: Vec<(Arc<CategoryRun>, CategoryRunStatus)> =
        Vec::with_capacity(layer.categories.len());
    let mut by_index: Vec<Option<Arc<CategoryRun>>> = vec![None; layer.categories.len()];
    for cr in &owned {
        by_index[cr.spec.index as usize] = Some(cr.clone());
    }
    let pods_of_run: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(&ns) && p.labels().get(LABEL_RUN) == Some(&name)
        })
        .collect();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let cr_api: Api<CategoryRun> = Api::namespaced(ctx.client.clone(), &ns);
    for (i, slot) in by_index.into_iter().enumerate() {
        let Some(cr) = slot else {
            return Err(ControllerError::Incomplete("category run"));
        };
        let k8s = &layer.categories[i].k8s_name;
        let pods: BTreeMap<u32, &Pod> = pods_of_run
            .iter()
            .filter(|p| {
                p.labels().get(LABEL_CATEGORY) == Some(k8s) && owned_by(p.as_ref(), cr.as_ref())
            })
            .filter_map(|p| {
                Some((
                    p.labels().get(LABEL_ATTEMPT)?.parse::<u32>().ok()?,
                    p.as_ref(),
                ))
            })
            .collect();
        let mut st = cr.status.clone().unwrap_or_default();
        let needs = sync_attempts(&mut st, &pods, &wall);
        if !needs.missing.is_empty() {
            // The cache may be behind our own writes: a stop recorded a moment
            // ago must not be mistaken for a lost Pod.
            let fresh = cr_api
                .get_status(&cr.name_any())
                .await
                .map_err(ControllerError::kube(format!(
                    "reading CategoryRun {}",
                    cr.name_any()
                )))?;
            if let Some(fs) = fresh.status {
                for a in st.attempts.iter_mut() {
                    if let Some(f) = fs.attempts.iter().find(|f| f.number == a.number)
                        && a.stop.is_none()
                        && f.stop.is_some()
                    {
                        a.stop = f.stop.clone();
                        st.reason = fs.reason.clone();
                        st.caused_by = fs.caused_by.clone();
                    }
                }
            }
        }
        for n in needs.missing {
            let pod = build::pod_name(&cr.name_any(), n);
            if pods_api
                .get_opt(&pod)
                .await
                .map_err(ControllerError::kube(format!("reading pod {pod}")))?
                .is_none()
            {
                complete_lost(&mut st, n, &wall);
            }
        }
        for n in needs.ended {
            read_results(&pods_api, &build::pod_name(&cr.name_any(), n), &mut st).await;
        }
        // A stopped attempt that ended ends its category as the stop said.
        if st.phase.is_none_or(|p| !p.is_terminal())
            && st.attempts.last().is_some_and(|a| {
                a.completion_time.is_some() && a.stop.as_deref().is_some_and(|s| s != INTERRUPTED)
            })
            && let Some(t) = stop_terminal(&layer, &st)
        {
            st.phase = Some(t.phase);
            st.message = Some(describe_terminal(&layer, t));
            st.completion_time = Some(wall.clone());
        }
        crs.push((cr, st));
    }

    // Plan.
    let run_start = status.start_time.as_ref().map(attempts::stored);
    let clock_start = run_start.unwrap_or_else(Timestamp::now);
    let obs: Vec<_> = crs
        .iter()
        .map(|(_, st)| category_obs(&layer, st, &clock_start))
        .collect();
    let layer_obs = LayerObs {
        cancel: run.spec.cancel,
        hold,
        suspend: run.spec.suspend,
        ..LayerObs::at(
            attempts::offset(&clock_start, &Timestamp::now()),
            Duration::ZERO,
        )
    };
    let decision = plan(&layer, &obs, &layer_obs);

    // Apply: stops and ends in order, Pod creations together.
    let mut started_any = false;
    let mut to_create: Vec<Pod> = Vec::new();
    for action in &decision.actions {
        match *action {
            Action::Start {
                category: i,
                attempt,
            } => {
                let (cr, st) = &mut crs[i];
                let pod = build::attempt_pod(cr, attempt);
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                to_create.push(pod);
                if !st.attempts.iter().any(|a| a.number == attempt) {
                    st.attempts.push(crate::api::AttemptStatus {
                        number: attempt,
                        pod_name,
                        exit_code: None,
                        reason: None,
                        message: None,
                        infrastructure: false,
                        stop: None,
                        start_time: Some(wall.clone()),
                        completion_time: None,
                    });
                    st.attempt_count = st.attempts.len() as u32;
                }
                st.start_time.get_or_insert_with(|| wall.clone());
                started_any = true;
            }
            Action::Stop {
                category: i,
                terminal,
            } => {
                let (cr, st) = &mut crs[i];
                if let Some(a) = st
                    .attempts
                    .last_mut()
                    .filter(|a| a.completion_time.is_none())
                {
                    if a.stop.is_none() {
                        a.stop = Some(terminal.phase.as_str().to_string());
                        st.reason = Some(reason_code(terminal.cause).to_string());
                        st.caused_by = attempts::caused_by(&layer, terminal.cause);
                        st.message =
                            Some(format!("stopping: {}", describe_terminal(&layer, terminal)));
                    }
                    delete_pod(&pods_api, &build::pod_name(&cr.name_any(), a.number)).await?;
                }
            }
            Action::Interrupt { category: i } => {
                let (cr, st) = &mut crs[i];
                if let Some(a) = st
                    .attempts
                    .last_mut()
                    .filter(|a| a.completion_time.is_none())
                {
                    a.stop.get_or_insert_with(|| INTERRUPTED.to_string());
                    delete_pod(&pods_api, &build::pod_name(&cr.name_any(), a.number)).await?;
                }
            }
            Action::Finish {
                category: i,
                terminal,
            } => {
                let (_, st) = &mut crs[i];
                st.phase = Some(terminal.phase);
                st.reason = Some(reason_code(terminal.cause).to_string());
                st.caused_by = attempts::caused_by(&layer, terminal.cause);
                st.message = Some(finish_message(&layer, terminal, st));
                st.completion_time.get_or_insert_with(|| wall.clone());
                if terminal.phase != Phase::Succeeded {
                    let (cr, _) = &crs[i];
                    publish(
                        &ctx,
                        cr.as_ref(),
                        EventType::Warning,
                        terminal.phase.as_str(),
                        &crs[i].1.message.clone().unwrap_or_default(),
                    )
                    .await;
                }
            }
        }
    }

    let created = create_all(&pods_api, to_create, "Pod").await?;
    for _ in 0..created.len() {
        ctx.metrics.pod_started(began.elapsed());
    }

    // Category statuses.
    let mut status_writes: Vec<(Arc<CategoryRun>, CategoryRunStatus)> = Vec::new();
    let mut summaries = Vec::with_capacity(crs.len());
    let mut total = TestCounts::default();
    let mut any_counts = false;
    for (i, (cr, st)) in crs.iter_mut().enumerate() {
        let phase = decision.phases[i];
        if !phase.is_terminal() {
            st.phase = Some(phase);
            if st.attempts.last().is_none_or(|a| a.stop.is_none()) {
                let (reason, message) = match (phase, decision.waiting[i]) {
                    (Phase::Running, _) => (
                        "Running".to_string(),
                        format!("attempt {} running", st.attempt_count.max(1)),
                    ),
                    (_, Some(w)) => (wait_code(w).to_string(), describe_wait(&layer, w)),
                    _ => ("Pending".to_string(), "not started".to_string()),
                };
                st.reason = Some(reason);
                st.message = Some(gate_message.clone().filter(|_| hold).unwrap_or(message));
                st.caused_by = None;
            }
        }
        if let (Some(s), Some(e)) = (&st.start_time, &st.completion_time) {
            st.duration = Some(human_duration(attempts::offset(&s.0, &e.0)));
        }
        let terminal = st.phase.and_then(category_terminal);
        let reason = st.reason.clone().unwrap_or_default();
        let message = st.message.clone().unwrap_or_default();
        st.conditions = phase_conditions(
            &st.conditions,
            terminal,
            &reason,
            &message,
            None,
            cr.metadata.generation,
            &wall,
        );
        st.observed_generation = cr.metadata.generation;
        if cr.status.as_ref() != Some(st) {
            status_writes.push((cr.clone(), st.clone()));
        }
        if let Some(c) = st.counts {
            total.add(c);
            any_counts = true;
        }
        summaries.push(CategorySummary {
            name: layer.categories[i].name.clone(),
            phase: st.phase.unwrap_or(Phase::Pending),
            attempts: st.attempt_count,
            reason: st
                .reason
                .clone()
                .filter(|r| r != "Running" && r != "Passed"),
            counts: st.counts,
        });
    }

    let writes: Vec<_> = status_writes
        .into_iter()
        .map(|(cr, st)| {
            let ctx = ctx.clone();
            async move { write_cr_status(&ctx, &cr, &st).await }
        })
        .collect();
    futures::stream::iter(writes)
        .buffer_unordered(CONCURRENT_WRITES)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;

    // Run status.
    let finished = summaries.iter().filter(|s| s.phase.is_terminal()).count();
    if started_any
        || status.start_time.is_none() && summaries.iter().any(|s| s.phase == Phase::Running)
    {
        status.start_time.get_or_insert_with(|| wall.clone());
    }
    let outcome = decision.outcome;
    let phase = match outcome {
        Some(LayerOutcome::Succeeded) => LayerPhase::Succeeded,
        Some(LayerOutcome::Failed) => LayerPhase::Failed,
        Some(LayerOutcome::TimedOut) => LayerPhase::TimedOut,
        Some(LayerOutcome::Cancelled) => LayerPhase::Cancelled,
        None if status.start_time.is_some() => LayerPhase::Running,
        None => LayerPhase::Pending,
    };
    if phase.is_terminal() {
        status.completion_time.get_or_insert_with(|| wall.clone());
        if let (Some(s), Some(e)) = (&status.start_time, &status.completion_time) {
            status.duration = Some(human_duration(attempts::offset(&s.0, &e.0)));
        }
    }
    let (reason, message) = run_message(
        phase,
        &summaries,
        gate_message.as_deref().filter(|_| hold),
        run.spec.suspend,
    );
    status.phase = Some(phase);
    status.progress = Some(format!("{finished}/{}", summaries.len()));
    status.counts = any_counts.then_some(total);
    status.message = Some(message.clone());
    status.categories = summaries;
    status.observed_generation = run.metadata.generation;
    status.conditions = phase_conditions(
        &status.conditions,
        layer_terminal(phase),
        &reason,
        &message,
        None,
        run.metadata.generation,
        &wall,
    );
    ctx.metrics
        .set_categories(ctx.category_runs.state().iter().map(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or(Phase::Pending)
                .as_str()
        }));
    let changed = run.status.as_ref() != Some(&status);
    if changed {
        write_run_status(&ctx, &run, &status).await?;
        let was = run.status.as_ref().and_then(|s| s.phase);
        if was != Some(phase) {
            let kind = if matches!(phase, LayerPhase::Failed | LayerPhase::TimedOut) {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish(&ctx, run.as_ref(), kind, phase.as_str(), &message).await;
        }
    }
    if phase.is_terminal() {
        return Ok(match run.spec.ttl_seconds_after_finished {
            Some(ttl) => Requeue::requeue(Duration::from_secs(ttl.max(0) as u64)),
            None => Requeue::await_change(),
        });
    }
    if hold {
        return Ok(Requeue::requeue(GATE_POLL));
    }
    let wake = decision
        .wake_at
        .map(|w| w.saturating_sub(layer_obs.now) + Duration::from_millis(50))
        .unwrap_or(IDLE_REQUEUE)
        .min(IDLE_REQUEUE);
    Ok(Requeue::requeue(wake))
}

fn owned_by<K: Resource>(obj: &K, owner: &impl Resource) -> bool {
    let uid = owner.meta().uid.as_deref();
    obj.meta()
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| Some(r.uid.as_str()) == uid))
}

fn wait_code(w: WaitReason) -> &'static str {
    match w {
        WaitReason::Dependency(_) => "WaitingForDependency",
        WaitReason::Slot => "WaitingForSlot",
        WaitReason::Budget => "WaitingForBudget",
        WaitReason::Backoff(_) => "BackingOff",
        WaitReason::Hold => "Held",
    }
}

fn finish_message(layer: &LayerPlan, t: crate::plan::Terminal, st: &CategoryRunStatus) -> String {
    let base = describe_terminal(layer, t);
    match (t.cause, st.attempts.last()) {
        (crate::plan::Cause::TestsFailed | crate::plan::Cause::InfraFailed, Some(a)) => {
            let why = match (a.reason.as_deref(), a.exit_code) {
                (Some(r), _) if !r.starts_with("ExitCode") => r.to_string(),
                (_, Some(code)) => format!("exit code {code}"),
                (Some(r), None) => r.to_string(),
                (None, None) => "unknown".into(),
            };
            format!("{base} ({why}, {} attempt(s))", st.attempts.len())
        }
        _ => base,
    }
}

fn run_message(
    phase: LayerPhase,
    cats: &[CategorySummary],
    gate: Option<&str>,
    suspended: bool,
) -> (String, String) {
    let count = |p: Phase| cats.iter().filter(|c| c.phase == p).count();
    let bad: Vec<String> = cats
        .iter()
        .filter(|c| matches!(c.phase, Phase::Failed | Phase::TimedOut))
        .map(|c| {
            format!(
                "{} ({})",
                c.name,
                c.reason.as_deref().unwrap_or(c.phase.as_str())
            )
        })
        .collect();
    match phase {
        LayerPhase::Succeeded => (
            "Succeeded".into(),
            format!("all {} categories passed", cats.len()),
        ),
        LayerPhase::Failed => (
            "Failed".into(),
            format!(
                "failed: {}; skipped: {}",
                if bad.is_empty() {
                    "-".into()
                } else {
                    bad.join(", ")
                },
                count(Phase::Skipped)
            ),
        ),
        LayerPhase::TimedOut => ("TimedOut".into(), "the layer deadline passed".into()),
        LayerPhase::Cancelled => ("Cancelled".into(), "the run was cancelled".into()),
        _ if suspended => (
            "Suspended".into(),
            "suspended: nothing new starts and running categories were stopped".into(),
        ),
        _ if gate.is_some() => ("Waiting".into(), gate.unwrap_or_default().to_string()),
        LayerPhase::Pending => ("Pending".into(), "starting".into()),
        LayerPhase::Running => (
            "Running".into(),
            format!(
                "{} running, {} waiting, {} done{}",
                count(Phase::Running),
                count(Phase::Waiting) + count(Phase::Pending),
                cats.iter().filter(|c| c.phase.is_terminal()).count(),
                if bad.is_empty() {
                    String::new()
                } else {
                    format!("; failed: {}", bad.join(", "))
                }
            ),
        ),
    }
}

enum Deref {
    Missing(String),
    Api(ControllerError),
}

async fn config_text(
    run: &TestLayerRun,
    ctx: &Context,
    ns: &str,
) -> Result<(String, String), Deref> {
    let src = &run.spec.config;
    if let Some(text) = &src.inline {
        return Ok((
            text.clone(),
            format!("TestLayerRun {}/{} spec.config.inline", ns, run.name_any()),
        ));
    }
    let Some(r) = &src.config_map_ref else {
        return Ok((String::new(), "spec.config".into()));
    };
    let key = r.key.clone().unwrap_or_else(|| DEFAULT_CONFIG_KEY.into());
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = cms.get_opt(&r.name).await.map_err(|e| {
        Deref::Api(ControllerError::Kube {
            what: format!("reading ConfigMap {}", r.name),
            source: e,
        })
    })?;
    let Some(cm) = cm else {
        return Err(Deref::Missing(format!("ConfigMap {} not found", r.name)));
    };
    match cm.data.as_ref().and_then(|d| d.get(&key)) {
        Some(text) => Ok((
            text.clone(),
            format!("ConfigMap {}/{} key {key}", ns, r.name),
        )),
        None => Err(Deref::Missing(format!(
            "ConfigMap {} has no key {key:?}",
            r.name
        ))),
    }
}

async fn read_results(pods: &Api<Pod>, pod: &str, st: &mut CategoryRunStatus) {
    let lp = LogParams {
        container: Some(CONTAINER.into()),
        limit_bytes: Some(LOG_READ_BYTES),
        ..LogParams::default()
    };
    match pods.logs(pod, &lp).await {
        Ok(text) => {
            let mut scanner = OutputScanner::new();
            let mut tail = LogTail::new(TAIL_LINES, TAIL_BYTES);
            for line in text.lines() {
                scanner.feed_line(line);
                tail.push_line(line);
            }
            st.counts = scanner.counts().map(|(_, c)| c);
            st.log_tail = Some(tail.text()).filter(|t| !t.is_empty());
        }
        Err(e) => {
            // The Pod may be gone with its logs; keep what the status has.
            let msg = st.attempts.iter().rev().find_map(|a| a.message.clone());
            st.log_tail = msg.or_else(|| Some(format!("[logs unavailable: {e}]")));
        }
    }
}

/// Creates objects, `CONCURRENT_WRITES` at a time; ones that exist already
/// (deterministic names) are fine. Returns the objects it created.
async fn create_all<K>(api: &Api<K>, objs: Vec<K>, kind: &str) -> Result<Vec<K>, ControllerError>
where
    K: Resource
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let futs: Vec<_> = objs
        .into_iter()
        .map(|o| {
            let api = api.clone();
            let kind = kind.to_string();
            async move {
                let pp = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                match api.create(&pp, &o).await {
                    Ok(created) => Ok(Some(created)),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
                    Err(e) => Err(ControllerError::Kube {
                        what: format!("creating {kind} {}", o.name_any()),
                        source: e,
                    }),
                }
            }
        })
        .collect();
    let results: Vec<Result<Option<K>, ControllerError>> = futures::stream::iter(futs)
        .buffer_unordered(CONCURRENT_WRITES)
        .collect()
        .await;
    let mut created = Vec::new();
    for r in results {
        created.extend(r?);
    }
    Ok(created)
}

async fn delete_pod(pods: &Api<Pod>, name: &str) -> Result<(), ControllerError> {
    match pods.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(ControllerError::Kube {
            what: format!("deleting pod {name}"),
            source: e,
        }),
    }
}

async fn write_run_status(
    ctx: &Context,
    run: &TestLayerRun,
    status: &TestLayerRunStatus,
) -> Result<(), ControllerError> {
    write_status(ctx, run, status).await
}

async fn write_cr_status(
    ctx: &Context,
    cr: &CategoryRun,
    status: &CategoryRunStatus,
) -> Result<(), ControllerError> {
    write_status(ctx, cr, status).await
}

/// Server-side apply of a whole status (with apiVersion and kind, as apply
/// requires) under the controller's field manager.
async fn write_status<K>(
    ctx: &Context,
    obj: &K,
    status: &impl serde::Serialize,
) -> Result<(), ControllerError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(ControllerError::kube(format!(
        "updating the status of {} {}",
        K::kind(&()),
        obj.name_any()
    )))?;
    Ok(())
}

async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish an event");
    }
}

/// Bad config or an inconsistent run: Failed and Stalled, nothing created.
async fn invalid(
    run: &TestLayerRun,
    ctx: &Context,
    _ns: &str,
    mut status: TestLayerRunStatus,
    reason: &str,
    problem: &str,
) -> Result<Requeue, ControllerError> {
    status.spec_hash = Some(spec_hash(run));
    fail_run(ctx, run, status, reason, problem).await
}

/// Ends a run as Failed and Stalled (it cannot go on) and says why.
async fn fail_run(
    ctx: &Context,
    run: &TestLayerRun,
    mut status: TestLayerRunStatus,
    reason: &str,
    message: &str,
) -> Result<Requeue, ControllerError> {
    let wall = now();
    let stall = Stall {
        reason: reason.into(),
        message: message.into(),
    };
    status.phase = Some(LayerPhase::Failed);
    status.message = Some(message.chars().take(4000).collect());
    status.observed_generation = run.metadata.generation;
    status.completion_time.get_or_insert_with(|| wall.clone());
    status.conditions = phase_conditions(
        &status.conditions,
        Some(false),
        reason,
        message,
        Some(&stall),
        run.metadata.generation,
        &wall,
    );
    if run.status.as_ref() != Some(&status) {
        write_run_status(ctx, run, &status).await?;
        publish(ctx, run, EventType::Warning, reason, message).await;
    }
    Ok(Requeue::await_change())
}

async fn waiting_for_config(
    run: &TestLayerRun,
    ctx: &Context,
    _ns: &str,
    mut status: TestLayerRunStatus,
    problem: &str,
) -> Result<Requeue, ControllerError> {
    let wall = now();
    let stall = Stall {
        reason: "ConfigNotFound".into(),
        message: problem.into(),
    };
    status.phase = Some(LayerPhase::Pending);
    status.message = Some(problem.into());
    status.observed_generation = run.metadata.generation;
    status.conditions = phase_conditions(
        &status.conditions,
        None,
        "ConfigNotFound",
        problem,
        Some(&stall),
        run.metadata.generation,
        &wall,
    );
    if run.status.as_ref() != Some(&status) {
        write_run_status(ctx, run, &status).await?;
        publish(ctx, run, EventType::Warning, "ConfigNotFound", problem).await;
    }
    Ok(Requeue::requeue(Duration::from_secs(10)))
}

/// A dependency or service gate that cannot open: every category is skipped.
#[allow(clippy::too_many_arguments)]
async fn gate_failed(
    run: &TestLayerRun,
    ctx: &Context,
    _ns: &str,
    mut status: TestLayerRunStatus,
    layer: &LayerPlan,
    owned: &[Arc<CategoryRun>],
    reason: &str,
    message: &str,
) -> Result<Requeue, ControllerError> {
    let wall = now();
    for cr in owned {
        let mut st = cr.status.clone().unwrap_or_default();
        st.phase = Some(Phase::Skipped);
        st.reason = Some(reason.into());
        st.message = Some(message.into());
        st.completion_time.get_or_insert_with(|| wall.clone());
        st.conditions = phase_conditions(
            &st.conditions,
            Some(false),
            reason,
            message,
            None,
            cr.metadata.generation,
            &wall,
        );
        if cr.status.as_ref() != Some(&st) {
            write_cr_status(ctx, cr, &st).await?;
        }
    }
    status.progress = Some(format!("{0}/{0}", layer.categories.len()));
    status.categories = layer
        .categories
        .iter()
        .map(|c| CategorySummary {
            name: c.name.clone(),
            phase: Phase::Skipped,
            attempts: 0,
            reason: Some(reason.into()),
            counts: None,
        })
        .collect();
    fail_run(ctx, run, status, reason, message).await
}

/// The spec changed: delete what the old spec made and start over.
async fn restart(run: &TestLayerRun, ctx: &Context, ns: &str) -> Result<Requeue, ControllerError> {
    let api: Api<CategoryRun> = Api::namespaced(ctx.client.clone(), ns);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    for cr in ctx
        .category_runs
        .state()
        .iter()
        .filter(|cr| cr.namespace().as_deref() == Some(ns) && owned_by(cr.as_ref(), run))
    {
        match api.delete(&cr.name_any(), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(ControllerError::Kube {
                    what: format!("deleting CategoryRun {}", cr.name_any()),
                    source: e,
                });
            }
        }
    }
    // Pods go with their CategoryRuns; delete them now so none keeps running.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    for p in ctx.pods.state().iter().filter(|p| {
        p.namespace().as_deref() == Some(ns) && p.labels().get(LABEL_RUN) == Some(&run.name_any())
    }) {
        delete_pod(&pods, &p.name_any()).await?;
    }
    let fresh = TestLayerRunStatus {
        observed_generation: run.metadata.generation,
        message: Some("the spec changed: starting over".into()),
        ..Default::default()
    };
    write_run_status(ctx, run, &fresh).await?;
    publish(
        ctx,
        run,
        EventType::Normal,
        "Restarted",
        "the spec changed: the run starts over",
    )
    .await;
    Ok(Requeue::requeue(Duration::from_secs(1)))
}

/// A finished run: delete it once its TTL passed.
async fn finished(
    run: &TestLayerRun,
    ctx: &Context,
    ns: &str,
    _phase: LayerPhase,
    status: &TestLayerRunStatus,
) -> Result<Requeue, ControllerError> {
    let Some(ttl) = run.spec.ttl_seconds_after_finished else {
        return Ok(Requeue::await_change());
    };
    let done = status
        .completion_time
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    let age = attempts::offset(&done, &Timestamp::now());
    let ttl = Duration::from_secs(ttl.max(0) as u64);
    if age < ttl {
        return Ok(Requeue::requeue(ttl - age + Duration::from_millis(100)));
    }
    let api: Api<TestLayerRun> = Api::namespaced(ctx.client.clone(), ns);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(&run.name_any(), &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            return Err(ControllerError::Kube {
                what: format!("deleting finished TestLayerRun {}", run.name_any()),
                source: e,
            });
        }
    }
    Ok(Requeue::await_change())
}
