//! The local executor end to end, through the `testlayer` binary: the example
//! project, reports, timeouts and Ctrl-C leaving no process behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The command, with a history file of its own (so that no test plans
/// with durations another test measured).
fn testlayer() -> Command {
    static HISTORY: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = HISTORY.get_or_init(|| tempfile::tempdir().unwrap());
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut c = Command::new(env!("CARGO_BIN_EXE_testlayer"));
    c.env(
        "TESTLAYER_HISTORY",
        dir.path().join(format!("history-{n}.json")),
    );
    c
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_json(args: &[&str], workdir: &Path, logs: &Path) -> (Output, serde_json::Value) {
    let out = testlayer()
        .args(args)
        .args(["--output", "json", "--progress", "plain", "--workdir"])
        .arg(workdir)
        .arg("--log-dir")
        .arg(logs)
        .current_dir(repo())
        .output()
        .expect("run testlayer");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn category<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

fn alive(pid: i32) -> bool {
    // Signal 0 probes; a zombie would still count, so check /proc state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.split_whitespace().nth(2).is_none_or(|st| st != "Z"),
        Err(_) => false,
    }
}

#[test]
fn example_project_passes_with_counts_retries_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("junit.xml");
    let (out, report) = run_json(
        &[
            "run",
            "-c",
            "examples/shop/testlayer.yaml",
            "-l",
            "full",
            "--junit",
            junit.to_str().unwrap(),
        ],
        &repo().join("examples/shop"),
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{stderr}");
    assert_eq!(report["outcome"], "Succeeded");
    assert_eq!(
        category(&report, "unit")["counts"],
        serde_json::json!({"passed": 5, "failed": 0, "skipped": 1})
    );
    assert_eq!(category(&report, "api")["counts"]["passed"], 2);
    let flaky = category(&report, "flaky");
    assert_eq!(flaky["attempts"].as_array().unwrap().len(), 2, "{flaky:#}");
    assert_eq!(flaky["attempts"][0]["exit_code"], 1);
    // It passed only on its retry: flaky, and so is the test that failed
    // first and then passed.
    assert_eq!(flaky["flaky"], true, "{flaky:#}");
    assert_eq!(flaky["reason"], "PassedOnRetry");
    assert_eq!(
        flaky["flaky_tests"]["listed"][0]["id"],
        "tests.test_flaky::test_passes_on_retry"
    );
    assert_eq!(flaky["flaky_tests"]["listed"][0]["attempt"], 1);
    assert!(flaky.get("failed_tests").is_none(), "{flaky:#}");
    assert_eq!(category(&report, "compile")["counts"]["passed"], 1);
    // checkout ran only after unit and api passed: its start follows their ends in the log.
    let pos = |needle: &str| {
        stderr
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{stderr}"))
    };
    assert!(pos("checkout: started") > pos("unit: Succeeded"));
    assert!(pos("checkout: started") > pos("api: Succeeded"));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuite") && xml.contains("name=\"checkout\""),
        "{xml}"
    );
    // unit's JUnit report is merged in with its own test cases.
    assert!(
        xml.contains(
            "<testsuite name=\"full/unit\" tests=\"6\" failures=\"0\" errors=\"0\" skipped=\"1\""
        ),
        "{xml}"
    );
    assert!(
        !xml.contains("name=\"unit\""),
        "unit is not also one case: {xml}"
    );
    assert!(tmp.path().join("full/checkout.attempt-1.log").exists());
}

#[test]
fn broken_example_fails_skips_dependents_and_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (out, report) = run_json(
        &[
            "run",
            "-c",
            "examples/shop/testlayer-broken.yaml",
            "-l",
            "broken",
        ],
        &repo().join("examples/shop"),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(report["outcome"], "Failed");
    assert_eq!(category(&report, "smoke")["phase"], "Succeeded");
    let checkout = category(&report, "checkout");
    assert_eq!(checkout["phase"], "Failed");
    assert_eq!(checkout["counts"]["failed"], 1);
    assert!(
        checkout["log_tail"]
            .as_str()
            .unwrap()
            .contains("test_discount_over_100_percent_is_rejected")
    );
    // Its JUnit report names the failing test, with the first line of why.
    let failed = &checkout["failed_tests"]["listed"];
    assert_eq!(
        failed[0]["id"], "tests.test_broken::test_discount_over_100_percent_is_rejected",
        "{checkout:#}"
    );
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("assert "),
        "{checkout:#}"
    );
    assert_eq!(failed[0]["attempt"], 1);
    assert!(checkout["attempts"][0].get("report_problem").is_none());
    let skipped = category(&report, "report");
    assert_eq!(skipped["phase"], "Skipped");
    assert!(
        skipped["message"].as_str().unwrap().contains("checkout"),
        "{skipped:#}"
    );
    let hang = category(&report, "hang");
    assert_eq!(hang["phase"], "TimedOut");
    assert_eq!(hang["attempts"][0]["reason"], "DeadlineExceeded");
    let took = hang["duration_secs"].as_f64().unwrap();
    assert!((3.0..6.0).contains(&took), "hang ran {took}s, timeout 3s");
    assert!(started.elapsed() < Duration::from_secs(30));
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("layers.yaml");
    std::fs::write(&p, body).unwrap();
    p
}

fn pids_in(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits up to 10 s until `path` lists `n` process ids (the commands
/// started), failing otherwise.
fn wait_for_pids(path: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids_in(path).len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pids_in(path).len(), n, "the commands did not start");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let pids = tmp.path().join("pids");
    let cfg = write_config(
        tmp.path(),
        &format!(
            "layers:\n  l:\n    categories:\n      - name: spawner\n        timeout_seconds: 1\n        command: \"sleep 300 & echo $! >> {p}; sh -c 'sleep 300' & echo $! >> {p}; wait\"\n",
            p = pids.display()
        ),
    );
    let (out, report) = run_json(
        &["run", "-c", cfg.to_str().unwrap(), "-l", "l"],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(category(&report, "spawner")["phase"], "TimedOut");
    let pids = pids_in(&pids);
    assert_eq!(pids.len(), 2);
    std::thread::sleep(Duration::from_millis(200));
    for p in pids {
        assert!(!alive(p), "process {p} outlived the timeout");
    }
}

#[test]
fn ctrl_c_cancels_and_leaves_no_children() {
    let tmp = tempfile::tempdir().unwrap();
    let pids = tmp.path().join("pids");
    let cfg = write_config(
        tmp.path(),
        &format!(
            "layers:\n  l:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 600\n        command: \"sleep 300 & echo $! >> {p}; wait\"\n      - name: b\n        timeout_seconds: 600\n        command: \"echo $$ >> {p}; sleep 300\"\n      - name: c\n        timeout_seconds: 600\n        dependencies: [a]\n        command: \"true\"\n",
            p = pids.display()
        ),
    );
    let child = testlayer()
        .args([
            "run",
            "-c",
            cfg.to_str().unwrap(),
            "-l",
            "l",
            "--output",
            "json",
            "--progress",
            "plain",
            "--workdir",
        ])
        .arg(tmp.path())
        .arg("--log-dir")
        .arg(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pids(&pids, 2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "Cancelled");
    for name in ["a", "b", "c"] {
        assert_eq!(category(&report, name)["phase"], "Cancelled", "{report:#}");
    }
    std::thread::sleep(Duration::from_millis(200));
    for p in pids_in(&pids) {
        assert!(!alive(p), "process {p} outlived Ctrl-C");
    }
}

#[test]
fn bad_config_exits_2_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        "layers:\n  l:\n    categories:\n      - name: a\n        timeout_seconds: -1\n",
    );
    let out = testlayer()
        .args(["run", "-c", cfg.to_str().unwrap(), "-l", "l"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("layers.yaml") && err.contains("layers.l.categories[0].timeout_seconds"),
        "{err}"
    );
    let out = testlayer()
        .args(["validate", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = testlayer()
        .args(["validate", "config/test_layers.yaml"])
        .current_dir(repo())
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
fn parallel_limit_is_respected_by_real_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("events");
    let mut body = String::from(
        "layers:\n  l:\n    execution_mode: parallel\n    resource_limits: {max_parallel_instances: 3}\n    categories:\n",
    );
    for i in 0..9 {
        body += &format!(
            "      - name: c{i}\n        timeout_seconds: 30\n        command: \"echo start >> {l}; sleep 0.3; echo end >> {l}\"\n",
            l = log.display()
        );
    }
    let cfg = write_config(tmp.path(), &body);
    let (out, report) = run_json(
        &["run", "-c", cfg.to_str().unwrap(), "-l", "l"],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let mut running = 0;
    let mut peak = 0;
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        running += if line == "start" { 1 } else { -1 };
        peak = peak.max(running);
    }
    assert_eq!(peak, 3, "at most 3 at once, and the limit was used");
}

#[test]
fn quarantined_failures_pass_and_allowed_failures_let_the_layer_pass() {
    let tmp = tempfile::tempdir().unwrap();
    // A pytest-like script: writes a JUnit report with the given failures
    // and exits 1 when any failed.
    let script = |name: &str, fails: &[&str]| {
        let mut xml = String::from("<testsuite><testcase classname='t' name='ok'/>");
        for f in fails {
            xml.push_str(&format!(
                "<testcase classname='t' name='{f}'><failure message='boom {f}'/></testcase>"
            ));
        }
        xml.push_str("</testsuite>");
        let code = u8::from(!fails.is_empty());
        std::fs::write(
            tmp.path().join(format!("{name}.sh")),
            format!("cat > {name}.xml <<'EOF'\n{xml}\nEOF\nexit {code}\n"),
        )
        .unwrap();
    };
    script("covered", &["flaky_login", "x[db-1]"]);
    script("experimental", &["flaky_cart", "real_bug"]);
    let body = [
        "layers:",
        "  q:",
        "    execution_mode: parallel",
        "    fail_fast: true",
        "    quarantine: [\"t::flaky_*\"]",
        "    categories:",
        "      - {name: covered, timeout_seconds: 30, junit_report: covered.xml, quarantine: [\"t::x[db-1]\"], command: \"sh covered.sh\"}",
        "      - {name: after-covered, timeout_seconds: 30, dependencies: [covered], command: \"true\"}",
        "      - {name: experimental, timeout_seconds: 30, allow_failure: true, junit_report: experimental.xml, command: \"sh experimental.sh\"}",
        "      - {name: after-experimental, timeout_seconds: 30, dependencies: [experimental], command: \"sleep 0.5\"}",
    ]
    .join("\n");
    let cfg = write_config(tmp.path(), &body);
    let junit = tmp.path().join("out.xml");
    let (out, report) = run_json(
        &[
            "run",
            "-c",
            cfg.to_str().unwrap(),
            "-l",
            "q",
            "--junit",
            junit.to_str().unwrap(),
        ],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let covered = category(&report, "covered");
    assert_eq!(covered["phase"], "Succeeded", "{covered:#}");
    assert_eq!(covered["reason"], "PassedQuarantined");
    assert_eq!(covered["attempts"][0]["exit_code"], 1);
    assert_eq!(covered["attempts"][0]["passed_by_quarantine"], true);
    assert!(covered.get("failed_tests").is_none(), "{covered:#}");
    let q: Vec<&str> = covered["quarantined_tests"]["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(q, ["t::flaky_login", "t::x[db-1]"]);
    assert_eq!(category(&report, "after-covered")["phase"], "Succeeded");

    let exp = category(&report, "experimental");
    assert_eq!(exp["phase"], "Failed", "{exp:#}");
    assert_eq!(exp["allowed_failure"], true);
    assert_eq!(exp["failed_tests"]["listed"][0]["id"], "t::real_bug");
    assert_eq!(exp["quarantined_tests"]["listed"][0]["id"], "t::flaky_cart");
    assert_eq!(
        category(&report, "after-experimental")["phase"],
        "Succeeded",
        "neither fail-fast nor a skip"
    );
    assert_eq!(report["outcome"], "Succeeded");

    // The JUnit file: a quarantined failure is a skip that says so; the
    // failure that counts is a failure.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("quarantined, failed: boom flaky_login"),
        "{xml}"
    );
    assert!(xml.contains("boom real_bug"), "{xml}");

    // The table's summary names both.
    let out = testlayer()
        .args([
            "run",
            "-c",
            cfg.to_str().unwrap(),
            "-l",
            "q",
            "--progress",
            "plain",
            "--workdir",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("quarantined tests of covered (failed, not counted):"),
        "{text}"
    );
    assert!(
        text.contains("failed as allowed (allow_failure): experimental"),
        "{text}"
    );
}

#[test]
fn rerun_failed_runs_what_did_not_pass_from_the_report_s_own_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let ran = tmp.path().join("ran");
    let body = [
        "layers:",
        "  r:",
        "    execution_mode: parallel",
        "    categories:",
        "      - {name: good, timeout_seconds: 30, command: \"echo good >> ran; echo '4 passed in 0.1s'\"}",
        "      - {name: broken, timeout_seconds: 30, command: \"echo broken >> ran; test -f fixed\"}",
        "      - {name: after, timeout_seconds: 30, dependencies: [broken], command: \"echo after >> ran\"}",
    ]
    .join("\n");
    let cfg = write_config(tmp.path(), &body);
    let (out, report) = run_json(
        &["run", "-c", cfg.to_str().unwrap(), "-l", "r"],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(category(&report, "after")["phase"], "Skipped");
    let first = tmp.path().join("first.json");
    std::fs::write(&first, &out.stdout).unwrap();
    let ran_lines = || {
        let mut l: Vec<String> = std::fs::read_to_string(&ran)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        l.sort();
        l
    };
    assert_eq!(ran_lines(), ["broken", "good"]);

    // The config file is gone and the bug is fixed: the rerun runs the plan
    // the report kept, only what did not pass.
    std::fs::remove_file(&cfg).unwrap();
    std::fs::remove_file(&ran).unwrap();
    std::fs::write(tmp.path().join("fixed"), "").unwrap();
    let (out, report) = run_json(
        &["run", "--rerun-failed", first.to_str().unwrap()],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ran_lines(), ["after", "broken"], "good was not run again");
    let good = category(&report, "good");
    assert_eq!(good["phase"], "Succeeded");
    assert_eq!(good["message"], "passed in the earlier run; not run again");
    assert_eq!(good["counts"]["passed"], 4, "its results kept");
    assert_eq!(report["outcome"], "Succeeded", "the combined outcome");
    assert_eq!(report["rerun_of"], first.to_str().unwrap());
    assert_eq!(report["counts"]["passed"], 4);

    // Bad input: no such file, not a report, a report without a plan.
    let rerun = |path: &Path| {
        testlayer()
            .args(["run", "--rerun-failed"])
            .arg(path)
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    let out = rerun(&tmp.path().join("nope.json"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.json: cannot read the file"), "{err}");
    std::fs::write(tmp.path().join("junk.json"), "{\"layer\": 3}").unwrap();
    let out = rerun(&tmp.path().join("junk.json"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a JSON report of `testlayer run --output json`"),
        "{err}"
    );
    let mut planless = report.clone();
    planless.as_object_mut().unwrap().remove("plan");
    std::fs::write(tmp.path().join("planless.json"), planless.to_string()).unwrap();
    let out = rerun(&tmp.path().join("planless.json"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the report records no plan"), "{err}");
}

#[test]
fn hybrid_smart_learns_durations_from_the_history_file() {
    let tmp = tempfile::tempdir().unwrap();
    let order = tmp.path().join("order");
    let history = tmp.path().join("h").join("history.json");
    // One at a time, longest expected first: by timeouts `quick` (60 s)
    // goes first, though `long` takes longer.
    let body = [
        "layers:",
        "  h:",
        "    execution_mode: hybrid",
        "    resource_limits: {max_parallel_instances: 1}",
        "    categories:",
        "      - {name: quick, timeout_seconds: 60, command: \"echo quick >> order; sleep 0.1\"}",
        "      - {name: long, timeout_seconds: 5, command: \"echo long >> order; sleep 0.6\"}",
        "      - {name: fixed, timeout_seconds: 60, expected_duration_seconds: 0.01, command: \"echo fixed >> order\"}",
    ]
    .join("\n");
    let cfg = write_config(tmp.path(), &body);
    let run = || {
        run_json(
            &[
                "run",
                "-c",
                cfg.to_str().unwrap(),
                "-l",
                "h",
                "--history",
                history.to_str().unwrap(),
            ],
            tmp.path(),
            tmp.path(),
        )
    };
    let (out, first) = run();
    assert_eq!(out.status.code(), Some(0), "{first:#}");
    assert!(
        first["plan"].get("durations").is_none(),
        "nothing learned yet"
    );
    let h: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    let long = h["layers"]["h"]["long"].as_f64().unwrap();
    assert!((0.5..3.0).contains(&long), "{h:#}");
    let (out, second) = run();
    assert_eq!(out.status.code(), Some(0), "{second:#}");
    assert!(second["plan"]["durations"]["quick"].as_f64().is_some());
    let lines: Vec<String> = std::fs::read_to_string(&order)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        lines,
        ["quick", "long", "fixed", "long", "quick", "fixed"],
        "the second run plans with what the first measured; the config's estimate wins"
    );

    // An empty history file starts a new history.
    std::fs::write(&history, "").unwrap();
    let (out, third) = run();
    assert_eq!(out.status.code(), Some(0), "{third:#}");
    let h: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    assert!(h["layers"]["h"]["long"].is_number(), "written anew");
    // The history is written to a file of its own, then renamed over the
    // old one: no such file is left behind.
    let left: Vec<String> = std::fs::read_dir(history.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("history"))
        .collect();
    assert_eq!(left, ["history.json"], "no temporary file left");
}

/// `--history` naming a file that is not a testlayer history (another
/// JSON document, text that is not JSON, a history of a newer format) is
/// refused before anything runs: exit 2, the file named and said what it
/// is, and its bytes as they were; for one layer, a suite, and a rerun.
#[test]
fn a_history_file_that_is_not_one_is_left_untouched_and_nothing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        "layers:\n  h:\n    categories:\n      - {name: c, timeout_seconds: 30, command: \"echo ran >> ran\"}\n",
    );
    // A layer's report to rerun, written with a history of its own.
    let own = tmp.path().join("own-history.json");
    let (cfg_arg, own_arg) = (cfg.display().to_string(), own.display().to_string());
    let (out, _) = run_json(
        &["run", "-c", &cfg_arg, "-l", "h", "--history", &own_arg],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let report = tmp.path().join("report.json");
    std::fs::write(&report, &out.stdout).unwrap();
    assert!(own.exists(), "a missing history file starts a new history");
    std::fs::remove_file(tmp.path().join("ran")).unwrap();

    let wrong = tmp.path().join("wrong.json");
    let report_text = std::fs::read(&report).unwrap();
    let not_histories: [(&[u8], &str); 4] = [
        (&report_text, "is a JSON object with the fields"),
        (b"[1, 2, 3]\n", "is a JSON array, not a testlayer history"),
        (b"name: value\n", "is not JSON (line 1, column"),
        (
            br#"{"format": 7, "layers": {}}"#,
            "is a testlayer history of format 7, written by a newer testlayer",
        ),
    ];
    let report_arg = report.display().to_string();
    let ways: [&[&str]; 3] = [
        &["run", "-c", &cfg_arg, "-l", "h"],
        &["run", "-c", &cfg_arg, "--all"],
        &["run", "--rerun-failed", &report_arg],
    ];
    for (bytes, what) in not_histories {
        for way in ways {
            std::fs::write(&wrong, bytes).unwrap();
            let out = testlayer()
                .args(way)
                .arg("--history")
                .arg(&wrong)
                .args(["--progress", "none", "--workdir"])
                .arg(tmp.path())
                .current_dir(tmp.path())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{way:?}: {err}");
            assert!(
                err.contains(&format!(
                    "history file {} (--history) {what}",
                    wrong.display()
                )),
                "{way:?}: {err}"
            );
            assert!(
                err.contains("it was left untouched and nothing was run"),
                "{err}"
            );
            for serde_words in ["missing field", "invalid type", "expected", "struct"] {
                assert!(!err.contains(serde_words), "{err}");
            }
            assert_eq!(
                std::fs::read(&wrong).unwrap(),
                bytes,
                "{way:?}: the file is as it was"
            );
            assert!(!tmp.path().join("ran").exists(), "{way:?}: nothing ran");
        }
    }
}

#[test]
fn hostile_junit_reports_are_named_and_break_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    // A 100 MB report, one that is not XML, and one whose test name holds
    // control characters and is 10 KB long.
    let long = "x".repeat(10_000);
    std::fs::write(
        tmp.path().join("weird.sh"),
        format!(
            "printf '<testsuite><testcase classname=\"t\" name=\"bad\\001\\033[31mname{long}\"><failure message=\"m\\002x\"/></testcase></testsuite>' > weird.xml\nexit 1\n"
        ),
    )
    .unwrap();
    let body = [
        "layers:",
        "  j:",
        "    execution_mode: parallel",
        "    categories:",
        "      - {name: huge, timeout_seconds: 60, junit_report: huge.xml, command: \"echo '3 passed in 0.1s'; truncate -s 100M huge.xml\"}",
        "      - {name: notxml, timeout_seconds: 60, junit_report: notxml.xml, command: \"echo '2 passed in 0.1s'; echo 'hello, world' > notxml.xml\"}",
        "      - {name: weird, timeout_seconds: 60, junit_report: weird.xml, command: \"sh weird.sh\"}",
        "      - {name: fine, timeout_seconds: 60, command: \"echo '1 passed in 0.1s'\"}",
    ]
    .join("\n");
    let cfg = write_config(tmp.path(), &body);
    let (out, report) = run_json(
        &["run", "-c", cfg.to_str().unwrap(), "-l", "j"],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1), "weird fails: {report:#}");
    let huge = category(&report, "huge");
    assert_eq!(huge["phase"], "Succeeded");
    let problem = huge["attempts"][0]["report_problem"].as_str().unwrap();
    assert!(problem.contains("larger than 64 MiB"), "{problem}");
    assert_eq!(huge["counts"]["passed"], 3, "counts from the log");
    let notxml = category(&report, "notxml");
    let problem = notxml["attempts"][0]["report_problem"].as_str().unwrap();
    assert!(problem.contains("notxml.xml"), "{problem}");
    assert_eq!(notxml["counts"]["passed"], 2);
    let weird = category(&report, "weird");
    let id = weird["failed_tests"]["listed"][0]["id"].as_str().unwrap();
    assert!(id.starts_with("t::bad"), "{id}");
    assert!(!id.chars().any(char::is_control), "{id:?}");
    assert!(
        id.chars().count() <= 300,
        "{} characters",
        id.chars().count()
    );
    assert_eq!(category(&report, "fine")["phase"], "Succeeded");
}

const SUITE: &str = "layers:
  fast:
    execution_mode: parallel
    categories:
      - {name: smoke, timeout_seconds: 30, command: \"sleep 0.2; echo '2 passed in 0.2s'\"}
  core:
    execution_mode: parallel
    dependencies: [fast]
    categories:
      - {name: unit, timeout_seconds: 30, command: \"echo '1 failed in 0.1s'; test -f core-fixed\"}
  service:
    execution_mode: parallel
    dependencies: [core]
    categories:
      - {name: api, timeout_seconds: 30, command: \"echo api >> ran\"}
  e2e:
    execution_mode: background
    dependencies: [fast]
    categories:
      - {name: browse, timeout_seconds: 60, command: \"echo $$ > e2e.pid; sleep ${E2E_SECS:-2}; echo '5 passed in 2s'\"}
";

#[test]
fn a_suite_runs_layers_in_dependency_order_and_skips_what_a_failure_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), SUITE);
    let junit = tmp.path().join("suite.xml");
    let (out, report) = run_json(
        &[
            "run",
            "--all",
            "-c",
            cfg.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(report["outcome"], "Failed");
    let layers: Vec<(&str, &str)> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["layer"].as_str().unwrap(), l["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        layers,
        [
            ("fast", "Passed"),
            ("core", "Failed"),
            ("e2e", "Passed"),
            ("service", "Skipped")
        ],
        "dependency order (by name among equals); the background layer runs even though core failed"
    );
    assert_eq!(report["layers"][3]["skipped_because"], "core");
    assert_eq!(report["layers"][2]["background"], true);
    assert!(!tmp.path().join("ran").exists(), "service never ran");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("name=\"smoke\"")
            && xml.contains("name=\"unit\"")
            && xml.contains("name=\"browse\""),
        "one JUnit file for the suite: {xml}"
    );

    // Fixed: every blocking layer passes; exit 0 whatever the background does.
    std::fs::write(tmp.path().join("core-fixed"), "").unwrap();
    let (out, report) = run_json(
        &[
            "run",
            "-l",
            "fast,core,service",
            "-c",
            cfg.to_str().unwrap(),
        ],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["layers"].as_array().unwrap().len(), 3);

    // A layer whose dependency is not in the suite is not waited for.
    let out = testlayer()
        .args([
            "run",
            "-l",
            "core,service",
            "-c",
            cfg.to_str().unwrap(),
            "--progress",
            "none",
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("layer core depends on layer fast, which this suite does not run"),
        "{err}"
    );

    // Bad input: an unknown layer, nothing runs.
    let out = testlayer()
        .args(["run", "-l", "fast,nope", "-c", cfg.to_str().unwrap()])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn a_suite_prints_its_outcome_before_background_layers_end_and_ctrl_c_stops_them() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), SUITE);
    std::fs::write(tmp.path().join("core-fixed"), "").unwrap();
    let mut child = testlayer()
        .args([
            "run",
            "--all",
            "-c",
            cfg.to_str().unwrap(),
            "--progress",
            "plain",
        ])
        .arg("--workdir")
        .arg(tmp.path())
        .env("E2E_SECS", "30")
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let suite_line = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|l| l.starts_with("suite:"))
        .expect("the blocking layers' outcome");
    assert!(suite_line.starts_with("suite: Succeeded"), "{suite_line}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "printed while the background layer still runs"
    );
    // The background layer's process, then Ctrl-C.
    let pid_file = tmp.path().join("e2e.pid");
    while !pid_file.exists() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "Ctrl-C stopped it, not the 30 s sleep"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "every blocking layer passed: {rest:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l.starts_with("background: e2e Cancelled")),
        "the background layer is reported apart: {rest:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!alive(pid), "the background layer's process is gone");
}

/// A suite stopped by a signal is Cancelled everywhere: each layer it
/// stopped, the suite's outcome in the JSON report and in the text, the
/// JUnit file (what it stopped or kept from starting is `<skipped>` saying
/// cancelled, never a `<failure>`) and the exit code (130); never Failed.
#[test]
fn a_suite_stopped_by_a_signal_is_cancelled_not_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let pids = tmp.path().join("pids");
    let cfg = write_config(
        tmp.path(),
        &format!(
            "layers:\n  x:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 600\n        command: \"echo $$ >> {p}; sleep 300\"\n  y:\n    dependencies: [x]\n    categories:\n      - name: b\n        timeout_seconds: 60\n        command: \"true\"\n",
            p = pids.display()
        ),
    );
    for (output, signal) in [
        ("json", nix::sys::signal::Signal::SIGTERM),
        ("text", nix::sys::signal::Signal::SIGINT),
    ] {
        let _ = std::fs::remove_file(&pids);
        let junit = tmp.path().join(format!("{output}.xml"));
        let child = testlayer()
            .args([
                "run",
                "-c",
                cfg.to_str().unwrap(),
                "--all",
                "--output",
                output,
                "--junit",
                junit.to_str().unwrap(),
            ])
            .args(["--progress", "plain", "--workdir"])
            .arg(tmp.path())
            .arg("--log-dir")
            .arg(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_pids(&pids, 1);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(130),
            "{output}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if output == "json" {
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["outcome"], "Cancelled", "{report:#}");
            let state = |layer: &str| {
                report["layers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|l| l["layer"] == layer)
                    .map(|l| l["state"].clone())
            };
            assert_eq!(state("x"), Some("Cancelled".into()), "{report:#}");
            assert_eq!(state("y"), Some("Cancelled".into()), "{report:#}");
        } else {
            assert!(stdout.contains("suite: Cancelled"), "{stdout}");
            assert!(!stdout.contains("Failed"), "{stdout}");
        }
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(!xml.contains("<failure"), "{xml}");
        assert!(!xml.contains("<error"), "{xml}");
        assert!(
            xml.contains(r#"<testsuite name="x" tests="1" failures="0" errors="0" skipped="1""#)
                && xml.contains(
                    r#"<testsuite name="y" tests="1" failures="0" errors="0" skipped="1""#
                ),
            "{xml}"
        );
        assert_eq!(
            xml.matches(r#"<property name="state" value="Cancelled"/>"#)
                .count(),
            2,
            "{xml}"
        );
        assert!(
            xml.contains(r#"<property name="outcome" value="Cancelled"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<skipped message="cancelled: the run was cancelled"/>"#),
            "the stopped category: {xml}"
        );
        assert!(
            xml.contains(
                r#"<skipped message="cancelled: the suite was cancelled before layer y started"/>"#
            ),
            "the layer that never started: {xml}"
        );
    }
}

/// `run --rerun-failed` of a suite's report (`run --all -o json`) reruns
/// the suite from the plan the report kept: the layers that did not pass,
/// within a layer only the categories that did not pass (its passes carried
/// over), a layer skipped because of a dependency whole; as `submit
/// --rerun-failed SUITE` does in the cluster. A report of an older
/// testlayer (no plan of the suite's own) is rerun from its layers' plans;
/// one where everything passed says there is nothing to run again (exit
/// 0); one that is not as testlayer writes it is refused, naming the field.
#[test]
fn rerun_failed_of_a_suite_report_reruns_the_layers_and_categories_that_did_not_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "layers:
  fast:
    categories:
      - {name: smoke, timeout_seconds: 30, command: \"echo smoke >> ran\"}
  core:
    execution_mode: parallel
    dependencies: [fast]
    categories:
      - {name: good, timeout_seconds: 30, command: \"echo good >> ran; echo '4 passed in 0.1s'\"}
      - {name: broken, timeout_seconds: 30, command: \"echo broken >> ran; test -f fixed\"}
  service:
    dependencies: [core]
    categories:
      - {name: api, timeout_seconds: 30, command: \"echo api >> ran\"}
  e2e:
    execution_mode: background
    dependencies: [fast]
    categories:
      - {name: browse, timeout_seconds: 30, command: \"echo browse >> ran\"}
";
    let cfg = write_config(tmp.path(), body);
    let ran = tmp.path().join("ran");
    let ran_lines = || {
        let mut l: Vec<String> = std::fs::read_to_string(&ran)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        l.sort();
        let _ = std::fs::remove_file(&ran);
        l
    };
    let (out, first) = run_json(
        &["run", "--all", "-c", cfg.to_str().unwrap()],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{first:#}");
    let state = |report: &serde_json::Value, layer: &str| {
        report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["layer"] == layer)
            .map(|l| l["state"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(state(&first, "service"), "Skipped");
    assert_eq!(
        first["plan"]["layers"],
        serde_json::json!(["fast", "core", "e2e", "service"])
    );
    assert_eq!(ran_lines(), ["broken", "browse", "good", "smoke"]);
    let report = tmp.path().join("suite.json");
    std::fs::write(&report, &out.stdout).unwrap();
    // The same report as an older testlayer wrote it: no plan of the
    // suite's own (the issue's report said `missing field layer` about it).
    let mut older = first.clone();
    older.as_object_mut().unwrap().remove("plan");
    let older_report = tmp.path().join("older.json");
    std::fs::write(&older_report, older.to_string()).unwrap();

    // The config file is gone and the bug is fixed.
    std::fs::remove_file(&cfg).unwrap();
    std::fs::write(tmp.path().join("fixed"), "").unwrap();
    for earlier in [&report, &older_report] {
        let (out, again) = run_json(
            &["run", "--rerun-failed", earlier.to_str().unwrap()],
            tmp.path(),
            tmp.path(),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{again:#}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            ran_lines(),
            ["api", "broken"],
            "only what did not pass: core's broken, and service, skipped because of core"
        );
        assert_eq!(again["outcome"], "Succeeded");
        assert_eq!(again["rerun_of"], earlier.to_str().unwrap());
        for layer in ["fast", "core", "service", "e2e"] {
            assert_eq!(state(&again, layer), "Passed", "{again:#}");
        }
        let core = &again["layers"][1]["report"];
        assert_eq!(core["layer"], "core");
        assert_eq!(
            category(core, "good")["message"],
            "passed in the earlier run; not run again"
        );
        assert_eq!(
            category(core, "good")["counts"]["passed"],
            4,
            "its results kept"
        );
        assert_eq!(category(core, "broken")["phase"], "Succeeded");
        assert_eq!(core["rerun_of"], earlier.to_str().unwrap());
        std::fs::write(tmp.path().join("passed.json"), &out.stdout).unwrap();
    }

    // Everything passed: nothing to run again, exit 0.
    let (out, again) = run_json(
        &[
            "run",
            "--rerun-failed",
            tmp.path().join("passed.json").to_str().unwrap(),
        ],
        tmp.path(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{again:#}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("every layer passed in") && err.contains("nothing to run again"),
        "{err}"
    );
    assert_eq!(ran_lines(), Vec::<String>::new(), "nothing ran");
    assert_eq!(again["outcome"], "Succeeded");

    // Refused, saying why: a report with no plan anywhere, and one edited.
    let rerun = |value: &serde_json::Value| {
        let path = tmp.path().join("edited.json");
        std::fs::write(&path, value.to_string()).unwrap();
        let out = testlayer()
            .args(["run", "--rerun-failed"])
            .arg(&path)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(ran_lines(), Vec::<String>::new(), "nothing ran");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let mut planless = older.clone();
    for l in planless["layers"].as_array_mut().unwrap() {
        if let Some(r) = l.get_mut("report") {
            r.as_object_mut().unwrap().remove("plan");
        }
    }
    let err = rerun(&planless);
    assert!(
        err.contains("edited.json: the suite's report records no plan"),
        "{err}"
    );
    let mut edited = first.clone();
    edited["layers"][1]["report"]["duration_secs"] = "long".into();
    let err = rerun(&edited);
    assert!(
        err.contains("edited.json: not a suite's JSON report of `testlayer run --all --output json` as testlayer writes it: its `layers[1].report.duration_secs` is a text in quotes, where a number of seconds belongs"),
        "{err}"
    );
    for serde_words in ["missing field", "invalid type", "expected", "struct"] {
        assert!(!err.contains(serde_words), "{err}");
    }
}

/// `testlayer history --local` shows a layer's last runs from the history
/// file `testlayer run` records, and a run's summary names the tests that
/// failed in some of the last runs and not in others (flaky), never one that
/// fails every time (broken).
#[test]
fn history_shows_the_last_runs_and_a_summary_names_tests_flaky_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("history.json");
    std::fs::write(
        tmp.path().join("flip.sh"),
        r#"n=$(cat n 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > n
flip='<testcase classname="t" name="test_flip"/>'
if [ $((n % 2)) -eq 1 ]; then flip='<testcase classname="t" name="test_flip"><failure message="odd"/></testcase>'; fi
printf '<testsuite>%s<testcase classname="t" name="test_broken"><failure message="always"/></testcase><testcase classname="t" name="test_stable"/></testsuite>' "$flip" > unit.xml
exit 1
"#,
    )
    .unwrap();
    let body = [
        "layers:",
        "  h:",
        "    execution_mode: parallel",
        "    categories:",
        "      - {name: unit, timeout_seconds: 30, junit_report: unit.xml, command: \"sh flip.sh\"}",
    ]
    .join("\n");
    let cfg = write_config(tmp.path(), &body);
    let mut notes = Vec::new();
    for _ in 0..4 {
        let out = testlayer()
            .env("TESTLAYER_HISTORY", &history)
            .args([
                "run",
                "-c",
                cfg.to_str().unwrap(),
                "-l",
                "h",
                "--progress",
                "plain",
            ])
            .arg("--workdir")
            .arg(tmp.path())
            .arg("--log-dir")
            .arg(tmp.path().join("logs"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        notes.push(
            stderr
                .split_once("Flaky across runs")
                .map(|(_, n)| n.to_string()),
        );
    }
    // Run 1 has no past; in run 2 test_flip passed; in run 3 it failed
    // again: failed in 2 of the 3 runs, passed in the other.
    assert_eq!((&notes[0], &notes[1]), (&None, &None), "{notes:?}");
    let third = notes[2].as_deref().expect("a note under run 3");
    assert!(third.contains("unit › t::test_flip: 2 of 3"), "{third}");
    assert!(!third.contains("test_broken"), "broken, not flaky: {third}");
    let out = testlayer()
        .args(["history", "h", "--local", "--history"])
        .arg(&history)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("layer h: 0 of the last 4 runs passed\n"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains(" Failed ")).count(),
        4,
        "{text}"
    );
    assert!(
        text.contains("Failed most:\n  unit › t::test_broken  in 4 of 4 runs\n"),
        "{text}"
    );
    let flaky = text.split_once("Flaky").map(|(_, f)| f).unwrap_or_default();
    assert!(
        flaky.contains("unit › t::test_flip  in 2 of 4 runs"),
        "{text}"
    );
    assert!(!flaky.contains("test_broken"), "{text}");
    // A history file that is not one is named, with its path.
    std::fs::write(tmp.path().join("bad.json"), "[1]").unwrap();
    let out = testlayer()
        .args(["history", "h", "--local", "--history"])
        .arg(tmp.path().join("bad.json"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.json (--history) is a JSON array, not a testlayer history"),
        "{err}"
    );
}
