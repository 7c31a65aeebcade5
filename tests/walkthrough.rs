//! The real-node walk-through (`docs/getting-started/real-node.md`), as a
//! newcomer follows it: its first block, `bash tests/cluster/up.sh --node`,
//! in one terminal; in another, every other command block of the page line
//! by line (the two `export` lines as `up.sh` printed them); then Ctrl-C in
//! the first, which stops everything and cleans up the node.
//!
//! Needs what `scripts/test.sh` builds first (the control plane, the node,
//! the image); `up.sh` reuses them.

mod doc_blocks;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The page this test follows.
const PAGE: &str = "docs/getting-started/real-node.md";

/// The page's first command block, which starts the cluster in the first
/// terminal (its words), and the commands of every other block, typed in
/// the second.
fn page_commands() -> (Vec<String>, Vec<String>) {
    let blocks = doc_blocks::to_run(PAGE);
    let first = blocks[0].commands();
    assert_eq!(
        first,
        ["bash tests/cluster/up.sh --node"],
        "{PAGE}: the first command block starts the cluster, and only that"
    );
    let words = first[0].split_whitespace().map(str::to_string).collect();
    let typed: Vec<String> = blocks[1..].iter().flat_map(|b| b.commands()).collect();
    assert!(
        typed
            .first()
            .is_some_and(|l| l.starts_with("export KUBECONFIG=/tmp/testlayer-up-")),
        "{PAGE}: the commands after up.sh start with `export KUBECONFIG=/tmp/testlayer-up-`: {typed:?}"
    );
    (words, typed)
}

/// Runs `line` in bash as typed in a terminal where `exports` were typed
/// before; returns (exit status, output).
fn typed(exports: &[String], line: &str, dir: &Path) -> (Option<i32>, String) {
    let script = format!("{}\n{line}", exports.join("\n"));
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir)
        .output()
        .expect("bash");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The first terminal: `up.sh --node` in a process group of its own, as a
/// shell runs a foreground job (Ctrl-C signals the whole group).
struct Terminal {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Terminal {
    fn start(words: &[String], dir: &Path) -> Terminal {
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]).current_dir(dir);
        // A user's shell has none of the variables `cargo test` sets for
        // the crate under test (up.sh runs cargo builds).
        doc_blocks::as_in_a_shell(&mut command);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("starting up.sh");
        let (tx, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
            });
        }
        Terminal {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a printed line that starts with `prefix` (after its
    /// indentation).
    fn wait_for(&mut self, prefix: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        if let Some(l) = self
            .seen
            .iter()
            .find(|l| l.trim_start().starts_with(prefix))
        {
            return l.trim().to_string();
        }
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let found = l.trim_start().starts_with(prefix);
                    self.seen.push(l.clone());
                    if found {
                        return l.trim().to_string();
                    }
                }
                Err(_) => panic!(
                    "up.sh printed no line starting with {prefix:?} within {within:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Ctrl-C: SIGINT to the whole group; waits for the exit status.
    fn interrupt(mut self, within: Duration) -> (Option<i32>, Vec<String>) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return (status.code(), std::mem::take(&mut self.seen));
            }
            if Instant::now() > end {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                panic!(
                    "up.sh did not stop within {within:?} of Ctrl-C; it printed:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // A failed test must not leave a cluster running.
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGINT);
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

#[test]
fn the_real_node_page_works_as_written_on_a_real_node() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (up, block) = page_commands();
    let mut term = Terminal::start(&up, repo);
    // Everything is built already when the suite runs; a first run on a
    // fresh machine builds it (about 35 minutes).
    let kubeconfig = term.wait_for("export KUBECONFIG=", Duration::from_secs(600));
    let path = term.wait_for("export PATH=", Duration::from_secs(10));
    let node_line = term.wait_for("real node", Duration::from_secs(10));
    let up_dir = kubeconfig
        .trim_start_matches("export KUBECONFIG=")
        .trim_end_matches("/admin.kubeconfig")
        .to_string();

    let mut exports: Vec<String> = Vec::new();
    let started = Instant::now();
    for line in &block {
        let command = line.split(" #").next().unwrap_or(line).trim();
        if command.starts_with("export KUBECONFIG=") {
            // "as printed"
            exports.push(kubeconfig.clone());
            continue;
        }
        if command.starts_with("export PATH=") {
            // As written; it must name the directory up.sh printed. The
            // page names the default cache; with TESTLAYER_CACHE set, its
            // reader (and this test) reads the page's path there.
            let command = match std::env::var("TESTLAYER_CACHE") {
                Ok(cache) if !cache.is_empty() => command.replace("~/.cache/testlayer", &cache),
                _ => command.to_string(),
            };
            let command = command.as_str();
            let printed = path
                .trim_start_matches("export PATH=")
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string();
            let (_, expanded) = typed(&[], &format!("{command}; printf %s \"$PATH\""), repo);
            assert!(
                expanded.split(':').any(|d| d == printed),
                "{PAGE}'s `{command}` does not put {printed} (what up.sh printed) on PATH"
            );
            exports.push(command.to_string());
            continue;
        }
        if command.ends_with(" -w") {
            // A watch runs until the user stops it: it must be watching
            // (and have printed the objects) after a few seconds.
            let (code, out) = typed(&exports, &format!("timeout 5 {command}"), repo);
            assert_eq!(code, Some(124), "`{command}` ended by itself:\n{out}");
            assert!(out.contains("shop"), "`{command}` printed:\n{out}");
            continue;
        }
        let (code, out) = typed(&exports, command, repo);
        assert_eq!(code, Some(0), "`{command}` failed:\n{out}");
        let expect: &[&str] = match command {
            c if c.starts_with("kubectl get nodes") => &[" Ready "],
            c if c.starts_with("kubectl get tlr,tlcr,pods") => &["testlayerrun", "shop"],
            c if c.contains("-n testlayer-system get pods") => &["1/1", "Running"],
            c if c.starts_with("kubectl wait") => &["condition met"],
            c if c.starts_with("kubectl logs shop-unit-1") => &["passed"],
            c if c.contains("logs deploy/testlayer") => &["testlayer"],
            _ => &[],
        };
        for e in expect {
            assert!(out.contains(e), "`{command}` printed no {e:?}:\n{out}");
        }
    }
    eprintln!("the walk-through's commands took {:?}", started.elapsed());
    // What the last line applied ends as the page says.
    let (code, out) = typed(
        &exports,
        "kubectl wait --for=condition=Succeeded tlr/smoke-then-unit --timeout=3m",
        repo,
    );
    assert_eq!(code, Some(0), "the inline example: {out}");

    // Ctrl-C: everything stops, the node is cleaned up.
    let (code, printed) = term.interrupt(Duration::from_secs(90));
    assert_eq!(code, Some(0), "up.sh after Ctrl-C:\n{}", printed.join("\n"));
    let left = testlayer_testkit::processes_naming(up_dir.as_bytes());
    assert!(left.is_empty(), "still running after Ctrl-C: {left:#?}");
    let node = node_line
        .split_whitespace()
        .find(|w| w.starts_with("testlayer-node"))
        .unwrap_or_else(|| panic!("no node name in {node_line:?}"))
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    let slot = node
        .strip_prefix("testlayer-node-")
        .unwrap_or("0")
        .to_string();
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft");
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(
        !tables
            .lines()
            .any(|l| l.trim() == format!("table ip testlayer_node_{slot}")),
        "the node's nftables table is left: {tables}"
    );
}
