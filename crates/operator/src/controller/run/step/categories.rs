//! Each category of a run in one step: its recorded status brought up to
//! date with its Pods (asking for what only a request tells), the planner's
//! actions carried out on it, and the status to record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::attempts::{
    LostBounds, category_obs, caused_by, complete_lost, offset, stop_record, stored, sync_attempts,
};
use super::log_results::{keep_test_cases, read_results};
use super::observed::{Answers, Observed, Question};
use super::refusals;
use super::writes::{PodStop, note, wall_clock};
use crate::api::names::{LABEL_ATTEMPT, LABEL_CATEGORY};
use crate::api::{AttemptStatus, CategoryRun, CategoryRunStatus, ResourceClaim};
use crate::controller::run::build::{self, owned_by};
use crate::controller::run::pod_state::{keep_on_stop, running_since, stopping};
use crate::controller::status::conditions::{category_terminal, phase_conditions};
use crate::controller::status::note::Note;
use crate::layer::LayerPlan;
use crate::plan::describe::{describe_end, describe_terminal, describe_wait, human_duration};
use crate::plan::{Action, CategoryObs, Decision, Phase, Stop, failure_allowed};
use crate::words::Reason;

/// A category that has just started is recorded as Running once its
/// container has run this long (one status write fewer for short
/// categories: the Pod, found again by its name, is the record of the
/// attempt until then).
const RECORD_RUNNING_AFTER: Duration = Duration::from_secs(1);
/// ... or once its Pod has waited this long to run (an image pull, a full
/// node), so that a slow start shows.
const RECORD_PENDING_AFTER: Duration = Duration::from_secs(10);

/// One category in this step.
#[derive(Debug, Clone)]
pub struct Cat {
    /// Its CategoryRun as observed.
    pub cr: Arc<CategoryRun>,
    /// Its Pods by attempt number.
    pub pods: BTreeMap<u32, Arc<Pod>>,
    /// Its status as this step leaves it.
    pub status: CategoryRunStatus,
}

/// Every category of the run, in config order.
#[derive(Debug, Clone)]
pub struct Categories {
    /// By index.
    pub items: Vec<Cat>,
    /// Pods of attempts that ended while their container could still start
    /// (deleted once the end is recorded).
    pub pods_to_delete: Vec<String>,
    /// When a Terminating Pod is next due to be called lost.
    pub wake: Option<Duration>,
    /// ConfigMaps keeping the test cases of attempts that just ended (made
    /// before the statuses that name them).
    pub test_cases: Vec<ConfigMap>,
}

/// Seconds a Pod may stay Terminating past its deletion time, by default.
const TERMINATION_BOUND_SECONDS: u32 = 60;
/// Seconds an attempt's node may be not Ready before the attempt ends
/// `NodeLost`, by default.
const NODE_LOST_SECONDS: u32 = 60;

/// What carrying out the planner's actions asks of the cluster.
#[derive(Debug, Default)]
pub struct Carried {
    /// Pods created (attempts started, refused Pods tried again).
    pub started: usize,
    /// Pods of started attempts, and refused ones whose backoff is over.
    pub pods_to_create: Vec<Pod>,
    /// Pods of stopped attempts that never ran on a node, or ended
    /// already (their stops are recorded first).
    pub pods_to_delete: Vec<String>,
    /// Pods of stopped attempts running on a node: stopped and kept, with
    /// their logs (their stops are recorded first).
    pub pods_to_stop: Vec<PodStop>,
    /// Events about categories.
    pub notes: Vec<Note>,
    /// Logs to read first: of attempts about to be stopped, whose Pods are
    /// deleted in this step (their logs may go with them).
    pub questions: Vec<Question>,
    /// When the next refused Pod is due to be tried again.
    pub wake: Option<Duration>,
}

/// The CategoryRun statuses to record.
#[derive(Debug, Default)]
pub struct StatusWrites {
    /// By CategoryRun name.
    pub statuses: Vec<(String, CategoryRunStatus)>,
    /// Events of refusals that are new.
    pub notes: Vec<Note>,
    /// When a status held back (a category that just started) is due.
    pub wake: Option<Duration>,
}

impl Categories {
    /// Every category brought up to date with its Pods, or the questions
    /// whose answers that needs (a Pod missing from the cache, a log).
    pub fn update(
        o: &Observed,
        layer: &LayerPlan,
        now: Timestamp,
    ) -> Result<Categories, Vec<Question>> {
        let wall = wall_clock(now);
        let mut by_index: Vec<Option<Arc<CategoryRun>>> = vec![None; layer.categories.len()];
        for cr in &o.category_runs {
            if let Some(slot) = by_index.get_mut(cr.spec.index as usize) {
                *slot = Some(cr.clone());
            }
        }
        // The run's Pods by category, once (a large run has thousands).
        let mut by_category: BTreeMap<&str, Vec<&Arc<Pod>>> = BTreeMap::new();
        for p in &o.pods {
            if let Some(k8s) = p.labels().get(LABEL_CATEGORY) {
                by_category.entry(k8s.as_str()).or_default().push(p);
            }
        }
        let mut questions = Vec::new();
        let mut items = Vec::with_capacity(by_index.len());
        let mut pods_to_delete = Vec::new();
        let mut wake: Option<Duration> = None;
        let mut test_cases = Vec::new();
        let bounds = LostBounds {
            terminating: Duration::from_secs(u64::from(
                o.run
                    .spec
                    .termination_bound_seconds
                    .unwrap_or(TERMINATION_BOUND_SECONDS),
            )),
            node_not_ready: Duration::from_secs(u64::from(
                o.run.spec.node_lost_seconds.unwrap_or(NODE_LOST_SECONDS),
            )),
            down: &o.nodes_down,
        };
        for (i, cr) in by_index.into_iter().enumerate() {
            // The plan was rebuilt from these objects: each index has one.
            let Some(cr) = cr else { continue };
            let k8s = layer.categories[i].k8s_name.as_str();
            let pods: BTreeMap<u32, Arc<Pod>> = by_category
                .get(k8s)
                .into_iter()
                .flatten()
                .filter(|p| owned_by(p.as_ref(), cr.as_ref()))
                .filter_map(|p| {
                    Some((
                        p.labels().get(LABEL_ATTEMPT)?.parse::<u32>().ok()?,
                        Arc::clone(p),
                    ))
                })
                .collect();
            let mut st = cr.status.clone().unwrap_or_default();
            // Carried over from an earlier run: passed, whatever became of
            // the status written when this run was accepted.
            if let Some(from) = &cr.spec.passed_in
                && !st.phase.is_some_and(|p| p.is_terminal())
            {
                st.phase = Some(Phase::Succeeded);
                st.reason = Some(Reason::Passed);
                st.message = Some(carried_message(from));
                st.completion_time.get_or_insert_with(|| wall.clone());
            }
            let refs: BTreeMap<u32, &Pod> = pods.iter().map(|(n, p)| (*n, p.as_ref())).collect();
            let needs = sync_attempts(&mut st, &refs, &wall, bounds);
            pods_to_delete.extend(
                needs
                    .delete
                    .iter()
                    .map(|n| build::pod_name(&cr.name_any(), *n)),
            );
            if let Some(w) = needs.wake {
                wake = Some(wake.map_or(w, |x| x.min(w)));
            }
            if st.start_time.is_none() {
                st.start_time = st.attempts.first().and_then(|a| a.start_time.clone());
            }
            for n in needs.missing {
                let pod = build::pod_name(&cr.name_any(), n);
                match o.answers.pod_exists.get(&pod) {
                    None => questions.push(Question::PodExists(pod)),
                    Some(false) => complete_lost(&mut st, n, &wall),
                    // The cache is behind: it still runs.
                    Some(true) => {}
                }
            }
            for n in needs.ended {
                let pod = build::pod_name(&cr.name_any(), n);
                match o.answers.logs.get(&pod) {
                    None => questions.push(Question::Logs(pod, cr.spec.junit_report.clone())),
                    Some(answer) => {
                        read_results(answer, &mut st, n, &cr.spec);
                        test_cases.extend(keep_test_cases(&cr, &mut st, n, answer));
                    }
                }
            }
            items.push(Cat {
                cr,
                pods,
                status: st,
            });
        }
        if questions.is_empty() {
            Ok(Categories {
                items,
                pods_to_delete,
                wake,
                test_cases,
            })
        } else {
            Err(questions)
        }
    }

    /// The planner's view of every category, on the run's clock.
    pub fn planner_view(
        &self,
        layer: &LayerPlan,
        clock_start: &Timestamp,
        now: &Timestamp,
    ) -> Vec<CategoryObs> {
        self.items
            .iter()
            .map(|c| category_obs(layer, &c.status, clock_start, now))
            .collect()
    }

    /// Carries out the planner's actions on the statuses, and says what the
    /// cluster must do for them; Pods the apiserver refused, or that another
    /// owner's Pod of their name is in the way of (`existing`), are created
    /// again once their backoff is over.
    pub fn carry_out(
        &mut self,
        layer: &LayerPlan,
        d: &Decision,
        answers: &Answers,
        existing: &refusals::Existing,
        now: Timestamp,
    ) -> Carried {
        let refused = &existing.refused;
        let wall = wall_clock(now);
        let mut out = Carried::default();
        for action in &d.actions {
            match *action {
                Action::Start {
                    category: i,
                    attempt,
                } => {
                    let Some(c) = self.items.get_mut(i) else {
                        continue;
                    };
                    let pod = build::attempt_pod(&c.cr, attempt);
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    // A Pod refused a moment ago is recorded as refused, and
                    // tried again below once its backoff is over.
                    let refusal = refused.get(&pod_name);
                    if refusal.is_none() {
                        // One whose create's answer was lost exists: started.
                        if !existing.ours.contains(&pod_name) {
                            out.pods_to_create.push(pod);
                        }
                        out.started += 1;
                    }
                    let started = refusal.map_or_else(|| wall.clone(), |r| wall_clock(r.first));
                    let st = &mut c.status;
                    if !st.attempts.iter().any(|a| a.number == attempt) {
                        let mut a = AttemptStatus::new(attempt, pod_name, started.clone());
                        if let Some(r) = refusal {
                            refusals::mark(&mut a, r);
                        }
                        st.attempts.push(a);
                        st.attempt_count = st.attempts.len() as u32;
                    }
                    st.start_time.get_or_insert(started);
                }
                Action::Stop { category: i, stop } => {
                    let Some(c) = self.items.get_mut(i) else {
                        continue;
                    };
                    let Some(a) = c
                        .status
                        .attempts
                        .last_mut()
                        .filter(|a| a.completion_time.is_none())
                    else {
                        continue;
                    };
                    let number = a.number;
                    let pod = build::pod_name(&c.cr.name_any(), number);
                    let live = c.pods.get(&number).is_some_and(|p| !stopping(p));
                    if live && a.stop.is_none() {
                        // Its log is read before its Pod is deleted.
                        match answers.logs.get(&pod) {
                            None => {
                                out.questions
                                    .push(Question::Logs(pod, c.cr.spec.junit_report.clone()));
                                continue;
                            }
                            Some(answer) => read_results(answer, &mut c.status, number, &c.cr.spec),
                        }
                    }
                    let Some(a) = c.status.attempts.iter_mut().find(|a| a.number == number) else {
                        continue;
                    };
                    a.stop.get_or_insert_with(|| stop_record(layer, stop));
                    if live {
                        match c.pods.get(&number).and_then(|p| keep_on_stop(p, now)) {
                            Some(deadline_seconds) => out.pods_to_stop.push(PodStop {
                                name: pod,
                                deadline_seconds,
                                at: wall.0.to_string(),
                            }),
                            None => out.pods_to_delete.push(pod),
                        }
                    }
                    if let Stop::End(t) = stop {
                        c.status.message =
                            Some(format!("stopping: {}", describe_terminal(layer, t)));
                    } else {
                        c.status.message = Some("stopping: the run is suspended".into());
                    }
                }
                Action::Finish {
                    category: i,
                    terminal,
                } => {
                    let Some(c) = self.items.get_mut(i) else {
                        continue;
                    };
                    let st = &mut c.status;
                    st.phase = Some(terminal.phase);
                    st.reason = Some(Reason::from(terminal.cause));
                    if terminal.phase == Phase::Succeeded && passed_on_retry(st) {
                        st.flaky = true;
                        st.reason = Some(Reason::PassedOnRetry);
                    }
                    if terminal.phase == Phase::Succeeded
                        && st.attempts.last().is_some_and(|a| a.passed_by_quarantine)
                    {
                        st.reason = Some(Reason::PassedQuarantined);
                    }
                    st.allowed_failure = failure_allowed(&layer.categories[i], &terminal);
                    st.caused_by = caused_by(layer, terminal.cause);
                    let mut end = describe_end(
                        layer,
                        terminal,
                        st.attempts.last().and_then(|a| a.reason.as_ref()),
                        st.attempts.len(),
                    );
                    if st.reason == Some(Reason::PassedQuarantined) {
                        end.push_str(&format!(
                            "; its failing tests are quarantined: {}",
                            st.quarantined_tests.ids(3)
                        ));
                    }
                    if st.allowed_failure {
                        end.push_str("; its failure is allowed, the run goes on");
                    }
                    st.message = Some(match refusals::never_created(st) {
                        Some(why) => format!("{end}; {why}"),
                        None => end,
                    });
                    st.completion_time.get_or_insert_with(|| wall.clone());
                    if terminal.phase != Phase::Succeeded {
                        let text = st.message.clone().unwrap_or_default();
                        out.notes
                            .push(note(c.cr.as_ref(), true, terminal.phase.as_str(), &text));
                    }
                }
            }
        }
        self.retry_refused(existing, now, &mut out);
        out
    }

    /// The Pods of refused attempts (not being stopped) created again once
    /// their backoff is over; the words of newer refusals recorded.
    fn retry_refused(&mut self, existing: &refusals::Existing, now: Timestamp, out: &mut Carried) {
        let refused = &existing.refused;
        for c in &mut self.items {
            let Some(a) = c.status.attempts.last_mut() else {
                continue;
            };
            if !refusals::is_refused(a)
                || a.stop.is_some()
                || c.pods.contains_key(&a.number)
                || existing.ours.contains(&a.pod_name)
            {
                continue;
            }
            let refusal = refused.get(&a.pod_name);
            if let Some(r) = refusal {
                refusals::mark(a, r);
            }
            match refusals::retry_in(refusal, now) {
                None => {
                    out.pods_to_create.push(build::attempt_pod(&c.cr, a.number));
                    out.started += 1;
                }
                Some(wait) => out.wake = Some(out.wake.map_or(wait, |w| w.min(wait))),
            }
        }
    }

    /// Each category's status as the decision leaves it, and those worth
    /// recording now.
    pub fn status_writes(
        &mut self,
        layer: &LayerPlan,
        d: &Decision,
        hold: Option<&str>,
        claims: &BTreeMap<String, ResourceClaim>,
        now: Timestamp,
    ) -> StatusWrites {
        let wall = wall_clock(now);
        let mut out = StatusWrites::default();
        for (i, c) in self.items.iter_mut().enumerate() {
            let st = &mut c.status;
            let phase = d.phases.get(i).copied().unwrap_or(Phase::Pending);
            if !phase.is_terminal() {
                st.phase = Some(phase);
                let stopping = st
                    .attempts
                    .last()
                    .is_some_and(|a| a.stop.is_some() && a.completion_time.is_none());
                if stopping {
                    st.reason = Some(Reason::Stopping);
                } else if let Some(a) = refusals::open_refusal(st) {
                    st.message = Some(refusals::describe(a));
                    st.reason = Some(Reason::PodCreateFailed);
                    st.caused_by = None;
                } else {
                    let (reason, message) = match (phase, d.waiting.get(i).copied().flatten()) {
                        (Phase::Running, _) => (
                            Reason::Running,
                            format!("attempt {} running", st.attempt_count.max(1)),
                        ),
                        (_, Some(w)) => (Reason::from(w), describe_wait(layer, w)),
                        _ => (Reason::Pending, "not started".to_string()),
                    };
                    st.reason = Some(reason);
                    st.message = Some(hold.map_or(message, str::to_string));
                    st.caused_by = None;
                }
            }
            // A claim is recorded while it waits, so that every run's
            // reconcile sees the whole line.
            st.resource_claim = claims.get(&c.cr.name_any()).cloned();
            if let Some(claim) = &st.resource_claim {
                st.message = Some(crate::controller::shared::claims::describe_claim(claim));
            }
            if let (Some(s), Some(e)) = (&st.start_time, &st.completion_time) {
                st.duration = Some(human_duration(offset(&s.0, &e.0)));
            }
            let reason = st
                .reason
                .as_ref()
                .map(Reason::to_string)
                .unwrap_or_default();
            let message = st.message.clone().unwrap_or_default();
            st.conditions = phase_conditions(
                &st.conditions,
                st.phase.and_then(category_terminal),
                &reason,
                &message,
                refusals::category_stall(st).as_ref(),
                c.cr.metadata.generation,
                &wall,
            );
            st.observed_generation = c.cr.metadata.generation;
            let running_since = st
                .attempts
                .last()
                .and_then(|a| c.pods.get(&a.number))
                .and_then(|p| running_since(p));
            match due(c.cr.status.as_ref(), st, running_since.as_ref(), now) {
                Due::Now => {
                    out.notes.extend(refusals::changed(&c.cr, st));
                    out.statuses.push((c.cr.name_any(), st.clone()));
                }
                Due::In(wait) => out.wake = Some(out.wake.map_or(wait, |w| w.min(wait))),
                Due::Never => {}
            }
        }
        out
    }
}

/// Whether a category's status is worth a write now.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    Now,
    In(Duration),
    Never,
}

/// A status is written when it records a fact (an end, a stop, an attempt
/// that ended, a Pod refused, a category that ran for a while); a category
/// that only waits and was never recorded stays unwritten (its run shows
/// it), and one that just started is recorded once it has run
/// [`RECORD_RUNNING_AFTER`].
fn due(
    recorded: Option<&CategoryRunStatus>,
    next: &CategoryRunStatus,
    running_since: Option<&Time>,
    now: Timestamp,
) -> Due {
    if recorded == Some(next) {
        return Due::Never;
    }
    if recorded.and_then(|r| r.resource_claim.as_ref()) != next.resource_claim.as_ref() {
        return Due::Now;
    }
    let never_written = recorded.is_none_or(|r| *r == CategoryRunStatus::default());
    if !never_written {
        return Due::Now;
    }
    if next.phase.is_some_and(Phase::is_terminal)
        || next.attempts.iter().any(|a| {
            a.stop.is_some()
                    || a.completion_time.is_some()
                    || refusals::is_refused(a)
                    // Behind a scheduling gate: recorded, so that its
                    // admission is known once the gate goes.
                    || a.gated
        })
    {
        return Due::Now;
    }
    match next.phase {
        Some(Phase::Running) => {
            let (since, bound) = match running_since {
                Some(t) => (stored(t), RECORD_RUNNING_AFTER),
                None => {
                    let created = next
                        .attempts
                        .last()
                        .and_then(|a| a.start_time.as_ref())
                        .map_or(now, stored);
                    (created, RECORD_PENDING_AFTER)
                }
            };
            let waited = offset(&since, &now);
            if waited >= bound {
                Due::Now
            } else {
                Due::In(bound - waited)
            }
        }
        _ => Due::Never,
    }
}

/// Whether an attempt before the last one failed its tests (not the
/// infrastructure, not stopped): a category that then passed is flaky.
fn passed_on_retry(st: &CategoryRunStatus) -> bool {
    let n = st.attempts.len().saturating_sub(1);
    st.attempts[..n]
        .iter()
        .any(|a| !a.infrastructure && a.stop.is_none() && a.exit_code.is_some_and(|c| c != 0))
}

/// The message of a category carried over from run `of`.
pub fn carried_message(of: &str) -> String {
    format!("passed in run {of}; not run again")
}
