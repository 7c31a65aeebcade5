//! A notification made ready to send: its URL, headers and body, from the
//! target, the Secrets it names and what the caches hold of the runs told
//! of. Reads only; decides nothing the step has not decided.

use hyper::Uri;
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use super::body::{self, Subject};
use super::check::{self, GITHUB_STATUS, SLACK, WEBHOOK};
use super::decide::revision;
use super::error::NotifyError;
use super::history::{Scope, scope};
use super::mask::origin;
use super::sign::{SIGNATURE_HEADER, signature};
use crate::api::{CategoryRun, LayerPhase, NotifyTarget, SecretKeyRef, TestLayerRun};
use crate::controller::kit::context::Context;

/// GitHub's API when a target names none.
pub const GITHUB_API: &str = "https://api.github.com";

/// A notification ready to send.
pub struct Prepared {
    /// `webhook`, `slack` or `githubStatus`.
    pub kind: &'static str,
    /// Where to.
    pub url: Uri,
    /// How it may be shown: `scheme://host`.
    pub shown: String,
    /// Headers beside the content type.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Bytes,
    /// The secret values read (and the URL), scrubbed from every message.
    pub secrets: Vec<String>,
}

/// Reads `key` of the Secret `r` names in `ns`.
async fn secret(
    ctx: &Context,
    ns: &str,
    at: &str,
    r: &SecretKeyRef,
) -> Result<Vec<u8>, NotifyError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let found = api.get_opt(&r.name).await.map_err(|source| match &source {
        kube::Error::Api(e) if e.code == 403 => NotifyError::Secret(format!(
            "{at}: the controller may not read Secret {} in namespace {ns}",
            r.name
        )),
        _ => NotifyError::Kube {
            what: format!("reading Secret {}", r.name),
            source,
        },
    })?;
    let Some(s) = found else {
        return Err(NotifyError::Secret(format!(
            "{at}: Secret {} not found in namespace {ns}",
            r.name
        )));
    };
    s.data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            s.string_data
                .as_ref()
                .and_then(|d| d.get(&r.key))
                .map(|v| v.as_bytes().to_vec())
        })
        .ok_or_else(|| NotifyError::Secret(format!("{at}: Secret {} has no key {}", r.name, r.key)))
}

/// A secret's text, without the line end a file it came from had.
async fn secret_text(
    ctx: &Context,
    ns: &str,
    at: &str,
    r: &SecretKeyRef,
) -> Result<String, NotifyError> {
    let bytes = secret(ctx, ns, at, r).await?;
    String::from_utf8(bytes)
        .map(|s| s.trim().to_string())
        .map_err(|_| {
            NotifyError::Secret(format!("{at}: Secret {} key {} is not text", r.name, r.key))
        })
}

/// A URL read from a Secret (its value never in the error).
fn secret_url(at: &str, r: &SecretKeyRef, value: &str) -> Result<Uri, NotifyError> {
    check::http_url(value)
        .map_err(|why| NotifyError::Secret(format!("{at}: Secret {} key {}: {why}", r.name, r.key)))
}

/// The runs told of, with their CategoryRuns, as the caches hold them:
/// the suite's when `run` tells its suite's outcome, else `run` alone.
fn told(
    ctx: &Context,
    run: &TestLayerRun,
    ns: &str,
) -> (Option<String>, Vec<(TestLayerRun, Vec<CategoryRun>)>) {
    let runs: Vec<std::sync::Arc<TestLayerRun>> = ctx
        .runs
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(ns))
        .filter_map(|r| r.valid().cloned())
        .map(|r| ctx.own.runs.fresher(r))
        .collect();
    let me = std::sync::Arc::new(run.clone());
    let (suite, members): (Option<String>, Vec<TestLayerRun>) = match scope(&me, &runs) {
        Some(Scope::Suite { suite, runs, .. }) => (
            Some(suite),
            runs.iter()
                .map(|r| {
                    if r.name_any() == run.name_any() {
                        run.clone()
                    } else {
                        (**r).clone()
                    }
                })
                .collect(),
        ),
        _ => (None, vec![run.clone()]),
    };
    let crs: Vec<std::sync::Arc<CategoryRun>> = ctx
        .category_runs
        .state()
        .into_iter()
        .filter(|c| c.namespace().as_deref() == Some(ns))
        .filter_map(|c| c.valid().cloned())
        .collect();
    let told = members
        .into_iter()
        .map(|r| {
            let name = r.name_any();
            let mine = crs
                .iter()
                .filter(|c| c.spec.run_name == name)
                .map(|c| (**c).clone())
                .collect();
            (r, mine)
        })
        .collect();
    (suite, told)
}

fn json(v: &serde_json::Value) -> Bytes {
    Bytes::from(v.to_string())
}

/// Target `index` of `run` made ready to tell `outcome`.
pub async fn prepare(
    ctx: &Context,
    run: &TestLayerRun,
    index: u32,
    outcome: LayerPhase,
) -> Result<Prepared, NotifyError> {
    let ns = run.namespace().unwrap_or_default();
    let at = format!("spec.notify[{index}]");
    let t: &NotifyTarget = run
        .spec
        .notify
        .get(index as usize)
        .ok_or_else(|| NotifyError::Target(format!("{at}: no such target any more")))?;
    let kind = check::kind(t).ok_or_else(|| {
        NotifyError::Target(format!(
            "{at}: set exactly one of webhook, slack and githubStatus"
        ))
    })?;
    let (suite, runs) = told(ctx, run, &ns);
    let subject = Subject {
        leader: run,
        outcome,
        runs: &runs,
        suite: suite.as_deref(),
    };
    let mut secrets = Vec::new();
    let mut headers = Vec::new();
    let (url, body) = match (kind, &t.webhook, &t.slack, &t.github_status) {
        (WEBHOOK, Some(w), _, _) => {
            let url = match (&w.url, &w.url_from) {
                (Some(u), _) => {
                    secrets.push(u.clone());
                    check::http_url(u)
                        .map_err(|why| NotifyError::Target(format!("{at}.webhook.url: {why}")))?
                }
                (None, Some(r)) => {
                    let at = format!("{at}.webhook.urlFrom");
                    let u = secret_text(ctx, &ns, &at, r).await?;
                    secrets.push(u.clone());
                    secret_url(&at, r, &u)?
                }
                (None, None) => {
                    return Err(NotifyError::Target(format!(
                        "{at}.webhook: set exactly one of url and urlFrom"
                    )));
                }
            };
            let body = json(&body::webhook(&subject));
            if let Some(r) = &w.secret_ref {
                let key = secret(ctx, &ns, &format!("{at}.webhook.secretRef"), r).await?;
                secrets.push(String::from_utf8_lossy(&key).into_owned());
                headers.push((SIGNATURE_HEADER, signature(&key, &body)));
            }
            (url, body)
        }
        (SLACK, _, Some(s), _) => {
            let at = format!("{at}.slack.urlFrom");
            let r = s
                .url_from
                .as_ref()
                .ok_or_else(|| NotifyError::Target(format!("{at}: missing")))?;
            let u = secret_text(ctx, &ns, &at, r).await?;
            secrets.push(u.clone());
            (secret_url(&at, r, &u)?, json(&body::slack(&subject)))
        }
        (GITHUB_STATUS, _, _, Some(g)) => {
            let at = format!("{at}.githubStatus");
            let r = g
                .token_from
                .as_ref()
                .ok_or_else(|| NotifyError::Target(format!("{at}.tokenFrom: missing")))?;
            let token = secret_text(ctx, &ns, &format!("{at}.tokenFrom"), r).await?;
            secrets.push(token.clone());
            let sha = revision(run, g.sha.as_deref()).map_err(NotifyError::Target)?;
            let api = g
                .api_url
                .as_deref()
                .unwrap_or(GITHUB_API)
                .trim_end_matches('/');
            let url = format!("{api}/repos/{}/statuses/{sha}", g.repository);
            let url = check::http_url(&url)
                .map_err(|why| NotifyError::Target(format!("{at}.apiUrl: {why}")))?;
            let context = g
                .context
                .clone()
                .unwrap_or_else(|| body::github_context(&subject));
            headers.push(("authorization", format!("Bearer {token}")));
            headers.push(("accept", "application/vnd.github+json".into()));
            headers.push(("x-github-api-version", "2022-11-28".into()));
            (
                url,
                json(&body::github(&subject, &context, g.target_url.as_deref())),
            )
        }
        _ => {
            return Err(NotifyError::Target(format!(
                "{at}: set exactly one of webhook, slack and githubStatus"
            )));
        }
    };
    Ok(Prepared {
        kind,
        shown: origin(&url.to_string()),
        url,
        headers,
        body,
        secrets,
    })
}
