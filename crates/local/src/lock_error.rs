//! Why shared-resource locks could not be had.

use std::path::PathBuf;

/// Problems with the lock directory or the declarations.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The directory or a file in it cannot be used.
    #[error("shared resource lock {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Another run on this machine declared another capacity.
    #[error(
        "shared resource {resource:?} has a capacity of {theirs} in a run already going on this machine, but {ours} in this config ({path}); every config using it must declare the same capacity"
    )]
    CapacityDiffers {
        /// Resource.
        resource: String,
        /// This run's capacity.
        ours: u32,
        /// The capacity recorded by the runs holding it.
        theirs: String,
        /// The capacity file.
        path: PathBuf,
    },
    /// A resource the run uses has no declared capacity.
    #[error("shared resource {0:?} is not declared under `resources:`")]
    Undeclared(String),
}
