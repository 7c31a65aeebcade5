//! Bounds of the numbers in the specs: in the CRD schemas (`maximum`), so
//! the apiserver refuses what the controller cannot hold, and checked again
//! by the controller ([`CategoryRunSpec::check`]) for objects stored before
//! a schema had them. Each bound is at least what a layer config may
//! resolve to.

use super::CategoryRunSpec;

/// Longest duration in seconds (timeouts, backoffs, estimates): one year.
pub const MAX_SECONDS: f64 = 31_536_000.0;
/// Largest duration in whole seconds (TTL, waits): one year.
pub const MAX_WHOLE_SECONDS: i64 = 31_536_000;
/// Most retries of either kind.
pub const MAX_RETRIES: u32 = 100;
/// Largest category index: a run has at most 100,000 categories.
pub const MAX_INDEX: u32 = 99_999;
/// Most categories running at once.
pub const MAX_PARALLEL: u32 = 100_000;
/// Largest CPU amount in millicores.
pub const MAX_CPU_MILLIS: u64 = 1_024_000;
/// Largest memory amount in bytes (16 TiB).
pub const MAX_MEMORY_BYTES: u64 = 16 << 40;
/// Most quarantined test patterns of one category.
pub const MAX_QUARANTINE: u32 = 500;

/// A value of a spec the controller does not use as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct OutOfRange {
    /// The field, as a JSON path (`spec.timeoutSeconds`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A number as people write it (`1e300`, not three hundred digits).
fn number(v: f64) -> String {
    if v.is_finite() && v.abs() >= 1e15 {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

fn seconds(field: &str, v: f64) -> Result<(), OutOfRange> {
    if v.is_finite() && (0.0..=MAX_SECONDS).contains(&v) {
        return Ok(());
    }
    Err(OutOfRange {
        field: field.into(),
        problem: format!(
            "{} is not a number of seconds between 0 and {MAX_SECONDS}",
            number(v)
        ),
    })
}

fn at_most<T: PartialOrd + std::fmt::Display>(field: &str, v: T, max: T) -> Result<(), OutOfRange> {
    if v <= max {
        return Ok(());
    }
    Err(OutOfRange {
        field: field.into(),
        problem: format!("{v} is more than {max}"),
    })
}

impl CategoryRunSpec {
    /// Checks every number against its bound, and the index against the
    /// number of categories of the run's plan (when known).
    pub fn check(&self, categories: Option<usize>) -> Result<(), OutOfRange> {
        seconds("spec.timeoutSeconds", self.timeout_seconds)?;
        seconds("spec.retryBackoffSeconds", self.retry_backoff_seconds)?;
        if let Some(e) = self.expected_duration_seconds {
            seconds("spec.expectedDurationSeconds", e)?;
        }
        at_most("spec.retries", self.retries, MAX_RETRIES)?;
        at_most("spec.infraRetries", self.infra_retries, MAX_RETRIES)?;
        at_most("spec.index", self.index, MAX_INDEX)?;
        if let Some(n) = categories
            && self.index as usize >= n
        {
            return Err(OutOfRange {
                field: "spec.index".into(),
                problem: format!(
                    "{} is past the last category of the run's plan ({n} categories)",
                    self.index
                ),
            });
        }
        at_most(
            "spec.quarantine",
            self.quarantine.len(),
            MAX_QUARANTINE as usize,
        )?;
        for (i, p) in self.quarantine.iter().enumerate() {
            if let Err(e) = crate::results::IdPattern::parse(p) {
                return Err(OutOfRange {
                    field: format!("spec.quarantine[{i}]"),
                    problem: format!("test id pattern {p:?} {e}"),
                });
            }
        }
        let amounts = [
            ("spec.resources.requests", self.resources.requests),
            ("spec.resources.limits", self.resources.limits),
        ];
        for (path, a) in amounts {
            if let Some(c) = a.cpu_millis {
                at_most(&format!("{path}.cpuMillis"), c, MAX_CPU_MILLIS)?;
            }
            if let Some(m) = a.memory_bytes {
                at_most(&format!("{path}.memoryBytes"), m, MAX_MEMORY_BYTES)?;
            }
        }
        Ok(())
    }
}
