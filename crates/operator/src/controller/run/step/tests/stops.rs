//! Runs stopped: timeouts, cancel, fail-fast, the layer deadline, suspension, deletion.

use super::*;

#[test]
fn the_log_of_a_stopped_attempt_is_read_before_its_pod_is_stopped() {
    let config = "layers:\n  slow:\n    execution_mode: parallel\n    categories:\n      - name: hang\n        timeout_seconds: 1\n        retries: 1\n";
    // The first attempt fails, the second hangs and times out.
    let mut w = World::new("slow", config, json!({"command": "true"})).scripts(|_, n| {
        let log = format!("attempt {n}\ncollected 3 items\ntest_a PASSED");
        match n {
            1 => Script::fail(0.5, 1, &log),
            _ => Script {
                log,
                ..Script::forever()
            },
        }
    });
    w.run_to_end(LONG);
    assert_eq!(w.summary()["hang"], Phase::TimedOut);
    let hang = w.category("hang").status.clone().unwrap();
    // Each attempt keeps the end of its own log.
    assert_eq!(hang.attempts.len(), 2);
    for (i, a) in hang.attempts.iter().enumerate() {
        let tail = a.log_tail.as_deref().unwrap_or_default();
        assert!(
            tail.starts_with(&format!("attempt {}\n", i + 1)) && tail.ends_with("test_a PASSED"),
            "{tail:?}"
        );
    }
    let tail = hang.log_tail.unwrap();
    assert!(tail.starts_with("attempt 2\n"), "{tail:?}");
    // Asked before the stop is recorded and the Pod stopped.
    for pod in ["r-hang-1", "r-hang-2"] {
        let asked = w
            .questions
            .iter()
            .position(|q| matches!(q, Question::Logs(p, _) if p == pod));
        assert!(asked.is_some(), "{pod}: {:?}", w.questions);
    }
    let deleted = w
        .writes
        .iter()
        .position(|x| x == "stop pod r-hang-2")
        .unwrap();
    assert!(w.writes[..deleted].iter().any(|x| x == "cr status r-hang"));
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

/// A stopped attempt's Pod stays, ended `DeadlineExceeded` by its kubelet,
/// so its log can be read after the run; a kubelet that never stops it
/// (its node silent) gets it deleted once its grace period and the
/// Terminating bound have passed, and the attempt ends as its stop said.
#[test]
fn a_stopped_attempts_pod_is_kept_with_its_log_unless_its_kubelet_never_stops_it() {
    let config = "layers:\n  s:\n    execution_mode: parallel\n    categories:\n      - name: hang\n        timeout_seconds: 2\n";
    let mut w =
        World::new("s", config, json!({"command": "true"})).scripts(|_, _| Script::forever());
    w.grace = Duration::from_secs(3);
    w.run_to_end(LONG);
    assert_eq!(w.cat_phase("hang"), Some(Phase::TimedOut));
    let pod = w.pods.get("r-hang-1").expect("the stopped Pod is kept");
    let status = pod.status.clone().unwrap();
    assert_eq!(
        (status.phase.as_deref(), status.reason.as_deref()),
        (Some("Failed"), Some("DeadlineExceeded"))
    );
    let deadline = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds);
    assert!(
        matches!(deadline, Some(2..=3)),
        "cut to the seconds it ran: {deadline:?}"
    );
    assert!(
        kube::ResourceExt::annotations(pod).contains_key(crate::api::names::ANNOTATION_STOPPED_AT)
    );
    assert_eq!(w.count("delete pod"), 0, "{:?}", w.writes);

    // Its kubelet does not answer: deleted once 3 s of grace and the 60 s
    // bound have passed (at the next look: the run itself has ended), and
    // the attempt ends TimedOut all the same.
    let mut w =
        World::new("s", config, json!({"command": "true"})).scripts(|_, _| Script::forever());
    w.grace = Duration::from_secs(3);
    w.kubelet_silent = true;
    w.run_until(LONG, |w| w.count("stop pod") > 0);
    let stopped = w.now;
    w.run_until(LONG, |w| w.count("delete pod") > 0);
    let waited = w.now.duration_since(stopped).as_secs_f64();
    assert!((63.0..=75.0).contains(&waited), "deleted after {waited} s");
    w.run_to_end(LONG);
    assert_eq!(w.cat_phase("hang"), Some(Phase::TimedOut));
}
