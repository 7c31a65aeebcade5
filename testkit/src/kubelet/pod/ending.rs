//! How things end for a Pod's worker: a wait ([`Stop`]), the worker itself
//! ([`Halt`]), and the container ([`Ending`]).

/// Why a worker stops waiting.
#[derive(Debug, PartialEq)]
pub(super) enum Stop {
    /// The Pod's deletion was first seen.
    Deleted,
    /// The Pod is gone from the API (or the kubelet stopped).
    Gone,
    /// [`Cmd::Preempt`](super::worker::Cmd::Preempt).
    Preempted,
    /// The Pod's `activeDeadlineSeconds` passed (counted from its start, as
    /// a kubelet counts it): it is stopped with its grace period and ends
    /// `Failed`, reason `DeadlineExceeded`, and stays.
    Deadline,
}

/// Why a worker ends early.
#[derive(Debug)]
pub(crate) enum Halt {
    /// The Pod (this uid) is gone, or the kubelet stopped.
    Gone,
    /// An API call failed.
    Api(kube::Error),
}

impl From<kube::Error> for Halt {
    fn from(e: kube::Error) -> Self {
        match &e {
            // Gone, replaced by a Pod of the same name, or no longer ours.
            kube::Error::Api(a) if a.code == 404 || a.code == 409 || a.code == 422 => Halt::Gone,
            _ => Halt::Api(e),
        }
    }
}

/// How the container ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Ending {
    /// As scripted.
    Natural,
    /// It exited on SIGTERM with this code.
    Term(i32),
    /// Killed (SIGKILL: grace period over, drain, preemption).
    Killed,
}
