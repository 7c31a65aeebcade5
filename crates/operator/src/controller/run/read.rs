//! The reading side of a reconcile: what a run owns, from the caches with
//! this controller's own recent writes laid over them, the Pod creates the
//! apiserver refused, and the answers to a step's questions (a ConfigMap, a
//! Pod missing from the cache, a log, the endpoints of services). No
//! decisions are made here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};

use crate::api::names::DEFAULT_CONFIG_KEY;
use crate::api::names::{CONTAINER, LABEL_RUN};
use crate::api::{CategoryRun, Decoded, ResourceClaim, TestLayerRun};
use crate::config::service_k8s_name;
use crate::controller::kit::context::Context;
use crate::controller::kit::error::ControllerError;
use crate::controller::run::build::owned_by;
use crate::controller::run::frozen_plan::{self, FrozenPlan};
use crate::controller::run::step::{
    Answers, AttemptLog, CaseList, ConfigAnswer, FrozenPlanAnswer, LogAnswer, Observed, PodOwner,
    Question, ReportRead, RerunAnswer, RerunSource,
};
use crate::controller::shared::claims::{Grant, RecordedClaim, SharedView};
use crate::history::measured;
use crate::results::{CaseListWriter, FailedTests, ReportOutcome, read_attempt_log};
use crate::words::AttemptReason;

/// Log bytes kept from the end of a finished attempt's log, for test
/// counts and the tail.
const LOG_READ_BYTES: usize = 1 << 20;
/// Lines asked for from the end of a log (the kubelet sends no more).
const LOG_READ_LINES: i64 = 20_000;
/// Questions asked at once.
const CONCURRENT_READS: usize = 16;
/// Longest a log read may wait for its next bytes (a kubelet that does
/// not answer).
const LOG_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a log read may take in all (a kubelet that answers slowly).
const LOG_READ_BOUND: Duration = Duration::from_secs(60);
/// Wait before a failed log read is tried again.
const LOG_READ_AGAIN_AFTER: Duration = Duration::from_secs(1);
/// Bytes read at most of the log of an attempt that prints a JUnit report
/// (a kubelet serves only the current log file, which it rotates at 10 MiB
/// by default).
const REPORT_LOG_BYTES: i64 = 16 << 20;
/// Largest JUnit report read from a log, in bytes.
const REPORT_BYTES: u64 = 12 << 20;
/// Logs with a JUnit report read at once (each holds a few chunks and the
/// report's largest element).
static REPORT_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// What `run` owns, as the caches and this controller's own writes show it.
pub fn gather(ctx: &Context, run: &Arc<TestLayerRun>, answers: Answers) -> Observed {
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let run = ctx.own.runs.fresher(run.clone());

    let mut category_runs = Vec::new();
    let mut invalid = Vec::new();
    for cr in ctx.category_runs.state() {
        if cr.namespace().as_deref() != Some(&ns) || !owned_by(cr.as_ref(), run.as_ref()) {
            continue;
        }
        match cr.as_ref() {
            Decoded::Valid(cr) if cr.spec.run_name == name => {
                category_runs.push(ctx.own.category_runs.fresher(cr.clone()));
            }
            Decoded::Valid(_) => {}
            Decoded::Invalid(u) => invalid.push(u.clone()),
        }
    }
    // An object that no longer decodes is not replaced by this
    // controller's older, valid copy of it.
    let seen: BTreeSet<String> = category_runs
        .iter()
        .map(|c| c.name_any())
        .chain(invalid.iter().filter_map(|u| u.metadata.name.clone()))
        .collect();
    category_runs.extend(
        ctx.own
            .category_runs
            .unseen(&ns, &|n| seen.contains(n), &|cr| {
                cr.spec.run_name == name && owned_by(cr, run.as_ref())
            }),
    );

    let mut pods: Vec<_> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(&ns) && p.labels().get(LABEL_RUN) == Some(&name)
        })
        .map(|p| ctx.own.pods.fresher(p))
        .collect();
    let seen: BTreeSet<String> = pods.iter().map(|p| p.name_any()).collect();
    pods.extend(ctx.own.pods.unseen(&ns, &|n| seen.contains(n), &|p| {
        p.labels().get(LABEL_RUN) == Some(&name)
    }));

    let runs = ctx
        .runs
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(&ns))
        .filter_map(|r| r.valid().cloned())
        .map(|r| ctx.own.runs.fresher(r))
        .collect();
    let owners: BTreeSet<&str> = category_runs
        .iter()
        .filter_map(|c| c.metadata.uid.as_deref())
        .collect();
    let refused = ctx.own.refused.owned_by(&ns, &owners);
    let existing = ctx.own.refused.existing_owned_by(&ns, &owners);
    let shared = shared_view(ctx, &ns);
    let nodes_down = crate::controller::run::node_health::nodes_down(
        &ctx.nodes,
        pods.iter()
            .filter_map(|p| p.spec.as_ref()?.node_name.as_deref()),
    );
    Observed {
        run,
        category_runs,
        invalid,
        pods,
        runs,
        refused,
        existing,
        shared,
        nodes_down,
        answers,
    }
}

/// The shared resources of namespace `ns`: the capacities its
/// TestLayerResources declare, every grant, and every claim its runs and
/// CategoryRuns record (this controller's own newest writes laid over the
/// caches).
pub fn shared_view(ctx: &Context, ns: &str) -> SharedView {
    // One line for every namespace, or one per namespace.
    let across = ctx.resources_namespace.is_some();
    let home = ctx.resources_namespace.as_deref().unwrap_or(ns);
    let served = |of: Option<String>| across || of.as_deref() == Some(ns);
    let capacities = ctx
        .resources
        .state()
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(home))
        .filter_map(|r| r.valid().map(|v| (v.name_any(), v.spec.capacity)))
        .collect();
    let mut leases: Vec<Arc<Lease>> = ctx
        .grants
        .state()
        .into_iter()
        .filter(|l| l.namespace().as_deref() == Some(home))
        .map(|l| ctx.own.grants.fresher(l))
        .collect();
    let seen: BTreeSet<String> = leases.iter().map(|l| l.name_any()).collect();
    leases.extend(
        ctx.own
            .grants
            .unseen(home, &|n| seen.contains(n), &|_| true),
    );
    let grants = leases.iter().filter_map(|l| Grant::from_lease(l)).collect();
    let recorded = |meta: &kube::api::ObjectMeta, run: &str, claim: Option<&ResourceClaim>| {
        claim.map(|c| RecordedClaim {
            holder: meta.name.clone().unwrap_or_default(),
            holder_uid: meta.uid.clone().unwrap_or_default(),
            run: run.to_string(),
            run_namespace: meta.namespace.clone().unwrap_or_default(),
            claim: c.clone(),
        })
    };
    // Only runs that still work wait: a claim an ended (or deleted) run
    // left behind is served to no one.
    let mut working = BTreeSet::new();
    let mut claims = Vec::new();
    for r in ctx.runs.state() {
        if let Some(r) = r.valid().filter(|r| served(r.namespace())) {
            let r = ctx.own.runs.fresher(r.clone());
            let phase = r.status.as_ref().and_then(|s| s.phase);
            if r.metadata.deletion_timestamp.is_some() || phase.is_some_and(|p| p.is_terminal()) {
                continue;
            }
            working.insert((r.namespace(), r.name_any()));
            let claim = r.status.as_ref().and_then(|s| s.resource_claim.as_ref());
            claims.extend(recorded(&r.metadata, &r.name_any(), claim));
        }
    }
    for cr in ctx.category_runs.state() {
        if let Some(cr) = cr.valid().filter(|c| served(c.namespace())) {
            let cr = ctx.own.category_runs.fresher(cr.clone());
            if !working.contains(&(cr.namespace(), cr.spec.run_name.clone())) {
                continue;
            }
            let claim = cr.status.as_ref().and_then(|s| s.resource_claim.as_ref());
            claims.extend(recorded(&cr.metadata, &cr.spec.run_name, claim));
        }
    }
    SharedView {
        namespace: home.to_string(),
        capacities,
        grants,
        claims,
    }
}

/// One answer.
enum Answer {
    Config(ConfigAnswer),
    FrozenPlan(FrozenPlanAnswer),
    PodExists(String, bool),
    PodOwner(String, PodOwner),
    Logs(String, LogAnswer),
    Unready(Vec<String>),
    Rerun(RerunAnswer),
    History(BTreeMap<String, u64>),
}

/// Answers `questions` about `run` into `answers`.
pub async fn ask(
    ctx: &Context,
    run: &TestLayerRun,
    questions: Vec<Question>,
    answers: &mut Answers,
) -> Result<(), ControllerError> {
    let ns = run.namespace().unwrap_or_default();
    let futs = questions.into_iter().map(|q| {
        let ns = ns.clone();
        async move {
            Ok::<_, ControllerError>(match q {
                Question::Config => Answer::Config(config_text(ctx, run, &ns).await?),
                Question::FrozenPlan => Answer::FrozenPlan(frozen(ctx, run, &ns).await?),
                Question::PodExists(p) => {
                    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                    let exists = pods
                        .get_opt(&p)
                        .await
                        .map_err(ControllerError::kube(format!("reading pod {p}")))?
                        .is_some();
                    Answer::PodExists(p, exists)
                }
                Question::PodOwner(p) => {
                    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                    let found = pods
                        .get_opt(&p)
                        .await
                        .map_err(ControllerError::kube(format!("reading pod {p}")))?;
                    Answer::PodOwner(p, found.as_ref().map_or(PodOwner::Gone, owner_of))
                }
                Question::Logs(p, report) => {
                    let log = log_read_again_once(ctx, &ns, &p, report.as_deref()).await;
                    Answer::Logs(p, log)
                }
                Question::UnreadyServices(s) => {
                    Answer::Unready(unready_services(ctx, &ns, &s).await?)
                }
                Question::RerunSource(name) => Answer::Rerun(rerun_source(ctx, &ns, &name).await?),
                Question::History(name) => Answer::History(history(ctx, &ns, &name)),
            })
        }
    });
    let results: Vec<Result<Answer, ControllerError>> = futures::stream::iter(futs)
        .buffer_unordered(CONCURRENT_READS)
        .collect()
        .await;
    for r in results {
        match r? {
            Answer::Config(c) => answers.config = Some(c),
            Answer::FrozenPlan(p) => answers.frozen_plan = Some(p),
            Answer::PodExists(p, e) => {
                answers.pod_exists.insert(p, e);
            }
            Answer::PodOwner(p, o) => {
                answers.pod_owners.insert(p, o);
            }
            Answer::Logs(p, l) => {
                answers.logs.insert(p, l);
            }
            Answer::Unready(u) => answers.unready_services = Some(u),
            Answer::Rerun(r) => answers.rerun = Some(r),
            Answer::History(h) => answers.history = Some(h),
        }
    }
    Ok(())
}

/// Whose `pod` is: its controller's uid and, in words, which object.
fn owner_of(pod: &Pod) -> PodOwner {
    match pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
    {
        Some(o) => PodOwner::Of {
            uid: o.uid.clone(),
            described: format!("{} {} with uid {}", o.kind, o.name, o.uid),
        },
        None => PodOwner::Of {
            uid: String::new(),
            described: "no owner".to_string(),
        },
    }
}

/// The log of `pod` (with the JUnit report `report` in it, if any); a read
/// that failed other than by the kubelet not answering (a dropped
/// connection, an apiserver error, a kubelet's passing error) is tried once
/// more before its error is the answer, so one fault does not cost an
/// attempt its counts.
async fn log_read_again_once(
    ctx: &Context,
    ns: &str,
    pod: &str,
    report: Option<&str>,
) -> LogAnswer {
    let read = async || match report {
        None => logs(ctx, ns, pod).await.map(AttemptLog::plain),
        Some(r) => logs_with_report(ctx, ns, pod, r).await,
    };
    match read().await {
        Err(e) if !e.starts_with(NO_ANSWER) => {
            tracing::warn!(pod, error = %e, "reading a log failed; trying once more");
            tokio::time::sleep(LOG_READ_AGAIN_AFTER).await;
            read().await
        }
        answer => answer,
    }
}

/// How a log read that got no answer in time begins its error.
const NO_ANSWER: &str = "no answer in ";

async fn logs(ctx: &Context, ns: &str, pod: &str) -> Result<String, String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    // The end of the log holds the summary and the tail: ask for its last
    // lines, and keep only its last bytes of whatever comes.
    let lp = LogParams {
        container: Some(CONTAINER.into()),
        tail_lines: Some(LOG_READ_LINES),
        ..LogParams::default()
    };
    let mut end = LogEnd::new(LOG_READ_BYTES);
    stream_log(&pods, pod, &lp, |chunk| {
        end.push(&chunk);
        std::future::ready(true)
    })
    .await?;
    let text = end.text();
    match kubelet_error(&text) {
        Some(e) => Err(e.to_string()),
        None => Ok(text),
    }
}

/// Streams the test container's log of `pod`, as `lp` asks, a chunk at a
/// time into `each` (which returns false to stop), giving up when no bytes
/// come for [`LOG_READ_TIMEOUT`] or the whole takes [`LOG_READ_BOUND`].
async fn stream_log<F, Fut>(
    pods: &Api<Pod>,
    pod: &str,
    lp: &LogParams,
    mut each: F,
) -> Result<(), String>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let no_answer = || format!("{NO_ANSWER}{}s", LOG_READ_TIMEOUT.as_secs());
    let read = async {
        let stream = tokio::time::timeout(LOG_READ_TIMEOUT, pods.log_stream(pod, lp))
            .await
            .map_err(|_| no_answer())?
            .map_err(|e| e.to_string())?;
        let mut stream = std::pin::pin!(stream);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::time::timeout(
                LOG_READ_TIMEOUT,
                futures::AsyncReadExt::read(&mut stream, &mut buf),
            )
            .await
            .map_err(|_| no_answer())?
            .map_err(|e| e.to_string())?;
            if n == 0 || !each(buf[..n].to_vec()).await {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(LOG_READ_BOUND, read).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the log was not read whole in {}s",
            LOG_READ_BOUND.as_secs()
        )),
    }
}

/// The kubelet's words when it could not read a container's log (a
/// container that has not started yet, or whose log file is gone), which
/// it sends as the log itself with a success status: not a log.
fn kubelet_error(text: &str) -> Option<&str> {
    let line = text.trim_end();
    (line.starts_with("unable to retrieve container logs for ") && !line.contains('\n'))
        .then_some(line)
}

/// The log of `pod` with the JUnit report `report` in it: the report is
/// read as the log streams in (in a blocking task, at most
/// [`REPORT_BYTES`]), its failing tests kept (bounded), and the end of the
/// other lines kept as [`logs`] keeps them.
async fn logs_with_report(ctx: &Context, ns: &str, pod: &str, report: &str) -> LogAnswer {
    let _permit = REPORT_READS.acquire().await.map_err(|e| e.to_string())?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let lp = LogParams {
        container: Some(CONTAINER.into()),
        limit_bytes: Some(REPORT_LOG_BYTES),
        ..LogParams::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let origin = report.to_string();
    let parse = tokio::task::spawn_blocking(move || {
        let input = std::io::BufReader::new(ChunkReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        });
        attempt_log(input, &origin)
    });
    let sender = &tx;
    let fed = stream_log(&pods, pod, &lp, move |chunk| async move {
        sender.send(chunk).await.is_ok()
    })
    .await;
    // The reader sees the end of its input once the sender is gone.
    drop(tx);
    let log = parse.await.map_err(|e| e.to_string())?;
    match fed {
        Err(e) => Err(e),
        Ok(()) => match log {
            Ok(l)
                if l.report
                    .as_ref()
                    .is_some_and(|r| r.outcome == ReportOutcome::Absent) =>
            {
                match kubelet_error(&l.text) {
                    Some(e) => Err(e.to_string()),
                    None => Ok(l),
                }
            }
            other => other,
        },
    }
}

/// Splits the log of an attempt that printed the JUnit report `report`
/// into the end of its plain lines and what the report says (failing tests
/// bounded, attempt numbers left 0 for the step).
pub(crate) fn attempt_log(input: impl std::io::BufRead, report: &str) -> LogAnswer {
    let mut end = LogEnd::new(LOG_READ_BYTES);
    let mut failed = FailedTests::default();
    let mut list = CaseListWriter::default();
    let outcome = read_attempt_log(
        input,
        report,
        REPORT_BYTES,
        |line| {
            end.push(line.as_bytes());
            end.push(b"\n");
        },
        |case| {
            failed.record(&case, 0);
            list.push(&case);
        },
    )
    .map_err(|e| e.to_string())?;
    let (bytes, count, left_out) = list.finish();
    Ok(AttemptLog {
        text: end.text(),
        report: Some(ReportRead {
            outcome,
            failed,
            cases: CaseList {
                bytes: Arc::new(bytes),
                count,
                left_out,
            },
        }),
    })
}

/// A blocking reader over chunks sent from an async task.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The last bytes of a log as it streams in, read as text: bytes that are
/// not UTF-8 become U+FFFD, and a line cut at the start is dropped.
struct LogEnd {
    bytes: std::collections::VecDeque<u8>,
    keep: usize,
    cut: bool,
}

impl LogEnd {
    fn new(keep: usize) -> Self {
        Self {
            bytes: std::collections::VecDeque::with_capacity(keep.min(64 * 1024)),
            keep,
            cut: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        if chunk.len() > self.keep {
            self.cut = true;
        }
        let chunk = &chunk[chunk.len().saturating_sub(self.keep)..];
        let over = (self.bytes.len() + chunk.len()).saturating_sub(self.keep);
        if over > 0 {
            self.bytes.drain(..over);
            self.cut = true;
        }
        self.bytes.extend(chunk);
    }

    fn text(self) -> String {
        let cut = self.cut;
        let mut bytes: Vec<u8> = self.bytes.into();
        if cut {
            let first = bytes.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
            bytes.drain(..first);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

async fn config_text(
    ctx: &Context,
    run: &TestLayerRun,
    ns: &str,
) -> Result<ConfigAnswer, ControllerError> {
    let owner = format!("TestLayerRun {}/{} spec.config", ns, run.name_any());
    source_text(&ctx.client, &run.spec.config, ns, &owner).await
}

/// The layer config text `src` names (a ConfigMap key in `ns`, or inline in
/// the object `owner` names, e.g. `TestLayerRun ci/r1 spec.config`), or
/// what is missing.
pub(crate) async fn source_text(
    client: &kube::Client,
    src: &crate::api::ConfigSource,
    ns: &str,
    owner: &str,
) -> Result<ConfigAnswer, ControllerError> {
    if let Some(text) = &src.inline {
        return Ok(ConfigAnswer::Found {
            text: text.clone(),
            origin: format!("{owner}.inline"),
        });
    }
    let Some(r) = &src.config_map_ref else {
        return Ok(ConfigAnswer::Found {
            text: String::new(),
            origin: owner.into(),
        });
    };
    let key = r.key.clone().unwrap_or_else(|| DEFAULT_CONFIG_KEY.into());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = cms
        .get_opt(&r.name)
        .await
        .map_err(ControllerError::kube(format!(
            "reading ConfigMap {}",
            r.name
        )))?;
    let Some(cm) = cm else {
        return Ok(ConfigAnswer::Missing(format!(
            "ConfigMap {} not found",
            r.name
        )));
    };
    Ok(match cm.data.as_ref().and_then(|d| d.get(&key)) {
        Some(text) => ConfigAnswer::Found {
            text: text.clone(),
            origin: format!("ConfigMap {}/{} key {key}", ns, r.name),
        },
        None => ConfigAnswer::Missing(format!("ConfigMap {} has no key {key:?}", r.name)),
    })
}

/// The run's frozen plan, from the ConfigMap its status names.
async fn frozen(
    ctx: &Context,
    run: &TestLayerRun,
    ns: &str,
) -> Result<FrozenPlanAnswer, ControllerError> {
    let Some(reference) = run
        .status
        .as_ref()
        .and_then(|s| s.plan.as_ref())
        .and_then(|p| p.frozen.as_ref())
    else {
        return Ok(FrozenPlanAnswer::Missing(
            "the run records no frozen plan".into(),
        ));
    };
    let name = &reference.config_map;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = cms
        .get_opt(name)
        .await
        .map_err(ControllerError::kube(format!("reading ConfigMap {name}")))?;
    Ok(match cm {
        None => FrozenPlanAnswer::Missing(format!("ConfigMap {name} not found")),
        Some(cm) => match frozen_plan::decode(&cm, run, reference) {
            Ok(plan) => FrozenPlanAnswer::Found(Arc::new(plan)),
            Err(e) => FrozenPlanAnswer::Missing(e.to_string()),
        },
    })
}

/// How long each category of run `name` took (milliseconds by category
/// name), from the CategoryRuns in the cache: the last attempt of each that
/// ran its course.
fn history(ctx: &Context, ns: &str, name: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for cr in ctx.category_runs.state() {
        let Some(cr) = cr.valid() else { continue };
        if cr.namespace().as_deref() != Some(ns)
            || cr.labels().get(LABEL_RUN).map(String::as_str) != Some(name)
        {
            continue;
        }
        let Some(st) = &cr.status else { continue };
        let attempts: Vec<(AttemptReason, f64)> = st
            .attempts
            .iter()
            .filter_map(|a| {
                let (start, end) = (a.start_time.as_ref()?, a.completion_time.as_ref()?);
                let secs = end.0.duration_since(start.0).as_secs_f64();
                Some((a.reason.clone()?, secs))
            })
            .collect();
        if let Some(secs) = measured(attempts.iter().map(|(r, s)| (r, *s))) {
            out.insert(cr.spec.category.clone(), (secs * 1000.0).round() as u64);
        }
    }
    out
}

/// The earlier run `name` of a rerun: finished, with its frozen plan (or,
/// for a run accepted before plans were frozen, its CategoryRuns' specs)
/// and its CategoryRuns.
async fn rerun_source(ctx: &Context, ns: &str, name: &str) -> Result<RerunAnswer, ControllerError> {
    let runs: Api<Decoded<TestLayerRun>> = Api::namespaced(ctx.client.clone(), ns);
    let found = runs
        .get_opt(name)
        .await
        .map_err(ControllerError::kube(format!(
            "reading TestLayerRun {name}"
        )))?;
    let Some(found) = found else {
        return Ok(RerunAnswer::Missing(format!(
            "run {name} not found in namespace {ns} (deleted, perhaps by its ttlSecondsAfterFinished): nothing to rerun"
        )));
    };
    let Some(old) = found.valid().map(|r| r.as_ref().clone()) else {
        return Ok(RerunAnswer::Missing(format!(
            "run {name} cannot be read by this controller"
        )));
    };
    let phase = old.status.as_ref().and_then(|s| s.phase);
    if !phase.is_some_and(|p| p.is_terminal()) {
        return Ok(RerunAnswer::Unfinished(phase.map_or_else(
            || "Pending".to_string(),
            |p| p.as_str().to_string(),
        )));
    }
    let crs: Api<Decoded<CategoryRun>> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{LABEL_RUN}={name}"));
    let category_runs: Vec<CategoryRun> = crs
        .list(&lp)
        .await
        .map_err(ControllerError::kube(format!(
            "listing the CategoryRuns of {name}"
        )))?
        .items
        .into_iter()
        .filter_map(|c| c.valid().map(|c| c.as_ref().clone()))
        .filter(|c| owned_by(c, &old))
        .collect();
    let plan = match frozen(ctx, &old, ns).await? {
        FrozenPlanAnswer::Found(p) => (*p).clone(),
        FrozenPlanAnswer::Missing(why) => {
            let count = old
                .status
                .as_ref()
                .and_then(|s| s.plan.as_ref())
                .map_or(0, |p| p.count());
            if count == 0 || category_runs.len() != count {
                return Ok(RerunAnswer::Missing(format!(
                    "the plan of run {name} is lost ({why}) and it has {} of its {count} CategoryRuns",
                    category_runs.len()
                )));
            }
            FrozenPlan::of(&category_runs)
        }
    };
    Ok(RerunAnswer::Found(Arc::new(RerunSource {
        run: old,
        plan,
        category_runs,
    })))
}

/// Services (by config name) without a ready endpoint in `namespace`.
async fn unready_services(
    ctx: &Context,
    namespace: &str,
    services: &[String],
) -> Result<Vec<String>, ControllerError> {
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), namespace);
    let mut unready = Vec::new();
    for s in services {
        let name = service_k8s_name(s);
        let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
        let list = slices
            .list(&lp)
            .await
            .map_err(ControllerError::kube(format!(
                "listing endpoint slices of service {name}"
            )))?;
        let ready = list.items.iter().any(|sl| {
            sl.endpoints
                .iter()
                .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        });
        if !ready {
            unready.push(s.clone());
        }
    }
    Ok(unready)
}

#[cfg(test)]
mod tests {
    use super::LogEnd;

    #[test]
    fn the_kubelets_words_for_a_log_it_cannot_read_are_not_a_log() {
        let words = "unable to retrieve container logs for containerd://981a72c4";
        assert_eq!(super::kubelet_error(words), Some(words));
        assert_eq!(super::kubelet_error(&format!("{words}\n")), Some(words));
        assert_eq!(super::kubelet_error("started\n3 passed\n"), None);
        assert_eq!(
            super::kubelet_error(&format!("started\n{words}")),
            None,
            "a log that holds the words among others is a log"
        );
    }

    #[test]
    fn the_end_of_a_log_is_kept_whole_lines_and_lossy() {
        let mut end = LogEnd::new(16);
        end.push(b"first line\nsecond line\n");
        end.push(b"caf\xe9 3 passed\n");
        assert_eq!(end.text(), "caf\u{fffd} 3 passed\n");

        let mut short = LogEnd::new(1024);
        short.push(b"a\nb\n");
        assert_eq!(short.text(), "a\nb\n");

        // One chunk larger than what is kept.
        let mut big = LogEnd::new(8);
        big.push(b"0123456789\nabc\n");
        assert_eq!(big.text(), "abc\n");
    }
}
