//! Why a reconcile failed, and when it is tried again: decided by the kind
//! of failure, not by its words.

use std::time::Duration;

use kube::runtime::controller::Action as Requeue;

use crate::controller::kit::metrics::{ErrorLabels, Metrics};

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// An API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: kube::Error,
    },
    /// The object is missing its namespace or name.
    #[error("object without {0}")]
    Incomplete(&'static str),
    /// The reconcile of this object panicked (a defect of the controller);
    /// the object is marked Stalled and the others go on.
    #[error("the controller failed on this object: {0}")]
    Panicked(String),
}

impl ControllerError {
    pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ControllerError {
        let what = what.into();
        move |source| ControllerError::Kube { what, source }
    }

    /// What kind of failure this is.
    pub fn cause(&self) -> Cause {
        match self {
            ControllerError::Kube {
                source: kube::Error::Api(e),
                ..
            } if e.code == 409 => Cause::Conflict,
            ControllerError::Kube { .. } => Cause::Kube,
            ControllerError::Incomplete(_) => Cause::Incomplete,
            ControllerError::Panicked(_) => Cause::Panic,
        }
    }
}

/// The kinds of failure of a reconcile, each with its label in metrics and
/// its wait before the next try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The apiserver answered 409: someone wrote the object first; the
    /// next try reads it again, soon.
    Conflict,
    /// Any other failed API call (a 5xx, a timeout, a refused connection).
    Kube,
    /// The object has no namespace or name.
    Incomplete,
    /// The reconcile panicked (a defect): tried again in a minute.
    Panic,
}

impl Cause {
    /// Its label in the `errors` metric.
    pub fn label(self) -> &'static str {
        match self {
            Cause::Conflict => "conflict",
            Cause::Kube => "kube",
            Cause::Incomplete => "incomplete",
            Cause::Panic => "panic",
        }
    }

    /// How long to wait before trying the object again.
    pub fn retry_after(self) -> Duration {
        match self {
            Cause::Conflict => Duration::from_millis(200),
            Cause::Panic => Duration::from_secs(60),
            Cause::Kube | Cause::Incomplete => Duration::from_secs(2),
        }
    }
}

/// When an object whose reconcile (of a `what`) failed with `err` is tried
/// again, counting the error.
pub(crate) fn requeue_after(metrics: &Metrics, err: &ControllerError, what: &str) -> Requeue {
    let cause = err.cause();
    metrics
        .errors
        .get_or_create(&ErrorLabels {
            error: cause.label().into(),
        })
        .inc();
    tracing::warn!(error = %err, "{what} reconcile failed");
    Requeue::requeue(cause.retry_after())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_is_tried_again_soonest_and_a_panic_latest() {
        assert!(Cause::Conflict.retry_after() < Cause::Kube.retry_after());
        assert!(Cause::Kube.retry_after() < Cause::Panic.retry_after());
        assert_eq!(Cause::Incomplete.retry_after(), Cause::Kube.retry_after());
        let labels: std::collections::BTreeSet<_> = [
            Cause::Conflict,
            Cause::Kube,
            Cause::Incomplete,
            Cause::Panic,
        ]
        .map(Cause::label)
        .into();
        assert_eq!(labels.len(), 4);
    }

    #[test]
    fn a_409_is_a_conflict_and_a_panic_a_panic() {
        let status = |code| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("x", "Conflict").with_code(code),
            ))
        };
        let e = ControllerError::kube("patching")(status(409));
        assert_eq!(e.cause(), Cause::Conflict);
        let e = ControllerError::kube("patching")(status(500));
        assert_eq!(e.cause(), Cause::Kube);
        assert_eq!(ControllerError::Panicked("x".into()).cause(), Cause::Panic);
    }
}
