//! Errors of the test support code.

use std::path::PathBuf;

/// What went wrong starting or driving the control plane.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The control-plane binaries are not where they should be.
    #[error(
        "control-plane binary {binary} not found in {dir}: build it with `bash tests/cluster/build.sh` \
         (or set TESTLAYER_BIN_DIR to a directory holding etcd, kube-apiserver, kube-controller-manager and kubectl)"
    )]
    MissingBinary {
        /// Which binary.
        binary: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Certificates could not be generated.
    #[error("cannot generate certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// A component did not become ready in time.
    #[error(
        "{component} did not become ready within {seconds}s; last lines of its log ({log}):\n{tail}"
    )]
    NotReady {
        /// Which component.
        component: String,
        /// How long we waited.
        seconds: u64,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// A component exited.
    #[error("{component} exited ({status}); last lines of its log ({log}):\n{tail}")]
    Exited {
        /// Which component.
        component: String,
        /// Exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: kube::Error,
    },
    /// The test kubelet was asked for something it cannot do.
    #[error("test kubelet: {problem}")]
    Kubelet {
        /// What is wrong.
        problem: String,
    },
    /// The real node could not be started or asked.
    #[error("real node: {problem}")]
    Node {
        /// What is wrong.
        problem: String,
    },
    /// Kueue could not be started.
    #[error("kueue: {problem}")]
    Kueue {
        /// What is wrong.
        problem: String,
    },
    /// The kubeconfig could not be used.
    #[error("kubeconfig {path}: {problem}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

impl TestkitError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
        let what = what.into();
        move |source| TestkitError::Io { what, source }
    }

    pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> TestkitError {
        let what = what.into();
        move |source| TestkitError::Kube { what, source }
    }
}
