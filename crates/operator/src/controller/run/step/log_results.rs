//! What an attempt's log says: test counts, failing tests, the tail, and
//! what was wrong with its JUnit report.

use k8s_openapi::api::core::v1::ConfigMap;

use super::observed::{AttemptLog, LogAnswer, ReportRead};
use crate::api::{AttemptStatus, CategoryRun, CategoryRunSpec, CategoryRunStatus};
use crate::controller::run::build;
use crate::results::{
    FailedTests, LogTail, OutputScanner, Quarantine, QuarantineSort, ReportOutcome, TestCase,
    read_case_list,
};
use crate::words::AttemptReason;

/// Bounds of the log tail kept in a CategoryRun's status.
const TAIL_LINES: usize = 40;
const TAIL_BYTES: usize = 4096;
/// Bounds of the log tail kept with each attempt.
const ATTEMPT_TAIL_LINES: usize = 10;
const ATTEMPT_TAIL_BYTES: usize = 1024;

/// Whether the attempt at `attempt` has ended.
fn ended(st: &CategoryRunStatus, attempt: Option<usize>) -> bool {
    attempt.is_some_and(|i| st.attempts[i].completion_time.is_some())
}

/// Test counts, failing tests and the log tail of attempt `number` (one
/// that ended, or is about to be stopped), from its log. The category's
/// JUnit report (`spec.junitReport`), when it was read whole, wins over the
/// log's counts, names the failing tests, and sorts out the quarantined ones
/// (`spec.quarantine`); when it was not, an attempt that was not stopped
/// says why (in its status and at the end of its log tail) and the counts
/// come from the log.
pub(super) fn read_results(
    answer: &LogAnswer,
    st: &mut CategoryRunStatus,
    number: u32,
    spec: &CategoryRunSpec,
) {
    let report = spec.junit_report.as_deref();
    let attempt = st.attempts.iter().position(|a| a.number == number);
    let stopped = attempt.is_some_and(|i| st.attempts[i].stop.is_some()) || !ended(st, attempt);
    match answer {
        Ok(log) => {
            let mut scanner = OutputScanner::new();
            let mut tail = LogTail::new(TAIL_LINES, TAIL_BYTES);
            let mut short = LogTail::new(ATTEMPT_TAIL_LINES, ATTEMPT_TAIL_BYTES);
            for line in log.text.lines() {
                scanner.feed_line(line);
                tail.push_line(line);
                short.push_line(line);
            }
            st.counts = scanner.counts().map(|(_, c)| c);
            // The failures of an earlier attempt, to tell flaky tests.
            let earlier = std::mem::take(&mut st.failed_tests);
            let mut problem = None;
            if let (Some(read), Some(path)) = (&log.report, report) {
                match &read.outcome {
                    ReportOutcome::Read(counts) => {
                        st.counts = Some(*counts);
                        let quarantine = Quarantine::new(&spec.quarantine).unwrap_or_default();
                        let retried = !earlier.is_empty()
                            && earlier.listed.iter().all(|t| t.attempt < number);
                        // Every case, when the quarantine or flaky tests need them.
                        let cases = (retried || !quarantine.is_empty())
                            .then(|| read_case_list(&read.cases.bytes));
                        st.failed_tests = read.failed.clone().in_attempt(number);
                        if let Some(cases) = cases.as_deref() {
                            if retried {
                                st.flaky_tests.add_unlisted(earlier.passed_later(cases));
                            }
                            if !quarantine.is_empty() {
                                let a = attempt.and_then(|i| st.attempts.get_mut(i));
                                st.failed_tests = sort_quarantined(
                                    &quarantine,
                                    read,
                                    cases,
                                    number,
                                    a,
                                    &mut st.quarantined_tests,
                                );
                            }
                        }
                    }
                    // A stopped attempt (timed out, cancelled) is not
                    // expected to leave a report; its log is first read
                    // while it still runs.
                    _ if stopped => {}
                    other => problem = other.problem(path),
                }
            }
            if let Some(p) = &problem {
                let line = format!("[testlayer] {p}");
                tail.push_line(&line);
                short.push_line(&line);
            }
            st.log_tail = Some(tail.text()).filter(|t| !t.is_empty());
            if let Some(a) = attempt.and_then(|i| st.attempts.get_mut(i)) {
                a.log_tail = Some(short.text()).filter(|t| !t.is_empty());
                a.report_problem = problem;
            }
        }
        Err(_) if attempt.is_some_and(|i| st.attempts[i].log_tail.is_some()) => {
            // Read before its Pod was deleted; the Pod is gone with its log.
        }
        Err(e) => {
            // The Pod may be gone with its logs; keep what the status has.
            let msg = st.attempts.iter().rev().find_map(|a| a.message.clone());
            st.log_tail = msg.or_else(|| Some(format!("[logs unavailable: {e}]")));
        }
    }
}

/// The failing tests of attempt `number` (`cases`, read from `read`) that
/// `quarantine` does not cover; those it covers are recorded on the attempt
/// `a` and in `quarantined` (the category's). The attempt passes by
/// quarantine when it exited with a failure of its own (an exit code, not
/// its infrastructure, not a stop), its report was kept whole, and at least
/// one test failed, every one quarantined.
fn sort_quarantined(
    quarantine: &Quarantine,
    read: &ReportRead,
    cases: &[TestCase],
    number: u32,
    a: Option<&mut AttemptStatus>,
    quarantined: &mut FailedTests,
) -> FailedTests {
    let mut sort = QuarantineSort::default();
    let mut failed = FailedTests::default();
    for case in cases {
        sort.record(quarantine, case, number);
        if !quarantine.covers(&case.id) {
            failed.record(case, number);
        }
    }
    let whole = read.cases.left_out == 0;
    if !whole {
        // Failures past the kept list are not known one by one.
        failed = read.failed.clone().in_attempt(number);
        failed.listed.retain(|t| !quarantine.covers(&t.id));
    }
    if let Some(a) = a {
        a.passed_by_quarantine = whole
            && sort.passes()
            && a.stop.is_none()
            && !a.infrastructure
            && matches!(a.reason, Some(AttemptReason::ExitCode(_)));
        a.quarantined_tests = sort.quarantined.clone();
    }
    quarantined.add_unlisted(sort.quarantined);
    failed
}

/// The ConfigMap that keeps the test cases of attempt `number` of `cr`,
/// when it ended on its own with a report read whole (its name recorded on
/// the attempt); `None` otherwise, or when one was made already.
pub(super) fn keep_test_cases(
    cr: &CategoryRun,
    st: &mut CategoryRunStatus,
    number: u32,
    answer: &LogAnswer,
) -> Option<ConfigMap> {
    let Ok(AttemptLog {
        report: Some(read), ..
    }) = answer
    else {
        return None;
    };
    if !matches!(read.outcome, ReportOutcome::Read(_)) {
        return None;
    }
    let a = st.attempts.iter_mut().find(|a| a.number == number)?;
    if a.stop.is_some() || a.test_cases.is_some() {
        return None;
    }
    let cm = build::test_cases::test_cases_config_map(cr, number, &read.cases);
    a.test_cases = cm.metadata.name.clone();
    Some(cm)
}
