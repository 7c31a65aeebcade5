//! Durations measured in earlier runs, by layer and category: what
//! HYBRID_SMART plans with when the config names no
//! `expected_duration_seconds` (timeouts are usually far too long, and in
//! the wrong proportions). Pure: the local history file is [`History`] as
//! JSON; the cluster reads the same from the CategoryRuns of the latest
//! finished run of the layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::{RunReport, json_in_words};
use crate::trend::{KEPT_RUNS, PastRun};
use crate::words::AttemptReason;

/// The format of the history file: 2 added `runs` (format 1 is read as
/// a history with no runs yet).
pub const HISTORY_FORMAT: u32 = 2;

/// Measured durations in seconds, by layer key and category name: each the
/// latest run's; and the last runs of each layer, for the trend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// [`HISTORY_FORMAT`].
    #[serde(default)]
    pub format: u32,
    /// By layer key, then category name.
    #[serde(default)]
    pub layers: BTreeMap<String, BTreeMap<String, f64>>,
    /// The last [`KEPT_RUNS`] runs of each layer, oldest first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runs: BTreeMap<String, Vec<PastRun>>,
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

/// Why a file is not a history this testlayer can use (and so must be
/// left as it is): said in words, for a message that names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAHistory {
    /// Not JSON at all.
    #[error("is not JSON (line {line}, column {column}), so it is no testlayer history")]
    NotJson {
        /// 1-based.
        line: usize,
        /// 1-based.
        column: usize,
    },
    /// JSON of another shape: what it is.
    #[error(
        "is {0}, not a testlayer history (a JSON object with `format`, `layers`: seconds by layer and category, and `runs`)"
    )]
    OtherShape(String),
    /// A history written by a newer testlayer.
    #[error(
        "is a testlayer history of format {0}, written by a newer testlayer; this one reads format {HISTORY_FORMAT}"
    )]
    NewerFormat(u64),
}

impl History {
    /// The history in the text of a history file. An empty file (or one
    /// of blanks) is a new history; anything else must be a history of
    /// [`HISTORY_FORMAT`] and nothing else: JSON of another shape, text
    /// that is not JSON, or a newer format is [`NotAHistory`], and such a
    /// file must not be written over.
    pub fn parse(text: &str) -> Result<History, NotAHistory> {
        use serde_json::Value;
        if text.trim().is_empty() {
            return Ok(History::default());
        }
        let v: Value = serde_json::from_str(text).map_err(|e| NotAHistory::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        let shape = || NotAHistory::OtherShape(json_in_words(&v));
        let Value::Object(o) = &v else {
            return Err(shape());
        };
        let format = match o.get("format") {
            Some(Value::Number(n)) => n.as_u64().ok_or_else(shape)?,
            _ => return Err(shape()),
        };
        if format > u64::from(HISTORY_FORMAT) {
            return Err(NotAHistory::NewerFormat(format));
        }
        if format == 0
            || o.keys()
                .any(|k| !["format", "layers", "runs"].contains(&k.as_str()))
        {
            return Err(shape());
        }
        let Some(Value::Object(layers)) = o.get("layers") else {
            return Err(shape());
        };
        let mut history = History {
            format: HISTORY_FORMAT,
            layers: BTreeMap::new(),
            runs: BTreeMap::new(),
        };
        for (layer, categories) in layers {
            let Value::Object(categories) = categories else {
                return Err(NotAHistory::OtherShape(format!(
                    "a JSON object whose `layers.{layer}` is {}, not seconds by category",
                    json_in_words(categories)
                )));
            };
            let mut seconds = BTreeMap::new();
            for (category, secs) in categories {
                match secs.as_f64().filter(|s| s.is_finite() && *s >= 0.0) {
                    Some(s) => {
                        seconds.insert(category.clone(), s);
                    }
                    None => {
                        return Err(NotAHistory::OtherShape(format!(
                            "a JSON object whose `layers.{layer}.{category}` is {}, not a number of seconds",
                            json_in_words(secs)
                        )));
                    }
                }
            }
            history.layers.insert(layer.clone(), seconds);
        }
        if let Some(runs) = o.get("runs") {
            history.runs = parse_runs(runs)?;
        }
        Ok(history)
    }

    /// The text of the history file.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The durations of `layer`'s categories (none known: empty).
    pub fn durations(&self, layer: &str) -> BTreeMap<String, f64> {
        self.layers.get(layer).cloned().unwrap_or_default()
    }

    /// The runs of `layer` kept, oldest first.
    pub fn runs(&self, layer: &str) -> &[PastRun] {
        self.runs.get(layer).map_or(&[], Vec::as_slice)
    }

    /// Records what `report` measured, the run having ended at `ended_at`
    /// (RFC 3339): its categories' durations replace the ones known (a
    /// category it did not measure keeps its old one), and the run is added
    /// to the layer's last runs (the oldest past [`KEPT_RUNS`] go).
    pub fn record(&mut self, report: &RunReport, ended_at: String) {
        self.format = HISTORY_FORMAT;
        let runs = self.runs.entry(report.layer.clone()).or_default();
        runs.push(PastRun::from_report(report, ended_at));
        let extra = runs.len().saturating_sub(KEPT_RUNS);
        runs.drain(..extra);
        let layer = self.layers.entry(report.layer.clone()).or_default();
        for c in &report.categories {
            let took = measured(c.attempts.iter().map(|a| (&a.reason, a.duration_secs)));
            if let Some(secs) = took {
                layer.insert(c.name.clone(), secs);
            }
        }
    }
}

/// The `runs` of a history file: lists of runs by layer.
fn parse_runs(v: &serde_json::Value) -> Result<BTreeMap<String, Vec<PastRun>>, NotAHistory> {
    let serde_json::Value::Object(layers) = v else {
        return Err(NotAHistory::OtherShape(format!(
            "a JSON object whose `runs` is {}, not runs by layer",
            json_in_words(v)
        )));
    };
    let mut out = BTreeMap::new();
    for (layer, runs) in layers {
        let list: Vec<PastRun> = serde_json::from_value(runs.clone()).map_err(|_| {
            NotAHistory::OtherShape(format!(
                "a JSON object whose `runs.{layer}` is {}, not a list of runs (each with `ended_at`, `outcome`, `duration_secs`, and lists `failed` and `flaky`)",
                json_in_words(runs)
            ))
        })?;
        out.insert(layer.clone(), list);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history reads back as written; an empty file is a new history;
    /// anything else (another JSON shape, text that is not JSON, a newer
    /// format, a history with a field of the wrong kind) is refused, saying
    /// what it is in words.
    #[test]
    fn only_a_history_is_a_history() {
        let mut h = History {
            format: HISTORY_FORMAT,
            ..History::default()
        };
        h.layers
            .entry("core".into())
            .or_default()
            .insert("api".into(), 2.5);
        h.runs.entry("core".into()).or_default().push(PastRun {
            name: None,
            ended_at: "2026-12-01T10:00:00Z".into(),
            outcome: "Failed".into(),
            duration_secs: 3.5,
            failed: vec!["api › test_a".into()],
            flaky: vec![],
        });
        assert_eq!(History::parse(&h.to_text()), Ok(h));
        assert_eq!(History::parse(""), Ok(History::default()));
        assert_eq!(History::parse(" \n"), Ok(History::default()));
        let refused = |text: &str| History::parse(text).unwrap_err().to_string();
        let e = refused(r#"{"layer": "core", "categories": []}"#);
        assert!(
            e.starts_with(
                "is a JSON object with the fields `categories`, `layer`, not a testlayer history"
            ),
            "{e}"
        );
        assert_eq!(
            refused("[1, 2]"),
            "is a JSON array, not a testlayer history (a JSON object with `format`, `layers`: seconds by layer and category, and `runs`)"
        );
        assert!(refused("{}").starts_with("is an empty JSON object, not"));
        assert!(refused("3").starts_with("is a number, not"));
        assert_eq!(
            refused("{\"format\": 1,\n  \"layers\": {"),
            "is not JSON (line 2, column 13), so it is no testlayer history"
        );
        assert_eq!(
            refused(r#"{"format": 3, "layers": {}}"#),
            "is a testlayer history of format 3, written by a newer testlayer; this one reads format 2"
        );
        // Format 1 (no runs) is still read.
        let old = History::parse(r#"{"format": 1, "layers": {"core": {"api": 2.5}}}"#).unwrap();
        assert_eq!(old.durations("core").get("api"), Some(&2.5));
        assert!(old.runs("core").is_empty());
        let e = refused(r#"{"format": 2, "layers": {}, "runs": {"core": [{"outcome": 3}]}}"#);
        assert!(
            e.contains("`runs.core` is a JSON array, not a list of runs"),
            "{e}"
        );
        let e = refused(r#"{"format": 1, "layers": {"core": {"api": "fast"}}}"#);
        assert!(
            e.starts_with("is a JSON object whose `layers.core.api` is a text in quotes, not a number of seconds"),
            "{e}"
        );
        assert!(refused(r#"{"format": 1, "layers": {}, "extra": 1}"#).contains("`extra`"));
        assert!(refused(r#"{"format": 0, "layers": {}}"#).contains("not a testlayer history"));
        for text in [
            r#"{"layer": "core", "categories": []}"#,
            "[1, 2]",
            "{not json",
            r#"{"format": 3, "layers": {}}"#,
            r#"{"format": 2, "layers": {}, "runs": {"core": [{"outcome": 3}]}}"#,
        ] {
            let e = refused(text);
            for serde_words in ["missing field", "invalid type", "expected", "struct", "u32"] {
                assert!(!e.contains(serde_words), "{e}");
            }
        }
    }

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
