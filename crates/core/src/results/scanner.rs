//! Reads test counts from the console output of common test runners.
//!
//! Lines are fed one at a time (the scanner keeps only small counters, never
//! the output). Each runner's summary lines are recognised independently; when
//! several runners' lines appear, the most specific format wins, in the order
//! of [`PRECEDENCE`].

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::TestCounts;

/// Lines longer than this are ignored: summaries are short, and a huge line
/// is not worth a regex pass.
const MAX_LINE: usize = 4096;

/// Which runner the counts were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum RunnerFormat {
    /// `cargo test` (`test result: ok. 5 passed; 0 failed; 1 ignored; ...`).
    CargoTest,
    /// pytest (`==== 5 passed, 1 skipped in 0.12s ====`).
    Pytest,
    /// Jest (`Tests:       1 failed, 5 passed, 6 total`).
    Jest,
    /// Cypress run tables (`│ Passing: 4 │`).
    Cypress,
    /// Mocha (`5 passing (12ms)`, `1 failing`, `2 pending`).
    Mocha,
    /// `go test -v` (`--- PASS: TestX (0.00s)`).
    GoTest,
    /// Test Anything Protocol (`ok 1 - ...`, `not ok 2 - ...`).
    Tap,
    /// A JUnit XML report file.
    JUnitXml,
}

impl RunnerFormat {
    /// Name shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerFormat::CargoTest => "cargo test",
            RunnerFormat::Pytest => "pytest",
            RunnerFormat::Jest => "jest",
            RunnerFormat::Cypress => "cypress",
            RunnerFormat::Mocha => "mocha",
            RunnerFormat::GoTest => "go test",
            RunnerFormat::Tap => "TAP",
            RunnerFormat::JUnitXml => "JUnit XML",
        }
    }
}

/// Order of precedence when several formats were seen: the counts of the
/// first seen win. The command-line reference
/// (`docs/reference/command-line.md`) states this order, and a test holds it
/// to this list.
pub const PRECEDENCE: [RunnerFormat; 7] = [
    RunnerFormat::CargoTest,
    RunnerFormat::Pytest,
    RunnerFormat::Jest,
    RunnerFormat::Cypress,
    RunnerFormat::Mocha,
    RunnerFormat::GoTest,
    RunnerFormat::Tap,
];

fn re(pattern: &str) -> Regex {
    // The patterns are constants checked by the unit tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad built-in pattern {pattern}: {e}"))
}

static ANSI: LazyLock<Regex> =
    LazyLock::new(|| re(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07"));
static CARGO: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored;")
});
static PYTEST_LINE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^=*\s*((?:\d+ (?:passed|failed|skipped|errors?|xfailed|xpassed|warnings?|deselected|rerun)(?:, )?)+) in \d+(?:\.\d+)?s\b",
    )
});
static PYTEST_ITEM: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+) ([a-z]+)"));
static JEST: LazyLock<Regex> = LazyLock::new(|| re(r"^Tests:\s+((?:\d+ [a-z]+, )*\d+ total)\s*$"));
static CYPRESS: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\s*│\s*(Passing|Failing|Pending|Skipped):\s+(\d+)\s*│"));
static MOCHA: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\s*(\d+) (passing|failing|pending)(?: \(\d+(?:\.\d+)?m?s\))?\s*$"));
static GO: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*--- (PASS|FAIL|SKIP): (\S+) \("));
static TAP: LazyLock<Regex> = LazyLock::new(|| re(r"^(not )?ok\b(?:\s+\d+)?(.*)$"));
static TAP_SKIP: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)#\s*(skip|todo)\b"));

/// Accumulates counts per format over a stream of output lines.
#[derive(Debug, Default, Clone)]
pub struct OutputScanner {
    seen: [Option<TestCounts>; 7],
}

impl OutputScanner {
    /// A scanner that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&mut self, format: RunnerFormat) -> &mut TestCounts {
        let i = PRECEDENCE
            .iter()
            .position(|f| *f == format)
            .unwrap_or(PRECEDENCE.len() - 1);
        self.seen[i].get_or_insert_with(TestCounts::default)
    }

    /// Feeds one line of output (with or without its line ending).
    pub fn feed_line(&mut self, raw: &str) {
        if raw.len() > MAX_LINE {
            return;
        }
        let stripped;
        let line = if raw.contains('\x1b') {
            stripped = ANSI.replace_all(raw, "");
            stripped.as_ref()
        } else {
            raw
        };
        let line = line.trim_end_matches(['\r', '\n']);

        if let Some(c) = CARGO.captures(line) {
            let n = |i: usize| c[i].parse::<u64>().unwrap_or(0);
            let (p, f, s) = (n(1), n(2), n(3));
            let slot = self.slot(RunnerFormat::CargoTest);
            slot.add(TestCounts {
                passed: p,
                failed: f,
                skipped: s,
            });
            return;
        }
        if let Some(c) = PYTEST_LINE.captures(line) {
            let mut counts = TestCounts::default();
            for item in PYTEST_ITEM.captures_iter(&c[1]) {
                let n = item[1].parse::<u64>().unwrap_or(0);
                match &item[2] {
                    "passed" | "xpassed" => counts.passed += n,
                    "failed" | "error" | "errors" => counts.failed += n,
                    "skipped" | "xfailed" => counts.skipped += n,
                    _ => {}
                }
            }
            self.slot(RunnerFormat::Pytest).add(counts);
            return;
        }
        if let Some(c) = JEST.captures(line) {
            let mut counts = TestCounts::default();
            for item in PYTEST_ITEM.captures_iter(&c[1]) {
                let n = item[1].parse::<u64>().unwrap_or(0);
                match &item[2] {
                    "passed" => counts.passed += n,
                    "failed" => counts.failed += n,
                    "skipped" | "todo" | "pending" => counts.skipped += n,
                    _ => {}
                }
            }
            self.slot(RunnerFormat::Jest).add(counts);
            return;
        }
        if let Some(c) = CYPRESS.captures(line) {
            let n = c[2].parse::<u64>().unwrap_or(0);
            let slot = self.slot(RunnerFormat::Cypress);
            match &c[1] {
                "Passing" => slot.passed += n,
                "Failing" => slot.failed += n,
                _ => slot.skipped += n,
            }
            return;
        }
        if let Some(c) = MOCHA.captures(line) {
            let n = c[1].parse::<u64>().unwrap_or(0);
            let slot = self.slot(RunnerFormat::Mocha);
            match &c[2] {
                "passing" => slot.passed += n,
                "failing" => slot.failed += n,
                _ => slot.skipped += n,
            }
            return;
        }
        if let Some(c) = GO.captures(line) {
            // Subtests (`TestX/case`) are reported under their parent.
            if !c[2].contains('/') {
                let slot = self.slot(RunnerFormat::GoTest);
                match &c[1] {
                    "PASS" => slot.passed += 1,
                    "FAIL" => slot.failed += 1,
                    _ => slot.skipped += 1,
                }
            }
            return;
        }
        if let Some(c) = TAP.captures(line) {
            let skip = TAP_SKIP.is_match(&c[2]);
            let slot = self.slot(RunnerFormat::Tap);
            if skip {
                slot.skipped += 1;
            } else if c.get(1).is_some() {
                slot.failed += 1;
            } else {
                slot.passed += 1;
            }
        }
    }

    /// The counts of the most specific format seen, if any.
    pub fn counts(&self) -> Option<(RunnerFormat, TestCounts)> {
        PRECEDENCE
            .iter()
            .zip(self.seen.iter())
            .find_map(|(f, c)| c.map(|c| (*f, c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan(text: &str) -> Option<(RunnerFormat, TestCounts)> {
        let mut s = OutputScanner::new();
        text.lines().for_each(|l| s.feed_line(l));
        s.counts()
    }

    fn c(passed: u64, failed: u64, skipped: u64) -> TestCounts {
        TestCounts {
            passed,
            failed,
            skipped,
        }
    }

    #[test]
    fn pytest_summaries() {
        let out = "tests/test_a.py ..s.F\n\
                   =========== 1 failed, 3 passed, 1 skipped, 2 warnings in 0.12s ===========\n";
        assert_eq!(scan(out), Some((RunnerFormat::Pytest, c(3, 1, 1))));
        assert_eq!(
            scan("5 passed in 0.01s"),
            Some((RunnerFormat::Pytest, c(5, 0, 0)))
        );
        assert_eq!(
            scan("== 2 passed, 1 error, 1 xfailed, 1 xpassed in 65.12s (0:01:05) =="),
            Some((RunnerFormat::Pytest, c(3, 1, 1)))
        );
        // Coloured output.
        assert_eq!(
            scan(
                "\x1b[31m\x1b[1m==== \x1b[32m4 passed\x1b[0m, \x1b[31m1 failed\x1b[0m in 1.00s ====\x1b[0m"
            ),
            Some((RunnerFormat::Pytest, c(4, 1, 0)))
        );
        // Not a summary: no duration.
        assert_eq!(scan("we passed 3 passed checks"), None);
    }

    #[test]
    fn cargo_test_sums_binaries() {
        let out = "running 3 tests\n\
                   test a ... ok\n\
                   test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
                   test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n";
        assert_eq!(scan(out), Some((RunnerFormat::CargoTest, c(5, 1, 1))));
    }

    #[test]
    fn jest_and_mocha_and_cypress() {
        assert_eq!(
            scan(
                "Test Suites: 1 failed, 2 passed, 3 total\nTests:       1 failed, 2 skipped, 1 todo, 7 passed, 11 total\n"
            ),
            Some((RunnerFormat::Jest, c(7, 1, 3)))
        );
        assert_eq!(
            scan("  ✓ adds\n\n  4 passing (12ms)\n  1 pending\n  2 failing\n"),
            Some((RunnerFormat::Mocha, c(4, 2, 1)))
        );
        let cypress = "  5 passing (3s)\n  │ Tests:        6 │\n  │ Passing:      5 │\n  │ Failing:      1 │\n  │ Pending:      0 │\n  │ Skipped:      0 │\n";
        // Cypress prints mocha's lines too; its own table wins.
        assert_eq!(scan(cypress), Some((RunnerFormat::Cypress, c(5, 1, 0))));
    }

    #[test]
    fn go_test_counts_top_level_tests() {
        let out = "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n    --- PASS: TestB/one (0.00s)\n    --- FAIL: TestB/two (0.00s)\n--- FAIL: TestB (0.00s)\n--- SKIP: TestC (0.00s)\nFAIL\n";
        assert_eq!(scan(out), Some((RunnerFormat::GoTest, c(1, 1, 1))));
    }

    #[test]
    fn tap() {
        let out = "TAP version 13\n1..4\nok 1 - a\nnot ok 2 - b\nok 3 - c # SKIP no db\nnot ok 4 - d # TODO later\n";
        assert_eq!(scan(out), Some((RunnerFormat::Tap, c(1, 1, 2))));
    }

    /// A summary of each runner, as it prints one.
    fn summary(f: RunnerFormat) -> String {
        let text = match f {
            RunnerFormat::CargoTest => {
                "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n"
            }
            RunnerFormat::Pytest => "==== 2 passed in 0.10s ====\n",
            RunnerFormat::Jest => "Tests:       3 passed, 3 total\n",
            RunnerFormat::Cypress => {
                "  │ Tests:        4 │\n  │ Passing:      4 │\n  │ Failing:      0 │\n"
            }
            RunnerFormat::Mocha => "  5 passing (12ms)\n",
            RunnerFormat::GoTest => return "--- PASS: TestA (0.00s)\n".repeat(6),
            RunnerFormat::Tap => {
                "ok 1 - a\nok 2 - b\nok 3 - c\nok 4 - d\nok 5 - e\nok 6 - f\nok 7 - g\n"
            }
            RunnerFormat::JUnitXml => "",
        };
        text.to_string()
    }

    #[test]
    fn a_log_with_every_runners_summary_takes_the_counts_of_the_first_in_precedence() {
        // Each runner alone is read as itself, with its own count.
        for (i, f) in PRECEDENCE.iter().enumerate() {
            let passed = scan(&summary(*f)).map(|(g, c)| (g, c.passed));
            assert_eq!(passed, Some((*f, i as u64 + 1)), "{f:?} alone");
        }
        // The summaries of the runners from the i-th on, in any order of
        // lines: the i-th wins.
        for i in 0..PRECEDENCE.len() {
            let rest = &PRECEDENCE[i..];
            for rotate in 0..rest.len() {
                let mut order: Vec<RunnerFormat> = rest.to_vec();
                order.rotate_left(rotate);
                let log: String = order.iter().map(|f| summary(*f)).collect();
                let got = scan(&log).map(|(g, c)| (g, c.passed));
                assert_eq!(got, Some((PRECEDENCE[i], i as u64 + 1)), "{log}");
            }
        }
    }

    #[test]
    fn precedence_prefers_specific_formats() {
        let out = "ok 1 - setup\n==== 2 passed in 0.10s ====\n";
        assert_eq!(scan(out), Some((RunnerFormat::Pytest, c(2, 0, 0))));
    }

    #[test]
    fn long_lines_are_ignored() {
        let long = format!("{} 5 passed in 0.1s", "x".repeat(MAX_LINE));
        assert_eq!(scan(&long), None);
        assert_eq!(scan(""), None);
    }

    proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec(".{0,200}", 0..40)) {
            let mut s = OutputScanner::new();
            for l in &lines { s.feed_line(l); }
            let _ = s.counts();
        }

        #[test]
        fn pytest_counts_round_trip(p in 0u64..10_000, f in 0u64..10_000, s in 0u64..10_000) {
            let mut parts = vec![];
            if f > 0 { parts.push(format!("{f} failed")); }
            if p > 0 { parts.push(format!("{p} passed")); }
            if s > 0 { parts.push(format!("{s} skipped")); }
            prop_assume!(!parts.is_empty());
            let line = format!("===== {} in 1.23s =====", parts.join(", "));
            prop_assert_eq!(scan(&line), Some((RunnerFormat::Pytest, c(p, f, s))));
        }
    }
}
