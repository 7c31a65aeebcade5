//! Durations measured in earlier runs, by layer and category: what
//! HYBRID_SMART plans with when the config names no
//! `expected_duration_seconds` (timeouts are usually far too long, and in
//! the wrong proportions). Pure: the local history file is [`History`] as
//! JSON; the cluster reads the same from the CategoryRuns of the latest
//! finished run of the layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::RunReport;
use crate::words::AttemptReason;

/// The format of the history file.
pub const HISTORY_FORMAT: u32 = 1;

/// Measured durations in seconds, by layer key and category name: each the
/// latest run's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// [`HISTORY_FORMAT`].
    #[serde(default)]
    pub format: u32,
    /// By layer key, then category name.
    #[serde(default)]
    pub layers: BTreeMap<String, BTreeMap<String, f64>>,
}

/// How long a category took, from its attempts (why each ended, and how
/// long it ran), last first: the last attempt that ended on its own or at
/// its timeout (a stopped one says nothing of how long the tests take, and
/// neither does one that never started).
pub fn measured<'a>(
    attempts: impl DoubleEndedIterator<Item = (&'a AttemptReason, f64)>,
) -> Option<f64> {
    attempts
        .rev()
        .find(|(reason, secs)| {
            secs.is_finite()
                && *secs >= 0.0
                && !matches!(
                    reason,
                    AttemptReason::Stopped
                        | AttemptReason::StartError
                        | AttemptReason::PodCreateFailed
                        | AttemptReason::PodDeleted
                        | AttemptReason::Evicted
                )
        })
        .map(|(_, secs)| secs)
}

impl History {
    /// The durations of `layer`'s categories (none known: empty).
    pub fn durations(&self, layer: &str) -> BTreeMap<String, f64> {
        self.layers.get(layer).cloned().unwrap_or_default()
    }

    /// Records what `report` measured: its categories' durations replace
    /// the ones known; a category it did not measure keeps its old one.
    pub fn record(&mut self, report: &RunReport) {
        self.format = HISTORY_FORMAT;
        let layer = self.layers.entry(report.layer.clone()).or_default();
        for c in &report.categories {
            let took = measured(c.attempts.iter().map(|a| (&a.reason, a.duration_secs)));
            if let Some(secs) = took {
                layer.insert(c.name.clone(), secs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_attempt_that_ran_its_course_is_the_measure() {
        let stopped = AttemptReason::Stopped;
        let failed = AttemptReason::ExitCode(1);
        let passed = AttemptReason::Completed;
        let timed_out = AttemptReason::DeadlineExceeded;
        let list = [(&failed, 3.0), (&passed, 5.0), (&stopped, 0.5)];
        assert_eq!(measured(list.into_iter()), Some(5.0));
        assert_eq!(measured([(&timed_out, 30.0)].into_iter()), Some(30.0));
        assert_eq!(measured([(&stopped, 1.0)].into_iter()), None);
        assert_eq!(measured([(&passed, f64::NAN)].into_iter()), None);
        assert_eq!(measured(std::iter::empty()), None);
    }
}
