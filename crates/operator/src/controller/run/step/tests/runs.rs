//! Runs that pass or fail on their own: order, counts, retries, limits, restarts.

use super::*;

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
fn estimates_are_learned_from_the_latest_finished_run_of_the_layer_and_frozen() {
    let mut w = chain();
    // Two finished runs of the layer and one of another: the latest wins.
    let finished = |name: &str, layer: &str, at: i64| {
        let mut r = w.run.clone();
        r.metadata.name = Some(name.into());
        r.metadata.uid = Some(format!("{name}-uid"));
        r.spec.layer = layer.into();
        r.status = Some(crate::api::TestLayerRunStatus {
            phase: Some(LayerPhase::Succeeded),
            completion_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(at).unwrap(),
            )),
            ..Default::default()
        });
        r
    };
    w.others = vec![
        finished("old", "chain", 1_700_000_000),
        finished("latest", "chain", 1_700_000_100),
        finished("other-layer", "other", 1_700_000_200),
    ];
    w.histories.insert(
        "latest".into(),
        [("smoke".to_string(), 2_500u64), ("e2e".to_string(), 90_000)]
            .into_iter()
            .collect(),
    );
    w.histories.insert(
        "old".into(),
        [("smoke".to_string(), 9_000u64)].into_iter().collect(),
    );
    w.run_until(LONG, |w| !w.crs.is_empty());
    assert!(
        w.questions.contains(&Question::History("latest".into())),
        "{:?}",
        w.questions
    );
    let spec = |c: &str| w.category(c).spec.expected_duration_seconds;
    assert_eq!(spec("smoke"), Some(2.5));
    // At most its timeout (30 s).
    assert_eq!(spec("e2e"), None, "capped at the timeout, which it is");
    assert_eq!(spec("unit"), None, "not measured: the timeout stands in");
    assert!(
        w.events.iter().any(|e| e
            .note
            .contains("2 expected durations learned from run latest")),
        "{:?}",
        w.events
    );
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
}
