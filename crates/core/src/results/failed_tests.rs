//! The failing tests of a category, named and bounded.

use serde::{Deserialize, Serialize};

use super::{CaseResult, TestCase};

/// Failing tests listed at most; past this, only how many more.
pub const MAX_LISTED_TESTS: usize = 50;

/// One failing test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FailedTest {
    /// `classname::name` from the JUnit report (or the name alone).
    pub id: String,
    /// The first line of its failure message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The attempt it failed in (1-based).
    pub attempt: u32,
}

/// Failing tests: the first [`MAX_LISTED_TESTS`] named, then a count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FailedTests {
    /// The first failing tests, in report order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listed: Vec<FailedTest>,
    /// How many more failed than are listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FailedTests {
    /// Records `case` of attempt `attempt` when it failed.
    pub fn record(&mut self, case: &TestCase, attempt: u32) {
        if case.result != CaseResult::Failed {
            return;
        }
        self.push(FailedTest {
            id: case.id.clone(),
            message: case.message.clone(),
            attempt,
        });
    }

    /// Adds `test` (counted past the bound).
    pub fn push(&mut self, test: FailedTest) {
        if self.listed.len() < MAX_LISTED_TESTS {
            self.listed.push(test);
        } else {
            self.more = self.more.saturating_add(1);
        }
    }

    /// The same tests, every one of attempt `attempt`.
    pub fn in_attempt(mut self, attempt: u32) -> Self {
        for t in &mut self.listed {
            t.attempt = attempt;
        }
        self
    }

    /// Adds the tests of `other` that are not listed yet (by id).
    pub fn add_unlisted(&mut self, other: FailedTests) {
        for t in other.listed {
            if !self.listed.iter().any(|f| f.id == t.id) {
                self.push(t);
            }
        }
        self.more = self.more.saturating_add(other.more);
    }

    /// The tests of `earlier` (failures of an earlier attempt) that `now`
    /// (the cases of a later attempt's report) shows passing: flaky ones,
    /// with the attempt and message of their failure. Only the listed ones
    /// can be told.
    pub fn passed_later<'a>(&self, now: impl IntoIterator<Item = &'a TestCase>) -> FailedTests {
        let mut wanted: std::collections::BTreeMap<&str, &FailedTest> =
            self.listed.iter().map(|t| (t.id.as_str(), t)).collect();
        let mut out = FailedTests::default();
        for case in now {
            if case.result == CaseResult::Passed
                && let Some(t) = wanted.remove(case.id.as_str())
            {
                out.push(t.clone());
            }
        }
        out
    }

    /// How many failed in all.
    pub fn total(&self) -> u64 {
        (self.listed.len() as u64).saturating_add(self.more)
    }

    /// Whether none failed.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The first `n` ids, then `and N more`: for one sentence.
    pub fn ids(&self, n: usize) -> String {
        let shown: Vec<&str> = self.listed.iter().take(n).map(|t| t.id.as_str()).collect();
        let more = self.total().saturating_sub(shown.len() as u64);
        let mut s = shown.join(", ");
        if more > 0 {
            s.push_str(&format!(" and {more} more"));
        }
        s
    }

    /// Lines for people: `id: message`, then `... and N more`.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .listed
            .iter()
            .map(|t| {
                if t.message.is_empty() {
                    t.id.clone()
                } else {
                    format!("{}: {}", t.id, t.message)
                }
            })
            .collect();
        if self.more > 0 {
            out.push(format!("... and {} more", self.more));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(i: usize, result: CaseResult) -> TestCase {
        TestCase {
            id: format!("t::c{i}"),
            result,
            message: if i == 0 { "boom".into() } else { String::new() },
            time_secs: 0.0,
        }
    }

    #[test]
    fn the_list_is_bounded_and_counts_the_rest() {
        let mut f = FailedTests::default();
        f.record(&case(99, CaseResult::Passed), 1);
        f.record(&case(98, CaseResult::Skipped), 1);
        assert!(f.is_empty());
        for i in 0..(MAX_LISTED_TESTS + 7) {
            f.record(&case(i, CaseResult::Failed), 2);
        }
        assert_eq!(f.listed.len(), MAX_LISTED_TESTS);
        assert_eq!(f.more, 7);
        assert_eq!(f.total(), MAX_LISTED_TESTS as u64 + 7);
        let lines = f.lines();
        assert_eq!(lines[0], "t::c0: boom");
        assert_eq!(lines[1], "t::c1");
        assert_eq!(lines.last().unwrap(), "... and 7 more");
        assert_eq!(f.listed[0].attempt, 2);
    }

    #[test]
    fn tests_that_failed_and_then_passed_are_flaky() {
        let mut earlier = FailedTests::default();
        earlier.record(&case(0, CaseResult::Failed), 1);
        earlier.record(&case(1, CaseResult::Failed), 1);
        earlier.record(&case(2, CaseResult::Failed), 1);
        let now = [
            case(0, CaseResult::Passed),
            case(1, CaseResult::Failed),
            case(5, CaseResult::Passed),
        ];
        let flaky = earlier.passed_later(&now);
        assert_eq!(flaky.listed.len(), 1);
        assert_eq!(flaky.listed[0].id, "t::c0");
        assert_eq!(flaky.listed[0].message, "boom");
        assert_eq!(flaky.listed[0].attempt, 1);
    }
}
