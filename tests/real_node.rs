//! The operator on a real node: kube-scheduler places the Pods, the kubelet
//! runs them with containerd and runc, under the Pod spec the controller
//! builds. What the test kubelet only pretends is real here: pytest inside a
//! container, the memory limit's OOM kill, SIGTERM and the grace period, the
//! restricted security context, and the container log the counts come from.
//!
//! Its own test binary: it shares one control plane with a scheduler and one
//! node. Needs `bash tests/node/build.sh` (run by `scripts/test.sh`).

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, eventually, phase, running_in, wait_containers};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use testlayer::api::names::CASES_KEY;
use testlayer::api::{CategoryRunStatus, LayerPhase};
use testlayer::plan::Phase;
use testlayer::results::{REPORT_MARK, read_case_list};
use testlayer_testkit::RealNode;

const BUSYBOX: &str = "busybox:1.35";
const SHOP_IMAGE: &str = "localhost/testlayer/shop-tests:1";

fn reason(s: &CategoryRunStatus) -> Option<String> {
    s.reason.as_ref().map(ToString::to_string)
}

fn attempt_reasons(s: &CategoryRunStatus) -> Vec<String> {
    s.attempts
        .iter()
        .map(|a| {
            a.reason
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        })
        .collect()
}

async fn status(fx: &Fixture, run: &str, category: &str) -> CategoryRunStatus {
    fx.category(run, category)
        .await
        .status
        .unwrap_or_else(|| panic!("{run}-{category} has no status"))
}

/// The containers the runtime itself reports running in the fixture's
/// namespace.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_example_runs_real_pytest_in_pods_as_written() {
    let fx = Fixture::builder("node-shop").real_node().start().await;
    let started = Instant::now();
    let run = fx.run_shop_example("180s").await;
    let took = started.elapsed();
    assert_eq!(
        phase(&run),
        Some(LayerPhase::Succeeded),
        "{:#?}\n{}",
        run.status,
        fx.describe_category_runs("").await
    );

    // Counts and tails come from the real container log.
    let unit = status(&fx, "shop", "unit").await;
    let counts = unit.counts.expect("unit has counts");
    assert_eq!(
        (counts.passed, counts.skipped, counts.failed),
        (5, 1, 0),
        "{unit:#?}"
    );
    let tail = unit.attempts[0].log_tail.clone().unwrap_or_default();
    assert!(tail.contains("5 passed, 1 skipped"), "unit's tail: {tail}");
    // Its JUnit report came out through the container log, whole, and its
    // lines stay out of the tail.
    assert_eq!(unit.attempts[0].report_problem, None, "{unit:#?}");
    assert!(!tail.contains(REPORT_MARK), "unit's tail: {tail}");

    // The flaky category fails its first attempt for real (pytest exits 1)
    // and passes on its retry (TESTLAYER_ATTEMPT=2 in the new Pod).
    let flaky = status(&fx, "shop", "flaky").await;
    assert_eq!(flaky.phase, Some(Phase::Succeeded), "{flaky:#?}");
    assert_eq!(
        attempt_reasons(&flaky),
        ["ExitCode1", "Completed"],
        "{flaky:#?}"
    );
    assert_eq!(flaky.attempts[0].exit_code, Some(1));
    // Passed only on the retry: flaky, with the test that failed, then
    // passed, named from the two JUnit reports.
    assert!(flaky.flaky, "{flaky:#?}");
    assert_eq!(
        flaky.flaky_tests.listed.first().map(|t| t.id.as_str()),
        Some("tests.test_flaky::test_passes_on_retry"),
        "{flaky:#?}"
    );
    let run_flaky = run.status.as_ref().and_then(|s| s.flaky);
    assert_eq!(run_flaky.map(|f| (f.categories, f.tests)), Some((1, 1)));
    assert!(
        flaky.attempts[0]
            .log_tail
            .as_deref()
            .is_some_and(|t| t.contains("AssertionError") && t.contains("1 failed")),
        "the failing attempt's tail shows pytest's assertion: {flaky:#?}"
    );
    let compile = status(&fx, "shop", "compile").await;
    assert_eq!(compile.counts.map(|c| c.passed), Some(1), "{compile:#?}");
    eprintln!("the shop's full layer on the real node: {took:?}");
    assert!(
        running_in(RealNode::shared().1, &fx.ns).is_empty(),
        "no container outlives the run"
    );
}

/// Runs one category with a 48 MiB memory limit and `command` on the real
/// node; the run must fail, and this is the category's status.
async fn run_over_memory(prefix: &str, command: &str) -> CategoryRunStatus {
    let fx = Fixture::builder(prefix).real_node().start().await;
    let config = format!(
        r#"
layers:
  oom:
    name: "OOM"
    execution_mode: "sequential"
    categories:
      - name: "hog"
        timeout_seconds: 60
        resources: {{limits: {{memory: "48Mi"}}}}
        command: "{command}"
"#
    );
    fx.submit("oom", "oom", &config, json!({"image": BUSYBOX}))
        .await;
    let run = fx.wait_done("oom", Duration::from_secs(120)).await;
    assert_eq!(phase(&run), Some(LayerPhase::Failed), "{:#?}", run.status);
    let hog = status(&fx, "oom", "hog").await;
    assert_eq!(attempt_reasons(&hog), ["OOMKilled"], "{hog:#?}");
    assert!(
        !hog.attempts[0].infrastructure,
        "an OOM kill is the tests' failure: {hog:#?}"
    );
    assert_eq!(reason(&hog).as_deref(), Some("TestsFailed"), "{hog:#?}");
    hog
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_over_the_limit_ends_oom_killed_as_a_test_failure() {
    let hog = run_over_memory(
        "node-oom",
        "echo allocating; dd if=/dev/zero of=/dev/null bs=256M count=1 && echo '1 passed'",
    )
    .await;
    assert_eq!(hog.attempts[0].exit_code, Some(137), "{hog:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_for_memory_fails_the_category_though_the_command_exits_0() {
    // `dd` is the shell's child; the shell goes on after its kill and exits 0.
    let hog = run_over_memory(
        "node-oom-child",
        "dd if=/dev/zero of=/dev/null bs=256M count=1; echo 'dd gave up; 1 passed'",
    )
    .await;
    assert_eq!(hog.attempts[0].exit_code, Some(0), "{hog:#?}");
    assert!(
        hog.attempts[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("killed for memory") && m.contains("exited 0")),
        "the attempt says what happened: {hog:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let fx = Fixture::builder("node-term").real_node().start().await;
    let config = r#"
layers:
  term:
    name: "Term"
    execution_mode: "sequential"
    fail_fast: false
    categories:
      - name: "stubborn"
        timeout_seconds: 8
        priority_order: 1
        command: "trap '' TERM; echo started; seq 1 50000; echo counted; while true; do sleep 1; done"
      - name: "after"
        timeout_seconds: 30
        priority_order: 2
        command: "echo '1 passed in 0.1s'"
"#;
    // Its timeout leaves its container time to start on a loaded machine:
    // its log is to show that it ran before the stop.
    // Watch the stubborn Pod: when its stop was asked (the controller marks
    // it and cuts its deadline), when its kubelet had ended it.
    let pods = fx.pods();
    let watch = tokio::spawn(async move {
        use futures::StreamExt;
        let mut asked: Option<Instant> = None;
        let stream = watcher(
            pods,
            watcher::Config::default().labels("testlayer.dev/category=stubborn"),
        );
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let (Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p))) = ev else {
                continue;
            };
            let marked = kube::ResourceExt::annotations(&p)
                .contains_key(testlayer::api::names::ANNOTATION_STOPPED_AT);
            if marked && asked.is_none() {
                asked = Some(Instant::now());
            }
            let st = p.status.clone().unwrap_or_default();
            if let Some(a) = asked
                && st.phase.as_deref() == Some("Failed")
            {
                return (a.elapsed(), st.reason);
            }
        }
        (Duration::ZERO, None)
    });
    let started = Instant::now();
    fx.submit("term", "term", config, json!({"image": BUSYBOX}))
        .await;
    let run = fx.wait_done("term", Duration::from_secs(120)).await;
    let took = started.elapsed();
    let stubborn = status(&fx, "term", "stubborn").await;
    assert_eq!(stubborn.phase, Some(Phase::TimedOut), "{stubborn:#?}");
    let tail = stubborn.attempts[0].log_tail.clone().unwrap_or_default();
    assert!(
        tail.contains("50000\ncounted"),
        "the stopped attempt's log was read: {stubborn:#?}"
    );
    let after = status(&fx, "term", "after").await;
    assert_eq!(
        after.phase,
        Some(Phase::Succeeded),
        "the run went on: {after:#?}"
    );
    assert_eq!(phase(&run), Some(LayerPhase::Failed), "{:#?}", run.status);

    let (terminating, reason) = tokio::time::timeout(Duration::from_secs(60), watch)
        .await
        .expect("the stubborn Pod ended")
        .expect("watch task");
    // The kubelet sent SIGTERM, the container ignored it, and runc killed it
    // when the Pod's 10 s grace period ran out; the Pod stays.
    assert!(
        terminating >= Duration::from_secs(8) && terminating < Duration::from_secs(40),
        "the stubborn Pod took {terminating:?} to stop"
    );
    assert_eq!(reason.as_deref(), Some("DeadlineExceeded"));
    assert!(running_in(RealNode::shared().1, &fx.ns).is_empty());
    eprintln!("timeout 8 s + grace: stopping for {terminating:?}, run {took:?}");

    // Its whole log, far beyond the 4 KiB its CategoryRun keeps, is read
    // from the kept Pod after the run ended, as a user reads it.
    let out = tokio::task::spawn_blocking({
        let (kubeconfig, ns) = (fx.cp.kubeconfig(), fx.ns.clone());
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_testlayer"))
                .arg("logs")
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["-n", &ns, "term", "stubborn"])
                .output()
                .expect("testlayer logs")
        }
    })
    .await
    .expect("logs task");
    let log = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"started"),
        "{:?}",
        &lines[..lines.len().min(3)]
    );
    assert!(lines.contains(&"1") && lines.contains(&"50000") && lines.contains(&"counted"));
    assert!(log.len() > 280_000, "{} bytes", log.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_leaves_no_container_running_on_the_node() {
    let fx = Fixture::builder("node-cancel").real_node().start().await;
    let node = RealNode::shared().1;
    let config = r#"
layers:
  long:
    name: "Long"
    execution_mode: "parallel"
    categories:
      - name: "one"
        timeout_seconds: 600
        command: "sleep 600"
      - name: "two"
        timeout_seconds: 600
        command: "sleep 600"
"#;
    fx.submit("long", "long", config, json!({"image": BUSYBOX}))
        .await;
    let ns = fx.ns.clone();
    wait_containers(
        node,
        &ns,
        Duration::from_secs(60),
        "two containers running",
        |r| r.len() == 2,
    )
    .await;
    fx.runs()
        .patch(
            "long",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cancel": true}})),
        )
        .await
        .expect("cancel");
    let run = fx.wait_done("long", Duration::from_secs(60)).await;
    assert_eq!(
        phase(&run),
        Some(LayerPhase::Cancelled),
        "{:#?}",
        run.status
    );
    // No container runs on; the Pods stay, ended by their kubelet, so
    // their logs can be read.
    eventually(
        Duration::from_secs(60),
        "no container left on the node",
        async || {
            let running = running_in(node, &ns);
            let pods = fx
                .pods()
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let phases: Vec<Option<String>> = (pods.items.iter())
                .map(|p| p.status.clone().unwrap_or_default().phase)
                .collect();
            let ended = phases.iter().all(|p| p.as_deref() == Some("Failed"));
            if running.is_empty() && phases.len() == 2 && ended {
                Ok(())
            } else {
                Err(format!("running: {running:?}, Pods: {phases:?}"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_defaults_run_as_uid_1000_and_the_real_log_gives_counts() {
    let fx = Fixture::builder("node-uid").real_node().start().await;
    let config = r#"
layers:
  uid:
    name: "Uid"
    execution_mode: "parallel"
    categories:
      - name: "whoami"
        timeout_seconds: 60
        command: "echo uid=$(id -u) gid=$(id -g); echo '1 passed in 0.1s'"
      - name: "needs-root"
        timeout_seconds: 60
        command: "touch /etc/needs-root && echo '1 passed'"
      - name: "chatty"
        timeout_seconds: 60
        command: "yes 'a line of output that is not a count' | head -n 200000; echo '7 passed, 2 skipped in 0.5s'"
"#;
    fx.submit("uid", "uid", config, json!({"image": BUSYBOX}))
        .await;
    let run = fx.wait_done("uid", Duration::from_secs(120)).await;
    assert_eq!(phase(&run), Some(LayerPhase::Failed), "{:#?}", run.status);

    let whoami = status(&fx, "uid", "whoami").await;
    assert_eq!(whoami.phase, Some(Phase::Succeeded), "{whoami:#?}");
    let tail = whoami.log_tail.clone().unwrap_or_default();
    assert!(tail.contains("uid=1000 gid=1000"), "whoami's tail: {tail}");

    // An image's command that needs root fails under the restricted
    // defaults, with the reason `docs/operations/troubleshooting.md` documents.
    let root = status(&fx, "uid", "needs-root").await;
    assert_eq!(root.phase, Some(Phase::Failed), "{root:#?}");
    assert_eq!(reason(&root).as_deref(), Some("TestsFailed"), "{root:#?}");
    assert_eq!(attempt_reasons(&root), ["ExitCode1"], "{root:#?}");
    let tail = root.log_tail.clone().unwrap_or_default();
    assert!(
        tail.contains("Permission denied"),
        "needs-root's tail: {tail}"
    );

    // 200,000 lines (about 7 MiB) through the real container log: the counts
    // come from its end.
    let chatty = status(&fx, "uid", "chatty").await;
    let Some(counts) = chatty.counts else {
        panic!("chatty has no counts: {chatty:#?}");
    };
    assert_eq!((counts.passed, counts.skipped), (7, 2), "{chatty:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_reports_leave_real_containers_through_their_logs() {
    let fx = Fixture::builder("node-junit").real_node().start().await;
    let config = r#"
layers:
  junit:
    name: "JUnit"
    execution_mode: "parallel"
    categories:
      - name: "checkout"
        timeout_seconds: 60
        command: "python3 -m pytest -q -p no:cacheprovider tests/test_broken.py --junitxml=.testlayer-checkout.xml"
        junit_report: ".testlayer-checkout.xml"
      - name: "missing"
        timeout_seconds: 60
        command: "echo '1 passed in 0.1s'"
        junit_report: "never-written.xml"
      - name: "stopped"
        timeout_seconds: 3
        command: "echo started; sleep 60"
        junit_report: "stopped.xml"
"#;
    fx.submit("junit", "junit", config, json!({"image": SHOP_IMAGE}))
        .await;
    let run = fx.wait_done("junit", Duration::from_secs(120)).await;
    assert_eq!(phase(&run), Some(LayerPhase::Failed), "{:#?}", run.status);

    // pytest's report, printed by the wrapper inside the container, names
    // the failing test and the first line of its assertion.
    let checkout = status(&fx, "junit", "checkout").await;
    assert_eq!(checkout.phase, Some(Phase::Failed), "{checkout:#?}");
    assert_eq!(checkout.counts.map(|c| c.failed), Some(1), "{checkout:#?}");
    let failed = &checkout.failed_tests.listed;
    assert_eq!(failed.len(), 1, "{checkout:#?}");
    assert_eq!(
        failed[0].id,
        "tests.test_broken::test_discount_over_100_percent_is_rejected"
    );
    assert!(failed[0].message.starts_with("assert "), "{failed:?}");
    assert_eq!(checkout.attempts[0].report_problem, None, "{checkout:#?}");
    assert_eq!(
        checkout.attempts[0].exit_code,
        Some(1),
        "the exit code is pytest's"
    );
    // Every test case outlives the Pod in the ConfigMap the attempt names.
    let name = checkout.attempts[0]
        .test_cases
        .clone()
        .expect("test cases kept");
    let cm = fx
        .api::<ConfigMap>()
        .get(&name)
        .await
        .expect("the ConfigMap");
    let cases = read_case_list(&cm.binary_data.expect("binary data")[CASES_KEY].0);
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0].id, failed[0].id);

    // A report that was never written is named; the counts come from the log.
    let missing = status(&fx, "junit", "missing").await;
    assert_eq!(missing.phase, Some(Phase::Succeeded), "{missing:#?}");
    assert_eq!(missing.counts.map(|c| c.passed), Some(1));
    assert_eq!(
        missing.attempts[0].report_problem.as_deref(),
        Some("JUnit report never-written.xml was not written"),
        "{missing:#?}"
    );

    // The wrapper passes SIGTERM on: the timed-out command ends at once,
    // not when the 10-second grace period runs out.
    let stopped = status(&fx, "junit", "stopped").await;
    assert_eq!(stopped.phase, Some(Phase::TimedOut), "{stopped:#?}");
    let a = &stopped.attempts[0];
    let ran = a
        .completion_time
        .as_ref()
        .zip(a.start_time.as_ref())
        .map(|(e, s)| e.0.duration_since(s.0).as_secs_f64())
        .expect("the attempt has both times");
    assert!(
        ran < 11.0,
        "the stopped attempt took {ran:.1} s: {stopped:#?}"
    );
    assert_eq!(a.report_problem, None, "{stopped:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_placed_by_the_scheduler_on_the_real_node() {
    let fx = Fixture::builder("node-placed").real_node().start().await;
    let node = RealNode::shared().1;
    let config = r#"
layers:
  one:
    name: "One"
    categories:
      - name: "only"
        timeout_seconds: 60
        command: "echo '1 passed'"
"#;
    fx.submit("one", "one", config, json!({"image": BUSYBOX}))
        .await;
    let run = fx.wait_done("one", Duration::from_secs(120)).await;
    assert_eq!(
        phase(&run),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        run.status
    );
    let pods: Vec<Pod> = fx
        .pods()
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items;
    assert!(!pods.is_empty());
    for p in &pods {
        let spec = p.spec.as_ref().expect("spec");
        assert_eq!(spec.node_name.as_deref(), Some(node.name()));
        let cs = &p.status.as_ref().expect("status").container_statuses;
        let id = cs
            .as_ref()
            .and_then(|c| c[0].container_id.clone())
            .unwrap_or_default();
        assert!(id.starts_with("containerd://"), "a real container: {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_run_stops_its_pods_at_once() {
    let fx = Fixture::builder("node-delete").real_node().start().await;
    let (_, node) = RealNode::shared();
    // Two categories that run until stopped, and stop at once on SIGTERM.
    let config = r#"
layers:
  long:
    execution_mode: "parallel"
    categories:
      - name: "a"
        timeout_seconds: 300
        command: "trap 'exit 143' TERM; sleep 300 & wait"
      - name: "b"
        timeout_seconds: 300
        command: "trap 'exit 143' TERM; sleep 300 & wait"
"#;
    fx.submit("doomed", "long", config, json!({"image": BUSYBOX}))
        .await;
    wait_containers(
        node,
        &fx.ns,
        Duration::from_secs(90),
        "both containers running",
        |r| r.len() == 2,
    )
    .await;
    let deleted = Instant::now();
    fx.kubectl(&["delete", "tlr", "doomed", "--wait=false"])
        .await;
    // Not when the garbage collector gets to the Pods (tens of seconds):
    // the controller stops them itself.
    wait_containers(
        node,
        &fx.ns,
        Duration::from_secs(8),
        "no container of the deleted run",
        <[String]>::is_empty,
    )
    .await;
    eprintln!(
        "deleted run's containers gone after {:?}",
        deleted.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_is_not_there_ends_the_attempt_as_infrastructure() {
    let fx = Fixture::builder("node-pull").real_node().start().await;
    // No registry answers at localhost: containerd's pull fails for real
    // (ErrImagePull, then ImagePullBackOff).
    let config = r#"
layers:
  pull:
    execution_mode: "sequential"
    categories:
      - name: "absent"
        timeout_seconds: 120
        infra_retries: 1
        retry_backoff_seconds: 0.5
        image: "localhost/testlayer/absent:1"
        command: "echo '1 passed'"
"#;
    let started = Instant::now();
    fx.submit("pull", "pull", config, json!({"image": BUSYBOX}))
        .await;
    let run = fx.wait_done("pull", Duration::from_secs(120)).await;
    let took = started.elapsed();
    assert_eq!(phase(&run), Some(LayerPhase::Failed), "{:#?}", run.status);
    let absent = status(&fx, "pull", "absent").await;
    assert_eq!(absent.attempts.len(), 2, "retried: {absent:#?}");
    for a in &absent.attempts {
        let reason = a.reason.as_ref().map(ToString::to_string);
        assert!(
            matches!(reason.as_deref(), Some("ErrImagePull" | "ImagePullBackOff")),
            "{absent:#?}"
        );
        assert!(a.infrastructure, "a pull failure is not the tests': {a:#?}");
        assert_eq!(a.exit_code, None, "{a:#?}");
    }
    // Their Pods are deleted: nothing waits on an image that is not there.
    eventually(
        Duration::from_secs(30),
        "the attempts' Pods gone",
        async || {
            let left = fx.pod_names("testlayer.dev/run=pull").await;
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    )
    .await;
    eprintln!("an absent image failed both attempts in {took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
}
