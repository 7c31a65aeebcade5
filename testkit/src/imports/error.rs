//! Why the import graph could not be read.

use std::path::PathBuf;

/// Why the import graph could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImportsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid Rust.
    #[error("cannot parse {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A `mod name;` whose file is missing.
    #[error("{path}: module {name} has no file {name}.rs or {name}/mod.rs")]
    MissingModule {
        /// The declaring file.
        path: PathBuf,
        /// The module.
        name: String,
    },
}
