//! Every command block of `docs/getting-started/local.md`, run as written,
//! line by line, in a shell whose `PATH` starts with the `testlayer` this
//! test was built with (what the page's `cargo install` gives a reader).
//!
//! The lines that build (`cargo ...`, `bash scripts/...`) run at the
//! repository's root, as the page says; they write only what git ignores
//! (pytest's caches, the JUnit files of `examples/shop`, `.testlayer/`). The
//! others run in a directory of their own holding links to `examples/` and
//! `config/`, so that the files they write (`full.json`, ...) stay out of the
//! working tree.

mod doc_blocks;

use std::path::Path;
use std::process::Command;

const PAGE: &str = "docs/getting-started/local.md";

/// What a line must end with and print: its exit code and words of its
/// output (standard output and error together).
fn expected(line: &str) -> (i32, &'static [&'static str]) {
    match line {
        l if l.contains("testlayer-broken.yaml") => (1, &["Failed", "Skipped", "TimedOut"]),
        l if l.starts_with("bash scripts/example.sh") => (0, &["Succeeded"]),
        l if l.starts_with("testlayer validate") => (0, &["OK"]),
        l if l.starts_with("testlayer plan") => (0, &["critical path"]),
        l if l.starts_with("testlayer report") => (0, &["wrote"]),
        l if l.starts_with("testlayer run --rerun-failed") => (0, &["nothing to run again"]),
        _ => (0, &[]),
    }
}

#[test]
fn every_command_of_the_local_page_runs_as_written() {
    let repo = doc_blocks::repo();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    for dir in ["examples", "config"] {
        std::os::unix::fs::symlink(repo.join(dir), scratch.path().join(dir)).expect("a link");
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_testlayer"))
        .parent()
        .expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for block in doc_blocks::to_run(PAGE) {
        for line in block.commands() {
            let builds = line.starts_with("cargo ") || line.starts_with("bash scripts/");
            let dir = if builds { repo } else { scratch.path() };
            let mut command = Command::new("bash");
            command
                .args(["-c", &line])
                .current_dir(dir)
                .env("PATH", &path);
            doc_blocks::as_in_a_shell(&mut command);
            let out = command.output().expect("running bash");
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let (code, words) = expected(&line);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{PAGE}:{}: `{line}` exited {:?}, not {code}:\n{printed}",
                block.line,
                out.status.code()
            );
            for word in words {
                assert!(
                    printed.contains(word),
                    "{PAGE}:{}: `{line}` printed no {word:?}:\n{printed}",
                    block.line
                );
            }
            ran += 1;
        }
    }
    // What the lines wrote is what the page says they write.
    let report = std::fs::read_to_string(scratch.path().join("full.json")).expect("full.json");
    assert!(report.contains("\"outcome\": \"Succeeded\""), "{report}");
    let junit = std::fs::read_to_string(scratch.path().join("full.xml")).expect("full.xml");
    assert!(junit.contains("<testsuite"), "{junit}");
    let html = std::fs::read_to_string(scratch.path().join("full.html")).expect("full.html");
    assert!(html.contains("<html"), "full.html is no HTML page");
    assert!(ran >= 6, "only {ran} commands ran");
}
