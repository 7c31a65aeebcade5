//! Every reconcile scenario of `tests/operator.rs`, against the pure step in
//! an in-memory cluster ([`world::World`]): fast, deterministic, and able to
//! look at the order of writes, which the end-to-end tests cannot.

mod world;

use std::time::Duration;

use serde_json::json;

use super::{Answers, Next, Question, Write};
use crate::api::LayerPhase;
use crate::plan::Phase;
use crate::words::{AttemptReason, Reason};
use world::{End, PodEvent, Script, World};

const LONG: Duration = Duration::from_secs(3600);

const CHAIN: &str = r#"
layers:
  chain:
    name: "Chain"
    execution_mode: "parallel"
    categories:
      - name: "smoke"
        timeout_seconds: 30
      - name: "unit"
        timeout_seconds: 30
        dependencies: ["smoke"]
      - name: "API Tests"
        timeout_seconds: 30
        dependencies: ["smoke"]
      - name: "e2e"
        timeout_seconds: 30
        dependencies: ["unit", "API Tests"]
"#;

fn chain() -> World {
    World::new("chain", CHAIN, json!({"command": "run {category}"})).scripts(|c, _| match c {
        "smoke" => Script::pass(0.5, "2 passed in 0.1s"),
        "unit" => Script::pass(0.3, "5 passed, 1 skipped in 0.3s"),
        "api-tests" => Script::pass(
            0.0,
            "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        ),
        _ => Script::pass(2.0, "1 passed in 1.0s"),
    })
}

fn wide(n: usize, layer_extra: &str, cat_extra: &str) -> String {
    let mut c =
        format!("layers:\n  wide:\n    execution_mode: parallel\n{layer_extra}    categories:\n");
    for i in 0..n {
        c.push_str(&format!(
            "      - name: c{i}\n        timeout_seconds: 60\n{cat_extra}"
        ));
    }
    c
}

#[test]
fn a_run_passes_in_dependency_order_with_counts() {
    let mut w = chain();
    w.run_to_end(LONG);
    let st = w.run.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Succeeded), "{st:#?}");
    assert_eq!(st.progress.as_deref(), Some("4/4"));
    let c = st.counts.unwrap();
    assert_eq!((c.passed, c.failed, c.skipped), (11, 0, 1));
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Succeeded" && c.status == "True")
    );
    assert!(st.start_time.is_some() && st.completion_time.is_some() && st.duration.is_some());
    let smoke_done = w.first("r-smoke-", &PodEvent::Ended(0));
    assert!(w.first("r-unit-", &PodEvent::Created) >= smoke_done);
    assert!(w.first("r-api-tests-", &PodEvent::Created) >= smoke_done);
    assert!(w.first("r-e2e-", &PodEvent::Created) >= w.first("r-unit-", &PodEvent::Ended(0)));
    assert!(w.first("r-e2e-", &PodEvent::Created) >= w.first("r-api-tests-", &PodEvent::Ended(0)));
    let api = w.category("API Tests").status.clone().unwrap();
    assert_eq!(api.phase, Some(Phase::Succeeded));
    assert_eq!(api.counts.map(|c| c.passed), Some(3));
    assert_eq!(api.attempts.len(), 1);
    assert_eq!(api.attempts[0].exit_code, Some(0));
    assert!(api.log_tail.unwrap().contains("test result: ok."));
    // The environment and command each Pod runs.
    assert_eq!(w.count("create pod"), 4);
    assert!(
        w.questions
            .iter()
            .filter(|q| matches!(q, Question::Config))
            .count()
            == 1
    );
}

#[test]
fn failures_retry_skip_dependents_and_name_their_reasons() {
    let config = r#"
layers:
  failing:
    execution_mode: "parallel"
    categories:
      - name: "flaky"
        timeout_seconds: 30
        retries: 2
        retry_backoff_seconds: 0.2
      - name: "after"
        timeout_seconds: 30
        dependencies: ["flaky"]
      - name: "memory"
        timeout_seconds: 30
      - name: "evicted"
        timeout_seconds: 30
        infra_retries: 1
        retry_backoff_seconds: 0.2
"#;
    let mut w = World::new("failing", config, json!({"command": "true"})).scripts(|c, _| match c {
        "flaky" => Script::fail(0.1, 1, "1 failed in 0.1s"),
        "memory" => Script::with(End::Oom, 0.1),
        "evicted" => Script::with(End::Evicted, 0.1),
        _ => Script::pass(0.1, ""),
    });
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    let s = w.summary();
    assert_eq!(
        (s["flaky"], s["after"], s["memory"], s["evicted"]),
        (Phase::Failed, Phase::Skipped, Phase::Failed, Phase::Failed)
    );
    let flaky = w.category("flaky").status.clone().unwrap();
    assert_eq!(flaky.attempts.len(), 3, "two retries: {flaky:#?}");
    assert!(flaky.attempts.iter().all(|a| a.exit_code == Some(1)
        && a.reason == Some(AttemptReason::ExitCode(1))
        && !a.infrastructure));
    assert_eq!(flaky.reason, Some(Reason::TestsFailed));
    assert_eq!(
        flaky.message.as_deref(),
        Some("tests failed and no retries were left (exit code 1, 3 attempts)")
    );
    assert_eq!(flaky.counts.map(|c| c.failed), Some(1));
    let after = w.category("after").status.clone().unwrap();
    assert_eq!(
        (after.reason, after.caused_by.as_deref()),
        (Some(Reason::DependencyFailed), Some("flaky"))
    );
    assert!(after.attempts.is_empty());
    let memory = w.category("memory").status.clone().unwrap();
    assert_eq!(memory.attempts[0].reason, Some(AttemptReason::OomKilled));
    assert_eq!(memory.attempts[0].exit_code, Some(137));
    let evicted = w.category("evicted").status.clone().unwrap();
    assert_eq!(
        evicted.attempts.len(),
        2,
        "one infrastructure retry: {evicted:#?}"
    );
    assert!(
        evicted
            .attempts
            .iter()
            .all(|a| a.infrastructure && a.reason == Some(AttemptReason::Evicted))
    );
    assert_eq!(evicted.reason, Some(Reason::InfrastructureFailed));
    assert!(!w.writes.iter().any(|x| x.starts_with("create pod r-after")));
    // Every failure is an Event on its CategoryRun.
    assert!(
        w.events
            .iter()
            .any(|e| e.warning && e.regarding.name.as_deref() == Some("r-flaky"))
    );
}

#[test]
fn the_parallel_limit_is_never_exceeded() {
    let mut w = World::new(
        "wide",
        &wide(9, "    resource_limits: {max_parallel_instances: 3}\n", ""),
        json!({"command": "true"}),
    )
    .scripts(|_, _| Script::pass(0.6, ""));
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert_eq!(w.count("create pod"), 9);
    assert_eq!(w.peak_running(), 3);
}

#[test]
fn timeouts_stop_pods_and_cancel_stops_everything() {
    let config = "layers:\n  slow:\n    execution_mode: parallel\n    categories:\n      - name: hang\n        timeout_seconds: 1\n      - name: quick\n        timeout_seconds: 30\n";
    let mut w = World::new("slow", config, json!({"command": "true"})).scripts(|c, _| match c {
        "hang" => Script::forever(),
        _ => Script::pass(0.1, ""),
    });
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    assert_eq!(w.summary()["hang"], Phase::TimedOut);
    let hang = w.category("hang").status.clone().unwrap();
    assert_eq!(hang.reason, Some(Reason::DeadlineExceeded));
    assert_eq!(
        hang.attempts[0].stop.as_ref().and_then(|s| s.phase),
        Some(Phase::TimedOut)
    );
    assert_eq!(
        hang.attempts[0].reason,
        Some(AttemptReason::DeadlineExceeded)
    );
    assert_eq!(w.live_pods(), 0);

    // Cancel: everything running stops, what waits is cancelled.
    let config = "layers:\n  long:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 300\n      - name: b\n        timeout_seconds: 300\n      - name: c\n        timeout_seconds: 300\n        dependencies: [a]\n";
    let mut w =
        World::new("long", config, json!({"command": "true"})).scripts(|_, _| Script::forever());
    w.run_until(LONG, |w| {
        w.summary()
            .values()
            .filter(|p| **p == Phase::Running)
            .count()
            == 2
    });
    w.run.spec.cancel = true;
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Cancelled));
    assert!(
        w.summary().values().all(|p| *p == Phase::Cancelled),
        "{:?}",
        w.summary()
    );
    assert_eq!(w.live_pods(), 0);
}

#[test]
fn invalid_config_is_a_clear_condition_and_creates_nothing() {
    let config = "layers:\n  bad:\n    categories:\n      - name: a\n        timeout_seconds: 10\n        dependencies: [b]\n      - name: b\n        timeout_seconds: 10\n        dependencies: [a]\n";
    let mut w = World::new("bad", config, json!({"command": "true"}));
    assert_eq!(w.reconcile(), Next::AwaitChange);
    let st = w.run.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    let stalled = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidConfig")
    );
    assert!(
        stalled.message.contains("dependency cycle"),
        "{}",
        stalled.message
    );
    assert!(w.crs.is_empty() && w.pods.is_empty());
    // Stepping again writes nothing more.
    let writes = w.writes.len();
    w.reconcile();
    assert_eq!(w.writes.len(), writes);
    // An unknown layer, and an unknown strategy in the overrides.
    let mut w = World::new("missing", CHAIN, json!({}));
    w.reconcile();
    assert!(
        w.run
            .status
            .clone()
            .unwrap()
            .message
            .unwrap()
            .contains("missing")
    );
    let mut w = World::new(
        "chain",
        CHAIN,
        json!({"overrides": {"strategy": "FASTEST"}}),
    );
    w.reconcile();
    let msg = w.run.status.clone().unwrap().message.unwrap();
    assert!(
        msg.contains("spec.overrides.strategy") && msg.contains("FASTEST"),
        "{msg}"
    );
}

#[test]
fn a_controller_restart_loses_nothing_and_starts_nothing_twice() {
    let mut w = World::new(
        "wide",
        &wide(6, "    resource_limits: {max_parallel_instances: 2}\n", ""),
        json!({"command": "true"}),
    )
    .scripts(|_, _| Script::pass(0.8, "1 passed in 0.1s"));
    // Just after the first Pods were created, before any CategoryRun status
    // recorded them (as after a crash): the Pods are the record.
    w.reconcile();
    assert_eq!(w.count("create pod"), 2);
    assert_eq!(
        w.count("cr status"),
        0,
        "a category that just started is not written yet"
    );
    for _ in 0..3 {
        let s = w.peek(Answers::default());
        assert!(
            !s.writes.iter().any(|x| matches!(x, Write::CreatePods(_))),
            "asked again, nothing new starts: {:?}",
            s.writes
        );
    }
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert_eq!(
        w.count("create pod"),
        6,
        "each category started exactly once"
    );
    assert_eq!(
        w.run.status.clone().unwrap().counts.map(|c| c.passed),
        Some(6)
    );
    assert!(w.peak_running() <= 2);
}

#[test]
fn fail_fast_cancels_what_runs_and_waits() {
    let config = "layers:\n  ff:\n    execution_mode: parallel\n    fail_fast: true\n    resource_limits: {max_parallel_instances: 2}\n    categories:\n      - name: bad\n        timeout_seconds: 30\n      - name: long\n        timeout_seconds: 30\n      - name: later\n        timeout_seconds: 30\n";
    let mut w = World::new("ff", config, json!({"command": "true"})).scripts(|c, _| match c {
        "bad" => Script::fail(0.3, 2, ""),
        "long" => Script::forever(),
        _ => Script::pass(0.1, ""),
    });
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    let s = w.summary();
    assert_eq!(
        (s["bad"], s["long"], s["later"]),
        (Phase::Failed, Phase::Cancelled, Phase::Cancelled)
    );
    let long = w.category("long").status.clone().unwrap();
    assert_eq!(
        (long.reason, long.caused_by.as_deref()),
        (Some(Reason::FailFast), Some("bad"))
    );
    assert!(
        w.category("later")
            .status
            .clone()
            .unwrap()
            .attempts
            .is_empty()
    );
}

#[test]
fn the_layer_deadline_times_out_what_runs() {
    let config = "layers:\n  dl:\n    execution_mode: sequential\n    max_duration_minutes: 0.05\n    categories:\n      - name: slow\n        timeout_seconds: 60\n      - name: next\n        timeout_seconds: 60\n";
    let mut w = World::new("dl", config, json!({"command": "true"})).scripts(|c, _| match c {
        "slow" => Script::forever(),
        _ => Script::pass(0.1, ""),
    });
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::TimedOut));
    let elapsed = w.now.duration_since(world::t0()).as_secs_f64();
    assert!((3.0..5.0).contains(&elapsed), "ended after {elapsed}s");
    let s = w.summary();
    assert_eq!((s["slow"], s["next"]), (Phase::TimedOut, Phase::Cancelled));
    assert_eq!(
        w.category("slow").status.clone().unwrap().reason,
        Some(Reason::LayerDeadlineExceeded)
    );
}

#[test]
fn the_cpu_budget_limits_admission() {
    let mut w = World::new(
        "wide",
        &wide(
            6,
            "    strategy: PARALLEL_UNLIMITED\n    resource_limits: {cpu: \"2\"}\n",
            "        resources: {limits: {cpu: \"1\"}}\n",
        ),
        json!({"command": "true"}),
    )
    .scripts(|_, _| Script::pass(0.5, ""));
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert_eq!(w.peak_running(), 2);
    let pod = &w.pods["r-c0-1"];
    let limits = pod.spec.clone().unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["cpu"].0, "1");
}

#[test]
fn suspend_stops_pods_and_resume_finishes_the_run() {
    let config = "layers:\n  sus:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: 60\n      - name: b\n        timeout_seconds: 60\n        dependencies: [a]\n";
    let mut w =
        World::new("sus", config, json!({"command": "true"})).scripts(|_, _| Script::pass(2.0, ""));
    w.run_until(LONG, |w| w.summary().get("a") == Some(&Phase::Running));
    w.run.spec.suspend = true;
    w.reconcile();
    assert_eq!(w.live_pods(), 0, "suspend stops the running Pod");
    let st = w.run.status.clone().unwrap();
    assert!(st.message.unwrap().starts_with("suspended"));
    assert!(!st.phase.unwrap().is_terminal());
    // Nothing starts while suspended.
    w.advance_to(
        w.now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(30))
            .unwrap(),
    );
    w.reconcile();
    assert_eq!(w.live_pods(), 0);
    w.run.spec.suspend = false;
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    let a = w.category("a").status.clone().unwrap();
    assert_eq!(
        a.attempts.len(),
        2,
        "the interrupted attempt and the one after: {a:#?}"
    );
    assert_eq!(
        a.attempts[0].stop.as_ref().map(|s| s.reason.clone()),
        Some(Reason::Interrupted)
    );
}

#[test]
fn a_deleted_run_is_left_to_the_garbage_collector() {
    let mut w = World::new("wide", &wide(2, "", ""), json!({"command": "true"}))
        .scripts(|_, _| Script::forever());
    w.reconcile();
    w.run.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(w.now));
    let s = w.peek(Answers::default());
    assert!(s.writes.is_empty() && s.questions.is_empty());
    assert_eq!(s.next, Next::AwaitChange);
}

#[test]
fn runs_wait_for_layer_dependencies_and_config_maps() {
    let config = "layers:\n  base:\n    execution_mode: sequential\n    categories:\n      - name: a\n        timeout_seconds: 30\n  top:\n    execution_mode: sequential\n    dependencies: [base]\n    categories:\n      - name: b\n        timeout_seconds: 30\n";
    let mut w = World::new(
        "top",
        config,
        json!({"command": "true", "config": {"configMapRef": {"name": "layers"}}}),
    );
    w.run.spec.config.inline = None;
    assert_eq!(w.reconcile(), Next::After(Duration::from_secs(10)));
    let st = w.run.status.clone().unwrap();
    assert!(st.message.unwrap().contains("ConfigMap layers not found"));
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    );
    w.config_maps.insert("layers".into(), config.into());
    w.reconcile();
    assert!(
        w.run
            .status
            .clone()
            .unwrap()
            .message
            .unwrap()
            .contains("layer base"),
        "{:?}",
        w.run.status
    );
    assert_eq!(w.count("create pod"), 0);
    // A run of the base layer passes: the dependent starts.
    let mut base: crate::api::TestLayerRun = serde_json::from_value(json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "metadata": {"name": "base", "namespace": "ns", "uid": "base-uid", "creationTimestamp": world::t0().to_string()},
        "spec": {"layer": "base", "config": {"inline": config}},
        "status": {"phase": "Running"}}))
    .unwrap();
    w.others.push(base.clone());
    w.reconcile();
    assert_eq!(w.count("create pod"), 0);
    base.status.as_mut().unwrap().phase = Some(LayerPhase::Succeeded);
    w.others = vec![base.clone()];
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    // A failed dependency fails the run without starting anything.
    let mut w = World::new("top", config, json!({"command": "true"}));
    base.status.as_mut().unwrap().phase = Some(LayerPhase::Failed);
    w.others = vec![base];
    w.reconcile();
    w.reconcile();
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    assert_eq!(w.cat_phase("b"), Some(Phase::Skipped));
    assert_eq!(w.count("create pod"), 0);
}

#[test]
fn required_services_gate_the_start_with_a_bound() {
    let config = "layers:\n  svc:\n    execution_mode: sequential\n    required_services: [postgresql]\n    service_wait_seconds: 5\n    categories:\n      - name: a\n        timeout_seconds: 30\n";
    let mut w = World::new("svc", config, json!({"command": "true"}));
    w.unready = vec!["postgresql".into()];
    w.reconcile();
    assert!(
        w.run
            .status
            .clone()
            .unwrap()
            .message
            .unwrap()
            .contains("postgresql")
    );
    assert_eq!(w.count("create pod"), 0);
    w.unready.clear();
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    // Never ready: the run fails at its bound with a clear reason.
    let mut w = World::new("svc", config, json!({"command": "true"}));
    w.unready = vec!["postgresql".into()];
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Failed));
    let st = w.run.status.clone().unwrap();
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "ServicesNotReady")
    );
    let waited = w.now.duration_since(world::t0()).as_secs_f64();
    assert!((5.0..8.0).contains(&waited), "failed after {waited}s");
    assert_eq!(w.count("create pod"), 0);
}

#[test]
fn a_changed_spec_starts_the_run_over_and_finished_runs_are_cleaned_up() {
    let mut w = World::new(
        "wide",
        &wide(2, "", ""),
        json!({"command": "true", "ttlSecondsAfterFinished": 5}),
    )
    .scripts(|_, _| Script::forever());
    w.reconcile();
    assert_eq!(w.count("create pod"), 2);
    w.run.spec.image = Some("busybox:2".into());
    w.reconcile();
    assert_eq!(w.count("delete cr"), 2);
    assert!(w.pods.is_empty() && w.crs.is_empty());
    assert!(w.run.status.clone().unwrap().plan.is_none());
    // It starts over with the new spec.
    w.reconcile();
    assert_eq!(w.count("create pod"), 4);
    assert_eq!(
        w.pods["r-c0-1"].spec.clone().unwrap().containers[0]
            .image
            .as_deref(),
        Some("busybox:2")
    );
    // Finished, it is deleted after its TTL.
    w.run.spec.cancel = true;
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Cancelled));
    let Next::After(d) = w.reconcile() else {
        panic!("a TTL wake-up")
    };
    assert!(d <= Duration::from_secs(6));
    assert!(!w.run_deleted);
    w.advance_to(
        w.now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(6))
            .unwrap(),
    );
    w.reconcile();
    assert!(w.run_deleted);
}

#[test]
fn a_stop_is_recorded_before_its_pod_is_deleted_and_the_clock_before_the_first_pod() {
    let config = "layers:\n  s:\n    execution_mode: parallel\n    categories:\n      - name: hang\n        timeout_seconds: 1\n";
    let mut w =
        World::new("s", config, json!({"command": "true"})).scripts(|_, _| Script::forever());
    w.grace = Duration::from_secs(3);
    w.run_to_end(LONG);
    let at = |prefix: &str| {
        w.writes
            .iter()
            .position(|x| x.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {:?}", w.writes))
    };
    assert!(at("run status") < at("create pod"), "{:?}", w.writes);
    assert!(
        at("cr status r-hang") < at("delete pod r-hang-1"),
        "{:?}",
        w.writes
    );
    // A Pod that terminates is not deleted again while it does.
    assert_eq!(w.count("delete pod"), 1, "{:?}", w.writes);
    assert_eq!(w.cat_phase("hang"), Some(Phase::TimedOut));
}

#[test]
fn writes_stay_within_the_budget() {
    // 100 categories of 0.2 s, one attempt each: one CategoryRun create, one
    // Pod create and one status write each; the run's own writes are few.
    let mut w = World::new("wide", &wide(100, "", ""), json!({"command": "true"}))
        .scripts(|_, _| Script::pass(0.2, ""));
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert_eq!(
        w.count("cr status"),
        100,
        "one status write per short category"
    );
    assert!(w.count("run status") <= 6, "{}", w.count("run status"));
    // Categories that run for seconds are recorded Running too: two writes.
    let mut w = World::new("wide", &wide(10, "", ""), json!({"command": "true"}))
        .scripts(|_, _| Script::pass(5.0, ""));
    w.run_until(LONG, |w| w.count("cr status") >= 10);
    assert!(
        w.crs
            .values()
            .all(|c| c.status.as_ref().and_then(|s| s.phase) == Some(Phase::Running))
    );
    w.run_to_end(LONG);
    assert_eq!(w.count("cr status"), 20);
}

#[test]
fn the_spec_hash_is_a_stable_digest_and_an_older_format_starts_nothing_over() {
    use super::{spec_changed, spec_hash};
    let mut w = World::new("wide", &wide(2, "", ""), json!({"command": "true"}));
    let h = spec_hash(&w.run);
    assert!(h.starts_with("sha256:") && h.len() == 7 + 64, "{h}");
    // Pinned: the same spec gives the same digest on every build.
    assert_eq!(h, PINNED_HASH);
    w.run.spec.cancel = true;
    assert_eq!(spec_hash(&w.run), h, "cancel does not define the run");
    w.run.spec.image = Some("other".into());
    assert_ne!(spec_hash(&w.run), h);
    assert!(!spec_changed(None, &h));
    assert!(!spec_changed(Some(&h), &h));
    assert!(spec_changed(Some("sha256:00"), &h));
    assert!(
        !spec_changed(Some("0123456789abcdef"), &h),
        "an older format is no change"
    );
    // A run that started under an older controller goes on, finished or not.
    let mut w = World::new("wide", &wide(2, "", ""), json!({"command": "true"}))
        .scripts(|_, _| Script::forever());
    w.reconcile();
    w.run.status.as_mut().unwrap().spec_hash = Some("0123456789abcdef".into());
    w.reconcile();
    assert_eq!(w.count("delete"), 0);
    w.run.spec.cancel = true;
    w.run_to_end(LONG);
    w.run.status.as_mut().unwrap().spec_hash = Some("0123456789abcdef".into());
    w.reconcile();
    assert_eq!(
        w.count("delete"),
        2,
        "only the stopped Pods: {:?}",
        w.writes
    );
}

const PINNED_HASH: &str = "sha256:8cccc609ed1fe7a51dc3e9eafda2b36b15cdad884c0028e19550786955dbc33d";
