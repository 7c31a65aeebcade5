//! Which source files import which, and the circles among them.
//!
//! Every crate root of the workspace (libraries, binaries, integration
//! tests, benchmarks) is parsed with `syn`; each file is a node, and an
//! edge goes from a file to the file that defines what one of its paths
//! names (a `use` or a path in code starting with `crate`, `self`, `super`
//! or a name in scope), following re-exports to where the item is
//! defined. A `mod` declaration is not an edge: a parent that only
//! declares its children does not import them.

mod error;
mod graph;
mod modules;
mod resolve;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use error::ImportsError;
pub use graph::{Circle, ImportGraph, circles};

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A crate in a temporary directory: `files` as (path under `src`,
    /// text).
    fn crate_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        for (path, text) in files {
            let p = dir.path().join("src").join(path);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        dir
    }

    fn found(dir: &tempfile::TempDir) -> Vec<Vec<String>> {
        let graph = workspace_graph(dir.path()).expect("graph");
        circles(&graph)
            .into_iter()
            .map(|c| c.files.iter().map(|f| f.display().to_string()).collect())
            .collect()
    }

    #[test]
    fn a_parent_that_uses_its_child_which_uses_the_parent_is_a_circle() {
        let dir = crate_with(&[
            (
                "lib.rs",
                "mod a;\npub struct Top;\npub fn f() { a::g(); }\n",
            ),
            ("a.rs", "pub fn g() { let _ = crate::Top; }\n"),
        ]);
        assert_eq!(found(&dir), [["src/a.rs", "src/lib.rs"]]);
    }

    #[test]
    fn re_exports_are_followed_to_the_file_that_defines_the_item() {
        // b uses `crate::Item`, which lib.rs only re-exports from c: b
        // imports c, not lib.rs, so there is no circle.
        let dir = crate_with(&[
            (
                "lib.rs",
                "mod b;\nmod c;\npub use c::Item;\npub fn f() { b::g(); }\n",
            ),
            ("b.rs", "use crate::Item;\npub fn g() { let _ = Item; }\n"),
            ("c.rs", "pub struct Item;\n"),
        ]);
        assert!(found(&dir).is_empty());
        let graph = workspace_graph(dir.path()).expect("graph");
        assert!(graph[Path::new("src/b.rs")].contains_key(Path::new("src/c.rs")));
    }

    #[test]
    fn a_loop_through_siblings_and_globs_is_one_circle() {
        let dir = crate_with(&[
            ("lib.rs", "mod x;\nmod y;\nmod z;\n"),
            ("x.rs", "use super::y::*;\npub fn fx() { fy(); }\n"),
            ("y.rs", "pub fn fy() { super::z::fz(); }\n"),
            ("z.rs", "pub fn fz() { crate::x::fx(); }\n"),
        ]);
        assert_eq!(found(&dir), [["src/x.rs", "src/y.rs", "src/z.rs"]]);
    }

    #[test]
    fn a_local_variable_named_like_a_module_is_no_import() {
        let dir = crate_with(&[
            (
                "lib.rs",
                "mod stop;\npub struct T;\npub fn f(stop: u8) -> u8 { stop }\n",
            ),
            ("stop.rs", "pub fn g() { let _ = crate::T; }\n"),
        ]);
        assert!(found(&dir).is_empty());
    }

    #[test]
    fn visibility_and_external_paths_are_no_imports() {
        let dir = crate_with(&[
            (
                "lib.rs",
                "mod d;\npub(crate) fn f() -> std::string::String { d::g() }\n",
            ),
            ("d.rs", "pub(super) fn g() -> String { String::new() }\n"),
        ]);
        assert!(found(&dir).is_empty());
    }
}
