//! Why a notification could not be prepared or recorded.

/// Why a notification could not be prepared or recorded (never a secret's
/// value in the words).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// An API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: kube::Error,
    },
    /// A Secret the target names cannot be used (missing, no such key,
    /// not readable).
    #[error("{0}")]
    Secret(String),
    /// The TLS configuration could not be built.
    #[error("TLS: {0}")]
    Tls(String),
    /// The target is no longer in the run's spec (or no longer checks).
    #[error("{0}")]
    Target(String),
}

impl NotifyError {
    /// Whether trying again later may help (the apiserver did not answer
    /// as it should), rather than someone having to fix something.
    pub fn passes(&self) -> bool {
        match self {
            NotifyError::Kube {
                source: kube::Error::Api(e),
                ..
            } => e.code == 409 || e.code == 429 || e.code >= 500,
            NotifyError::Kube { .. } => true,
            _ => false,
        }
    }
}
