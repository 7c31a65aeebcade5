//! Shared resources on one machine, through the `testlayer` binary: runs of
//! different processes take turns on what their configs declare, a killed
//! run releases what it held, capacities must agree, and time spent waiting
//! does not count against the layer deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn testlayer(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_testlayer"));
    c.env("TESTLAYER_HISTORY", dir.join("history.json"))
        .env("TESTLAYER_LOCK_DIR", dir.join("locks"))
        .current_dir(dir);
    c
}

/// Starts `testlayer run` of `layer` in `config`, its report as JSON on
/// standard output and plain progress on standard error.
fn spawn(dir: &Path, config: &Path, layer: &str) -> Child {
    testlayer(dir)
        .args([
            "run",
            "--output",
            "json",
            "--progress",
            "plain",
            "-l",
            layer,
            "-c",
        ])
        .arg(config)
        .arg("--log-dir")
        .arg(dir.join(format!("logs-{layer}")))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start testlayer")
}

fn finish(child: Child) -> (Output, serde_json::Value) {
    let out = child.wait_with_output().expect("wait for testlayer");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// A category that records its start and end in `log` around `sleep`.
fn recording(name: &str, log: &Path, sleep: &str, uses: &str) -> String {
    format!(
        "      - name: {name}\n        timeout_seconds: 60\n        uses: {uses}\n        command: \"echo start $TESTLAYER_LAYER/$TESTLAYER_CATEGORY >> {log}; sleep {sleep}; echo end $TESTLAYER_LAYER/$TESTLAYER_CATEGORY >> {log}\"\n",
        log = log.display()
    )
}

/// The most holders inside at once, replaying the log (appends of one
/// line are atomic, and a holder writes `start` after it took its units and
/// `end` before it gives them back).
fn most_at_once(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap();
    let (mut inside, mut most, mut starts) = (0usize, 0usize, 0usize);
    for line in text.lines() {
        if line.starts_with("start ") {
            inside += 1;
            starts += 1;
            most = most.max(inside);
        } else if line.starts_with("end ") {
            inside -= 1;
        }
    }
    (most, starts)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn runs_of_two_processes_never_exceed_a_mutex_or_a_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let (db_log, pool_log) = (tmp.path().join("db.log"), tmp.path().join("pool.log"));
    let mut body = String::from(
        "resources:\n  staging_db: {}\n  sandbox: {capacity: 2}\nlayers:\n  l:\n    execution_mode: parallel\n    categories:\n",
    );
    for i in 0..3 {
        body += &recording(&format!("db{i}"), &db_log, "0.3", "[staging_db]");
        body += &recording(&format!("pool{i}"), &pool_log, "0.5", "[sandbox]");
    }
    let config = write(tmp.path(), "layers.yaml", &body);
    let a = spawn(tmp.path(), &config, "l");
    let b = spawn(tmp.path(), &config, "l");
    let (a, ra) = finish(a);
    let (b, rb) = finish(b);
    for (out, r) in [(&a, &ra), (&b, &rb)] {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(r["outcome"], "Succeeded");
    }
    assert_eq!(most_at_once(&db_log), (1, 6), "the mutex had two holders");
    let (most, starts) = most_at_once(&pool_log);
    assert_eq!(starts, 6);
    assert_eq!(most, 2, "the pool of 2 was exceeded or never full");
    // Who waits is told who holds what it waits for.
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(
        stderr.contains("waiting for shared resources: staging-db (held by pid "),
        "{stderr}"
    );
}

#[test]
fn a_killed_run_releases_what_it_held() {
    let tmp = tempfile::tempdir().unwrap();
    let started = tmp.path().join("started");
    let pid_file = tmp.path().join("pid");
    let config = write(
        tmp.path(),
        "layers.yaml",
        &format!(
            "resources:\n  staging_db: {{}}\nlayers:\n  holder:\n    uses: [staging_db]\n    categories:\n      - name: long\n        timeout_seconds: 60\n        command: \"echo $$ > {pid}; touch {started}; sleep 30\"\n  next:\n    uses: [staging_db]\n    categories:\n      - name: quick\n        timeout_seconds: 10\n        command: \"true\"\n",
            pid = pid_file.display(),
            started = started.display()
        ),
    );
    let mut holder = spawn(tmp.path(), &config, "holder");
    wait_for("the holder's category to start", || started.exists());
    let next = spawn(tmp.path(), &config, "next");
    std::thread::sleep(Duration::from_millis(500));
    // The other run waits while the holder lives ...
    assert!(
        !tmp.path().join("logs-next/quick.attempt-1.log").exists(),
        "the second run started while the first held the mutex"
    );
    holder.kill().unwrap();
    let t = Instant::now();
    holder.wait().unwrap();
    // ... and goes on once the kernel dropped the dead run's locks.
    let (out, report) = finish(next);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["outcome"], "Succeeded");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // The killed run's command lives on (SIGKILL reaches no children); it
    // never held the lock.
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
}

#[test]
fn a_different_capacity_is_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let started = tmp.path().join("started");
    let ran = tmp.path().join("ran");
    let one = write(
        tmp.path(),
        "one.yaml",
        &format!(
            "resources:\n  sandbox: {{capacity: 2}}\nlayers:\n  l:\n    categories:\n      - name: c\n        timeout_seconds: 60\n        uses: [sandbox]\n        command: \"touch {started}; sleep 3\"\n",
            started = started.display()
        ),
    );
    let other = write(
        tmp.path(),
        "other.yaml",
        &format!(
            "resources:\n  sandbox: {{capacity: 3}}\nlayers:\n  l:\n    categories:\n      - name: c\n        timeout_seconds: 60\n        uses: [sandbox]\n        command: \"touch {ran}\"\n",
            ran = ran.display()
        ),
    );
    let first = spawn(tmp.path(), &one, "l");
    wait_for("the first run to start", || started.exists());
    let out = testlayer(tmp.path())
        .args(["run", "-l", "l", "--progress", "none", "-c"])
        .arg(&other)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "shared resource \"sandbox\" has a capacity of 2 in a run already going on this machine, but 3 in this config"
        ),
        "{stderr}"
    );
    assert!(!ran.exists(), "the refused run started a category");
    let (out, _) = finish(first);
    assert_eq!(out.status.code(), Some(0));
    // Nobody uses it any more: the other capacity is taken now.
    let out = testlayer(tmp.path())
        .args(["run", "-l", "l", "--progress", "none", "-c"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn waiting_for_a_resource_does_not_count_against_the_deadline_unless_the_layer_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let started = tmp.path().join("started");
    // The holder keeps the mutex 4 s; the waiters' deadline is 3 s.
    let config = write(
        tmp.path(),
        "layers.yaml",
        &format!(
            "resources:\n  staging_db: {{}}\nlayers:\n  holder:\n    uses: [staging_db]\n    categories:\n      - name: long\n        timeout_seconds: 60\n        command: \"touch {started}; sleep 4\"\n  patient:\n    max_duration_minutes: 0.05\n    categories:\n      - name: quick\n        timeout_seconds: 10\n        uses: [staging_db]\n        command: \"sleep 1\"\n  strict:\n    max_duration_minutes: 0.05\n    deadline_counts_resource_wait: true\n    uses: [staging_db]\n    categories:\n      - name: quick\n        timeout_seconds: 10\n        command: \"sleep 1\"\n",
            started = started.display()
        ),
    );
    let holder = spawn(tmp.path(), &config, "holder");
    wait_for("the holder to start", || started.exists());
    let patient = spawn(tmp.path(), &config, "patient");
    let strict = spawn(tmp.path(), &config, "strict");
    let (_, patient) = finish(patient);
    let (_, strict) = finish(strict);
    let (_, holder) = finish(holder);
    assert_eq!(holder["outcome"], "Succeeded");
    assert_eq!(patient["outcome"], "Succeeded", "{patient:#}");
    assert!(patient["duration_secs"].as_f64().unwrap() > 3.0);
    assert_eq!(strict["outcome"], "TimedOut", "{strict:#}");
    assert_eq!(strict["categories"][0]["phase"], "Cancelled");
}

#[test]
fn runs_that_keep_what_each_other_waits_for_find_it_and_the_younger_gives_way() {
    let tmp = tempfile::tempdir().unwrap();
    // Two configs (one config with both layers is refused before anything
    // starts): each keeps one resource for the whole layer, and its second
    // category wants the other's.
    let keeping = |name: &str, keeps: &str, wants: &str| {
        write(
            tmp.path(),
            name,
            &format!(
                "resources:\n  staging_db: {{}}\n  sandbox: {{}}\nlayers:\n  e2e:\n    uses: [{keeps}]\n    categories:\n      - name: first\n        timeout_seconds: 60\n        command: \"sleep 1\"\n      - name: second\n        timeout_seconds: 60\n        dependencies: [first]\n        uses: [{wants}]\n        command: \"true\"\n"
            ),
        )
    };
    let older = keeping("older.yaml", "staging_db", "sandbox");
    let younger = keeping("younger.yaml", "sandbox", "staging_db");
    let a = spawn(tmp.path(), &older, "e2e");
    std::thread::sleep(Duration::from_millis(300));
    let b = spawn(tmp.path(), &younger, "e2e");
    let t = Instant::now();
    let (b, rb) = finish(b);
    let (a, ra) = finish(a);
    let stderr_b = String::from_utf8_lossy(&b.stderr);
    assert_eq!(b.status.code(), Some(1), "{stderr_b}");
    assert_eq!(rb["outcome"], "Failed");
    assert!(
        stderr_b.contains("deadlock over shared resources: runs \"pid ")
            && stderr_b.contains("keeps staging-db and waits for sandbox")
            && stderr_b.contains("keeps sandbox and waits for staging-db")
            && stderr_b.contains("this run is the youngest of them and stops"),
        "{stderr_b}"
    );
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert_eq!(ra["outcome"], "Succeeded");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    // Nothing is left behind in the lock directory but the locks.
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("locks"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".state"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
