//! The schedule step over made-up schedules, runs and clocks.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::step::{ScheduleObserved, step};
use crate::api::names::{ANNOTATION_SCHEDULED_AT, LABEL_SCHEDULE};
use crate::api::names::{ANNOTATION_SUITE_LAYERS, LABEL_SUITE};
use crate::api::{LayerPhase, TestLayerRun, TestLayerSchedule, TickAction};
use crate::controller::launch::decision::ScheduleStep;
use crate::controller::launch::ticks::Problem;

const CONFIG: &str = r#"
layers:
  fast:
    execution_mode: parallel
    categories:
      - {name: unit, timeout_seconds: 30, command: "true"}
  core:
    execution_mode: parallel
    dependencies: [fast]
    categories:
      - {name: api, timeout_seconds: 30, command: "true"}
  e2e:
    execution_mode: background
    categories:
      - {name: browser, timeout_seconds: 30, command: "true"}
"#;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn schedule(extra: Value) -> TestLayerSchedule {
    let mut v = json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerSchedule",
        "metadata": {"name": "nightly", "namespace": "ci", "uid": "u-1", "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"schedule": "*/10 * * * *",
            "template": {"metadata": {"labels": {"team": "a"}},
                "spec": {"layer": "fast", "config": {"inline": CONFIG}}}}});
    merge(&mut v["spec"], extra);
    serde_json::from_value(v).unwrap()
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
        for (k, v) in b {
            if v.is_object() && a.get(&k).is_some_and(Value::is_object) {
                merge(a.get_mut(&k).unwrap(), v);
            } else {
                a.insert(k, v);
            }
        }
    }
}

/// A run of tick `at` in group `group` in `phase` (none: no status yet).
fn run(name: &str, group: &str, at: &str, layers: &str, phase: Option<&str>) -> Arc<TestLayerRun> {
    let mut v = json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "metadata": {"name": name, "namespace": "ci", "uid": format!("r-{name}"),
            "labels": {LABEL_SCHEDULE: "nightly", LABEL_SUITE: group},
            "annotations": {ANNOTATION_SCHEDULED_AT: at, ANNOTATION_SUITE_LAYERS: layers},
            "ownerReferences": [{"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerSchedule",
                "name": "nightly", "uid": "u-1", "controller": true}]},
        "spec": {"layer": layers.split(',').next().unwrap(), "config": {}}});
    if let Some(p) = phase {
        v["status"] = json!({"phase": p});
    }
    Arc::new(serde_json::from_value(v).unwrap())
}

fn observe(s: &TestLayerSchedule, runs: Vec<Arc<TestLayerRun>>) -> ScheduleObserved {
    ScheduleObserved {
        schedule: Arc::new(s.clone()),
        runs,
        config: Ok((CONFIG.into(), "inline".into())),
    }
}

fn names(st: &ScheduleStep) -> Vec<String> {
    st.create.iter().map(|r| r.name_any()).collect()
}

/// `s` with the status `st` wrote.
fn after(s: &TestLayerSchedule, st: &ScheduleStep) -> TestLayerSchedule {
    let mut s = s.clone();
    if let Some(status) = &st.status {
        // As stored: through JSON (times to the second).
        let v = serde_json::to_value(status).unwrap();
        s.status = Some(serde_json::from_value(v).unwrap());
    }
    s
}

fn stall_message(st: &ScheduleStep) -> String {
    let status = st.status.as_ref().expect("a stalled status");
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(c.status, "True");
    c.message.clone()
}

#[test]
fn bad_input_stalls_naming_the_field_and_creates_nothing() {
    let cases = [
        (
            json!({"schedule": "61 * * * *"}),
            "spec.schedule: cron expression",
        ),
        (
            json!({"schedule": "* * *"}),
            "spec.schedule: cron expression",
        ),
        (
            json!({"timeZone": "Mars/Olympus"}),
            "spec.timeZone: time zone \"Mars/Olympus\"",
        ),
        (
            json!({"layers": ["fast", "nope"], "template": {"spec": {"layer": ""}}}),
            "spec.layers[1]: ",
        ),
        (
            json!({"template": {"spec": {"layer": "nope"}}}),
            "spec.template.spec.layer: ",
        ),
        (json!({"layers": ["core"]}), "spec.layers: set either"),
        (
            json!({"template": {"spec": {"layer": ""}}}),
            "spec.template.spec.layer: name the layer",
        ),
        (
            json!({"template": {"spec": {"rerunOf": "r1"}}}),
            "spec.template.spec.rerunOf: ",
        ),
        (
            json!({"template": {"spec": {"config": {"inline": "layers: ["}}}}),
            "spec.template.spec.config: ",
        ),
    ];
    for (extra, want) in cases {
        let mut s = schedule(extra.clone());
        let inline = s.spec.template.spec.0.config.inline.clone().unwrap();
        let mut o = observe(&s, vec![]);
        o.config = Ok((inline, "inline".into()));
        let st = step(&o, ts("2026-01-01T01:00:00Z"));
        assert!(st.create.is_empty(), "{extra}: {:?}", names(&st));
        let message = stall_message(&st);
        assert!(message.starts_with(want), "{extra}: {message}");
        assert!(st.events.iter().any(|e| e.warning), "{extra}");
        // Written once: the same problem again writes nothing.
        s = after(&s, &st);
        let again = step(&observe(&s, vec![]), ts("2026-01-01T01:00:05Z"));
        if extra.get("template").is_none() {
            assert!(again.status.is_none() && again.events.is_empty(), "{extra}");
        }
    }
    // A ConfigMap that is not there names the config.
    let s = schedule(json!({}));
    let mut o = observe(&s, vec![]);
    o.config = Err(Problem::new(
        "spec.template.spec.config",
        "ConfigMap layers not found",
    ));
    let st = step(&o, ts("2026-01-01T01:00:00Z"));
    assert!(st.create.is_empty());
    assert_eq!(
        stall_message(&st),
        "spec.template.spec.config: ConfigMap layers not found"
    );
}

#[test]
fn a_due_tick_creates_its_run_named_after_it_once() {
    let s = schedule(json!({}));
    // Created at midnight: the first tick is at 00:10.
    let st = step(&observe(&s, vec![]), ts("2026-01-01T00:05:00Z"));
    assert!(st.create.is_empty());
    let status = st.status.clone().unwrap();
    assert_eq!(
        status.next_schedule_time.unwrap().0,
        ts("2026-01-01T00:10:00Z")
    );
    assert_eq!(st.requeue, Some(std::time::Duration::from_secs(300)));
    let s = after(&s, &st);

    let st = step(&observe(&s, vec![]), ts("2026-01-01T00:10:01Z"));
    assert_eq!(names(&st), ["nightly-1767226200"]);
    let r = &st.create[0];
    assert_eq!(r.spec.layer, "fast");
    assert_eq!(r.labels()["team"], "a");
    assert_eq!(r.labels()[LABEL_SCHEDULE], "nightly");
    assert_eq!(r.labels()[LABEL_SUITE], "nightly-1767226200");
    assert_eq!(
        r.annotations()[ANNOTATION_SCHEDULED_AT],
        "2026-01-01T00:10:00Z"
    );
    assert_eq!(r.annotations()[ANNOTATION_SUITE_LAYERS], "fast");
    assert_eq!(r.owner_references()[0].uid, "u-1");
    assert_eq!(r.owner_references()[0].controller, Some(true));
    let status = st.status.clone().unwrap();
    assert_eq!(
        status.last_schedule_time.unwrap().0,
        ts("2026-01-01T00:10:00Z")
    );
    assert_eq!(status.active, ["nightly-1767226200"]);
    assert_eq!(status.history[0].action, TickAction::Started);
    assert_eq!(status.last_run.as_ref().unwrap().name, "nightly-1767226200");
    let s = after(&s, &st);

    // The next pass sees its run in the cache: nothing new, nothing written.
    let runs = vec![run(
        "nightly-1767226200",
        "nightly-1767226200",
        "2026-01-01T00:10:00Z",
        "fast",
        None,
    )];
    let st = step(&observe(&s, runs.clone()), ts("2026-01-01T00:10:02Z"));
    assert!(st.create.is_empty());
    assert!(st.status.is_none(), "{:?}", st.status);

    // It ends: the outcome is in the status and the history.
    let runs = vec![run(
        "nightly-1767226200",
        "nightly-1767226200",
        "2026-01-01T00:10:00Z",
        "fast",
        Some("Failed"),
    )];
    let st = step(&observe(&s, runs), ts("2026-01-01T00:12:00Z"));
    let status = st.status.unwrap();
    assert_eq!(status.last_run.unwrap().phase, Some(LayerPhase::Failed));
    assert_eq!(status.history[0].phase, Some(LayerPhase::Failed));
    assert!(status.active.is_empty());
}

#[test]
fn a_restart_after_the_create_and_before_the_status_does_not_start_the_tick_again() {
    let s = schedule(json!({}));
    // The status knows nothing of the tick at 00:10, its run exists.
    let runs = vec![run(
        "nightly-1767226200",
        "nightly-1767226200",
        "2026-01-01T00:10:00Z",
        "fast",
        None,
    )];
    let st = step(&observe(&s, runs), ts("2026-01-01T00:10:03Z"));
    assert!(st.create.is_empty(), "{:?}", names(&st));
    let status = st.status.unwrap();
    assert_eq!(
        status.last_schedule_time.unwrap().0,
        ts("2026-01-01T00:10:00Z")
    );
    assert_eq!(status.last_run.unwrap().name, "nightly-1767226200");
    assert_eq!(status.history.len(), 1);
}

#[test]
fn a_downtime_over_several_ticks_runs_the_latest_once_or_misses_it_past_the_deadline() {
    let s = schedule(json!({}));
    let st = step(&observe(&s, vec![]), ts("2026-01-01T00:55:00Z"));
    // Ticks at 10, 20, 30, 40, 50: only 00:50 runs.
    assert_eq!(names(&st), ["nightly-1767228600"]);
    let h = &st.status.as_ref().unwrap().history[0];
    assert_eq!(h.missed_before, Some(4));
    assert!(
        st.events[0].note.contains("4 earlier tick(s)"),
        "{}",
        st.events[0].note
    );

    let s = schedule(json!({"startingDeadlineSeconds": 120}));
    let st = step(&observe(&s, vec![]), ts("2026-01-01T00:55:00Z"));
    assert!(st.create.is_empty());
    let status = st.status.unwrap();
    assert_eq!(status.history[0].action, TickAction::Missed);
    assert_eq!(
        status.last_schedule_time.unwrap().0,
        ts("2026-01-01T00:50:00Z")
    );
    assert!(st.events[0].warning);
    // Within the deadline it runs.
    let st = step(&observe(&s, vec![]), ts("2026-01-01T00:51:59Z"));
    assert_eq!(names(&st), ["nightly-1767228600"]);
}

#[test]
fn a_tick_seen_by_its_run_before_its_status_counts_the_ticks_it_passed_over() {
    // The status recorded 00:10; the run of 00:50 exists (started after a
    // downtime, its status write not yet seen, or lost to a crash): the
    // history says 20, 30 and 40 were passed over, as the start did.
    let s = schedule(json!({}));
    let st = step(&observe(&s, vec![]), ts("2026-01-01T00:10:01Z"));
    assert_eq!(names(&st), ["nightly-1767226200"]);
    let s = after(&s, &st);
    let runs = vec![run(
        "nightly-1767228600",
        "nightly-1767228600",
        "2026-01-01T00:50:00Z",
        "fast",
        None,
    )];
    let st = step(&observe(&s, runs), ts("2026-01-01T00:50:02Z"));
    assert!(st.create.is_empty(), "{:?}", names(&st));
    let history = st.status.unwrap().history;
    assert_eq!(history[0].name.as_deref(), Some("nightly-1767228600"));
    assert_eq!(history[0].missed_before, Some(3));
    assert_eq!(history[1].missed_before, None);
}

#[test]
fn concurrency_policies_allow_forbid_and_replace() {
    let going = || {
        vec![run(
            "nightly-1767226200",
            "nightly-1767226200",
            "2026-01-01T00:10:00Z",
            "fast",
            Some("Running"),
        )]
    };
    let now = ts("2026-01-01T00:20:01Z");
    let st = step(&observe(&schedule(json!({})), going()), now);
    assert_eq!(names(&st), ["nightly-1767226800"]);
    assert!(st.cancel.is_empty());
    let mut active = st.status.unwrap().active;
    active.sort();
    assert_eq!(active, ["nightly-1767226200", "nightly-1767226800"]);

    let st = step(
        &observe(&schedule(json!({"concurrencyPolicy": "Forbid"})), going()),
        now,
    );
    assert!(st.create.is_empty());
    let status = st.status.unwrap();
    assert_eq!(status.history[0].action, TickAction::Skipped);
    assert_eq!(
        status.last_schedule_time.unwrap().0,
        ts("2026-01-01T00:20:00Z")
    );

    let st = step(
        &observe(&schedule(json!({"concurrencyPolicy": "Replace"})), going()),
        now,
    );
    assert_eq!(st.cancel, ["nightly-1767226200"]);
    assert_eq!(names(&st), ["nightly-1767226800"]);
    // The old run is listed until it has ended, and not cancelled twice.
    let s = after(&schedule(json!({"concurrencyPolicy": "Replace"})), &st);
    let mut cancelling = (*going()[0]).clone();
    cancelling.spec.cancel = true;
    let st = step(
        &observe(&s, vec![Arc::new(cancelling)]),
        ts("2026-01-01T00:20:02Z"),
    );
    assert!(st.cancel.is_empty() && st.create.is_empty());
}

#[test]
fn a_suite_runs_as_one_group_and_a_partly_created_tick_is_completed() {
    let s =
        schedule(json!({"layers": ["core", "fast", "e2e"], "template": {"spec": {"layer": ""}}}));
    let st = step(&observe(&s, vec![]), ts("2026-01-01T00:10:00Z"));
    // In dependency order, one suite.
    assert_eq!(
        names(&st),
        [
            "nightly-1767226200-fast",
            "nightly-1767226200-core",
            "nightly-1767226200-e2e"
        ]
    );
    for r in &st.create {
        assert_eq!(r.labels()[LABEL_SUITE], "nightly-1767226200");
        assert_eq!(r.annotations()[ANNOTATION_SUITE_LAYERS], "fast,core,e2e");
    }
    // Stopped after the first create: the rest are created, no new tick.
    let one = vec![run(
        "nightly-1767226200-fast",
        "nightly-1767226200",
        "2026-01-01T00:10:00Z",
        "fast,core,e2e",
        None,
    )];
    let st = step(&observe(&s, one), ts("2026-01-01T00:10:02Z"));
    assert_eq!(
        names(&st),
        ["nightly-1767226200-core", "nightly-1767226200-e2e"]
    );

    // The outcome leaves the background layer out.
    let mut runs = vec![
        run(
            "nightly-1767226200-fast",
            "nightly-1767226200",
            "2026-01-01T00:10:00Z",
            "fast,core,e2e",
            Some("Succeeded"),
        ),
        run(
            "nightly-1767226200-core",
            "nightly-1767226200",
            "2026-01-01T00:10:00Z",
            "fast,core,e2e",
            Some("Succeeded"),
        ),
    ];
    let mut e2e = (*run(
        "nightly-1767226200-e2e",
        "nightly-1767226200",
        "2026-01-01T00:10:00Z",
        "fast,core,e2e",
        Some("Running"),
    ))
    .clone();
    let mut v = serde_json::to_value(&e2e).unwrap();
    v["status"]["plan"] = json!({"displayName": "e2e", "strategy": "SEQUENTIAL", "background": true,
        "timeoutMultiplier": 1.0, "serviceWaitSeconds": 0.0, "llmMode": "mock"});
    e2e = serde_json::from_value(v).unwrap();
    runs.push(Arc::new(e2e));
    let st = step(&observe(&s, runs), ts("2026-01-01T00:11:00Z"));
    let status = st.status.unwrap();
    assert_eq!(status.last_run.unwrap().phase, Some(LayerPhase::Succeeded));
    assert_eq!(
        status.last_successful_time.unwrap().0,
        ts("2026-01-01T00:10:00Z")
    );
    assert_eq!(status.active, ["nightly-1767226200-e2e"]);
}

#[test]
fn finished_ticks_past_the_history_limits_are_deleted_oldest_first() {
    let s = schedule(json!({"successfulRunsHistoryLimit": 1, "failedRunsHistoryLimit": 2}));
    let tick = |m: u32, phase: &str| {
        let at = ts("2026-01-01T00:00:00Z")
            + k8s_openapi::jiff::SignedDuration::from_secs(i64::from(m) * 60);
        let name = format!("nightly-{}", at.as_second());
        run(&name, &name, &at.to_string(), "fast", Some(phase))
    };
    let runs = vec![
        tick(10, "Succeeded"),
        tick(20, "Failed"),
        tick(30, "Succeeded"),
        tick(40, "TimedOut"),
        tick(50, "Failed"),
        tick(60, "Running"),
    ];
    let st = step(&observe(&s, runs), ts("2026-01-01T01:05:00Z"));
    let mut deleted = st.delete.clone();
    deleted.sort();
    assert_eq!(deleted, ["nightly-1767226200", "nightly-1767226800"]);
    assert!(st.create.is_empty());
}

#[test]
fn a_suspended_schedule_starts_nothing_and_shows_no_next_tick() {
    let s = schedule(json!({"suspend": true}));
    let st = step(&observe(&s, vec![]), ts("2026-01-01T05:00:00Z"));
    assert!(st.create.is_empty());
    let status = st.status.unwrap();
    assert!(status.next_schedule_time.is_none());
    assert_eq!(status.conditions[0].reason, "Suspended");
    assert_eq!(st.requeue, None);
}

#[test]
fn six_fields_tick_by_the_second_in_a_time_zone() {
    let s = schedule(json!({"schedule": "*/5 * * * * *", "timeZone": "Europe/Berlin"}));
    let st = step(&observe(&s, vec![]), ts("2026-01-01T00:00:07Z"));
    assert_eq!(names(&st), ["nightly-1767225605"]);
    let next = st.status.unwrap().next_schedule_time.unwrap().0;
    assert_eq!(next, ts("2026-01-01T00:00:10Z"));
    // Two in the morning in Berlin is one at night in UTC.
    let s = schedule(json!({"schedule": "0 2 * * *", "timeZone": "Europe/Berlin"}));
    let st = step(&observe(&s, vec![]), ts("2026-01-01T00:30:00Z"));
    assert_eq!(
        st.status.unwrap().next_schedule_time.unwrap().0,
        ts("2026-01-01T01:00:00Z")
    );
}
