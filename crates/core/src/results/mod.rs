//! Test results as runners report them: counts read from the output of common
//! test runners or from JUnit XML, JUnit XML written for a run, and a bounded
//! tail of a log. Pure functions over text, no I/O except the file helpers.

mod counts;
mod error;
mod junit_read;
mod junit_write;
mod scanner;
mod tail;

pub use counts::TestCounts;
pub use error::ResultsError;
pub use junit_read::{counts_from_junit_file, counts_from_junit_xml};
pub use junit_write::{CaseOutcome, JunitCase, JunitSuite, write_junit};
pub use scanner::{OutputScanner, RunnerFormat};
pub use tail::LogTail;
