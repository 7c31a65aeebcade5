//! The fenced code blocks of the getting-started pages, and which test runs
//! them. Every block of a command language (`bash`, `sh`, `console`) on a
//! getting-started page is run as written by the test [`RUNNERS`] names for
//! its page, or marked `no-run` in its info string (```` ```bash no-run ````)
//! with the reason in an HTML comment right above it
//! (`<!-- no-run: REASON -->`). `tests/docs.rs` holds every page to that.
//!
//! Not every binary uses every helper.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag};

/// The languages whose blocks are commands to run.
pub const COMMAND_LANGUAGES: [&str; 3] = ["bash", "sh", "console"];

/// Each getting-started page, and the test (file, function) that runs
/// every command block on it.
pub const RUNNERS: [(&str, &str, &str); 3] = [
    (
        "docs/getting-started/local.md",
        "tests/getting_started_local.rs",
        "every_command_of_the_local_page_runs_as_written",
    ),
    (
        "docs/getting-started/real-node.md",
        "tests/walkthrough.rs",
        "the_real_node_page_works_as_written_on_a_real_node",
    ),
    (
        "docs/getting-started/own-cluster.md",
        "tests/getting_started_cluster.rs",
        "every_command_of_the_own_cluster_page_runs_as_written",
    ),
];

/// One fenced code block of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The first word of its info string (empty when there is none).
    pub language: String,
    /// Whether its info string says `no-run`.
    pub no_run: bool,
    /// The reason in the `<!-- no-run: ... -->` comment right above it.
    pub reason: Option<String>,
    /// Its text.
    pub text: String,
    /// The line of the page where it starts (1-based).
    pub line: usize,
}

impl Block {
    /// Whether its language is one of [`COMMAND_LANGUAGES`].
    pub fn is_commands(&self) -> bool {
        COMMAND_LANGUAGES.contains(&self.language.as_str())
    }

    /// The commands as a user types them: `\` continuations joined, blank
    /// lines and comment lines left out; of a `console` block only the
    /// lines after a `$ ` prompt.
    pub fn commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut pending = String::new();
        for line in self.text.lines() {
            let line = if self.language == "console" {
                match line.strip_prefix("$ ") {
                    Some(l) => l,
                    None if pending.is_empty() => continue,
                    None => line,
                }
            } else {
                line
            };
            if pending.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#'))
            {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(head) => {
                    pending.push_str(head);
                }
                None => {
                    pending.push_str(line);
                    out.push(std::mem::take(&mut pending).trim().to_string());
                }
            }
        }
        if !pending.trim().is_empty() {
            out.push(pending.trim().to_string());
        }
        out
    }
}

/// Every fenced code block of `markdown`.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize)> = None;
    let mut text = String::new();
    for (event, range) in Parser::new(markdown).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                current = Some((info.to_string(), range.start));
                text.clear();
            }
            Event::Text(t) if current.is_some() => text.push_str(&t),
            Event::End(pulldown_cmark::TagEnd::CodeBlock) => {
                if let Some((info, start)) = current.take() {
                    let words: Vec<&str> = info.split_whitespace().collect();
                    out.push(Block {
                        language: words.first().copied().unwrap_or_default().to_string(),
                        no_run: words.contains(&"no-run"),
                        reason: reason_above(&markdown[..start]),
                        text: std::mem::take(&mut text),
                        line: markdown[..start].lines().count() + 1,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The reason of a `<!-- no-run: REASON -->` comment that ends `before`
/// (whitespace aside).
fn reason_above(before: &str) -> Option<String> {
    let before = before.trim_end();
    let comment = before.strip_suffix("-->")?;
    let start = comment.rfind("<!--")?;
    let reason = comment[start + 4..].trim().strip_prefix("no-run:")?.trim();
    (!reason.is_empty()).then(|| reason.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The page at `path` (relative to the repository's root).
pub fn page(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The command blocks of the page at `path` that its runner must run: every
/// block of a command language not marked `no-run`. Panics when `path` has
/// no runner in [`RUNNERS`] or no such block.
pub fn to_run(path: &str) -> Vec<Block> {
    assert!(
        RUNNERS.iter().any(|(p, _, _)| *p == path),
        "{path} has no runner in tests/doc_blocks/mod.rs"
    );
    let found: Vec<Block> = blocks(&page(path))
        .into_iter()
        .filter(|b| b.is_commands() && !b.no_run)
        .collect();
    assert!(!found.is_empty(), "{path} has no command block to run");
    found
}

/// Whether `cargo test` sets `name` for the crate it runs (the variables
/// of <https://doc.rust-lang.org/cargo/reference/environment-variables.html>
/// that a plain shell lacks); `CARGO_TARGET_DIR` and `CARGO_HOME` are the
/// user's own and stay.
pub fn set_by_cargo_for_a_crate(name: &str) -> bool {
    [
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
        || name == "CARGO"
        || name == "OUT_DIR"
}

/// `command` with the environment of a user's shell: none of the variables
/// `cargo test` sets for the crate under test. With them, a cargo build the
/// command runs would rerun the build scripts that watch them (ring's) and
/// rebuild everything above them, there and again in the next plain build.
pub fn as_in_a_shell(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if set_by_cargo_for_a_crate(&name) {
            command.env_remove(name);
        }
    }
    command
}
