//! The project's shell scripts run under `set -euo pipefail` on loaded
//! machines. There a pipe into a reader that stops early (`| head`,
//! `| grep -q`, `| grep -m N`) kills its writer with SIGPIPE once the
//! reader has gone, and pipefail turns that into the script's failure
//! (exit 141) whenever the writer had not finished writing: it passes on an
//! idle machine and fails under load. No script may have one.

use std::path::{Path, PathBuf};

/// Readers that may exit before their writer has written everything.
const EARLY_READERS: [&str; 5] = [
    "head",
    "grep -q",
    "grep -m",
    "grep --quiet",
    "grep --max-count",
];

fn scripts(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "node_modules") {
                scripts(&path, out);
            }
        } else if name.ends_with(".sh") || path.ends_with(".ci/run") {
            out.push(path);
        }
    }
}

/// The early readers that `line` pipes into, outside comments.
fn early_pipes(line: &str) -> Vec<&'static str> {
    let code = line.split(" #").next().unwrap_or(line);
    if code.trim_start().starts_with('#') {
        return Vec::new();
    }
    code.split('|')
        .skip(1)
        .filter(|seg| !seg.is_empty())
        .filter_map(|seg| {
            let seg = seg.trim_start();
            EARLY_READERS.iter().copied().find(|r| {
                seg.strip_prefix(r)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', ')']))
            })
        })
        .collect()
}

#[test]
fn early_pipes_are_found() {
    assert_eq!(early_pipes("etcd --version | head -1"), ["head"]);
    assert_eq!(early_pipes("x | grep -q foo && y"), ["grep -q"]);
    assert_eq!(early_pipes("a || b"), Vec::<&str>::new());
    assert_eq!(early_pipes("x | tail -n 1"), Vec::<&str>::new());
    assert_eq!(early_pipes("  # x | head"), Vec::<&str>::new());
    assert_eq!(early_pipes("x | headless"), Vec::<&str>::new());
}

#[test]
fn no_script_pipes_into_a_reader_that_stops_early() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    scripts(root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("scripts/test.sh")),
        "found no scripts under {}",
        root.display()
    );
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            for reader in early_pipes(line) {
                found.push(format!(
                    "{}:{}: `| {reader}`: {}",
                    f.strip_prefix(root).unwrap_or(f).display(),
                    i + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "read the writer's whole output first (v=\"$(cmd)\"; echo \"${{v%%$'\\n'*}}\"):\n{}",
        found.join("\n")
    );
}
