//! The trend of a layer across its runs: the last outcomes and durations,
//! the tests that failed or flaked most, and which of a run's failing tests
//! are flaky across runs. Pure: the runs come in as [`PastRun`]s, from the
//! local history file or from the runs a cluster keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::RunReport;

/// Runs of a layer the local history file keeps (the oldest go first).
pub const KEPT_RUNS: usize = 50;
/// Tests kept per run and list (failed, flaky): a run where everything
/// failed must not make the history file huge.
pub const KEPT_TESTS: usize = 100;

/// One run of a layer, as the trend remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PastRun {
    /// The run's name (a cluster's TestLayerRun); none for a local run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it ended (RFC 3339).
    pub ended_at: String,
    /// Succeeded, Failed, TimedOut or Cancelled.
    pub outcome: String,
    /// Wall time in seconds.
    pub duration_secs: f64,
    /// Tests that failed in it (`category › test`), at most [`KEPT_TESTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// Tests that failed in one attempt and passed in a later one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flaky: Vec<String>,
}

/// A test's name in the trend: its category, then its id.
pub fn test_key(category: &str, id: &str) -> String {
    format!("{category} › {id}")
}

impl PastRun {
    /// The run `report` tells of, ended at `ended_at`.
    pub fn from_report(report: &RunReport, ended_at: String) -> PastRun {
        let mut failed = Vec::new();
        let mut flaky = Vec::new();
        for c in &report.categories {
            failed.extend(
                c.failed_tests
                    .listed
                    .iter()
                    .map(|t| test_key(&c.name, &t.id)),
            );
            flaky.extend(
                c.flaky_tests
                    .listed
                    .iter()
                    .map(|t| test_key(&c.name, &t.id)),
            );
        }
        PastRun {
            name: None,
            ended_at,
            outcome: report.outcome.as_str().into(),
            duration_secs: report.duration_secs,
            failed: bounded(failed),
            flaky: bounded(flaky),
        }
    }
}

/// `tests`, sorted, without repeats, at most [`KEPT_TESTS`].
pub fn bounded(mut tests: Vec<String>) -> Vec<String> {
    tests.sort();
    tests.dedup();
    tests.truncate(KEPT_TESTS);
    tests
}

/// A test and how often it failed or flaked in the runs looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCount {
    /// `category › test`.
    pub test: String,
    /// In how many of the runs.
    pub runs: usize,
}

/// The trend of a layer over its last runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// The runs looked at, newest first.
    pub runs: Vec<PastRun>,
    /// Runs that succeeded, of those that were not cancelled.
    pub succeeded: usize,
    /// Runs that were not cancelled.
    pub decided: usize,
    /// Tests by the number of runs they failed in, most first.
    pub most_failed: Vec<TestCount>,
    /// Tests flaky across runs (see [`flaky_across`]), most first.
    pub most_flaky: Vec<TestCount>,
}

/// Counts, most first, then by name.
fn ranked(counts: BTreeMap<&str, usize>, top: usize) -> Vec<TestCount> {
    let mut v: Vec<TestCount> = counts
        .into_iter()
        .map(|(test, runs)| TestCount {
            test: test.into(),
            runs,
        })
        .collect();
    v.sort_by(|a, b| b.runs.cmp(&a.runs).then_with(|| a.test.cmp(&b.test)));
    v.truncate(top);
    v
}

/// `runs` newest first: by `ended_at`, and runs that ended in the same
/// second in the reverse of their order in `runs` (oldest first).
fn newest_first(runs: &mut [PastRun]) {
    runs.reverse();
    runs.sort_by(|a, b| b.ended_at.cmp(&a.ended_at));
}

/// The trend of the `last` newest of `runs` (oldest first, as the history
/// keeps them), naming the `top` tests that failed and flaked most.
pub fn trend(mut runs: Vec<PastRun>, last: usize, top: usize) -> Trend {
    newest_first(&mut runs);
    runs.truncate(last);
    let decided = runs.iter().filter(|r| r.outcome != "Cancelled").count();
    let succeeded = runs.iter().filter(|r| r.outcome == "Succeeded").count();
    let mut failed: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &runs {
        for t in &r.failed {
            *failed.entry(t).or_default() += 1;
        }
    }
    let flaky = flaky_counts(&runs);
    Trend {
        most_failed: ranked(failed, top),
        most_flaky: ranked(flaky.iter().map(|(t, n)| (t.as_str(), *n)).collect(), top),
        succeeded,
        decided,
        runs,
    }
}

/// For each test flaky across `runs`, the runs in which it failed or
/// flaked. A test is flaky across runs when it flaked within a run (failed,
/// then passed on a retry), or when it failed in some of the runs but not
/// in all of those that did not stop early: a test that fails every time is
/// broken, not flaky. Cancelled and timed-out runs say nothing of a test
/// that did not fail in them, so they do not count as a pass.
fn flaky_counts(runs: &[PastRun]) -> BTreeMap<String, usize> {
    let finished: Vec<&PastRun> = runs
        .iter()
        .filter(|r| r.outcome == "Succeeded" || r.outcome == "Failed")
        .collect();
    let mut seen: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for r in runs {
        for t in &r.flaky {
            let e = seen.entry(t.clone()).or_default();
            e.0 += 1;
            e.1 = true;
        }
        for t in r.failed.iter().filter(|t| !r.flaky.contains(t)) {
            seen.entry(t.clone()).or_default().0 += 1;
        }
    }
    seen.into_iter()
        .filter(|(t, (_, flaked))| {
            *flaked
                || finished
                    .iter()
                    .any(|r| !r.failed.contains(t) && !r.flaky.contains(t))
        })
        .map(|(t, (n, _))| (t, n))
        .collect()
}

/// The tests of `run` (failed or flaky in it) that were flaky across the
/// `last` newest of `earlier` (oldest first) and it, in at least `at_least` of them: each
/// with the number of runs, of how many looked at.
pub fn flaky_across(
    run: &PastRun,
    earlier: &[PastRun],
    last: usize,
    at_least: usize,
) -> (Vec<TestCount>, usize) {
    let mut runs: Vec<PastRun> = earlier
        .iter()
        .filter(|r| r.name.is_none() || r.name != run.name)
        .cloned()
        .collect();
    newest_first(&mut runs);
    runs.truncate(last.saturating_sub(1));
    runs.insert(0, run.clone());
    let counts = flaky_counts(&runs);
    let mut named: Vec<TestCount> = run
        .failed
        .iter()
        .chain(&run.flaky)
        .filter_map(|t| {
            let n = *counts.get(t)?;
            (n >= at_least).then(|| TestCount {
                test: t.clone(),
                runs: n,
            })
        })
        .collect();
    named.sort_by(|a, b| b.runs.cmp(&a.runs).then_with(|| a.test.cmp(&b.test)));
    named.dedup();
    (named, runs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(at: u32, outcome: &str, failed: &[&str], flaky: &[&str]) -> PastRun {
        PastRun {
            name: Some(format!("r{at}")),
            ended_at: format!("2026-12-01T10:{at:02}:00Z"),
            outcome: outcome.into(),
            duration_secs: f64::from(at),
            failed: failed.iter().map(|s| s.to_string()).collect(),
            flaky: flaky.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn names(v: &[TestCount]) -> Vec<(&str, usize)> {
        v.iter().map(|c| (c.test.as_str(), c.runs)).collect()
    }

    #[test]
    fn the_trend_is_newest_first_with_the_tests_failing_and_flaking_most() {
        let runs = vec![
            run(1, "Failed", &["u › broken", "u › sometimes"], &[]),
            run(3, "Failed", &["u › broken"], &["a › retried"]),
            run(2, "Succeeded", &[], &[]),
            run(4, "Cancelled", &[], &[]),
            run(5, "Failed", &["u › broken", "u › sometimes"], &[]),
        ];
        let t = trend(runs.clone(), 10, 5);
        let order: Vec<_> = t.runs.iter().map(|r| r.ended_at.clone()).collect();
        let mut sorted = order.clone();
        sorted.sort();
        sorted.reverse();
        assert_eq!(order, sorted);
        assert_eq!((t.succeeded, t.decided), (1, 4));
        assert_eq!(
            names(&t.most_failed),
            [("u › broken", 3), ("u › sometimes", 2)]
        );
        // `broken` failed in every finished run but one, where the run
        // passed: it did not fail there, so it is intermittent too.
        assert_eq!(
            names(&t.most_flaky),
            [("u › broken", 3), ("u › sometimes", 2), ("a › retried", 1)]
        );
        // Only the last three: the passing run is gone; `broken` failed in
        // every finished run left, so it is broken, not flaky.
        let t = trend(runs, 3, 5);
        assert_eq!(t.runs.len(), 3);
        assert_eq!(
            names(&t.most_flaky),
            [("a › retried", 1), ("u › sometimes", 1)]
        );
    }

    #[test]
    fn a_failure_is_named_flaky_only_when_it_also_passed_or_flaked_often_enough() {
        let earlier = vec![
            run(1, "Failed", &["u › a", "u › b"], &[]),
            run(2, "Succeeded", &[], &[]),
            run(3, "Failed", &["u › b"], &["u › c"]),
            // A timed-out run where a test did not fail says nothing.
            run(4, "TimedOut", &[], &[]),
        ];
        let now = run(5, "Failed", &["u › a", "u › b", "u › d"], &["u › c"]);
        let (named, looked) = flaky_across(&now, &earlier, 10, 2);
        assert_eq!(looked, 5);
        assert_eq!(names(&named), [("u › b", 3), ("u › a", 2), ("u › c", 2)]);
        // `d` failed for the first time: once is not a pattern.
        let (named, _) = flaky_across(&now, &earlier, 10, 1);
        assert!(names(&named).contains(&("u › d", 1)));
        // Looking at the last two only (this run and run 4).
        let (named, looked) = flaky_across(&now, &earlier, 2, 2);
        assert_eq!((names(&named), looked), (vec![], 2));
        // A run is not counted twice when it is among the earlier ones.
        let mut with_itself = earlier.clone();
        with_itself.push(now.clone());
        assert_eq!(
            flaky_across(&now, &with_itself, 10, 2),
            flaky_across(&now, &earlier, 10, 2)
        );
    }
}
