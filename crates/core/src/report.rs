//! The result of a layer run, as the local executor and `submit` print and save
//! it: a summary table, JSON, and JUnit XML.

use std::time::Duration;

use comfy_table::{Cell, Color, Table, presets::UTF8_FULL_CONDENSED};

use crate::plan::describe::human_duration;
use crate::plan::suite::LayerState;
use crate::plan::{LayerOutcome, Phase};
use crate::results::{
    CaseOutcome, CaseResult, FailedTests, JunitCase, JunitSuite, Quarantine, ResultsError,
    TestCase, TestCounts, write_junit,
};

/// A report's test case as written to JUnit: the id split back into
/// classname and name; a failure `quarantine` covers is written as skipped
/// (it failed, and counts for nothing), its message saying so.
fn junit_case(t: &TestCase, quarantine: &Quarantine) -> JunitCase {
    let (classname, name) = t.id.split_once("::").unwrap_or(("", &t.id));
    JunitCase {
        classname: classname.to_string(),
        name: name.to_string(),
        time_secs: t.time_secs,
        outcome: match t.result {
            CaseResult::Passed => CaseOutcome::Passed,
            CaseResult::Failed if quarantine.covers(&t.id) => CaseOutcome::Skipped {
                message: format!("quarantined, failed: {}", t.message),
            },
            CaseResult::Failed => CaseOutcome::Failed {
                message: t.message.clone(),
                detail: String::new(),
            },
            CaseResult::Skipped => CaseOutcome::Skipped {
                message: t.message.clone(),
            },
        },
        system_out: None,
    }
}
use crate::words::{AttemptReason, Reason};

/// What a local run ran, kept in its JSON report so that `run
/// --rerun-failed` runs the same plan, whatever became of the config file:
/// the config text as it was read, the layer, the environment and the
/// command line's overrides (resolving them again gives the same plan).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReportPlan {
    /// The layer config, as it was read.
    pub config: String,
    /// Where it was read from (for messages).
    pub origin: String,
    /// The layer key.
    pub layer: String,
    /// The environment, if one was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The command line's overrides.
    #[serde(default)]
    pub overrides: crate::config::Overrides,
    /// Durations measured in earlier runs that the plan's estimates were
    /// learned from (seconds by category).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub durations: std::collections::BTreeMap<String, f64>,
}

/// One attempt of one category.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttemptReport {
    /// 1-based.
    pub number: u32,
    /// Exit code, when the process exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it ended: `Completed`, `ExitCode1`, `DeadlineExceeded`, `OOMKilled`, `Evicted`, ...
    pub reason: AttemptReason,
    /// How long it ran.
    pub duration_secs: f64,
    /// When it started, in seconds since the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_secs: Option<f64>,
    /// Infrastructure rather than test failure.
    #[serde(default)]
    pub infrastructure: bool,
    /// Why its JUnit report could not be used, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_problem: Option<String>,
    /// It exited with a failure, but every failing test its report names
    /// is quarantined: it counts as passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passed_by_quarantine: bool,
}

/// One category.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CategoryReport {
    /// Name from the config.
    pub name: String,
    /// Final phase.
    pub phase: Phase,
    /// Why it ended so (a sentence).
    pub message: String,
    /// Machine-friendly reason.
    pub reason: Reason,
    /// Every attempt.
    pub attempts: Vec<AttemptReport>,
    /// Wall time from the first start to the end.
    pub duration_secs: f64,
    /// Test counts of the last attempt, when the runner's output had them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<TestCounts>,
    /// The failing tests of the last attempt, from its JUnit report
    /// (the first 50, then how many more).
    #[serde(default, skip_serializing_if = "FailedTests::is_empty")]
    pub failed_tests: FailedTests,
    /// It passed, but only on a retry after a test failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flaky: bool,
    /// Tests that failed in one attempt and passed in a later one.
    #[serde(default, skip_serializing_if = "FailedTests::is_empty")]
    pub flaky_tests: FailedTests,
    /// Quarantined tests that failed (any attempt): reported, never the
    /// cause of a failure.
    #[serde(default, skip_serializing_if = "FailedTests::is_empty")]
    pub quarantined_tests: FailedTests,
    /// It failed, and `allow_failure` lets it: the layer went on as if it
    /// had passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allowed_failure: bool,
    /// Its quarantined test ids and patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantine: Vec<String>,
    /// The categories of the layer it depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Every test case of the last attempt's JUnit report, for the JUnit
    /// written for the run (not in the JSON report, which names failures).
    #[serde(skip)]
    pub cases: Vec<TestCase>,
    /// The end of the last attempt's output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_tail: String,
    /// Where the full log is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
}

/// A whole layer run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunReport {
    /// Layer key.
    pub layer: String,
    /// Display name.
    pub display_name: String,
    /// Environment, when one was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Strategy used.
    pub strategy: String,
    /// How it ended.
    pub outcome: LayerOutcome,
    /// Wall time.
    pub duration_secs: f64,
    /// Test counts summed over categories.
    pub counts: TestCounts,
    /// What was run, so that `run --rerun-failed` runs it again (local runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<ReportPlan>,
    /// The report of the earlier run this one reran what failed of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// Every category, in config order.
    pub categories: Vec<CategoryReport>,
}

impl RunReport {
    /// The process exit code for this result: 0 passed, 1 failed or timed out,
    /// 130 cancelled.
    pub fn exit_code(&self) -> i32 {
        match self.outcome {
            LayerOutcome::Succeeded => 0,
            LayerOutcome::Failed | LayerOutcome::TimedOut => 1,
            LayerOutcome::Cancelled => 130,
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A summary table followed by a closing line.
    pub fn summary(&self, colour: bool) -> String {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        if !colour {
            t.force_no_tty();
        }
        t.set_header([
            "category", "phase", "attempts", "passed", "failed", "skipped", "duration", "reason",
        ]);
        for c in &self.categories {
            let counts = c.counts.unwrap_or_default();
            let show = |n: u64| {
                if c.counts.is_some() {
                    n.to_string()
                } else {
                    "-".into()
                }
            };
            let mut phase = Cell::new(c.phase.as_str());
            if colour {
                phase = phase.fg(match c.phase {
                    Phase::Succeeded => Color::Green,
                    Phase::Skipped | Phase::Cancelled => Color::Yellow,
                    _ => Color::Red,
                });
            }
            t.add_row(vec![
                Cell::new(&c.name),
                phase,
                Cell::new(c.attempts.len()),
                Cell::new(show(counts.passed)),
                Cell::new(show(counts.failed)),
                Cell::new(show(counts.skipped)),
                Cell::new(human_duration(Duration::from_secs_f64(c.duration_secs))),
                Cell::new(if c.phase == Phase::Succeeded {
                    String::new()
                } else {
                    c.message.clone()
                }),
            ]);
        }
        let mut failing = String::new();
        let mut list = |title: String, tests: &FailedTests| {
            failing.push_str(&title);
            for line in tests.lines() {
                failing.push_str(&format!("  {line}\n"));
            }
        };
        for c in &self.categories {
            if !c.failed_tests.is_empty() {
                list(format!("failing tests of {}:\n", c.name), &c.failed_tests);
            }
        }
        for c in &self.categories {
            if !c.flaky_tests.is_empty() {
                list(
                    format!("flaky tests of {} (failed, then passed):\n", c.name),
                    &c.flaky_tests,
                );
            }
        }
        for c in &self.categories {
            if !c.quarantined_tests.is_empty() {
                list(
                    format!("quarantined tests of {} (failed, not counted):\n", c.name),
                    &c.quarantined_tests,
                );
            }
        }
        let allowed: Vec<&str> = self
            .categories
            .iter()
            .filter(|c| c.allowed_failure)
            .map(|c| c.name.as_str())
            .collect();
        if !allowed.is_empty() {
            failing.push_str(&format!(
                "failed as allowed (allow_failure): {}\n",
                allowed.join(", ")
            ));
        }
        let flaky: Vec<&str> = self
            .categories
            .iter()
            .filter(|c| c.flaky)
            .map(|c| c.name.as_str())
            .collect();
        if !flaky.is_empty() {
            failing.push_str(&format!(
                "flaky (passed only on a retry): {}\n",
                flaky.join(", ")
            ));
        }
        format!(
            "{t}\n{failing}{} ({}): {} in {} — {} passed, {} failed, {} skipped\n",
            self.display_name,
            self.layer,
            self.outcome.as_str(),
            human_duration(Duration::from_secs_f64(self.duration_secs)),
            self.counts.passed,
            self.counts.failed,
            self.counts.skipped,
        )
    }

    /// JUnit XML: one test suite for the layer with one test case per
    /// category that has no test cases of its own, then one test suite per
    /// category with its report's test cases (classname and name split at
    /// `::`), all categories merged in one file.
    pub fn to_junit(&self) -> Result<String, ResultsError> {
        write_junit("testlayer", &self.junit_suites())
    }

    /// The JUnit test suites of [`RunReport::to_junit`].
    pub fn junit_suites(&self) -> Vec<JunitSuite> {
        let cases = self
            .categories
            .iter()
            .filter(|c| c.cases.is_empty())
            .map(|c| {
                let last = c.attempts.last();
                let detail = if c.log_tail.is_empty() {
                    c.message.clone()
                } else {
                    c.log_tail.clone()
                };
                let outcome = match c.phase {
                    Phase::Succeeded => CaseOutcome::Passed,
                    Phase::Skipped => CaseOutcome::Skipped {
                        message: c.message.clone(),
                    },
                    // Stopped, or never run, because of a cancel: not run
                    // to its end, never a failure; the message says so.
                    Phase::Cancelled => CaseOutcome::Skipped {
                        message: cancelled_message(&c.message),
                    },
                    Phase::Failed if last.is_some_and(|a| a.infrastructure) => CaseOutcome::Error {
                        message: format!("{}: {}", c.reason, c.message),
                        detail,
                    },
                    _ => CaseOutcome::Failed {
                        message: match last.and_then(|a| a.exit_code) {
                            Some(code) => format!("{} (exit code {code}): {}", c.reason, c.message),
                            None => format!("{}: {}", c.reason, c.message),
                        },
                        detail,
                    },
                };
                JunitCase {
                    classname: self.layer.clone(),
                    name: c.name.clone(),
                    time_secs: c.duration_secs,
                    outcome,
                    system_out: None,
                }
            })
            .collect();
        let mut properties = vec![
            ("outcome".to_string(), self.outcome.as_str().to_string()),
            ("strategy".to_string(), self.strategy.clone()),
        ];
        if let Some(env) = &self.environment {
            properties.push(("environment".into(), env.clone()));
        }
        let mut suites = vec![JunitSuite {
            name: self.layer.clone(),
            cases,
            properties,
        }];
        suites.extend(
            self.categories
                .iter()
                .filter(|c| !c.cases.is_empty())
                .map(|c| {
                    let quarantine = Quarantine::new(&c.quarantine).unwrap_or_default();
                    JunitSuite {
                        name: format!("{}/{}", self.layer, c.name),
                        cases: c.cases.iter().map(|t| junit_case(t, &quarantine)).collect(),
                        properties: vec![("phase".into(), c.phase.as_str().into())],
                    }
                }),
        );
        suites
    }
}

/// `a JSON array`, `a number`, `a JSON object with the fields `a`, `b``:
/// what a JSON value is, in words, for a message about a file that is not
/// what it should be.
pub fn json_in_words(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "true or false".into(),
        Value::Number(_) => "a number".into(),
        Value::String(_) => "a text in quotes".into(),
        Value::Array(_) => "a JSON array".into(),
        Value::Object(o) if o.is_empty() => "an empty JSON object".into(),
        Value::Object(o) => {
            let mut names: Vec<String> = o.keys().take(5).map(|k| format!("`{k}`")).collect();
            if o.len() > 5 {
                names.push(format!("{} more", o.len() - 5));
            }
            format!("a JSON object with the fields {}", names.join(", "))
        }
    }
}

/// What a local suite ran (`testlayer run --all` or `-l a,b,c`), kept in
/// its JSON report so that `run --rerun-failed` runs the same suite again:
/// the config text as it was read, the layers, the environment and the
/// command line's overrides.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SuitePlan {
    /// The layer config, as it was read.
    pub config: String,
    /// Where it was read from (for messages).
    pub origin: String,
    /// The layer keys of the suite.
    pub layers: Vec<String>,
    /// The environment, if one was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The command line's overrides.
    #[serde(default)]
    pub overrides: crate::config::Overrides,
}

/// One layer of a suite's JSON report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SuiteLayerReport {
    /// The layer key.
    pub layer: String,
    /// Its run, in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// A background layer (not in the outcome).
    #[serde(default)]
    pub background: bool,
    /// `Passed`, `Failed`, `Skipped`, `Cancelled` ([`LayerState::word`]).
    pub state: String,
    /// The dependency that did not pass, for a skipped layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
    /// Why it could not run, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its report, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<RunReport>,
}

/// A suite's JSON report, locally (`run --all -o json`) and in the cluster
/// (`submit --all --wait -o json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SuiteReport {
    /// The suite's name, in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// `Succeeded` when every layer not in the background passed,
    /// `Cancelled` when one was stopped by the user (or never started
    /// because of it), else `Failed` ([`crate::plan::suite::SuiteOutcome`]).
    pub outcome: String,
    /// The report of the earlier suite this one reran what failed of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// Every layer, in dependency order.
    pub layers: Vec<SuiteLayerReport>,
    /// What was run, so that `run --rerun-failed` runs it again (local
    /// suites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<SuitePlan>,
}

/// A JSON report that `run --rerun-failed` reads: one layer's, or a
/// suite's.
#[derive(Debug, Clone, PartialEq)]
pub enum EarlierReport {
    /// `testlayer run -l LAYER --output json`.
    Layer(Box<RunReport>),
    /// `testlayer run --all --output json` (or `-l a,b,c`).
    Suite(Box<SuiteReport>),
}

/// What the reports `run --rerun-failed` reads look like, in words.
const REPORT_SHAPES: &str = "a layer's has `layer` and `categories`; a suite's, from `run --all`, has `outcome` and a list of `layers`";

/// Why `v` is not a layer report as testlayer writes one: the first field
/// that is missing or not of its kind, in words (`at` prefixes its path).
fn layer_report_problem(v: &serde_json::Value, at: &str) -> String {
    use serde_json::Value;
    let text = |x: &Value| x.is_string();
    let number = |x: &Value| x.is_number();
    let outcome = |x: &Value| serde_json::from_value::<LayerOutcome>(x.clone()).is_ok();
    let counts = |x: &Value| serde_json::from_value::<TestCounts>(x.clone()).is_ok();
    let list = |x: &Value| x.is_array();
    type Fits<'a> = &'a dyn Fn(&Value) -> bool;
    let fields: [(&str, &str, Fits); 7] = [
        ("layer", "a layer key (text)", &text),
        ("display_name", "a name (text)", &text),
        ("strategy", "a strategy name (text)", &text),
        (
            "outcome",
            "one of Succeeded, Failed, TimedOut, Cancelled",
            &outcome,
        ),
        ("duration_secs", "a number of seconds", &number),
        (
            "counts",
            "test counts (`passed`, `failed`, `skipped`)",
            &counts,
        ),
        ("categories", "a list of categories", &list),
    ];
    for (field, kind, fits) in fields {
        match v.get(field) {
            None => return format!("it has no `{at}{field}` ({kind})"),
            Some(x) if !fits(x) => {
                return format!(
                    "its `{at}{field}` is {}, where {kind} belongs",
                    json_in_words(x)
                );
            }
            Some(_) => {}
        }
    }
    let categories = v["categories"].as_array().cloned().unwrap_or_default();
    for (i, c) in categories.iter().enumerate() {
        if serde_json::from_value::<CategoryReport>(c.clone()).is_err() {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            return format!(
                "its `{at}categories[{i}]`{name} is not a category as testlayer writes one"
            );
        }
    }
    if let Some(plan) = v.get("plan")
        && serde_json::from_value::<ReportPlan>(plan.clone()).is_err()
    {
        return format!("its `{at}plan` is not the plan testlayer writes");
    }
    "it is not as testlayer writes one (edited, or written by another program)".into()
}

/// Why `v` is not a suite report as testlayer writes one, in words.
fn suite_report_problem(v: &serde_json::Value) -> String {
    if !v["outcome"].is_string() {
        return format!(
            "its `outcome` is {}, where Succeeded, Failed or Cancelled belongs",
            json_in_words(&v["outcome"])
        );
    }
    let Some(layers) = v["layers"].as_array() else {
        return format!(
            "its `layers` is {}, where a list of layers belongs",
            json_in_words(&v["layers"])
        );
    };
    for (i, l) in layers.iter().enumerate() {
        for field in ["layer", "state"] {
            if !l[field].is_string() {
                return format!(
                    "its `layers[{i}].{field}` is {}, where text belongs",
                    json_in_words(&l[field])
                );
            }
        }
        if let Some(r) = l.get("report").filter(|r| !r.is_null())
            && serde_json::from_value::<RunReport>(r.clone()).is_err()
        {
            return layer_report_problem(r, &format!("layers[{i}].report."));
        }
    }
    if let Some(plan) = v.get("plan").filter(|p| !p.is_null())
        && serde_json::from_value::<SuitePlan>(plan.clone()).is_err()
    {
        return "its `plan` is not the plan testlayer writes".into();
    }
    "it is not as testlayer writes one (edited, or written by another program)".into()
}

impl EarlierReport {
    /// The report in `text`: a layer's, told by its `categories`, or a
    /// suite's, told by its `layers`. Anything else is refused with a
    /// sentence (to follow the file's name) that says what the file is
    /// and what was expected, in words.
    pub fn parse(text: &str) -> Result<EarlierReport, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "is not JSON (line {}, column {}), so not a report of `testlayer run --output json` ({REPORT_SHAPES})",
                e.line(),
                e.column()
            )
        })?;
        if v.get("categories").is_some() {
            return serde_json::from_value::<RunReport>(v.clone())
                .map(|r| EarlierReport::Layer(Box::new(r)))
                .map_err(|_| {
                    format!(
                        "not a JSON report of `testlayer run --output json` as testlayer writes it: {}",
                        layer_report_problem(&v, "")
                    )
                });
        }
        if v.get("layers").is_some_and(serde_json::Value::is_array) && v.get("outcome").is_some() {
            return serde_json::from_value::<SuiteReport>(v.clone())
                .map(|r| EarlierReport::Suite(Box::new(r)))
                .map_err(|_| {
                    format!(
                        "not a suite's JSON report of `testlayer run --all --output json` as testlayer writes it: {}",
                        suite_report_problem(&v)
                    )
                });
        }
        Err(format!(
            "is {}, not a JSON report of `testlayer run --output json` ({REPORT_SHAPES})",
            json_in_words(&v)
        ))
    }
}

/// A cancelled category's message as its JUnit `<skipped>` says it:
/// starting with `cancelled`.
fn cancelled_message(message: &str) -> String {
    if message.to_lowercase().starts_with("cancelled") {
        message.to_string()
    } else if message.is_empty() {
        "cancelled".into()
    } else {
        format!("cancelled: {message}")
    }
}

/// One layer of a suite, as its JUnit file tells it.
#[derive(Debug, Clone, Copy)]
pub struct SuiteJunitLayer<'a> {
    /// The layer key.
    pub key: &'a str,
    /// A background layer (not in the suite's outcome).
    pub background: bool,
    /// Its state in the suite (`Passed`, `Failed`, `Skipped`, `Cancelled`).
    pub state: &'a LayerState,
    /// Its report, when it ran.
    pub report: Option<&'a RunReport>,
    /// Its categories, for a layer with no report: one test case each.
    pub categories: &'a [String],
    /// Why it could not run, when it could not.
    pub error: Option<&'a str>,
}

/// JUnit XML of a suite in one file: each layer's test suites (as
/// [`RunReport::junit_suites`]), the layer's own carrying the properties
/// `state` (and `skipped_because`, `background`); a layer that did not run
/// has one test case per category, `<skipped>` saying why (`cancelled: ...`
/// for one the suite's cancel kept from starting), or `<error>` for one that
/// could not run.
pub fn suite_junit(layers: &[SuiteJunitLayer]) -> Result<String, ResultsError> {
    let mut suites = Vec::new();
    for l in layers {
        let mut own = match l.report {
            Some(r) => r.junit_suites(),
            None => {
                let outcome = match (l.state, l.error) {
                    (LayerState::Skipped(d), _) => CaseOutcome::Skipped {
                        message: format!("skipped: layer {d} did not pass"),
                    },
                    (LayerState::Cancelled, _) => CaseOutcome::Skipped {
                        message: format!(
                            "cancelled: the suite was cancelled before layer {} started",
                            l.key
                        ),
                    },
                    (_, Some(e)) => CaseOutcome::Error {
                        message: format!("layer {} could not run: {e}", l.key),
                        detail: String::new(),
                    },
                    (s, None) => CaseOutcome::Skipped {
                        message: format!("layer {}: {}", l.key, s.word()),
                    },
                };
                let names: Vec<&str> = if l.categories.is_empty() {
                    vec![l.key]
                } else {
                    l.categories.iter().map(String::as_str).collect()
                };
                vec![JunitSuite {
                    name: l.key.to_string(),
                    cases: names
                        .into_iter()
                        .map(|n| JunitCase {
                            classname: l.key.to_string(),
                            name: n.to_string(),
                            time_secs: 0.0,
                            outcome: outcome.clone(),
                            system_out: None,
                        })
                        .collect(),
                    properties: Vec::new(),
                }]
            }
        };
        if let Some(first) = own.first_mut() {
            first
                .properties
                .insert(0, ("state".into(), l.state.word().into()));
            if let LayerState::Skipped(d) = l.state {
                first
                    .properties
                    .insert(1, ("skipped_because".into(), d.clone()));
            }
            if l.background {
                first.properties.push(("background".into(), "true".into()));
            }
        }
        suites.extend(own);
    }
    write_junit("testlayer", &suites)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(name: &str, phase: Phase, message: &str) -> CategoryReport {
        CategoryReport {
            name: name.into(),
            phase,
            message: message.into(),
            reason: Reason::Pending,
            attempts: Vec::new(),
            duration_secs: 1.0,
            counts: None,
            failed_tests: FailedTests::default(),
            flaky: false,
            flaky_tests: FailedTests::default(),
            quarantined_tests: FailedTests::default(),
            allowed_failure: false,
            quarantine: Vec::new(),
            dependencies: Vec::new(),
            cases: Vec::new(),
            log_tail: String::new(),
            log_file: None,
        }
    }

    fn layer_report(
        layer: &str,
        outcome: LayerOutcome,
        categories: Vec<CategoryReport>,
    ) -> RunReport {
        RunReport {
            layer: layer.into(),
            display_name: layer.into(),
            environment: None,
            strategy: "PARALLEL_UNLIMITED".into(),
            outcome,
            duration_secs: 1.0,
            counts: TestCounts::default(),
            plan: None,
            rerun_of: None,
            categories,
        }
    }

    /// `run --rerun-failed` reads a layer's report or a suite's, and
    /// refuses anything else saying what the file is and which field is
    /// wrong, in words: never a parser's words.
    #[test]
    fn an_earlier_report_is_a_layer_s_or_a_suite_s_or_refused_in_words() {
        let layer = layer_report(
            "core",
            LayerOutcome::Failed,
            vec![category("api", Phase::Failed, "x")],
        );
        let text = serde_json::to_string(&layer).unwrap();
        assert_eq!(
            EarlierReport::parse(&text),
            Ok(EarlierReport::Layer(Box::new(layer.clone())))
        );
        let suite = SuiteReport {
            suite: None,
            outcome: "Failed".into(),
            rerun_of: None,
            layers: vec![SuiteLayerReport {
                layer: "core".into(),
                run: None,
                background: false,
                state: "Failed".into(),
                skipped_because: None,
                error: None,
                report: Some(layer.clone()),
            }],
            plan: None,
        };
        let text = serde_json::to_string(&suite).unwrap();
        assert_eq!(
            EarlierReport::parse(&text),
            Ok(EarlierReport::Suite(Box::new(suite)))
        );
        let refused = |text: &str| EarlierReport::parse(text).unwrap_err();
        let cases = [
            (
                r#"{"layer": 3}"#.to_string(),
                "is a JSON object with the fields `layer`, not a JSON report of `testlayer run --output json` (a layer's has `layer` and `categories`; a suite's, from `run --all`, has `outcome` and a list of `layers`)",
            ),
            ("[1]".to_string(), "is a JSON array, not a JSON report"),
            (
                "layers:\n  x: {}\n".to_string(),
                "is not JSON (line 1, column 1), so not a report of `testlayer run --output json`",
            ),
            (
                r#"{"layer": 3, "categories": []}"#.to_string(),
                "not a JSON report of `testlayer run --output json` as testlayer writes it: its `layer` is a number, where a layer key (text) belongs",
            ),
            (
                text.replace(
                    "\"duration_secs\":1.0,\"counts\"",
                    "\"duration_secs\":\"long\",\"counts\"",
                ),
                "not a suite's JSON report of `testlayer run --all --output json` as testlayer writes it: its `layers[0].report.duration_secs` is a text in quotes, where a number of seconds belongs",
            ),
            (
                serde_json::to_string(&layer)
                    .unwrap()
                    .replace("\"phase\":\"Failed\"", "\"phase\":\"Broken\""),
                "its `categories[0]` (api) is not a category as testlayer writes one",
            ),
            (
                r#"{"outcome": "Failed", "layers": [{"layer": "core"}]}"#.to_string(),
                "its `layers[0].state` is null, where text belongs",
            ),
        ];
        for (text, want) in cases {
            let e = refused(&text);
            assert!(
                e.starts_with(want) || e.contains(want),
                "{text}\n{e}\nwanted: {want}"
            );
            for serde_words in [
                "missing field",
                "invalid type",
                "expected",
                "struct",
                "u32",
                "variant",
            ] {
                assert!(!e.contains(serde_words), "{e}");
            }
        }
    }

    /// A cancelled layer's JUnit: what the cancel stopped or kept from
    /// starting is `<skipped>` saying `cancelled`, never a `<failure>`; the
    /// layer's test suite names its outcome, and in a suite's file its
    /// state; a layer that never started is there, each category skipped.
    #[test]
    fn junit_of_a_cancel_says_cancelled_and_holds_no_failure() {
        let x = layer_report(
            "x",
            LayerOutcome::Cancelled,
            vec![
                category("done", Phase::Succeeded, "passed"),
                category("stopped", Phase::Cancelled, "the run was cancelled"),
            ],
        );
        let xml = x.to_junit().unwrap();
        assert!(!xml.contains("<failure"), "{xml}");
        assert!(
            xml.contains(r#"<skipped message="cancelled: the run was cancelled"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<property name="outcome" value="Cancelled"/>"#),
            "{xml}"
        );

        let (cancelled, skipped, failed, passed) = (
            LayerState::Cancelled,
            LayerState::Skipped("broken".into()),
            LayerState::Failed,
            LayerState::Passed,
        );
        let y_categories = ["b1".to_string(), "b2".to_string()];
        let broken = layer_report(
            "broken",
            LayerOutcome::Failed,
            vec![category("c", Phase::Failed, "tests failed")],
        );
        let fine = layer_report(
            "fine",
            LayerOutcome::Succeeded,
            vec![category("f", Phase::Succeeded, "passed")],
        );
        let layer = |key, state, report, categories: &'static [String]| SuiteJunitLayer {
            key,
            background: false,
            state,
            report,
            categories,
            error: None,
        };
        let layers = [
            layer("x", &cancelled, Some(&x), &[]),
            SuiteJunitLayer {
                categories: &y_categories,
                ..layer("y", &cancelled, None, &[])
            },
            layer("broken", &failed, Some(&broken), &[]),
            SuiteJunitLayer {
                categories: &y_categories,
                ..layer("after", &skipped, None, &[])
            },
            SuiteJunitLayer {
                error: Some("category \"z\" has no command"),
                ..layer("z", &failed, None, &[])
            },
            SuiteJunitLayer {
                background: true,
                ..layer("fine", &passed, Some(&fine), &[])
            },
        ];
        let xml = suite_junit(&layers).unwrap();
        let testsuite = |name: &str| {
            let start = xml
                .find(&format!("<testsuite name=\"{name}\""))
                .unwrap_or_else(|| panic!("no test suite {name}: {xml}"));
            let end = start + xml[start..].find("</testsuite>").unwrap();
            xml[start..end].to_string()
        };
        let x = testsuite("x");
        assert!(
            x.contains(r#"<property name="state" value="Cancelled"/>"#),
            "{x}"
        );
        assert!(!x.contains("<failure"), "{x}");
        let y = testsuite("y");
        assert!(y.contains(r#"failures="0" errors="0" skipped="2""#), "{y}");
        assert!(
            y.contains(r#"<property name="state" value="Cancelled"/>"#),
            "{y}"
        );
        assert!(
            y.contains(r#"<testcase classname="y" name="b1" time="0.000">"#)
                && y.contains("cancelled: the suite was cancelled before layer y started"),
            "{y}"
        );
        let after = testsuite("after");
        assert!(
            after.contains(r#"<property name="skipped_because" value="broken"/>"#),
            "{after}"
        );
        assert!(
            after.contains("skipped: layer broken did not pass"),
            "{after}"
        );
        assert!(testsuite("broken").contains("<failure"));
        let z = testsuite("z");
        assert!(z.contains("<error") && z.contains("has no command"), "{z}");
        assert!(testsuite("fine").contains(r#"<property name="background" value="true"/>"#));
        assert_eq!(xml.matches("<failure").count(), 1, "only broken's: {xml}");
    }

    #[test]
    fn the_summary_lists_failing_tests_under_the_table() {
        let mut failed = FailedTests::default();
        for i in 0..(crate::results::MAX_LISTED_TESTS + 2) {
            let case = TestCase {
                id: format!("tests.test_cart::test_{i}"),
                result: CaseResult::Failed,
                message: if i == 0 {
                    "assert 1 == 2".into()
                } else {
                    String::new()
                },
                time_secs: 0.0,
            };
            failed.record(&case, 2);
        }
        let category = CategoryReport {
            name: "checkout".into(),
            phase: Phase::Failed,
            message: "failed".into(),
            reason: Reason::TestsFailed,
            attempts: Vec::new(),
            duration_secs: 1.0,
            counts: None,
            failed_tests: failed,
            flaky: false,
            flaky_tests: FailedTests::default(),
            quarantined_tests: FailedTests::default(),
            allowed_failure: false,
            quarantine: Vec::new(),
            dependencies: Vec::new(),
            cases: Vec::new(),
            log_tail: String::new(),
            log_file: None,
        };
        let report = RunReport {
            layer: "full".into(),
            display_name: "Full".into(),
            environment: None,
            strategy: "PARALLEL_UNLIMITED".into(),
            outcome: LayerOutcome::Failed,
            duration_secs: 1.0,
            counts: TestCounts::default(),
            plan: None,
            rerun_of: None,
            categories: vec![category],
        };
        let text = report.summary(false);
        assert!(
            text.contains(
                "failing tests of checkout:\n  tests.test_cart::test_0: assert 1 == 2\n  tests.test_cart::test_1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  ... and 2 more\nFull (full): Failed"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["categories"][0]["failed_tests"]["more"], 2);
        assert_eq!(
            json["categories"][0]["failed_tests"]["listed"][0]["attempt"],
            2
        );
    }
}
