//! JUnit reports printed to the log by the report wrapper: counts and
//! failing tests from the report, and a report that cannot be used named.

use super::*;
use crate::api::names::CASES_KEY;
use crate::api::names::CONTAINER;
use crate::results::{
    CaseResult, MAX_LISTED_TESTS, REPORT_MARK, read_case_list, unwrapped_command,
};

/// The report as the wrapper prints it after the command's output.
fn printed(xml: &str) -> String {
    let mut s = format!("\n{REPORT_MARK} begin\n");
    for l in xml.lines() {
        s.push_str(&format!("{REPORT_MARK} {l}\n"));
    }
    s.push_str(&format!("\n{REPORT_MARK} end"));
    s
}

const REPORTS: &str = r#"
layers:
  reports:
    execution_mode: "parallel"
    categories:
      - name: "many"
        timeout_seconds: 30
        junit_report: "out/junit.xml"
      - name: "missing"
        timeout_seconds: 30
        junit_report: "out/junit.xml"
      - name: "broken"
        timeout_seconds: 30
        junit_report: "out/junit.xml"
      - name: "plain"
        timeout_seconds: 30
"#;

#[test]
fn a_report_gives_counts_and_names_failing_tests_and_a_bad_one_is_named() {
    let failing = MAX_LISTED_TESTS + 10;
    let mut xml = String::from("<testsuite name=\"pytest\">\n");
    for i in 0..failing {
        xml.push_str(&format!(
            "  <testcase classname=\"tests.test_cart\" name=\"test_{i}\"><failure message=\"assert {i} == 0\">trace</failure></testcase>\n"
        ));
    }
    xml.push_str("  <testcase classname=\"tests.test_cart\" name=\"test_ok\"/>\n</testsuite>");
    let mut w =
        World::new("reports", REPORTS, json!({"command": "pytest"})).scripts(move |c, _| match c {
            // The log's own summary disagrees: the report wins.
            "many" => Script::fail(1.0, 1, &format!("1 failed in 0.1s{}", printed(&xml))),
            "missing" => Script::pass(1.0, &format!("3 passed in 0.1s\n\n{REPORT_MARK} missing")),
            "broken" => Script::pass(1.0, &format!("2 passed in 0.1s{}", printed("<<not xml"))),
            _ => Script::pass(1.0, "4 passed in 0.1s"),
        });
    w.run_until(LONG, |w| w.pods.len() == 4);
    for (name, pod) in &w.pods {
        let c = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.name, CONTAINER);
        let command = c.command.clone().unwrap();
        let policy = c.termination_message_policy.as_deref();
        if name.contains("-plain-") {
            assert_eq!(command, ["/bin/sh", "-c", "pytest"]);
            assert_eq!(policy, Some("FallbackToLogsOnError"));
        } else {
            assert_eq!(
                unwrapped_command(&command),
                Some(("pytest", "out/junit.xml"))
            );
            assert_eq!(policy, Some("File"), "{name}");
        }
    }
    w.run_to_end(LONG);

    let many = w.category("many").status.clone().unwrap();
    assert_eq!(many.phase, Some(Phase::Failed));
    let c = many.counts.unwrap();
    assert_eq!((c.passed, c.failed), (1, failing as u64));
    let f = &many.failed_tests;
    assert_eq!(f.listed.len(), MAX_LISTED_TESTS);
    assert_eq!(f.more, 10);
    assert_eq!(f.listed[3].id, "tests.test_cart::test_3");
    assert_eq!(f.listed[3].message, "assert 3 == 0");
    assert_eq!(f.listed[3].attempt, 1);
    assert_eq!(many.attempts[0].report_problem, None);
    let tail = many.log_tail.clone().unwrap();
    assert!(
        tail.contains("1 failed") && !tail.contains(REPORT_MARK),
        "{tail}"
    );
    // Every test case is kept in a ConfigMap the attempt names, made
    // before the status that names it.
    let name = many.attempts[0]
        .test_cases
        .clone()
        .expect("a ConfigMap of test cases");
    let cm = &w.test_cases[&name];
    let cases = read_case_list(&cm.binary_data.as_ref().unwrap()[CASES_KEY].0);
    assert_eq!(cases.len(), failing + 1);
    assert_eq!(cases[failing].id, "tests.test_cart::test_ok");
    assert_eq!(cases[failing].result, CaseResult::Passed);
    let made = w
        .writes
        .iter()
        .position(|x| *x == format!("create test cases {name}"))
        .expect("created");
    assert!(
        w.writes[made + 1..]
            .iter()
            .any(|x| x.starts_with("cr status") && x.contains("many")),
        "{:?}",
        w.writes
    );
    assert_eq!(w.test_cases.len(), 1, "only a report read whole is kept");

    let missing = w.category("missing").status.clone().unwrap();
    assert_eq!(missing.phase, Some(Phase::Succeeded));
    assert_eq!(missing.counts.map(|c| c.passed), Some(3));
    assert!(missing.failed_tests.is_empty());
    let problem = "JUnit report out/junit.xml was not written";
    assert_eq!(missing.attempts[0].report_problem.as_deref(), Some(problem));
    assert!(
        missing
            .log_tail
            .unwrap()
            .ends_with(&format!("[testlayer] {problem}")),
        "the tail says so too"
    );

    let broken = w.category("broken").status.clone().unwrap();
    assert_eq!(broken.counts.map(|c| c.passed), Some(2));
    let why = broken.attempts[0].report_problem.clone().unwrap();
    assert!(
        why.starts_with("out/junit.xml: malformed JUnit XML"),
        "{why}"
    );

    let plain = w.category("plain").status.clone().unwrap();
    assert_eq!(plain.counts.map(|c| c.passed), Some(4));
    assert_eq!(plain.attempts[0].report_problem, None);
}

const FLAKY: &str = r#"
layers:
  flaky:
    execution_mode: "parallel"
    categories:
      - name: "retried"
        timeout_seconds: 30
        retries: 2
        retry_backoff_seconds: 0
        junit_report: "out/junit.xml"
      - name: "steady"
        timeout_seconds: 30
        junit_report: "out/junit.xml"
"#;

#[test]
fn a_category_that_passes_on_a_retry_is_flaky_and_names_its_flaky_tests() {
    let report = |a: &str, b: &str| {
        printed(&format!(
            "<testsuite>\n<testcase classname=\"t\" name=\"a\">{a}</testcase>\n<testcase classname=\"t\" name=\"b\">{b}</testcase>\n</testsuite>"
        ))
    };
    let fail = "<failure message=\"timing\"/>";
    let mut w = World::new("flaky", FLAKY, json!({"command": "pytest"})).scripts(move |c, n| {
        match (c, n) {
            // Attempt 1: a and b fail; attempt 2: b still fails; 3: all pass.
            ("retried", 1) => Script::fail(1.0, 1, &format!("2 failed{}", report(fail, fail))),
            ("retried", 2) => Script::fail(1.0, 1, &format!("1 failed{}", report("", fail))),
            _ => Script::pass(1.0, &format!("2 passed{}", report("", ""))),
        }
    });
    w.run_to_end(LONG);
    let st = w.category("retried").status.clone().unwrap();
    assert_eq!(st.phase, Some(Phase::Succeeded), "{st:#?}");
    assert!(st.flaky);
    assert_eq!(st.reason, Some(Reason::PassedOnRetry));
    assert!(st.failed_tests.is_empty(), "the last attempt passed");
    let flaky: Vec<(&str, u32)> = st
        .flaky_tests
        .listed
        .iter()
        .map(|t| (t.id.as_str(), t.attempt))
        .collect();
    assert_eq!(flaky, [("t::a", 1), ("t::b", 2)], "{st:#?}");
    assert_eq!(st.flaky_tests.listed[0].message, "timing");

    let steady = w.category("steady").status.clone().unwrap();
    assert!(!steady.flaky && steady.flaky_tests.is_empty());
    assert_eq!(steady.reason, Some(Reason::Passed));

    let run = w.run.status.clone().unwrap();
    let counts = run.flaky.expect("the run counts its flaky parts");
    assert_eq!((counts.categories, counts.tests), (1, 2));
}

const QUARANTINE: &str = r#"
layers:
  q:
    execution_mode: "parallel"
    quarantine: ["t::known_flaky_*"]
    categories:
      - name: "covered"
        timeout_seconds: 30
        junit_report: "out/junit.xml"
        quarantine: ["t::slow[db-1]"]
      - name: "mixed"
        timeout_seconds: 30
        junit_report: "out/junit.xml"
      - name: "nothing-parsed"
        timeout_seconds: 30
        junit_report: "out/junit.xml"
      - name: "after"
        timeout_seconds: 30
        dependencies: ["covered"]
"#;

#[test]
fn an_attempt_whose_failing_tests_are_all_quarantined_passes_and_reports_them() {
    let suite = |cases: &[(&str, bool)]| {
        let mut xml = String::from("<testsuite>\n");
        for (name, failed) in cases {
            let body = if *failed {
                "<failure message=\"boom\"/>"
            } else {
                ""
            };
            xml.push_str(&format!(
                "<testcase classname=\"t\" name=\"{name}\">{body}</testcase>\n"
            ));
        }
        xml.push_str("</testsuite>");
        printed(&xml)
    };
    let mut w = World::new("q", QUARANTINE, json!({"command": "pytest"})).scripts(move |c, _| {
        match c {
            "covered" => Script::fail(
                1.0,
                1,
                &suite(&[
                    ("ok", false),
                    ("known_flaky_login", true),
                    ("slow[db-1]", true),
                ]),
            ),
            "mixed" => Script::fail(
                1.0,
                1,
                &suite(&[("known_flaky_cart", true), ("real_bug", true)]),
            ),
            // Exit 1 with a report of no failing test: a failure all the same.
            "nothing-parsed" => Script::fail(1.0, 1, &suite(&[("ok", false)])),
            _ => Script::pass(1.0, "1 passed"),
        }
    });
    w.run_to_end(LONG);

    let covered = w.category("covered").status.clone().unwrap();
    assert_eq!(covered.phase, Some(Phase::Succeeded), "{covered:#?}");
    assert_eq!(covered.reason, Some(Reason::PassedQuarantined));
    assert!(covered.failed_tests.is_empty());
    let ids: Vec<&str> = covered
        .quarantined_tests
        .listed
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(ids, ["t::known_flaky_login", "t::slow[db-1]"]);
    assert!(covered.attempts[0].passed_by_quarantine);
    assert_eq!(
        covered.attempts[0].exit_code,
        Some(1),
        "the exit code stays"
    );
    assert!(
        covered
            .message
            .as_deref()
            .unwrap()
            .contains("quarantined: t::known_flaky_login, t::slow[db-1]"),
        "{:?}",
        covered.message
    );
    assert_eq!(
        w.cat_phase("after"),
        Some(Phase::Succeeded),
        "it counts as passed"
    );

    let mixed = w.category("mixed").status.clone().unwrap();
    assert_eq!(mixed.phase, Some(Phase::Failed));
    let failing: Vec<&str> = mixed
        .failed_tests
        .listed
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(failing, ["t::real_bug"], "only the failure that counts");
    assert_eq!(mixed.quarantined_tests.listed[0].id, "t::known_flaky_cart");
    assert!(!mixed.attempts[0].passed_by_quarantine);

    let none = w.category("nothing-parsed").status.clone().unwrap();
    assert_eq!(none.phase, Some(Phase::Failed));

    let run = w.run.status.clone().unwrap();
    assert_eq!(run.phase, Some(LayerPhase::Failed));
    assert_eq!(run.quarantined_tests, 3);
    assert_eq!(run.failed_categories, ["mixed", "nothing-parsed"]);
}

const ALLOWED: &str = r#"
layers:
  allowed:
    execution_mode: "parallel"
    fail_fast: true
    categories:
      - name: "experimental"
        timeout_seconds: 30
        allow_failure: true
      - name: "slow-and-allowed"
        timeout_seconds: 2
        allow_failure: true
      - name: "after"
        timeout_seconds: 30
        dependencies: ["experimental", "slow-and-allowed"]
"#;

#[test]
fn an_allowed_failure_is_reported_without_failing_the_run_or_stopping_dependents() {
    let mut w =
        World::new("allowed", ALLOWED, json!({"command": "pytest"})).scripts(|c, _| match c {
            "experimental" => Script::fail(1.0, 3, "1 failed"),
            "slow-and-allowed" => Script::forever(),
            _ => Script::pass(1.0, "1 passed"),
        });
    w.run_to_end(LONG);
    let exp = w.category("experimental").status.clone().unwrap();
    assert_eq!(exp.phase, Some(Phase::Failed));
    assert!(exp.allowed_failure);
    assert!(
        exp.message.as_deref().unwrap().contains("allowed"),
        "{:?}",
        exp.message
    );
    let slow = w.category("slow-and-allowed").status.clone().unwrap();
    assert_eq!(slow.phase, Some(Phase::TimedOut));
    assert!(slow.allowed_failure);
    assert_eq!(
        w.cat_phase("after"),
        Some(Phase::Succeeded),
        "neither fail-fast nor a skip"
    );
    let run = w.run.status.clone().unwrap();
    assert_eq!(run.phase, Some(LayerPhase::Succeeded));
    assert!(run.failed_categories.is_empty());
    assert_eq!(run.allowed_failures, ["experimental", "slow-and-allowed"]);
    let message = run.message.unwrap();
    assert!(
        message.starts_with(
            "1 of 3 categories passed; failed as allowed: experimental, slow-and-allowed"
        ),
        "{message}"
    );
}
