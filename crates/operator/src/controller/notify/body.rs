//! What each kind of target is sent: the generic webhook's JSON document
//! (`docs/reference/notification.schema.json`), a Slack message (its
//! incoming webhooks' `text` and `blocks`), a GitHub commit status (its
//! "Create a commit status" body). Pure: from the runs and CategoryRuns
//! the sender read.

use serde_json::{Value, json};

use crate::api::names::{ANNOTATION_REVISION, LABEL_SCHEDULE, LABEL_TRIGGER};
use crate::api::{CategoryRun, ConditionType, LayerPhase, TestLayerRun};
use crate::plan::Phase;

/// The version of the webhook's document.
pub const VERSION: &str = "testlayer.dev/notification/v1";
/// Failed categories listed at most (then `moreFailedCategories`).
pub const LISTED_CATEGORIES: usize = 10;
/// Failing tests listed per category at most (then `moreFailedTests`).
pub const LISTED_TESTS: usize = 10;
/// GitHub keeps 140 characters of a status's description.
pub const MAX_DESCRIPTION: usize = 140;

/// What is told: the outcome of a run, or of a suite (its leader first).
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The run that tells it (the suite's first run by name).
    pub leader: &'a TestLayerRun,
    /// The outcome told.
    pub outcome: LayerPhase,
    /// Every run told of (the leader alone, or the suite's runs) with its
    /// CategoryRuns.
    pub runs: &'a [(TestLayerRun, Vec<CategoryRun>)],
    /// The suite whose outcome this is (`None`: the leader's own; also for
    /// a suite of one layer, a schedule's tick).
    pub suite: Option<&'a str>,
}

fn label<'a>(r: &'a TestLayerRun, key: &str) -> Option<&'a str> {
    r.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

impl Subject<'_> {
    fn suite(&self) -> Option<&str> {
        self.suite
    }

    fn revision(&self) -> Option<&str> {
        self.leader
            .metadata
            .annotations
            .as_ref()?
            .get(ANNOTATION_REVISION)
            .map(String::as_str)
    }

    fn counts(&self) -> (u64, u64, u64) {
        let mut c = (0, 0, 0);
        for (r, _) in self.runs {
            if let Some(n) = r.status.as_ref().and_then(|s| s.counts) {
                c.0 += n.passed;
                c.1 += n.failed;
                c.2 += n.skipped;
            }
        }
        c
    }

    /// What the reader calls it: `run NAME (layer L)` or `suite S`.
    fn title(&self) -> String {
        match self.suite() {
            Some(s) => format!("suite {s} ({} runs)", self.runs.len()),
            None => format!(
                "run {} (layer {})",
                self.leader.metadata.name.as_deref().unwrap_or_default(),
                self.leader.spec.layer
            ),
        }
    }

    /// The failed categories (not allowed to fail), in config order.
    fn failed(&self) -> Vec<(&TestLayerRun, &CategoryRun)> {
        let mut out = Vec::new();
        for (r, crs) in self.runs {
            let mut crs: Vec<&CategoryRun> = crs.iter().collect();
            crs.sort_by_key(|c| c.spec.index);
            for c in crs {
                let st = c.status.as_ref();
                let phase = st.and_then(|s| s.phase);
                let allowed = st.is_some_and(|s| s.allowed_failure);
                if matches!(phase, Some(Phase::Failed | Phase::TimedOut)) && !allowed {
                    out.push((r, c));
                }
            }
        }
        out
    }

    fn times(
        &self,
    ) -> (
        Option<k8s_openapi::jiff::Timestamp>,
        Option<k8s_openapi::jiff::Timestamp>,
    ) {
        let starts = self
            .runs
            .iter()
            .filter_map(|(r, _)| r.status.as_ref()?.start_time.as_ref().map(|t| t.0));
        let ends = self
            .runs
            .iter()
            .filter_map(|(r, _)| r.status.as_ref()?.completion_time.as_ref().map(|t| t.0));
        (starts.min(), ends.max())
    }

    fn reason(&self) -> String {
        if self.suite().is_some() {
            return self.outcome.as_str().to_string();
        }
        self.leader
            .status
            .as_ref()
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == ConditionType::Succeeded.as_str())
            })
            .map_or_else(|| self.outcome.as_str().to_string(), |c| c.reason.clone())
    }

    fn message(&self) -> String {
        if self.suite().is_some() {
            let failed: Vec<String> = self
                .runs
                .iter()
                .filter(|(r, _)| {
                    r.status.as_ref().and_then(|s| s.phase) != Some(LayerPhase::Succeeded)
                })
                .map(|(r, _)| {
                    format!(
                        "{} {}",
                        r.spec.layer,
                        r.status
                            .as_ref()
                            .and_then(|s| s.phase)
                            .unwrap_or_default()
                            .as_str()
                    )
                })
                .collect();
            return if failed.is_empty() {
                format!("all {} runs passed", self.runs.len())
            } else {
                failed.join(", ")
            };
        }
        self.leader
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_default()
    }
}

/// The generic webhook's JSON document.
pub fn webhook(s: &Subject) -> Value {
    let (passed, failed, skipped) = s.counts();
    let (start, end) = s.times();
    let duration = start.zip(end).map(|(a, b)| {
        let d = b.as_second() - a.as_second();
        d.max(0)
    });
    let failures = s.failed();
    let listed: Vec<Value> = failures
        .iter()
        .take(LISTED_CATEGORIES)
        .map(|(r, c)| {
            let st = c.status.clone().unwrap_or_default();
            let tests: Vec<Value> = st
                .failed_tests
                .listed
                .iter()
                .take(LISTED_TESTS)
                .map(|t| {
                    let mut v = json!({"id": t.id});
                    if !t.message.is_empty() {
                        v["message"] = json!(t.message.chars().take(500).collect::<String>());
                    }
                    v
                })
                .collect();
            let more = st.failed_tests.more
                + st.failed_tests.listed.len().saturating_sub(LISTED_TESTS) as u64;
            let mut v = json!({
                "run": r.metadata.name,
                "layer": r.spec.layer,
                "name": c.spec.category,
                "phase": st.phase.map(|p| p.to_string()).unwrap_or_default(),
                "failedTests": tests,
                "moreFailedTests": more,
            });
            if let Some(reason) = &st.reason {
                v["reason"] = json!(reason.to_string());
            }
            v
        })
        .collect();
    let runs: Vec<Value> = s
        .runs
        .iter()
        .map(|(r, _)| {
            json!({
                "name": r.metadata.name,
                "layer": r.spec.layer,
                "outcome": r.status.as_ref().and_then(|st| st.phase).unwrap_or_default().as_str(),
            })
        })
        .collect();
    let mut doc = json!({
        "version": VERSION,
        "name": s.leader.metadata.name,
        "namespace": s.leader.metadata.namespace,
        "layer": s.leader.spec.layer,
        "outcome": s.outcome.as_str(),
        "reason": s.reason(),
        "message": s.message(),
        "counts": {"passed": passed, "failed": failed, "skipped": skipped},
        "failedCategories": listed,
        "moreFailedCategories": failures.len().saturating_sub(LISTED_CATEGORIES),
        "runs": runs,
    });
    let opt = |v: Option<String>| v.map_or(Value::Null, Value::String);
    doc["suite"] = opt(s.suite().map(String::from));
    doc["schedule"] = opt(label(s.leader, LABEL_SCHEDULE).map(String::from));
    doc["trigger"] = opt(label(s.leader, LABEL_TRIGGER).map(String::from));
    doc["revision"] = opt(s.revision().map(String::from));
    doc["startTime"] = opt(start.map(|t| t.to_string()));
    doc["completionTime"] = opt(end.map(|t| t.to_string()));
    doc["durationSeconds"] = duration.map_or(Value::Null, |d| json!(d));
    doc
}

/// One line on the outcome: `Failed: run r (layer unit): 3 passed, 1 failed, 0 skipped`.
fn headline(s: &Subject) -> String {
    let (p, f, k) = s.counts();
    format!(
        "{}: {}: {p} passed, {f} failed, {k} skipped",
        s.outcome.as_str(),
        s.title()
    )
}

/// A Slack incoming webhook's message: `text` (the notification's words)
/// and `blocks` (a section and a context, in mrkdwn).
pub fn slack(s: &Subject) -> Value {
    let icon = if s.outcome == LayerPhase::Succeeded {
        ":white_check_mark:"
    } else {
        ":x:"
    };
    let failed: Vec<String> = s
        .failed()
        .iter()
        .take(LISTED_CATEGORIES)
        .map(|(_, c)| format!("`{}`", c.spec.category))
        .collect();
    let mut body = format!("{icon} *{}*", headline(s));
    if !failed.is_empty() {
        body.push_str(&format!("\nFailed categories: {}", failed.join(", ")));
    }
    let body: String = body.chars().take(2900).collect();
    let mut context = format!(
        "namespace `{}`",
        s.leader.metadata.namespace.as_deref().unwrap_or_default()
    );
    if let Some(r) = s.revision() {
        context.push_str(&format!(" · revision `{r}`"));
    }
    json!({
        "text": format!("testlayer: {}", headline(s)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    })
}

/// The state of a commit status for `outcome`: `success`, `failure` (it
/// failed or timed out) or `error` (it was cancelled).
pub fn github_state(outcome: LayerPhase) -> &'static str {
    match outcome {
        LayerPhase::Succeeded => "success",
        LayerPhase::Failed | LayerPhase::TimedOut => "failure",
        _ => "error",
    }
}

/// The default context of a commit status: `testlayer/<layer>`, or for a
/// suite `testlayer/<schedule or trigger>` (`testlayer/suite` for neither).
pub fn github_context(s: &Subject) -> String {
    match s.suite() {
        None => format!("testlayer/{}", s.leader.spec.layer),
        Some(_) => {
            let maker = label(s.leader, LABEL_SCHEDULE)
                .or_else(|| label(s.leader, LABEL_TRIGGER))
                .unwrap_or("suite");
            format!("testlayer/{maker}")
        }
    }
}

/// The body of GitHub's "Create a commit status".
pub fn github(s: &Subject, context: &str, target_url: Option<&str>) -> Value {
    let (p, f, k) = s.counts();
    let mut description = format!(
        "{}: {p} passed, {f} failed, {k} skipped",
        s.outcome.as_str()
    );
    let failed: Vec<String> = s
        .failed()
        .iter()
        .map(|(_, c)| c.spec.category.clone())
        .collect();
    if !failed.is_empty() {
        description.push_str(&format!("; failed: {}", failed.join(", ")));
    }
    if description.chars().count() > MAX_DESCRIPTION {
        description = description
            .chars()
            .take(MAX_DESCRIPTION - 1)
            .collect::<String>()
            + "…";
    }
    let mut v = json!({
        "state": github_state(s.outcome),
        "description": description,
        "context": context,
    });
    if let Some(u) = target_url {
        v["target_url"] = json!(u);
    }
    v
}
