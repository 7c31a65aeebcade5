//! Test results as runners report them: counts read from the output of common
//! test runners or from JUnit XML, JUnit XML written for a run, and a bounded
//! tail of a log. Pure functions over text, no I/O except the file helpers.

mod case_list;
mod counts;
mod error;
mod failed_tests;
mod junit_read;
mod junit_write;
mod quarantine;
mod report_channel;
mod scanner;
mod tail;

pub use case_list::{CaseListWriter, MAX_LIST_BYTES, read_case_list};
pub use counts::TestCounts;
pub use error::ResultsError;
pub use failed_tests::{FailedTest, FailedTests, MAX_LISTED_TESTS};
pub use junit_read::{
    CaseResult, MAX_ID_CHARS, MAX_MESSAGE_CHARS, MAX_REPORT_BYTES, TestCase, clean_text,
    counts_from_junit_xml, read_junit, read_junit_file,
};
pub use junit_write::{CaseOutcome, JunitCase, JunitSuite, write_junit};
pub use quarantine::{IdPattern, MAX_PATTERN_CHARS, PatternError, Quarantine, QuarantineSort};
pub use report_channel::{
    REPORT_MARK, ReportOutcome, WRAPPER, read_attempt_log, unwrapped_command, wrapped_command,
};
pub use scanner::{OutputScanner, PRECEDENCE, RunnerFormat};
pub use tail::LogTail;
