//! Which source files import which, and the circles among them.
//!
//! Every crate root of the workspace (libraries, binaries, integration
//! tests, benchmarks) is parsed with `syn`; each file is a node, and an
//! edge goes from a file to the file that defines what one of its paths
//! names (a `use` or a path in code starting with `crate`, `self`, `super`
//! or a name in scope), following re-exports to where the item is
//! defined. A `mod` declaration is not an edge: a parent that only
//! declares its children does not import them.

mod graph;
mod modules;
mod resolve;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use graph::circles;

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

/// Files (relative to the workspace root) and, for each, the files it
/// imports with one example path per edge.
pub type ImportGraph = BTreeMap<PathBuf, BTreeMap<PathBuf, String>>;

/// The import graph of every crate root under `root`: `src/lib.rs`,
/// `src/main.rs`, `src/bin/*.rs`, `tests/*.rs`, `benches/*.rs`, and the
/// same in each `crates/*` and in `testkit`.
pub fn workspace_graph(root: &Path) -> Result<ImportGraph, ImportsError> {
    let mut graph = ImportGraph::new();
    for package in packages(root) {
        for crate_root in crate_roots(&package) {
            let tree = modules::ModuleTree::load(&crate_root)?;
            for (from, to, example) in resolve::edges(&tree) {
                let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
                graph.entry(rel(&from)).or_default();
                graph
                    .entry(rel(&from))
                    .or_default()
                    .entry(rel(&to))
                    .or_insert(example);
            }
            for file in tree.files() {
                graph
                    .entry(file.strip_prefix(root).unwrap_or(file).to_path_buf())
                    .or_default();
            }
        }
    }
    Ok(graph)
}

/// The workspace's package directories: the root, `crates/*`, `testkit`.
fn packages(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf(), root.join("testkit")];
    out.extend(
        sorted_entries(&root.join("crates"))
            .into_iter()
            .filter(|p| p.is_dir()),
    );
    out
}

/// The crate roots of the package in `dir`.
fn crate_roots(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["src/lib.rs", "src/main.rs"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    for sub in ["src/bin", "tests", "benches"] {
        out.extend(
            sorted_entries(&dir.join(sub))
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "rs")),
        );
    }
    out
}

/// The entries of `dir`, sorted; none when it cannot be read.
fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let set: BTreeSet<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    set.into_iter().collect()
}
