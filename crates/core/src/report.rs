//! The result of a layer run, as the local executor and `submit` print and save
//! it: a summary table, JSON, and JUnit XML.

use std::time::Duration;

use comfy_table::{Cell, Color, Table, presets::UTF8_FULL_CONDENSED};

use crate::plan::describe::human_duration;
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
                    Phase::Skipped | Phase::Cancelled => CaseOutcome::Skipped {
                        message: c.message.clone(),
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
        let mut properties = vec![("strategy".to_string(), self.strategy.clone())];
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
                        properties: Vec::new(),
                    }
                }),
        );
        suites
    }

    /// JUnit XML of several runs (the layers of a suite) in one file.
    pub fn suite_junit(reports: &[&RunReport]) -> Result<String, ResultsError> {
        let suites: Vec<JunitSuite> = reports.iter().flat_map(|r| r.junit_suites()).collect();
        write_junit("testlayer", &suites)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
