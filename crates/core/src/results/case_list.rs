//! The full list of an attempt's test cases, kept compressed where it
//! outlives the attempt (a ConfigMap in Kubernetes): gzip of one JSON object
//! per line, bounded in size.

use std::io::{BufRead, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::{CaseResult, TestCase};

/// Compressed bytes a list holds at most (a ConfigMap holds 1 MiB).
pub const MAX_LIST_BYTES: usize = 900 << 10;

/// One line of the list.
#[derive(Serialize, Deserialize)]
struct Line {
    id: String,
    result: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(default)]
    time: f64,
}

/// Builds a list as cases stream in. Once the compressed list nears
/// [`MAX_LIST_BYTES`], passed and skipped cases are left out (counted), and
/// past it failed ones too: failures are what people look for.
pub struct CaseListWriter {
    gz: GzEncoder<Vec<u8>>,
    written: usize,
    left_out: u64,
}

impl Default for CaseListWriter {
    fn default() -> Self {
        Self {
            gz: GzEncoder::new(Vec::new(), Compression::default()),
            written: 0,
            left_out: 0,
        }
    }
}

impl CaseListWriter {
    /// Adds `case`.
    pub fn push(&mut self, case: &TestCase) {
        // The encoder's output so far, plus what it may still hold back.
        let size = self.gz.get_ref().len() + 64 * 1024;
        let failed = case.result == CaseResult::Failed;
        if size > MAX_LIST_BYTES || (!failed && size > MAX_LIST_BYTES * 3 / 4) {
            self.left_out += 1;
            return;
        }
        let line = Line {
            id: case.id.clone(),
            result: match case.result {
                CaseResult::Passed => "passed",
                CaseResult::Failed => "failed",
                CaseResult::Skipped => "skipped",
            }
            .into(),
            message: case.message.clone(),
            time: case.time_secs,
        };
        if let Ok(mut text) = serde_json::to_vec(&line) {
            text.push(b'\n');
            if self.gz.write_all(&text).is_ok() {
                self.written += 1;
            } else {
                self.left_out += 1;
            }
        }
    }

    /// The compressed list, the cases in it, and the cases left out.
    pub fn finish(self) -> (Vec<u8>, usize, u64) {
        let bytes = self.gz.finish().unwrap_or_default();
        (bytes, self.written, self.left_out)
    }
}

/// The cases of a compressed list (lines that do not decode are skipped).
pub fn read_case_list(compressed: &[u8]) -> Vec<TestCase> {
    let reader = std::io::BufReader::new(GzDecoder::new(compressed));
    reader
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Line>(&l).ok())
        .map(|l| TestCase {
            id: l.id,
            result: match l.result.as_str() {
                "failed" => CaseResult::Failed,
                "skipped" => CaseResult::Skipped,
                _ => CaseResult::Passed,
            },
            message: l.message,
            time_secs: l.time,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(i: usize, result: CaseResult) -> TestCase {
        TestCase {
            id: format!("tests.test_mod_{}::test_case_number_{i}", i % 97),
            result,
            message: if result == CaseResult::Failed {
                format!("assert {i} == 0")
            } else {
                String::new()
            },
            time_secs: 0.25,
        }
    }

    #[test]
    fn a_list_round_trips() {
        let mut w = CaseListWriter::default();
        let cases = [
            case(1, CaseResult::Passed),
            case(2, CaseResult::Failed),
            case(3, CaseResult::Skipped),
        ];
        for c in &cases {
            w.push(c);
        }
        let (bytes, written, left_out) = w.finish();
        assert_eq!((written, left_out), (3, 0));
        assert_eq!(read_case_list(&bytes), cases);
        assert!(read_case_list(b"not gzip").is_empty());
    }

    #[test]
    fn a_huge_list_stays_bounded_and_keeps_failures_longest() {
        let mut w = CaseListWriter::default();
        let n = 400_000;
        for i in 0..n {
            let result = if i % 10 == 0 {
                CaseResult::Failed
            } else {
                CaseResult::Passed
            };
            w.push(&case(i, result));
        }
        let (bytes, written, left_out) = w.finish();
        assert!(bytes.len() <= MAX_LIST_BYTES, "{} bytes", bytes.len());
        assert_eq!(written as u64 + left_out, n as u64);
        let back = read_case_list(&bytes);
        assert_eq!(back.len(), written);
        // Past three quarters only failures were added.
        let failed = back
            .iter()
            .filter(|c| c.result == CaseResult::Failed)
            .count();
        assert!(failed * 10 > back.len(), "{failed} of {}", back.len());
    }
}
