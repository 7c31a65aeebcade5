//! Passed / failed / skipped counts.

use serde::{Deserialize, Serialize};

/// How many tests passed, failed (including errors) and were skipped.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct TestCounts {
    /// Tests that passed (including unexpected passes).
    pub passed: u64,
    /// Tests that failed or errored.
    pub failed: u64,
    /// Tests skipped, ignored, pending or expected to fail.
    pub skipped: u64,
}

impl TestCounts {
    /// All tests seen.
    pub fn total(&self) -> u64 {
        self.passed
            .saturating_add(self.failed)
            .saturating_add(self.skipped)
    }

    /// Adds another set of counts into this one.
    pub fn add(&mut self, other: TestCounts) {
        self.passed = self.passed.saturating_add(other.passed);
        self.failed = self.failed.saturating_add(other.failed);
        self.skipped = self.skipped.saturating_add(other.skipped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_total() {
        let mut a = TestCounts {
            passed: 1,
            failed: 2,
            skipped: 3,
        };
        a.add(TestCounts {
            passed: 10,
            failed: 0,
            skipped: 1,
        });
        assert_eq!(
            a,
            TestCounts {
                passed: 11,
                failed: 2,
                skipped: 4
            }
        );
        assert_eq!(a.total(), 17);
        let mut big = TestCounts {
            passed: u64::MAX,
            ..Default::default()
        };
        big.add(TestCounts {
            passed: 5,
            ..Default::default()
        });
        assert_eq!(big.passed, u64::MAX);
    }
}
