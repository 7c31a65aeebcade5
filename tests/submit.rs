//! `testlayer submit` (and `kubectl testlayer`) against the real control
//! plane, with the controller and the test kubelet running.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Fixture, eventually, phase};
use kube::ResourceExt;
use kube::api::ListParams;
use testlayer::api::LayerPhase;
use testlayer::plan::Phase;
use testlayer::words::Reason;

const CONFIG: &str = "layers:\n  pass:\n    execution_mode: parallel\n    categories:\n      - name: smoke\n        timeout_seconds: 30\n        command: \"echo '2 passed in 0.1s'; sleep 0.3\"\n      - name: unit\n        timeout_seconds: 30\n        dependencies: [smoke]\n        command: \"echo '3 passed, 1 skipped in 0.1s'\"\n  fail:\n    execution_mode: parallel\n    categories:\n      - name: broken\n        timeout_seconds: 30\n        junit_report: out/junit.xml\n        command: \"echo '1 failed in 0.1s'; junit \\\"<testsuite><testcase classname='shop.cart' name='test_total'><failure message='assert 1 == 2'/></testcase><testcase classname='shop.cart' name='test_add'/></testsuite>\\\"; exit 1\"\n  slow:\n    execution_mode: parallel\n    categories:\n      - name: hang\n        timeout_seconds: 300\n        command: \"sleep infinity\"\n";

/// The fixture (namespace, kubelet, controller) and a directory holding
/// `layers.yaml` with [`CONFIG`].
struct Env {
    fx: Fixture,
    dir: tempfile::TempDir,
}

async fn env(prefix: &str) -> Env {
    let fx = Fixture::builder(prefix)
        .identity("submit-test")
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("layers.yaml"), CONFIG).unwrap();
    Env { fx, dir }
}

impl Env {
    fn submit(&self, extra: &[&str]) -> Command {
        self.submit_file("layers.yaml", extra)
    }

    fn submit_file(&self, config: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_testlayer"));
        c.arg("submit")
            .arg("--kubeconfig")
            .arg(self.fx.cp.kubeconfig())
            .args(["-n", &self.fx.ns, "--image", "busybox", "-c"])
            .arg(self.dir.path().join(config))
            .args(extra)
            .stdin(Stdio::null());
        c
    }

    /// `testlayer submit` with `extra` and no config, image or layer.
    fn rerun(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_testlayer"));
        c.arg("submit")
            .arg("--kubeconfig")
            .arg(self.fx.cp.kubeconfig())
            .args(["-n", &self.fx.ns])
            .args(extra)
            .stdin(Stdio::null());
        c
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }
}

async fn output(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_exits_with_the_result_and_writes_reports() {
    let env = env("submit").await;
    let junit = env.path("junit.xml");
    let out = output(env.submit(&[
        "-l",
        "pass",
        "--wait",
        "--output",
        "json",
        "--junit",
        junit.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "Succeeded");
    assert_eq!(
        report["counts"],
        serde_json::json!({"passed": 5, "failed": 0, "skipped": 1})
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("smoke: Succeeded") && stderr.contains("unit: Succeeded — 3 passed"),
        "{stderr}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("name=\"unit\"") && xml.contains("failures=\"0\""),
        "{xml}"
    );

    let failing_junit = env.path("failing.xml");
    let out = output(env.submit(&[
        "-l",
        "fail",
        "--wait",
        "--junit",
        failing_junit.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(
        summary.contains("broken") && summary.contains("Failed"),
        "{summary}"
    );
    // Its JUnit report (printed to the Pod's log) names the failing test
    // under the summary.
    assert!(
        summary.contains("failing tests of broken:\n  shop.cart::test_total: assert 1 == 2\n"),
        "{summary}"
    );
    // The JUnit file holds the report's own test cases, kept in a
    // ConfigMap after the Pod: one failing, one passing.
    let xml = std::fs::read_to_string(&failing_junit).unwrap();
    assert!(
        xml.contains("<testsuite name=\"fail/broken\" tests=\"2\" failures=\"1\"")
            && xml.contains("<testcase classname=\"shop.cart\" name=\"test_total\"")
            && xml.contains("message=\"assert 1 == 2\"")
            && xml.contains("<testcase classname=\"shop.cart\" name=\"test_add\""),
        "{xml}"
    );

    // Without --wait: the name, at once.
    let out = output(env.submit(&["-l", "pass", "--name", "nowait"])).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout).trim()),
        (Some(0), "nowait")
    );

    // Bad input: exit 2, nothing created.
    let before = env
        .fx
        .runs()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    let out = output(env.submit(&["-l", "nosuchlayer", "--wait"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown layer \"nosuchlayer\""),
        "{}",
        text(&out.stderr)
    );
    let after = env
        .fx
        .runs()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_plugin_and_cancel_on_sigterm() {
    let env = env("submit-plugin").await;
    // As a kubectl plugin.
    let bin_dir = env.dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_testlayer"),
        bin_dir.join("kubectl-testlayer"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // kubectl passes no flags to plugins: the current context comes from $KUBECONFIG.
    let mut c = Command::new(env.fx.cp.binary("kubectl"));
    c.env("PATH", &path)
        .env("KUBECONFIG", env.fx.cp.kubeconfig())
        .args(["testlayer", "submit"])
        .args([
            "-n", &env.fx.ns, "--image", "busybox", "-l", "pass", "--wait", "-c",
        ])
        .arg(env.path("layers.yaml"))
        .stdin(Stdio::null());
    let out = output(c).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // SIGTERM (a cancelled CI job, no terminal): the run is cancelled too.
    let child = env
        .submit(&["-l", "slow", "--name", "slow", "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let runs = env.fx.runs();
    // The run does not exist until the child has created it.
    eventually(
        Duration::from_secs(30),
        "the slow run to run",
        async || match runs.get_opt("slow").await.unwrap() {
            Some(r) if phase(&r) == Some(LayerPhase::Running) => Ok(()),
            Some(r) => Err(format!("{:#?}", r.status)),
            None => Err("not created yet".to_string()),
        },
    )
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cancelling slow"),
        "{}",
        text(&out.stderr)
    );
    let run = runs.get("slow").await.unwrap();
    assert_eq!(
        run.status.and_then(|s| s.phase),
        Some(LayerPhase::Cancelled)
    );
}

/// Drives `submit --wait` on a terminal (a pty from Python's pty module):
/// Ctrl-C asks whether to cancel the run, and "y" cancels it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_on_a_terminal_asks_before_cancelling() {
    let env = env("submit-tty").await;
    let driver = r#"
import os, pty, sys, time, select
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out = b""
def read_until(needle, timeout):
    global out
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if needle in out:
                return True
    return False
ok = read_until(b"hang: Running", 30)
if not ok:
    sys.stdout.write("NO-RUNNING\n" + out.decode(errors="replace")); sys.exit(3)
os.write(fd, b"\x03")
ok = read_until(b"[y/N]", 10)
if not ok:
    sys.stdout.write("NO-PROMPT\n" + out.decode(errors="replace")); sys.exit(4)
os.write(fd, b"y\n")
read_until(b"Cancelled", 30)
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.WEXITSTATUS(status))
"#;
    let script = env.path("drive.py");
    std::fs::write(&script, driver).unwrap();
    let mut c = Command::new("python3");
    c.arg(&script)
        .arg(env!("CARGO_BIN_EXE_testlayer"))
        .args(["submit", "--kubeconfig"])
        .arg(env.fx.cp.kubeconfig())
        .args([
            "-n", &env.fx.ns, "--image", "busybox", "-l", "slow", "--name", "tty", "--wait", "-c",
        ])
        .arg(env.path("layers.yaml"));
    let out = output(c).await;
    let shown = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{shown}\n{}",
        text(&out.stderr)
    );
    assert!(shown.contains("cancel the run tty too? [y/N]"), "{shown}");
    assert_eq!(
        env.fx
            .runs()
            .get("tty")
            .await
            .unwrap()
            .status
            .and_then(|s| s.phase),
        Some(LayerPhase::Cancelled)
    );
}

/// A run too large for its status to list its categories: `submit` follows
/// it by its counts and reads every category's detail from the CategoryRuns
/// for the summary and the JUnit report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_reports_every_category_of_a_large_run() {
    const N: usize = 80;
    let env = env("submit-big").await;
    let mut config =
        String::from("layers:\n  big:\n    execution_mode: parallel\n    categories:\n");
    for i in 0..N {
        let command = if i % 20 == 7 {
            "echo '1 failed in 0.1s'; exit 1"
        } else {
            "echo '2 passed in 0.1s'"
        };
        config.push_str(&format!(
            "      - name: category-{i:03}\n        timeout_seconds: 60\n        retries: 0\n        command: \"{command}\"\n"
        ));
    }
    std::fs::write(env.path("big.yaml"), config).unwrap();
    let junit = env.path("big.xml");
    let out = output(env.submit_file(
        "big.yaml",
        &["-l", "big", "--wait", "--junit", junit.to_str().unwrap()],
    ))
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("{N}/{N} done")), "{stderr}");
    assert!(
        stdout.contains("category-007") && stdout.contains("category-079"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let missing: Vec<usize> = (0..N)
        .filter(|i| !xml.contains(&format!("category-{i:03}")))
        .collect();
    assert!(missing.is_empty(), "categories {missing:?} not in {xml}");
    let run = env
        .fx
        .runs()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let st = run[0].status.clone().unwrap();
    assert!(
        st.categories.is_empty(),
        "listed {} categories",
        st.categories.len()
    );
    assert_eq!(st.phases.map(|p| p.failed), Some(4));
}

const QUARANTINE: &str = r#"layers:
  q:
    execution_mode: parallel
    fail_fast: true
    quarantine: ["shop.cart::test_flaky_*"]
    categories:
      - name: covered
        timeout_seconds: 30
        junit_report: out/junit.xml
        command: "junit \"<testsuite><testcase classname='shop.cart' name='test_flaky_total'><failure message='timing'/></testcase><testcase classname='shop.cart' name='test_add'/></testsuite>\"; exit 1"
      - name: experimental
        timeout_seconds: 30
        allow_failure: true
        command: "echo '1 failed in 0.1s'; exit 1"
      - name: after
        timeout_seconds: 30
        dependencies: [covered, experimental]
        command: "echo '1 passed in 0.1s'"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantined_failures_and_allowed_failures_pass_a_run_in_the_cluster() {
    let env = env("quarantine").await;
    std::fs::write(env.path("quarantine.yaml"), QUARANTINE).unwrap();
    let junit = env.path("q.xml");
    let out = output(env.submit_file(
        "quarantine.yaml",
        &[
            "-l",
            "q",
            "--name",
            "q1",
            "--wait",
            "--junit",
            junit.to_str().unwrap(),
        ],
    ))
    .await;
    let summary = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{summary}\n{}",
        text(&out.stderr)
    );
    assert!(
        summary.contains(
            "quarantined tests of covered (failed, not counted):\n  shop.cart::test_flaky_total: timing\n"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("failed as allowed (allow_failure): experimental"),
        "{summary}"
    );

    let cr = env.fx.crs().get("q1-covered").await.unwrap();
    assert_eq!(cr.spec.quarantine, ["shop.cart::test_flaky_*"]);
    let st = cr.status.unwrap();
    assert_eq!(st.reason, Some(Reason::PassedQuarantined), "{st:#?}");
    assert!(st.attempts[0].passed_by_quarantine);
    assert_eq!(st.attempts[0].exit_code, Some(1));
    assert_eq!(
        st.quarantined_tests.listed[0].id,
        "shop.cart::test_flaky_total"
    );
    let exp = env.fx.crs().get("q1-experimental").await.unwrap();
    let exp = exp.status.unwrap();
    assert_eq!(
        (exp.phase, exp.allowed_failure),
        (Some(Phase::Failed), true)
    );
    let after = env.fx.crs().get("q1-after").await.unwrap();
    assert_eq!(after.status.unwrap().phase, Some(Phase::Succeeded));

    let run = env.fx.runs().get("q1").await.unwrap().status.unwrap();
    assert_eq!(run.phase, Some(LayerPhase::Succeeded));
    assert_eq!(run.allowed_failures, ["experimental"]);
    assert_eq!(run.quarantined_tests, 1);
    assert!(run.failed_categories.is_empty());

    // The JUnit file: the quarantined failure is a skip that says so.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("quarantined, failed: timing"), "{xml}");
}

const RERUN: &str = r#"layers:
  r:
    execution_mode: parallel
    categories:
      - name: good
        timeout_seconds: 30
        command: "echo '4 passed in 0.1s'"
      - name: broken
        timeout_seconds: 30
        command: "echo '1 failed in 0.1s'; exit 1"
      - name: after
        timeout_seconds: 30
        dependencies: [broken]
        command: "echo '1 passed in 0.1s'"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_failed_runs_only_what_did_not_pass_and_says_when_the_run_is_gone() {
    let env = env("rerun").await;
    std::fs::write(env.path("rerun.yaml"), RERUN).unwrap();
    let out = output(env.submit_file("rerun.yaml", &["-l", "r", "--name", "r1", "--wait"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    let out = output(env.rerun(&["--rerun-failed", "r1", "--name", "r2", "--wait"])).await;
    let summary = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{summary}\n{}",
        text(&out.stderr)
    );
    assert!(
        summary.contains("good") && summary.contains("broken"),
        "{summary}"
    );
    let good = env.fx.crs().get("r2-good").await.unwrap();
    assert_eq!(good.spec.passed_in.as_deref(), Some("r1"));
    let st = good.status.unwrap();
    assert_eq!(st.phase, Some(Phase::Succeeded));
    assert_eq!(st.counts.map(|c| c.passed), Some(4));
    // Only what did not pass ran again: broken (after is skipped again).
    let pods: Vec<String> = env
        .fx
        .pods()
        .list(&ListParams::default().labels("testlayer.dev/run=r2"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(pods, ["r2-broken-1"]);
    let run = env.fx.runs().get("r2").await.unwrap();
    assert_eq!(run.spec.rerun_of.as_deref(), Some("r1"));
    let st = run.status.unwrap();
    let rerun = st.rerun.unwrap();
    assert_eq!((rerun.carried, rerun.rerun), (1, 2));
    assert_eq!(st.counts.map(|c| c.passed), Some(4), "the combined outcome");

    // Its picture, from the cluster: the rerun's own attempts, and its origin.
    let page = env.path("r2.html");
    let mut c = Command::new(env!("CARGO_BIN_EXE_testlayer"));
    c.args(["report", "--run", "r2", "-n", &env.fx.ns, "--kubeconfig"])
        .arg(env.fx.cp.kubeconfig())
        .arg("-o")
        .arg(&page);
    let out = output(c).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dom = common::browser::dom(&page);
    assert_eq!(dom.matches("<rect class=\"bar ").count(), 1, "{dom}");
    assert!(dom.contains("data-category=\"broken\""), "{dom}");
    assert!(dom.contains("<code>testlayerrun/r1</code>"), "{dom}");

    // A run that is gone: submit says so before creating anything ...
    let out = output(env.rerun(&["--rerun-failed", "gone", "--wait"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--rerun-failed: run gone not found"),
        "{}",
        text(&out.stderr)
    );
    // ... and a run applied with it gets a Stalled condition that says so.
    let obj: testlayer::api::TestLayerRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "metadata": {"name": "r3"},
        "spec": {"layer": "r", "rerunOf": "gone"},
    }))
    .unwrap();
    env.fx
        .runs()
        .create(&Default::default(), &obj)
        .await
        .unwrap();
    let done = env.fx.wait_done("r3", Duration::from_secs(30)).await;
    let st = done.status.unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    let stalled = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(stalled.reason, "RerunSourceNotFound");
    assert!(
        stalled.message.contains("run gone not found"),
        "{}",
        stalled.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_plans_with_the_durations_the_last_run_of_its_layer_measured() {
    let env = env("learn").await;
    let out = output(env.submit(&["-l", "pass", "--name", "p1", "--wait"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let first = env.fx.crs().get("p1-smoke").await.unwrap();
    assert_eq!(
        first.spec.expected_duration_seconds, None,
        "nothing to learn from"
    );
    let out = output(env.submit(&["-l", "pass", "--name", "p2", "--wait"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let second = env.fx.crs().get("p2-smoke").await.unwrap();
    let learned = second
        .spec
        .expected_duration_seconds
        .expect("learned from p1, frozen in the spec");
    assert!(learned < 30.0, "{learned}: measured, not the 30 s timeout");
}

const SUITE: &str = r#"layers:
  fast:
    execution_mode: parallel
    categories:
      - {name: smoke, timeout_seconds: 30, command: "sleep 4; echo '2 passed in 0.1s'"}
  core:
    execution_mode: parallel
    dependencies: [fast]
    categories:
      - {name: unit, timeout_seconds: 30, command: "echo '1 failed in 0.1s'; exit 1"}
  service:
    execution_mode: parallel
    dependencies: [core]
    categories:
      - {name: api, timeout_seconds: 30, command: "echo '1 passed in 0.1s'"}
  e2e:
    execution_mode: background
    dependencies: [fast]
    categories:
      - {name: browse, timeout_seconds: 30, command: "sleep 2; echo '5 passed in 2s'"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_in_the_cluster_gates_on_its_own_runs_and_reports_as_one() {
    let env = env("suite").await;
    // A newer failing run of layer fast outside the suite must not fail
    // the suite's core: a suite's runs gate on each other.
    std::fs::write(
        env.path("failing-fast.yaml"),
        "layers:\n  fast:\n    execution_mode: parallel\n    categories:\n      - {name: smoke, timeout_seconds: 30, command: \"exit 1\"}\n",
    )
    .unwrap();
    std::fs::write(env.path("suite.yaml"), SUITE).unwrap();
    let junit = env.path("suite.xml");
    let mut suite = env.submit_file(
        "suite.yaml",
        &[
            "--all",
            "--name",
            "s1",
            "--wait",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    let suite = tokio::task::spawn_blocking(move || suite.output().unwrap());
    // The outside run is made while the suite's fast runs, so it is the
    // newest run of layer fast, and fails before the suite's fast passes:
    // the latest run of the layer would be the wrong one to gate on.
    let runs = env.fx.runs();
    eventually(
        Duration::from_secs(30),
        "the suite's fast run exists",
        async || runs.get_opt("s1-fast").await.unwrap(),
    )
    .await;
    // Creation times are whole seconds: the loose run is made a second later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let outside = env.submit_file(
        "failing-fast.yaml",
        &["-l", "fast", "--name", "loose-fast", "--wait"],
    );
    let loose = output(outside).await;
    assert_eq!(loose.status.code(), Some(1), "{}", text(&loose.stderr));
    let fast = env.fx.runs().get("s1-fast").await.unwrap();
    assert!(
        !fast
            .status
            .and_then(|s| s.phase)
            .is_some_and(|p| p.is_terminal()),
        "the loose run ended first"
    );
    let out = suite.await.unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(
            "suite s1: Failed — fast Passed, core Failed, service skipped (core did not pass)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("background layers (not in the outcome):"),
        "{stdout}"
    );
    assert!(stdout.contains("background: e2e Passed"), "{stdout}");
    // Blocking layers were printed before the background one ended.
    let at = |s: &str| stdout.find(s).unwrap();
    assert!(at("suite s1:") < at("background layers"));
    let service = env.fx.runs().get("s1-service").await.unwrap();
    let st = service.status.unwrap();
    assert!(
        st.message
            .as_deref()
            .unwrap_or_default()
            .contains("s1-core"),
        "skipped because of its suite's core: {st:#?}"
    );
    let unit = env.fx.crs().get("s1-core-unit").await.unwrap();
    assert_eq!(
        unit.status.unwrap().attempts.len(),
        1,
        "core ran: its suite's fast passed, whatever the loose run did"
    );
    let core = env.fx.runs().get("s1-core").await.unwrap();
    assert_eq!(
        core.labels().get("testlayer.dev/suite").map(String::as_str),
        Some("s1")
    );
    assert_eq!(
        core.status.unwrap().phase,
        Some(LayerPhase::Failed),
        "ran: its suite's fast passed, whatever the loose run did"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("name=\"smoke\"")
            && xml.contains("name=\"unit\"")
            && xml.contains("name=\"browse\""),
        "{xml}"
    );

    // The suite's failures, rerun as a new suite: each layer's run reruns
    // what did not pass in the old suite's run of that layer.
    let out = output(env.rerun(&["--rerun-failed", "s1", "--name", "s2", "--wait"])).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(
            "suite s2: Failed — fast Passed, core Failed, service skipped (core did not pass)"
        ),
        "{stdout}"
    );
    let core = env.fx.runs().get("s2-core").await.unwrap();
    assert_eq!(core.spec.rerun_of.as_deref(), Some("s1-core"));
    let fast_pods = env
        .fx
        .pods()
        .list(&ListParams::default().labels("testlayer.dev/run=s2-fast"))
        .await
        .unwrap()
        .items;
    assert!(
        fast_pods.is_empty(),
        "fast passed in s1: carried over, not run"
    );
}

const CANCELLED_SUITE: &str = r#"layers:
  fast:
    execution_mode: parallel
    categories:
      - {name: smoke, timeout_seconds: 30, command: "echo '2 passed in 0.1s'"}
  core:
    execution_mode: parallel
    dependencies: [fast]
    categories:
      - {name: quick, timeout_seconds: 30, command: "echo '1 passed in 0.1s'"}
      - {name: hang, timeout_seconds: 300, command: "sleep infinity"}
  service:
    execution_mode: parallel
    dependencies: [core]
    categories:
      - {name: api, timeout_seconds: 30, command: "echo '1 passed in 0.1s'"}
"#;

/// A suite in the cluster whose run is cancelled is Cancelled in its line,
/// its JSON report, its JUnit file and its exit code (130), never Failed:
/// cancelled by `spec.cancel` on one of its runs (the run waiting on it is
/// cancelled with it, naming it), or by SIGTERM to the waiting `submit`,
/// which cancels what it submitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_suite_in_the_cluster_is_cancelled_never_failed() {
    let env = env("suite-cancel").await;
    std::fs::write(env.path("cancel.yaml"), CANCELLED_SUITE).unwrap();
    let runs = env.fx.runs();
    let running = async |name: &str| {
        eventually(
            Duration::from_secs(60),
            "the core layer's run to run",
            async || match runs.get_opt(name).await.unwrap() {
                Some(r) if phase(&r) == Some(LayerPhase::Running) => Ok(()),
                Some(r) => Err(format!("{:#?}", r.status)),
                None => Err("not created yet".to_string()),
            },
        )
        .await
    };
    let junit_says_cancelled = |xml: &str| {
        assert!(!xml.contains("<failure"), "{xml}");
        assert!(!xml.contains("<error"), "{xml}");
        assert_eq!(
            xml.matches(r#"<property name="state" value="Cancelled"/>"#)
                .count(),
            2,
            "core and service: {xml}"
        );
        assert!(
            xml.contains(r#"<property name="state" value="Passed"/>"#),
            "fast: {xml}"
        );
        assert!(
            xml.contains(r#"<testcase classname="core" name="hang""#)
                && xml.contains(r#"<skipped message="cancelled"#),
            "{xml}"
        );
    };

    // Someone cancels the core layer's run (`kubectl patch ... cancel`).
    let c1_junit = env.path("c1.xml");
    let child = env
        .submit_file(
            "cancel.yaml",
            &[
                "--all",
                "--name",
                "c1",
                "--wait",
                "-o",
                "json",
                "--junit",
                c1_junit.to_str().unwrap(),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    running("c1-core").await;
    runs.patch(
        "c1-core",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"spec": {"cancel": true}})),
    )
    .await
    .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["outcome"], "Cancelled", "{report:#}");
    assert_eq!(report["suite"], "c1");
    let states: Vec<(&str, &str, &str)> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["layer"].as_str().unwrap(),
                l["state"].as_str().unwrap(),
                l["report"]["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("fast", "Passed", "Succeeded"),
            ("core", "Cancelled", "Cancelled"),
            ("service", "Cancelled", "Cancelled")
        ],
        "{report:#}"
    );
    assert!(!stdout.contains("\"Failed\""), "{stdout}");
    let service = runs.get("c1-service").await.unwrap().status.unwrap();
    assert_eq!(service.phase, Some(LayerPhase::Cancelled));
    assert!(
        service
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("c1-core) was cancelled"),
        "{service:#?}"
    );
    junit_says_cancelled(&std::fs::read_to_string(&c1_junit).unwrap());

    // SIGTERM to the waiting submit (a cancelled CI job): it cancels the
    // suite's unfinished runs and waits for them to stop.
    let c2_junit = env.path("c2.xml");
    let child = env
        .submit_file(
            "cancel.yaml",
            &[
                "--all",
                "--name",
                "c2",
                "--wait",
                "--junit",
                c2_junit.to_str().unwrap(),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    running("c2-core").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("cancelling suite c2"), "{stderr}");
    assert!(
        stdout.contains("suite c2: Cancelled — fast Passed, core Cancelled, service Cancelled"),
        "{stdout}"
    );
    assert!(!stdout.contains("Failed"), "{stdout}");
    for run in ["c2-core", "c2-service"] {
        assert_eq!(
            runs.get(run).await.unwrap().status.and_then(|s| s.phase),
            Some(LayerPhase::Cancelled),
            "{run}"
        );
    }
    junit_says_cancelled(&std::fs::read_to_string(&c2_junit).unwrap());
}

impl Env {
    /// `testlayer VERB` against the fixture's cluster and namespace.
    fn verb(&self, verb: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_testlayer"));
        c.arg(verb)
            .arg("--kubeconfig")
            .arg(self.fx.cp.kubeconfig())
            .args(["-n", &self.fx.ns])
            .args(extra)
            .stdin(Stdio::null());
        c
    }
}

/// After `submit` without `--wait`: `wait` follows the run to the same
/// summary and exit code, `kubectl wait --for=condition=Failed` returns as
/// for a Job, `list` finds it, `get` shows it as a tree with its failing
/// test, and `logs` prints its output, from the Pod and, once the Pod is
/// gone, from what its CategoryRun keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_run_is_waited_for_listed_shown_and_its_logs_read() {
    let env = env("verbs").await;
    let out = output(env.submit(&["-l", "fail", "--name", "broken1"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "broken1");

    let out = output(env.verb("wait", &["broken1", "--timeout", "60"])).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("broken: Failed"), "{stderr}");
    assert!(
        stdout.contains("broken") && stdout.contains("Failed"),
        "{stdout}"
    );

    let mut kubectl = Command::new(env.fx.cp.binary("kubectl"));
    kubectl
        .env("KUBECONFIG", env.fx.cp.kubeconfig())
        .args(["wait", "-n", &env.fx.ns, "--for=condition=Failed"])
        .args(["testlayerrun/broken1", "--timeout=30s"]);
    let out = output(kubectl).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = output(env.verb("list", &[])).await;
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("NAME") && header.contains("PHASE"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("broken1 "))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..4], ["broken1", "fail", "Failed", "1/1"], "{table}");
    let out = output(env.verb("list", &["-l", "testlayer.dev/suite=none"])).await;
    assert!(
        text(&out.stderr).contains("No TestLayerRuns"),
        "{}",
        text(&out.stderr)
    );

    let out = output(env.verb("get", &["broken1"])).await;
    let tree = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        tree.starts_with(&format!(
            "TestLayerRun {}/broken1  layer fail  Failed",
            env.fx.ns
        )),
        "{tree}"
    );
    assert!(tree.contains("└── broken  Failed"), "{tree}");
    assert!(tree.contains("attempt 1  exit code 1"), "{tree}");
    assert!(
        tree.contains("✗ shop.cart::test_total — assert 1 == 2"),
        "{tree}"
    );
    let out = output(env.verb("get", &["broken1", "-o", "json"])).await;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["TestLayerRun", "CategoryRun"]);

    let out = output(env.verb("logs", &["broken1"])).await;
    let log = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(log.contains("[broken#1] 1 failed in 0.1s"), "{log}");
    let out = output(env.verb("logs", &["broken1", "broken"])).await;
    assert!(
        text(&out.stdout).starts_with("1 failed in 0.1s"),
        "{}",
        text(&out.stdout)
    );
    let out = output(env.verb("logs", &["broken1", "brokn"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("run broken1 has no category \"brokn\""),
        "{}",
        text(&out.stderr)
    );

    // The Pod gone: what its CategoryRun keeps, said as such.
    env.fx
        .pods()
        .delete("broken1-broken-1", &Default::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "the Pod to go", async || {
        env.fx
            .pods()
            .get_opt("broken1-broken-1")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let out = output(env.verb("logs", &["broken1", "broken"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Pod broken1-broken-1 is gone"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("1 failed in 0.1s"),
        "{}",
        text(&out.stdout)
    );

    let out = output(env.verb("wait", &["nosuchrun"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("TestLayerRun nosuchrun not found"),
        "{}",
        text(&out.stderr)
    );
}

/// `logs -f` joins a run's attempts as they start and ends with the run;
/// `cancel` stops a run; a second SIGTERM leaves `submit --wait` at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_a_run_to_its_end_cancel_stops_it_and_a_second_signal_leaves() {
    let env = env("follow").await;
    let out = output(env.submit(&["-l", "pass", "--name", "live"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = output(env.verb("logs", &["live", "-f"])).await;
    let log = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{log}\n{}", text(&out.stderr));
    // Both categories, the second started after the first ended.
    assert!(log.contains("[smoke#1] 2 passed in 0.1s"), "{log}");
    assert!(
        log.contains("[unit#1] 3 passed, 1 skipped in 0.1s"),
        "{log}"
    );

    let out = output(env.submit(&["-l", "slow", "--name", "stuck"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let following = env
        .verb("logs", &["stuck", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let runs = env.fx.runs();
    eventually(Duration::from_secs(30), "stuck to run", async || {
        let r = runs.get("stuck").await.unwrap();
        (phase(&r) == Some(LayerPhase::Running)).then_some(())
    })
    .await;
    let out = output(env.verb("cancel", &["stuck"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("testlayerrun/stuck cancelled"));
    let out = tokio::task::spawn_blocking(move || following.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        phase(&runs.get("stuck").await.unwrap()),
        Some(LayerPhase::Cancelled)
    );
    let out = output(env.verb("cancel", &["stuck"])).await;
    assert!(
        text(&out.stdout).contains("already ended (Cancelled)"),
        "{}",
        text(&out.stdout)
    );

    // Two SIGTERMs: the first cancels the run, the second leaves at once.
    let child = env
        .submit(&["-l", "slow", "--name", "twice", "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(30), "twice to run", async || match runs
        .get_opt("twice")
        .await
        .unwrap()
    {
        Some(r) if phase(&r) == Some(LayerPhase::Running) => Some(()),
        _ => None,
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    eventually(Duration::from_secs(30), "the cancel", async || {
        runs.get("twice").await.unwrap().spec.cancel.then_some(())
    })
    .await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cancelling twice"), "{stderr}");
    // Left at once (130), or the run had already ended as Cancelled (1).
    assert!(
        out.status.code() == Some(130) && stderr.contains("goes on in the cluster")
            || out.status.code() == Some(1) && stderr.contains("Cancelled"),
        "{:?}\n{stderr}",
        out.status.code()
    );

    let mut c = Command::new(env!("CARGO_BIN_EXE_testlayer"));
    c.args(["completions", "bash"]);
    let out = output(c).await;
    let script = text(&out.stdout);
    assert!(
        script.contains("complete -F") && script.contains("logs") && script.contains("--follow"),
        "{}",
        text(&out.stderr)
    );
}

/// `submit` takes `run`'s overrides of the config (checked here, against the
/// layer, before anything is created) and labels to find the run by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_takes_the_overrides_of_run_and_labels() {
    let env = env("overrides").await;
    let out = output(env.submit(&[
        "-l",
        "pass",
        "--name",
        "tuned",
        "--strategy",
        "SEQUENTIAL",
        "--max-parallel",
        "1",
        "--fail-fast",
        "true",
        "--retries",
        "2",
        "--timeout-multiplier",
        "1.5",
        "--label",
        "team=shop",
        "--wait",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = env.fx.runs().get("tuned").await.unwrap();
    let spec = serde_json::to_value(&run.spec).unwrap();
    assert_eq!(
        spec["overrides"],
        serde_json::json!({"strategy": "SEQUENTIAL", "maxParallel": 1, "failFast": true,
            "retries": 2, "timeoutMultiplier": "1.5"})
    );
    assert_eq!(run.labels().get("team").map(String::as_str), Some("shop"));
    // The layer ran as the overrides said.
    let status = run.status.unwrap();
    assert_eq!(
        status.strategy.map(|s| serde_json::to_value(s).unwrap()),
        Some(serde_json::json!("SEQUENTIAL"))
    );
    let out = output(env.verb("list", &["-l", "team=shop"])).await;
    let table = text(&out.stdout);
    assert!(table.lines().any(|l| l.starts_with("tuned ")), "{table}");
    assert_eq!(table.lines().count(), 2, "{table}");

    // Refused here, naming the flag, before any run exists.
    let out = output(env.submit(&["-l", "pass", "--name", "zero", "--max-parallel", "0"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("command line: max_parallel: must be between 1 and 10000, got 0"),
        "{}",
        text(&out.stderr)
    );
    assert!(env.fx.runs().get_opt("zero").await.unwrap().is_none());
}

/// `testlayer history` reads a layer's last runs from the cluster (its
/// TestLayerRuns and their CategoryRuns), and `wait` names, under the
/// summary, the failing tests that failed in some of the layer's last runs
/// and passed in others (flaky), not the one that failed in every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_a_layers_last_runs_and_wait_names_tests_flaky_across_runs() {
    let env = env("history").await;
    // One layer `flip`, two configs: its test_flip fails in one, passes in
    // the other; test_broken fails in both.
    let config = |flip_fails: bool| {
        let flip = if flip_fails {
            "<testcase classname='t' name='test_flip'><failure message='odd'/></testcase>"
        } else {
            "<testcase classname='t' name='test_flip'/>"
        };
        format!(
            "layers:\n  flip:\n    execution_mode: parallel\n    categories:\n      - name: unit\n        timeout_seconds: 30\n        junit_report: out/junit.xml\n        command: \"junit \\\"<testsuite>{flip}<testcase classname='t' name='test_broken'><failure message='always'/></testcase></testsuite>\\\"; exit 1\"\n"
        )
    };
    std::fs::write(env.path("fails.yaml"), config(true)).unwrap();
    std::fs::write(env.path("passes.yaml"), config(false)).unwrap();
    let mut notes = Vec::new();
    for (i, file) in ["fails.yaml", "passes.yaml", "fails.yaml"]
        .iter()
        .enumerate()
    {
        let name = format!("flip{i}");
        let out = output(env.submit_file(file, &["-l", "flip", "--name", &name, "--wait"])).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        notes.push(
            stderr
                .split_once("Flaky across runs")
                .map(|(_, n)| n.to_string()),
        );
    }
    assert_eq!((&notes[0], &notes[1]), (&None, &None), "{notes:?}");
    let third = notes[2].as_deref().expect("a note under the third run");
    assert!(third.contains("unit › t::test_flip: 2 of 3"), "{third}");
    assert!(!third.contains("test_broken"), "broken, not flaky: {third}");

    let out = output(env.verb("history", &["flip"])).await;
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        shown.starts_with("layer flip: 0 of the last 3 runs passed\n"),
        "{shown}"
    );
    let rows: Vec<&str> = shown.lines().filter(|l| l.starts_with("20")).collect();
    assert_eq!(rows.len(), 3, "{shown}");
    // Newest first.
    assert!(
        rows[0].contains("flip2") && rows[2].contains("flip0"),
        "{shown}"
    );
    assert!(
        shown.contains("Failed most:\n  unit › t::test_broken  in 3 of 3 runs\n"),
        "{shown}"
    );
    let flaky = shown
        .split_once("Flaky")
        .map(|(_, f)| f)
        .unwrap_or_default();
    assert!(
        flaky.contains("unit › t::test_flip  in 2 of 3 runs"),
        "{shown}"
    );
    // `--last` looks at fewer.
    let out = output(env.verb("history", &["flip", "--last", "1"])).await;
    assert!(text(&out.stdout).starts_with("layer flip: 0 of the last 1 runs passed\n"));
    let out = output(env.verb("history", &["nothing"])).await;
    assert_eq!(
        text(&out.stdout),
        "no finished runs of layer nothing are kept\n"
    );
}
