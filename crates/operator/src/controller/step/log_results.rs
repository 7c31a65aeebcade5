//! What an attempt's log says: test counts, failing tests, the tail, and
//! what was wrong with its JUnit report.

use k8s_openapi::api::core::v1::ConfigMap;

use super::observed::{AttemptLog, LogAnswer};
use crate::api::{CategoryRun, CategoryRunStatus};
use crate::controller::build;
use crate::results::{LogTail, OutputScanner, ReportOutcome, read_case_list};

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
/// that ended, or is about to be stopped), from its log. `report`: the
/// category's JUnit report, whose counts win over the log's when it was
/// read whole; when it was not, an attempt that was not stopped says why (in
/// its status and at the end of its log tail) and the counts come from the
/// log.
pub(super) fn read_results(
    answer: &LogAnswer,
    st: &mut CategoryRunStatus,
    number: u32,
    report: Option<&str>,
) {
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
                        st.failed_tests = read.failed.clone().in_attempt(number);
                        if !earlier.is_empty() && earlier.listed.iter().all(|t| t.attempt < number)
                        {
                            let now = read_case_list(&read.cases.bytes);
                            st.flaky_tests.add_unlisted(earlier.passed_later(&now));
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
    let cm = build::test_cases_config_map(cr, number, &read.cases);
    a.test_cases = cm.metadata.name.clone();
    Some(cm)
}
