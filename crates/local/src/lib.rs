//! The local executor: runs a layer's categories as child processes on this
//! machine, through the same planner as the Kubernetes controller.

mod attempt;
pub mod lock_error;
pub mod lock_state;
pub mod locks;
pub mod progress;
mod services;
pub mod suite;

pub(crate) use testlayer_core::{layer, plan, report, resources, results, words};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::layer::{ATTEMPT_ENV, LayerPlan};
use crate::plan::describe::describe_end;
use crate::plan::gate::{Gate, services_gate};
use crate::plan::{
    Action, AttemptObs, AttemptOutcome, CategoryObs, Cause, LayerObs, LayerOutcome, Phase,
    ResourceWait, Stop, Terminal, failure_allowed, plan,
};
use crate::report::{AttemptReport, CategoryReport, RunReport};
use crate::results::{FailedTests, Quarantine};
use crate::words::{AttemptReason, Reason};
use attempt::{AttemptHandle, AttemptResult, AttemptSpec};
use locks::{Held, LockError, Locks};
pub use progress::{LayerPrefixed, PlainProgress, Progress, Silent, TerminalProgress};

/// Problems that keep a local run from starting.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A category has no command to run.
    #[error(
        "category {category:?} of layer {layer} has no command: set `command` on the category or the layer"
    )]
    NoCommand {
        /// Layer key.
        layer: String,
        /// Category name.
        category: String,
    },
    /// A required service has no local address.
    #[error(
        "required service {0:?} has no local address: add `services: {{{0}: {{address: \"host:port\"}}}}` to the config"
    )]
    ServiceWithoutAddress(String),
    /// Required services did not become reachable in time.
    #[error("{0}")]
    ServicesNotReady(String),
    /// The shared resources cannot be joined (the lock directory, or a
    /// capacity that differs from another run's).
    #[error(transparent)]
    Locks(#[from] LockError),
    /// The log directory could not be made.
    #[error("cannot create the log directory {path}: {source}")]
    LogDir {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// How to run locally.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Where commands run (a category's `working_dir` is relative to it).
    pub working_dir: PathBuf,
    /// Where full logs go, one file per attempt.
    pub log_dir: Option<PathBuf>,
    /// Categories that passed in an earlier run, by name, with their
    /// reports: carried over as passed, not run again (a rerun of what
    /// failed there).
    pub carried: BTreeMap<String, CategoryReport>,
    /// Where the locks of shared resources live (machine-wide; see
    /// [`locks::default_lock_dir`]).
    pub lock_dir: PathBuf,
}

/// How often a run waiting for shared resources tries them again.
const RESOURCE_POLL: Duration = Duration::from_millis(100);

/// The message of a category carried over from an earlier run.
pub const CARRIED_MESSAGE: &str = "passed in the earlier run; not run again";

/// Why a local run stops early: a future that resolves on Ctrl-C or SIGTERM.
pub type CancelSignal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs `layer` to the end and reports every category.
pub async fn run_layer(
    layer: &LayerPlan,
    opts: &LocalOptions,
    progress: Arc<dyn Progress>,
    mut cancel_signal: CancelSignal,
) -> Result<RunReport, LocalError> {
    for c in &layer.categories {
        if c.command.is_none() {
            return Err(LocalError::NoCommand {
                layer: layer.settings.key.clone(),
                category: c.name.clone(),
            });
        }
    }
    if let Some(dir) = &opts.log_dir {
        std::fs::create_dir_all(dir).map_err(|source| LocalError::LogDir {
            path: dir.clone(),
            source,
        })?;
    }
    progress.layer_started(layer);
    if !layer.settings.required_services.is_empty() {
        wait_for_services(layer, progress.as_ref()).await?;
    }
    let locks = join_resources(layer, opts)?;

    let n = layer.categories.len();
    let start = Instant::now();
    let mut cats = vec![CategoryObs::default(); n];
    let mut reports: Vec<CategoryReport> = layer
        .categories
        .iter()
        .map(|c| CategoryReport {
            name: c.name.clone(),
            phase: Phase::Pending,
            message: String::new(),
            reason: Reason::Pending,
            attempts: Vec::new(),
            duration_secs: 0.0,
            counts: None,
            failed_tests: FailedTests::default(),
            flaky: false,
            flaky_tests: FailedTests::default(),
            quarantined_tests: FailedTests::default(),
            allowed_failure: false,
            quarantine: c.quarantine.clone(),
            dependencies: c
                .dependencies
                .iter()
                .map(|&d| layer.categories[d].name.clone())
                .collect(),
            cases: Vec::new(),
            log_tail: String::new(),
            log_file: None,
        })
        .collect();
    // Passes carried over from an earlier run: done before anything starts.
    for (i, c) in layer.categories.iter().enumerate() {
        if let Some(old) = opts.carried.get(&c.name) {
            cats[i].terminal = Some(Terminal {
                phase: Phase::Succeeded,
                cause: Cause::Passed,
            });
            reports[i] = CategoryReport {
                message: CARRIED_MESSAGE.into(),
                quarantine: c.quarantine.clone(),
                dependencies: reports[i].dependencies.clone(),
                // Its attempts ran in the earlier run, not on this one's clock.
                attempts: old
                    .attempts
                    .iter()
                    .map(|a| AttemptReport {
                        start_secs: None,
                        ..a.clone()
                    })
                    .collect(),
                ..old.clone()
            };
        }
    }
    let mut first_start: Vec<Option<Duration>> = vec![None; n];
    let mut running: HashMap<usize, AttemptHandle> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<AttemptResult>();
    let mut cancel = false;
    // Shared resources: the layer's own grant, each category's (for the
    // attempt about to start or running), and the time spent waiting.
    let mut layer_grant: Option<Held> = None;
    let mut grants: Vec<Option<Held>> = (0..n).map(|_| None).collect();
    let mut resource_wait = ResourceWait::default();
    let mut said: Vec<String> = vec![String::new(); n + 1];
    let mut deadlocks = DeadlockWatch::default();
    let mut gave_way = false;

    let outcome = loop {
        let now = start.elapsed();
        let mut layer_held = layer.settings.uses.is_empty() || layer_grant.is_some();
        if !layer_held && !cancel {
            match take(&locks, &layer.settings.uses, "(the whole layer)") {
                Ok(g) => {
                    layer_grant = Some(g);
                    layer_held = true;
                }
                Err(busy) => tell(
                    progress.as_ref(),
                    &mut said[n],
                    &format!("waiting for shared resources: {busy}"),
                ),
            }
        }
        let obs = LayerObs {
            cancel,
            hold: !layer_held,
            ..LayerObs::at(
                now,
                resource_wait.deadline_start(layer, Duration::ZERO, now),
            )
        };
        let d = plan(layer, &cats, &obs);
        resource_wait = resource_wait.account(now, !layer_held || d.blocked_on_resources);
        for action in &d.actions {
            match *action {
                Action::Start {
                    category: i,
                    attempt,
                } => {
                    let c = &layer.categories[i];
                    let log_file = opts
                        .log_dir
                        .as_ref()
                        .map(|dir| dir.join(format!("{}.attempt-{attempt}.log", c.k8s_name)));
                    let mut env: Vec<(String, String)> =
                        layer.command_env(i, None).into_iter().collect();
                    env.push((ATTEMPT_ENV.to_string(), attempt.to_string()));
                    let spec = AttemptSpec {
                        category: i,
                        attempt,
                        command: c.command.clone().unwrap_or_default(),
                        env,
                        working_dir: c
                            .working_dir
                            .as_ref()
                            .map_or_else(|| opts.working_dir.clone(), |w| opts.working_dir.join(w)),
                        log_file: log_file.clone(),
                        junit_report: c.junit_report.clone(),
                        // Checked with the config; a bad pattern never gets here.
                        quarantine: Quarantine::new(&c.quarantine).unwrap_or_default(),
                    };
                    reports[i].log_file = log_file.map(|p| p.display().to_string());
                    cats[i].attempts.push(AttemptObs::running(now));
                    first_start[i].get_or_insert(now);
                    reports[i].phase = Phase::Running;
                    if let Some(prev) = reports[i].attempts.last() {
                        progress.attempt_retried(
                            i,
                            &c.name,
                            prev.number,
                            &format!("failed ({})", prev.reason),
                        );
                    }
                    progress.attempt_started(i, &c.name, attempt);
                    let handle = attempt::spawn(spec, progress.clone(), done_tx.clone());
                    running.insert(i, handle);
                    // Its grant lasts this attempt; the next one claims again.
                    cats[i].granted = false;
                }
                Action::Stop { category: i, stop } => {
                    // Record the stop first; the planner ends the category as
                    // it says once the attempt has ended.
                    if let Some(a) = cats[i].attempts.last_mut()
                        && a.stop.is_none()
                    {
                        a.stop = Some(stop);
                        if let Some(h) = running.get_mut(&i) {
                            h.stop();
                        }
                    }
                }
                Action::Finish {
                    category: i,
                    terminal,
                } => {
                    cats[i].terminal = Some(terminal);
                    let took = first_start[i]
                        .map(|s| now.saturating_sub(s))
                        .unwrap_or_default();
                    finish_report(layer, i, &mut reports[i], terminal, took);
                    progress.category_finished(
                        i,
                        &layer.categories[i].name,
                        terminal.phase,
                        &reports[i].message,
                        reports[i].counts,
                        took,
                    );
                }
            }
        }
        if let Some(o) = d.outcome {
            // A run that gave way in a deadlock did not pass: it failed.
            break if gave_way && o == LayerOutcome::Cancelled {
                LayerOutcome::Failed
            } else {
                o
            };
        }
        // Grants of categories that no longer claim and do not run go back.
        for i in 0..n {
            if cats[i].granted && !d.claims.contains(&i) {
                cats[i].granted = false;
                grants[i] = None;
            }
        }
        let mut newly_granted = false;
        for &i in &d.claims {
            if cats[i].granted {
                continue;
            }
            let c = &layer.categories[i];
            match take(&locks, &c.uses, &format!("category {:?}", c.name)) {
                Ok(g) => {
                    grants[i] = Some(g);
                    cats[i].granted = true;
                    newly_granted = true;
                    said[i].clear();
                }
                Err(busy) => tell(
                    progress.as_ref(),
                    &mut said[i],
                    &format!("{}: waiting for shared resources: {busy}", c.name),
                ),
            }
        }
        if newly_granted {
            continue;
        }
        if let Some(l) = &locks
            && !cancel
            && let Some(words) =
                deadlocks.look(l, layer, &cats, &d.claims, layer_grant.is_some(), now)
        {
            match words {
                Deadlocked::GiveWay(words) => {
                    progress.note(&format!(
                        "{words}; this run is the youngest of them and stops, so that the others go on"
                    ));
                    cancel = true;
                    gave_way = true;
                    continue;
                }
                Deadlocked::Wait(words) => tell(progress.as_ref(), &mut said[n], &words),
            }
        }
        let polling = !d.claims.is_empty() || !layer_held;
        let sleep = match d.wake_at {
            Some(t) if polling => {
                tokio::time::sleep(t.saturating_sub(start.elapsed()).min(RESOURCE_POLL))
            }
            Some(t) => tokio::time::sleep(t.saturating_sub(start.elapsed())),
            None if polling => tokio::time::sleep(RESOURCE_POLL),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            r = done_rx.recv() => {
                if let Some(r) = r {
                    grants[r.category] = None;
                    record(&mut cats, &mut reports, &mut running, r, start.elapsed());
                }
                // Take everything else that ended meanwhile before planning again.
                while let Ok(r) = done_rx.try_recv() {
                    grants[r.category] = None;
                    record(&mut cats, &mut reports, &mut running, r, start.elapsed());
                }
            }
            _ = sleep => {}
            _ = &mut cancel_signal, if !cancel => {
                cancel = true;
                progress.note("cancelling: stopping every running category");
            }
        }
    };
    progress.finished();
    let counts = reports.iter().filter_map(|r| r.counts).fold(
        Default::default(),
        |mut acc: crate::results::TestCounts, c| {
            acc.add(c);
            acc
        },
    );
    Ok(RunReport {
        layer: layer.settings.key.clone(),
        display_name: layer.settings.display_name.clone(),
        environment: layer.settings.environment.clone(),
        strategy: layer.settings.strategy.as_str().to_string(),
        outcome,
        duration_secs: start.elapsed().as_secs_f64(),
        counts,
        plan: None,
        rerun_of: None,
        categories: reports,
    })
}

/// Joins the shared resources the layer uses, with the capacities its
/// config declares.
fn join_resources(layer: &LayerPlan, opts: &LocalOptions) -> Result<Option<Locks>, LocalError> {
    if !layer.uses_shared_resources() {
        return Ok(None);
    }
    let mut caps = BTreeMap::new();
    let used = layer
        .settings
        .uses
        .keys()
        .chain(layer.categories.iter().flat_map(|c| c.uses.keys()));
    for r in used {
        let capacity = layer
            .settings
            .capacities
            .get(r)
            .ok_or_else(|| LockError::Undeclared(r.clone()))?;
        caps.insert(r.clone(), *capacity);
    }
    let who = format!("layer {}", layer.settings.key);
    Ok(Some(Locks::open(&opts.lock_dir, caps, &who)?))
}

/// How often a waiting run looks for runs of this machine that wait for
/// each other; a deadlock is acted on when two looks in a row see it.
const DEADLOCK_LOOK: Duration = Duration::from_secs(1);

/// What a deadlock asks of this run.
enum Deadlocked {
    /// It is the youngest of the runs that keep units: it stops.
    GiveWay(String),
    /// Another run gives way: this one waits, and says so.
    Wait(String),
}

/// Publishes what the run keeps and waits for, and looks for deadlocks.
#[derive(Default)]
struct DeadlockWatch {
    last_look: Option<Duration>,
    seen: bool,
}

impl DeadlockWatch {
    fn look(
        &mut self,
        locks: &Locks,
        layer: &LayerPlan,
        cats: &[CategoryObs],
        claims: &[usize],
        keeps: bool,
        now: Duration,
    ) -> Option<Deadlocked> {
        let keeps = if keeps {
            layer.settings.uses.clone()
        } else {
            BTreeMap::new()
        };
        let mut waits = Vec::new();
        if !layer.settings.uses.is_empty() && keeps.is_empty() {
            waits.push((true, layer.settings.uses.clone()));
        }
        for &i in claims {
            if !cats[i].granted {
                waits.push((false, layer.categories[i].uses.clone()));
            }
        }
        if let Err(e) = locks.publish(&keeps, &waits) {
            tracing::warn!(error = %e, "cannot say what this run keeps and waits for");
        }
        if waits.is_empty() {
            self.seen = false;
            return None;
        }
        if self
            .last_look
            .is_some_and(|t| now.saturating_sub(t) < DEADLOCK_LOOK)
        {
            return None;
        }
        self.last_look = Some(now);
        let found = match locks.deadlock() {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read what the other runs keep and wait for");
                None
            }
        };
        let Some(d) = found else {
            self.seen = false;
            return None;
        };
        let again = std::mem::replace(&mut self.seen, true);
        if !again {
            return None;
        }
        let words = crate::resources::describe_deadlock(&d.stuck);
        Some(if d.victim == locks.who() {
            Deadlocked::GiveWay(words)
        } else {
            Deadlocked::Wait(format!(
                "{words}; the youngest of them, {:?}, stops so that the others go on",
                d.victim
            ))
        })
    }
}

/// Takes `wants` (nothing to take when empty), or says what keeps it.
fn take(locks: &Option<Locks>, wants: &BTreeMap<String, u32>, what: &str) -> Result<Held, String> {
    match locks {
        None => Err("no shared resources joined".into()),
        Some(l) => match l.try_take(wants, what) {
            Ok(Ok(held)) => Ok(held),
            Ok(Err(busy)) => Err(busy.describe()),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// Says `text` once, until something else is said in its place.
fn tell(progress: &dyn Progress, said: &mut String, text: &str) {
    if said != text {
        progress.note(text);
        *said = text.to_string();
    }
}

/// Waits for the layer's required services, up to its bound.
async fn wait_for_services(layer: &LayerPlan, progress: &dyn Progress) -> Result<(), LocalError> {
    let mut addrs = Vec::new();
    for s in &layer.settings.required_services {
        match layer.settings.service_addresses.get(s) {
            Some(a) => addrs.push((s.clone(), a.clone())),
            None => return Err(LocalError::ServiceWithoutAddress(s.clone())),
        }
    }
    let began = Instant::now();
    let mut said = String::new();
    loop {
        let unready = services::unreachable(&addrs).await;
        match services_gate(&unready, began.elapsed(), layer.settings.service_wait) {
            Gate::Open => return Ok(()),
            Gate::Waiting(m) => {
                if m != said {
                    progress.note(&m);
                    said = m;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Gate::Failed { message, .. } => {
                progress.finished();
                return Err(LocalError::ServicesNotReady(message));
            }
        }
    }
}

/// Records an attempt that ended: when and how, and what it printed. What
/// that means for its category is the planner's to say.
fn record(
    cats: &mut [CategoryObs],
    reports: &mut [CategoryReport],
    running: &mut HashMap<usize, AttemptHandle>,
    r: AttemptResult,
    now: Duration,
) {
    let i = r.category;
    running.remove(&i);
    let Some(last) = cats[i].attempts.last_mut() else {
        return;
    };
    let quarantine_pass = last.stop.is_none()
        && r.exit_code.is_some_and(|c| c != 0)
        && r.junit_error.is_none()
        && r.quarantine.passes();
    let outcome = match last.stop {
        Some(_) => AttemptOutcome::Stopped,
        None if r.spawn_error.is_some() => AttemptOutcome::Failed { infra: true },
        None if r.exit_code == Some(0) => AttemptOutcome::Succeeded,
        // Every failing test its report names is quarantined.
        None if quarantine_pass => AttemptOutcome::Succeeded,
        None => AttemptOutcome::Failed { infra: false },
    };
    let reason = match (last.stop, r.exit_code, r.signal) {
        (Some(Stop::End(t)), ..) if t.cause == Cause::Timeout => AttemptReason::DeadlineExceeded,
        (Some(_), ..) => AttemptReason::Stopped,
        _ if r.spawn_error.is_some() => AttemptReason::StartError,
        (None, Some(0), _) => AttemptReason::Completed,
        (None, Some(code), _) => AttemptReason::ExitCode(code),
        (None, None, Some(sig)) => AttemptReason::Signal(sig),
        _ => AttemptReason::Other("Error".into()),
    };
    last.ended = Some((now, outcome));
    let started = last.started_at;
    let number = cats[i].attempts.len() as u32;
    let rep = &mut reports[i];
    rep.attempts.push(AttemptReport {
        number,
        exit_code: r.exit_code,
        reason,
        duration_secs: r.duration.as_secs_f64(),
        start_secs: Some(started.as_secs_f64()),
        infrastructure: matches!(outcome, AttemptOutcome::Failed { infra: true }),
        report_problem: r.junit_error.clone(),
        passed_by_quarantine: quarantine_pass,
    });
    rep.quarantined_tests
        .add_unlisted(r.quarantine.quarantined.clone().in_attempt(number));
    rep.counts = r.counts.map(|c| c.1);
    // Tests that failed in an earlier attempt and pass in this one.
    let earlier = std::mem::replace(&mut rep.failed_tests, r.failed_tests.in_attempt(number));
    rep.flaky_tests.add_unlisted(earlier.passed_later(&r.cases));
    rep.cases = r.cases;
    rep.log_tail = match (&r.spawn_error, &r.junit_error) {
        (Some(e), _) => e.clone(),
        (None, Some(j)) if !r.tail.is_empty() => format!("{}\n[testlayer] {j}", r.tail),
        (None, Some(j)) => format!("[testlayer] {j}"),
        (None, None) => r.tail,
    };
}

fn finish_report(
    layer: &LayerPlan,
    i: usize,
    rep: &mut CategoryReport,
    t: Terminal,
    took: Duration,
) {
    rep.phase = t.phase;
    rep.reason = Reason::from(t.cause);
    rep.allowed_failure = failure_allowed(&layer.categories[i], &t);
    // Passed only after an attempt whose tests failed: flaky.
    let before_last = rep.attempts.len().saturating_sub(1);
    if t.phase == Phase::Succeeded
        && rep.attempts[..before_last]
            .iter()
            .any(|a| !a.infrastructure && matches!(a.reason, AttemptReason::ExitCode(_)))
    {
        rep.flaky = true;
        rep.reason = Reason::PassedOnRetry;
    }
    if t.phase == Phase::Succeeded && rep.attempts.last().is_some_and(|a| a.passed_by_quarantine) {
        rep.reason = Reason::PassedQuarantined;
    }
    rep.message = describe_end(
        layer,
        t,
        rep.attempts.last().map(|a| &a.reason),
        rep.attempts.len(),
    );
    if rep.reason == Reason::PassedQuarantined {
        rep.message.push_str(&format!(
            "; its failing tests are quarantined: {}",
            rep.quarantined_tests.ids(3)
        ));
    }
    if rep.allowed_failure {
        rep.message
            .push_str("; its failure is allowed, the layer goes on");
    }
    rep.duration_secs = took.as_secs_f64();
}
