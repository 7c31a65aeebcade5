//! Errors of reading and writing results.

use std::path::PathBuf;

/// What went wrong reading or writing a test report.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The JUnit file could not be read.
    #[error("cannot read JUnit report {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The JUnit XML is malformed.
    #[error("{origin}: malformed JUnit XML at byte {position}: {problem}")]
    Malformed {
        /// File name or `<input>`.
        origin: String,
        /// Byte offset of the problem.
        position: u64,
        /// What is wrong.
        problem: String,
    },
    /// The document has no `<testsuite>`, `<testsuites>` or `<testcase>` element.
    #[error("{origin}: not a JUnit report (no <testsuites>, <testsuite> or <testcase> element)")]
    NotJunit {
        /// File name or `<input>`.
        origin: String,
    },
    /// The report is larger than the reader takes.
    #[error("{origin}: JUnit report larger than {} MiB; not read (counts come from the log)", limit >> 20)]
    TooLarge {
        /// File name or `<input>`.
        origin: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Writing XML failed.
    #[error("cannot write JUnit XML: {0}")]
    Write(String),
}
