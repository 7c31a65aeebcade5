//! The words testlayer writes into status, reports and events, as typed
//! values: each has one `Display` and one `FromStr`, so no other code turns a
//! string back into meaning.
//!
//! Reasons are an open set (the kubelet's reasons, `ExitCodeN`), so each
//! vocabulary keeps what it does not know as `Other`, and [`Known`] carries a
//! word of a closed vocabulary (a strategy) as written, so that an object
//! with a word this version does not know still decodes and is reported on.

use std::fmt;
use std::str::FromStr;

use crate::plan::{Cause, WaitReason};

/// A word that is not in its vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; use {expected}")]
pub struct UnknownWord {
    /// What kind of word (`strategy`).
    pub kind: &'static str,
    /// What was written.
    pub value: String,
    /// The words that are known.
    pub expected: String,
}

/// Implements `Display`, `FromStr`, serde (as a string) and a string schema
/// for a vocabulary enum with an `Other(String)` variant.
macro_rules! open_vocabulary {
    ($ty:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// The word as written.
            pub fn as_str(&self) -> &str {
                match self {
                    $($ty::$variant => $word,)+
                    $ty::Other(s) => s.as_str(),
                }
            }
        }

        impl From<&str> for $ty {
            fn from(s: &str) -> Self {
                match s {
                    $($word => $ty::$variant,)+
                    other => $ty::Other(other.to_string()),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok($ty::from(s))
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok($ty::from(s.as_str()))
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string"})
            }
        }
    };
}

/// Why a category is where it is: the `reason` of a CategoryRun, of its
/// summary in the run, and of a local report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not looked at yet.
    Pending,
    /// An attempt runs.
    Running,
    /// A stop was asked for; the attempt has not ended yet.
    Stopping,
    /// Waits for a dependency.
    WaitingForDependency,
    /// Waits for a free slot under the parallel limit.
    WaitingForSlot,
    /// Waits for CPU or memory budget.
    WaitingForBudget,
    /// Waits out the backoff before a retry.
    BackingOff,
    /// Waits for units of a shared resource that other runs hold.
    WaitingForResource,
    /// Waits for shared resources that runs waiting for each other keep:
    /// it can never go on until one of them is cancelled or deleted.
    ResourceDeadlock,
    /// Held (suspended, or the run waits for its gates).
    Held,
    /// Ended: passed.
    Passed,
    /// Ended: passed, but only on a retry after a test failure (flaky).
    PassedOnRetry,
    /// Ended: passed, its last attempt's failing tests all quarantined.
    PassedQuarantined,
    /// Ended: tests failed, no retries left.
    TestsFailed,
    /// Ended: the infrastructure failed, no retries left.
    InfrastructureFailed,
    /// Ended: past its own timeout.
    DeadlineExceeded,
    /// Ended: past the layer's deadline.
    LayerDeadlineExceeded,
    /// Ended: a dependency did not succeed.
    DependencyFailed,
    /// Ended: fail-fast after another category failed.
    FailFast,
    /// Ended: the run was cancelled.
    Cancelled,
    /// An attempt interrupted by suspension; the category starts again.
    Interrupted,
    /// The apiserver refuses to create the attempt's Pod (admission, quota,
    /// validation); the create is retried with backoff.
    PodCreateFailed,
    /// Ended before starting: the layer's required services were not ready
    /// within its bound.
    ServicesNotReady,
    /// Ended before starting: a layer dependency had no run within the
    /// run's bound.
    DependencyNotFound,
    /// Ended before starting: a layer dependency's run was cancelled (and
    /// none failed).
    DependencyCancelled,
    /// Anything else (a gate's reason, or a word of another version).
    Other(String),
}

open_vocabulary!(Reason {
    Pending => "Pending",
    Running => "Running",
    Stopping => "Stopping",
    WaitingForDependency => "WaitingForDependency",
    WaitingForSlot => "WaitingForSlot",
    WaitingForBudget => "WaitingForBudget",
    BackingOff => "BackingOff",
    WaitingForResource => "WaitingForResource",
    ResourceDeadlock => "ResourceDeadlock",
    Held => "Held",
    Passed => "Passed",
    PassedOnRetry => "PassedOnRetry",
    PassedQuarantined => "PassedQuarantined",
    TestsFailed => "TestsFailed",
    InfrastructureFailed => "InfrastructureFailed",
    DeadlineExceeded => "DeadlineExceeded",
    LayerDeadlineExceeded => "LayerDeadlineExceeded",
    DependencyFailed => "DependencyFailed",
    FailFast => "FailFast",
    Cancelled => "Cancelled",
    Interrupted => "Interrupted",
    PodCreateFailed => "PodCreateFailed",
    ServicesNotReady => "ServicesNotReady",
    DependencyNotFound => "DependencyNotFound",
    DependencyCancelled => "DependencyCancelled",
});

impl From<Cause> for Reason {
    fn from(c: Cause) -> Self {
        match c {
            Cause::Passed => Reason::Passed,
            Cause::TestsFailed => Reason::TestsFailed,
            Cause::InfraFailed => Reason::InfrastructureFailed,
            Cause::Timeout => Reason::DeadlineExceeded,
            Cause::LayerDeadline => Reason::LayerDeadlineExceeded,
            Cause::DependencyFailed(_) => Reason::DependencyFailed,
            Cause::FailFast(_) => Reason::FailFast,
            Cause::CancelRequested => Reason::Cancelled,
        }
    }
}

impl From<WaitReason> for Reason {
    fn from(w: WaitReason) -> Self {
        match w {
            WaitReason::Dependency(_) => Reason::WaitingForDependency,
            WaitReason::Slot => Reason::WaitingForSlot,
            WaitReason::Budget => Reason::WaitingForBudget,
            WaitReason::Backoff(_) => Reason::BackingOff,
            WaitReason::Resource => Reason::WaitingForResource,
            WaitReason::Hold => Reason::Held,
        }
    }
}

impl Reason {
    /// The cause this reason records, with the index of the category it
    /// names (`causedBy`) where the cause needs one; `None` for reasons that
    /// are not an end, or an end that needs a category and names none.
    pub fn cause(&self, caused_by: Option<usize>) -> Option<Cause> {
        Some(match self {
            Reason::Passed => Cause::Passed,
            Reason::TestsFailed => Cause::TestsFailed,
            Reason::InfrastructureFailed => Cause::InfraFailed,
            Reason::DeadlineExceeded => Cause::Timeout,
            Reason::LayerDeadlineExceeded => Cause::LayerDeadline,
            Reason::DependencyFailed => Cause::DependencyFailed(caused_by?),
            Reason::FailFast => Cause::FailFast(caused_by?),
            Reason::Cancelled => Cause::CancelRequested,
            _ => return None,
        })
    }

    /// Whether a summary shows it (the ordinary `Running` and `Passed` say
    /// nothing the phase does not).
    pub fn is_notable(&self) -> bool {
        !matches!(self, Reason::Running | Reason::Passed | Reason::Pending)
    }
}

/// Why one attempt ended: `Completed`, `ExitCodeN`, `OOMKilled`, `Evicted`,
/// `DeadlineExceeded`, `ImagePullBackOff`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttemptReason {
    /// Exit code 0.
    Completed,
    /// Exited with this non-zero code.
    ExitCode(i32),
    /// Killed by a signal (local runs).
    Signal(i32),
    /// Killed for memory.
    OomKilled,
    /// Evicted by its node.
    Evicted,
    /// Ran past its deadline.
    DeadlineExceeded,
    /// Stopped by the executor.
    Stopped,
    /// Its Pod was deleted by someone else before it finished.
    PodDeleted,
    /// Could not be started.
    StartError,
    /// Its Pod was refused by the apiserver (admission, quota, validation):
    /// while the attempt has not ended, its Pod is still being created.
    PodCreateFailed,
    /// Anything else (a kubelet reason such as `ImagePullBackOff`).
    Other(String),
}

impl AttemptReason {
    /// The word as written.
    pub fn as_string(&self) -> String {
        match self {
            AttemptReason::Completed => "Completed".into(),
            AttemptReason::ExitCode(c) => format!("ExitCode{c}"),
            AttemptReason::Signal(s) => format!("Signal{s}"),
            AttemptReason::OomKilled => "OOMKilled".into(),
            AttemptReason::Evicted => "Evicted".into(),
            AttemptReason::DeadlineExceeded => "DeadlineExceeded".into(),
            AttemptReason::Stopped => "Stopped".into(),
            AttemptReason::PodDeleted => "PodDeleted".into(),
            AttemptReason::StartError => "StartError".into(),
            AttemptReason::PodCreateFailed => "PodCreateFailed".into(),
            AttemptReason::Other(s) => s.clone(),
        }
    }

    /// Why it failed, for a sentence: the reason, or `exit code N`.
    pub fn describe(&self) -> String {
        match self {
            AttemptReason::ExitCode(c) => format!("exit code {c}"),
            AttemptReason::Signal(s) => format!("signal {s}"),
            other => other.as_string(),
        }
    }
}

impl From<&str> for AttemptReason {
    fn from(s: &str) -> Self {
        let number = |prefix: &str| s.strip_prefix(prefix).and_then(|n| n.parse::<i32>().ok());
        match s {
            "Completed" => AttemptReason::Completed,
            "OOMKilled" => AttemptReason::OomKilled,
            "Evicted" => AttemptReason::Evicted,
            "DeadlineExceeded" => AttemptReason::DeadlineExceeded,
            "Stopped" => AttemptReason::Stopped,
            "PodDeleted" => AttemptReason::PodDeleted,
            "StartError" => AttemptReason::StartError,
            "PodCreateFailed" => AttemptReason::PodCreateFailed,
            _ => {
                if let Some(c) = number("ExitCode") {
                    AttemptReason::ExitCode(c)
                } else if let Some(c) = number("Signal") {
                    AttemptReason::Signal(c)
                } else {
                    AttemptReason::Other(s.to_string())
                }
            }
        }
    }
}

impl fmt::Display for AttemptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl FromStr for AttemptReason {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(AttemptReason::from(s))
    }
}

impl serde::Serialize for AttemptReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> serde::Deserialize<'de> for AttemptReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(AttemptReason::from(s.as_str()))
    }
}

impl schemars::JsonSchema for AttemptReason {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AttemptReason".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

/// A word of a closed vocabulary as an API object holds it: the value, or
/// what was written when this version does not know it (reported on the
/// object rather than making it undecodable).
#[derive(Debug, Clone, PartialEq)]
pub enum Known<T> {
    /// A word this version knows.
    Is(T),
    /// Anything else, as written.
    Unknown(String),
}

impl<T> Known<T> {
    /// The known value, or the word that is not known.
    pub fn get(&self) -> Result<&T, &str> {
        match self {
            Known::Is(t) => Ok(t),
            Known::Unknown(s) => Err(s),
        }
    }
}

impl<T> From<T> for Known<T> {
    fn from(t: T) -> Self {
        Known::Is(t)
    }
}

impl<T: fmt::Display> fmt::Display for Known<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Known::Is(t) => t.fmt(f),
            Known::Unknown(s) => f.write_str(s),
        }
    }
}

impl<T: fmt::Display> serde::Serialize for Known<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de, T: FromStr> serde::Deserialize<'de> for Known<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.parse::<T>() {
            Ok(t) => Known::Is(t),
            Err(_) => Known::Unknown(s),
        })
    }
}

impl<T> schemars::JsonSchema for Known<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Known".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

/// A timeout multiplier as an API object writes it (a decimal string such as
/// `"1.5"`: Kubernetes APIs avoid floating-point fields).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Multiplier(pub f64);

impl fmt::Display for Multiplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Multiplier {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<f64>() {
            Ok(m) if m.is_finite() => Ok(Multiplier(m)),
            _ => Err(UnknownWord {
                kind: "timeout multiplier",
                value: s.to_string(),
                expected: "a decimal number such as \"1.5\"".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_keep_unknown_words() {
        for c in [
            Cause::Passed,
            Cause::TestsFailed,
            Cause::InfraFailed,
            Cause::Timeout,
            Cause::LayerDeadline,
            Cause::DependencyFailed(3),
            Cause::FailFast(1),
            Cause::CancelRequested,
        ] {
            let r = Reason::from(c);
            let back: Reason = r.to_string().parse().unwrap();
            assert_eq!(back, r);
            let by = match c {
                Cause::DependencyFailed(i) | Cause::FailFast(i) => Some(i),
                _ => None,
            };
            assert_eq!(back.cause(by), Some(c));
        }
        assert_eq!(Reason::FailFast.cause(None), None);
        let odd: Reason = serde_json::from_str("\"AWordOfANewerVersion\"").unwrap();
        assert_eq!(odd, Reason::Other("AWordOfANewerVersion".into()));
        assert_eq!(
            serde_json::to_string(&odd).unwrap(),
            "\"AWordOfANewerVersion\""
        );
        assert_eq!(odd.cause(None), None);
    }

    #[test]
    fn attempt_reasons_round_trip() {
        for r in [
            AttemptReason::Completed,
            AttemptReason::ExitCode(2),
            AttemptReason::ExitCode(-1),
            AttemptReason::Signal(9),
            AttemptReason::OomKilled,
            AttemptReason::Evicted,
            AttemptReason::DeadlineExceeded,
            AttemptReason::Stopped,
            AttemptReason::PodDeleted,
            AttemptReason::StartError,
            AttemptReason::PodCreateFailed,
            AttemptReason::Other("ImagePullBackOff".into()),
        ] {
            let s = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<AttemptReason>(&s).unwrap(), r, "{s}");
        }
        assert_eq!(
            AttemptReason::from("ExitCodeX"),
            AttemptReason::Other("ExitCodeX".into())
        );
        assert_eq!(AttemptReason::ExitCode(3).describe(), "exit code 3");
    }

    #[test]
    fn known_words_keep_what_they_do_not_know() {
        let m: Known<Multiplier> = serde_json::from_str("\"1.5\"").unwrap();
        assert_eq!(m, Known::Is(Multiplier(1.5)));
        let bad: Known<Multiplier> = serde_json::from_str("\"fast\"").unwrap();
        assert_eq!(bad.get(), Err("fast"));
        assert_eq!(serde_json::to_string(&bad).unwrap(), "\"fast\"");
    }
}
