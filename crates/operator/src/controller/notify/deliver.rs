//! The sender: a task beside the reconcilers that sends the notifications
//! the run step recorded, so that a slow or dead receiver never holds up a
//! reconcile. It looks through the runs' cache every second for entries
//! not yet final, and sends each in a task of its own:
//!
//! 1. read the run fresh; an entry found `Sending` was started by a
//!    controller that stopped (a restart, a lost leadership): it is
//!    recorded `Failed` and never sent again (at most once);
//! 2. read the Secrets it names and build its body;
//! 3. before each attempt, record `Sending` and the attempt's number
//!    (written only if the run did not change since it was read), then
//!    POST; record `Sent`, or `Failed` after a 4xx or the last attempt,
//!    with an Event either way; 5xx, timeouts and lost connections are
//!    tried again with backoff (see [`retry`](super::retry)).
//!
//! The tasks end with the sender (a controller that stops sends nothing
//! more). Nothing it logs, records or publishes shows a secret: URLs as
//! `scheme://host`, every message scrubbed of the values it read.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::Api;
use kube::{Resource, ResourceExt};
use tokio::task::JoinSet;

use super::error::NotifyError;
use super::http::{Http, Post};
use super::mask::scrub;
use super::prepare::{Prepared, prepare};
use super::record::{now, read, update};
use super::retry::{Answer, MAX_ATTEMPTS, Verdict, backoff, describe, verdict};
use crate::api::{NotificationState, NotificationStatus, TestLayerRun};
use crate::controller::kit::context::Context;
use crate::controller::kit::events::send;
use crate::controller::kit::outcome_metrics::Happened;
use crate::controller::status::note::Note;

/// How often the runs' cache is looked through.
const SCAN: Duration = Duration::from_secs(1);
/// Wait after a failure that passes (the apiserver), before the next scan
/// tries again.
const AFTER_ERROR: Duration = Duration::from_secs(5);
/// Why an entry found `Sending` is not sent again.
pub const INTERRUPTED: &str =
    "the controller stopped while sending it; not sent again, so that it is sent at most once";

/// Longest `lastError` kept in a status.
const MAX_ERROR: usize = 500;

/// `why`, at most [`MAX_ERROR`] characters.
fn bounded(why: &str) -> String {
    why.chars().take(MAX_ERROR).collect()
}

/// A notification being handled: namespace, run, run uid, target.
type Key = (String, String, String, u32);

/// Removes its key from the set of notifications being handled when the
/// task that handles it ends, however it ends.
struct Busy(Arc<Mutex<BTreeSet<Key>>>, Key);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut set) = self.0.lock() {
            set.remove(&self.1);
        }
    }
}

/// Sends the notifications the runs recorded, until dropped.
pub async fn deliver(ctx: Arc<Context>) {
    let http = match Http::new() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client of notifications: none is sent");
            return;
        }
    };
    crate::controller::kit::cache::synced(&ctx.runs).await;
    let busy: Arc<Mutex<BTreeSet<Key>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(SCAN);
    loop {
        tick.tick().await;
        while tasks.try_join_next().is_some() {}
        for obj in ctx.runs.state() {
            let Some(run) = obj.valid() else { continue };
            let run = ctx.own.runs.fresher(run.clone());
            let Some(status) = run.status.as_ref() else {
                continue;
            };
            for n in status.notifications.iter().filter(|n| !n.state.is_final()) {
                let key: Key = (
                    run.namespace().unwrap_or_default(),
                    run.name_any(),
                    run.uid().unwrap_or_default(),
                    n.target,
                );
                let fresh = busy
                    .lock()
                    .map(|mut b| b.insert(key.clone()))
                    .unwrap_or(false);
                if !fresh {
                    continue;
                }
                let guard = Busy(busy.clone(), key.clone());
                let (ctx, http) = (ctx.clone(), http.clone());
                tasks.spawn(async move {
                    let _guard = guard;
                    let (ns, name, _, target) = key;
                    if let Err(e) = one(&ctx, &http, &ns, &name, target).await {
                        tracing::warn!(run = %name, namespace = %ns, target, error = %e, "a notification could not be handled yet");
                        if e.passes() {
                            tokio::time::sleep(AFTER_ERROR).await;
                        }
                    }
                });
            }
        }
    }
}

/// Publishes an Event about `run`.
async fn event(ctx: &Context, run: &TestLayerRun, warning: bool, reason: &str, text: String) {
    let n = Note {
        regarding: run.object_ref(&()),
        warning,
        reason: reason.into(),
        note: text.chars().take(1000).collect(),
    };
    send(&ctx.recorder, n, "Notify").await;
}

/// Records notification `target` of run `name` final in `state`, if it is
/// not final yet.
async fn finish(
    ctx: &Context,
    api: &Api<TestLayerRun>,
    name: &str,
    target: u32,
    state: NotificationState,
    code: Option<u16>,
    why: Option<&str>,
) -> Result<Option<TestLayerRun>, NotifyError> {
    let time = now();
    let stored = update(ctx, api, name, target, |e: &mut NotificationStatus| {
        if e.state.is_final() {
            return false;
        }
        e.state = state;
        e.response_code = code.or(e.response_code);
        e.last_error = why.map(bounded);
        e.time = Some(time.clone());
        true
    })
    .await?;
    let entry = stored
        .as_ref()
        .and_then(|r| r.status.as_ref())
        .and_then(|s| s.notifications.iter().find(|n| n.target == target));
    if let Some(e) = entry {
        let result = match state {
            NotificationState::Sent => "sent",
            NotificationState::Skipped => "skipped",
            _ => "failed",
        };
        ctx.metrics.outcomes.record(&Happened::Notified {
            kind: e.kind.clone(),
            result,
        });
    }
    Ok(stored)
}

/// Handles notification `target` of run `name` in `ns` (see the module's
/// steps).
async fn one(
    ctx: &Context,
    http: &Http,
    ns: &str,
    name: &str,
    target: u32,
) -> Result<(), NotifyError> {
    let api: Api<TestLayerRun> = Api::namespaced(ctx.client.clone(), ns);
    let Some(run) = read(&api, name).await? else {
        return Ok(());
    };
    let Some(entry) = run
        .status
        .as_ref()
        .and_then(|s| s.notifications.iter().find(|n| n.target == target))
        .cloned()
    else {
        return Ok(());
    };
    let at = format!("spec.notify[{target}] ({})", entry.kind);
    match entry.state {
        NotificationState::Pending => {}
        NotificationState::Sending => {
            if let Some(stored) = finish(
                ctx,
                &api,
                name,
                target,
                NotificationState::Failed,
                None,
                Some(INTERRUPTED),
            )
            .await?
            {
                tracing::warn!(run = %name, namespace = %ns, target, "{INTERRUPTED}");
                event(
                    ctx,
                    &stored,
                    true,
                    "NotificationFailed",
                    format!("{at}: {INTERRUPTED}"),
                )
                .await;
            }
            return Ok(());
        }
        _ => return Ok(()),
    }
    let p = match prepare(ctx, &run, target, entry.outcome).await {
        Ok(p) => p,
        Err(e) if e.passes() => return Err(e),
        Err(e) => {
            let why = e.to_string();
            if let Some(stored) = finish(
                ctx,
                &api,
                name,
                target,
                NotificationState::Failed,
                None,
                Some(&why),
            )
            .await?
            {
                tracing::warn!(run = %name, namespace = %ns, target, error = %why, "a notification cannot be sent");
                event(ctx, &stored, true, "NotificationFailed", why).await;
            }
            return Ok(());
        }
    };
    attempts(ctx, http, &api, &run, target, &at, p).await
}

/// The attempts of a prepared notification, each recorded before it is made.
async fn attempts(
    ctx: &Context,
    http: &Http,
    api: &Api<TestLayerRun>,
    run: &TestLayerRun,
    target: u32,
    at: &str,
    p: Prepared,
) -> Result<(), NotifyError> {
    let name = run.name_any();
    let ns = run.namespace().unwrap_or_default();
    let secrets: Vec<&str> = p.secrets.iter().map(String::as_str).collect();
    let mut last: Option<Answer> = None;
    for attempt in 1..=MAX_ATTEMPTS {
        let time = now();
        let retry_code = match &last {
            Some(Answer::Status(c)) => Some(*c),
            _ => None,
        };
        let retry_why = last
            .as_ref()
            .map(|a| bounded(&scrub(&describe(a), &secrets)));
        let marked = update(ctx, api, &name, target, |e: &mut NotificationStatus| {
            let ours = e.state == NotificationState::Pending
                || (e.state == NotificationState::Sending && e.attempts == attempt - 1);
            if !ours {
                return false;
            }
            e.state = NotificationState::Sending;
            e.attempts = attempt;
            e.time = Some(time.clone());
            if retry_why.is_some() {
                e.last_error = retry_why.clone();
                e.response_code = retry_code;
            }
            true
        })
        .await?;
        if marked.is_none() {
            return Ok(());
        }
        let answer = http
            .post(Post {
                url: &p.url,
                headers: p.headers.clone(),
                body: p.body.clone(),
                secrets: &secrets,
            })
            .await;
        let code = match &answer {
            Answer::Status(c) => Some(*c),
            _ => None,
        };
        let words = scrub(&describe(&answer), &secrets);
        tracing::info!(run = %name, namespace = %ns, target, kind = p.kind, to = %p.shown, attempt, answer = %words, "notification attempt");
        match verdict(&answer) {
            Verdict::Sent => {
                if let Some(stored) =
                    finish(ctx, api, &name, target, NotificationState::Sent, code, None).await?
                {
                    event(
                        ctx,
                        &stored,
                        false,
                        "Notified",
                        format!("{at}: sent to {} ({words})", p.shown),
                    )
                    .await;
                }
                return Ok(());
            }
            Verdict::Retry if attempt < MAX_ATTEMPTS => {
                last = Some(answer);
                tokio::time::sleep(backoff(attempt)).await;
            }
            v => {
                let why = if v == Verdict::Retry {
                    format!("gave up after {attempt} attempts to {}: {words}", p.shown)
                } else {
                    format!("{} refused it, not tried again: {words}", p.shown)
                };
                if let Some(stored) = finish(
                    ctx,
                    api,
                    &name,
                    target,
                    NotificationState::Failed,
                    code,
                    Some(&why),
                )
                .await?
                {
                    event(
                        ctx,
                        &stored,
                        true,
                        "NotificationFailed",
                        format!("{at}: {why}"),
                    )
                    .await;
                }
                return Ok(());
            }
        }
    }
    Ok(())
}
