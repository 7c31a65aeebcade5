//! TestLayerSchedules against the real control plane, with schedules that
//! tick every few seconds (six fields, seconds first): every tick runs once
//! while the controller runs; a controller stopped at a tick neither skips
//! nor doubles it; a downtime over several ticks runs the latest once, or
//! records it missed past `startingDeadlineSeconds`; Forbid and Replace;
//! history limits; a suite per tick; bad input stalls naming the field.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use testlayer::api::{LayerPhase, TestLayerRun, TestLayerSchedule, TickAction, TickRecord};
use testlayer_testkit::kubelet::KubeletEventKind;

use common::{Fixture, eventually};

const CONFIG: &str = r#"layers:
  fast:
    execution_mode: parallel
    categories:
      - {name: smoke, timeout_seconds: 30, command: "echo '1 passed in 0.1s'"}
  core:
    execution_mode: parallel
    dependencies: [fast]
    categories:
      - {name: unit, timeout_seconds: 30, command: "sleep 1; echo '2 passed in 0.1s'"}
  slow:
    execution_mode: parallel
    categories:
      - {name: wait, timeout_seconds: 120, command: "sleep 60"}
"#;

fn schedule(name: &str, spec: Value) -> TestLayerSchedule {
    let mut full = json!({"template": {"spec": {"layer": "fast", "image": "busybox",
        "config": {"configMapRef": {"name": "layers"}}}}});
    merge(&mut full, spec);
    serde_json::from_value(json!({"apiVersion": "testlayer.dev/v1alpha1",
        "kind": "TestLayerSchedule", "metadata": {"name": name}, "spec": full}))
    .unwrap_or_else(|e| panic!("schedule {name}: {e}"))
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
        for (k, v) in b {
            match a.get_mut(&k) {
                Some(old) if old.is_object() && v.is_object() => merge(old, v),
                _ => {
                    a.insert(k, v);
                }
            }
        }
    }
}

async fn create(fx: &Fixture, s: TestLayerSchedule) {
    let api: Api<TestLayerSchedule> = fx.api();
    api.create(&PostParams::default(), &s)
        .await
        .unwrap_or_else(|e| panic!("creating schedule {}: {e}", s.name_any()));
}

async fn get(fx: &Fixture, name: &str) -> TestLayerSchedule {
    let api: Api<TestLayerSchedule> = fx.api();
    api.get(name)
        .await
        .unwrap_or_else(|e| panic!("reading schedule {name}: {e}"))
}

fn history(s: &TestLayerSchedule) -> Vec<TickRecord> {
    s.status.clone().unwrap_or_default().history
}

fn started(s: &TestLayerSchedule) -> Vec<TickRecord> {
    history(s)
        .into_iter()
        .filter(|h| h.action == TickAction::Started)
        .collect()
}

/// Waits until `pred` holds of schedule `name`.
async fn wait_schedule(
    fx: &Fixture,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&TestLayerSchedule) -> bool,
) -> TestLayerSchedule {
    eventually(timeout, format!("{what} of schedule {name}"), async || {
        let s = get(fx, name).await;
        if pred(&s) {
            Ok(s)
        } else {
            Err(format!("{:#?}", s.status))
        }
    })
    .await
}

/// The schedule's runs, by name.
async fn runs_of(fx: &Fixture, name: &str) -> Vec<TestLayerRun> {
    fx.runs()
        .list(&ListParams::default().labels(&format!("testlayer.dev/schedule={name}")))
        .await
        .expect("list runs")
        .items
}

/// Sleeps until `at` plus `offset_ms` (which may be negative).
async fn sleep_until(at: Timestamp, offset_ms: i64) {
    let target = at.as_millisecond() + offset_ms;
    let now = Timestamp::now().as_millisecond();
    if target > now {
        tokio::time::sleep(Duration::from_millis((target - now).unsigned_abs())).await;
    }
}

fn next_tick(s: &TestLayerSchedule) -> Timestamp {
    s.status
        .as_ref()
        .and_then(|st| st.next_schedule_time.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(|| panic!("no next tick: {:#?}", s.status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tick_runs_once_through_restarts_at_the_tick_and_a_downtime_runs_the_latest_once() {
    let mut fx = Fixture::new("sched-ticks").await;
    fx.layer_config_map("layers", CONFIG).await;
    create(
        &fx,
        schedule(
            "every3",
            json!({"schedule": "*/3 * * * * *", "successfulRunsHistoryLimit": 2,
                "failedRunsHistoryLimit": 2,
                "template": {"metadata": {"labels": {"team": "checkout"}}}}),
        ),
    )
    .await;
    let s = wait_schedule(
        &fx,
        "every3",
        Duration::from_secs(30),
        "two ticks that passed",
        |s| {
            started(s).len() >= 2
                && started(s)
                    .iter()
                    .filter(|h| h.phase == Some(LayerPhase::Succeeded))
                    .count()
                    >= 1
        },
    )
    .await;
    let first = started(&s).last().expect("a tick").at.0;

    // A controller stopped just before, at, and just after a tick, back at
    // once: each such tick runs, once.
    for offset_ms in [-40, 0, 30, 150] {
        let s = get(&fx, "every3").await;
        let tick = next_tick(&s);
        sleep_until(tick, offset_ms).await;
        fx.stop_controller();
        sleep_until(tick, offset_ms.max(0) + 200).await;
        fx.start_controller().await;
        wait_schedule(
            &fx,
            "every3",
            Duration::from_secs(20),
            "the tick after a restart",
            |s| started(s).first().is_some_and(|h| h.at.0 >= tick),
        )
        .await;
    }

    // Down over several ticks: only the latest runs, the others counted.
    let s = get(&fx, "every3").await;
    let tick = next_tick(&s);
    sleep_until(tick, 500).await;
    fx.stop_controller();
    tokio::time::sleep(Duration::from_secs(7)).await;
    fx.start_controller().await;
    let s = wait_schedule(
        &fx,
        "every3",
        Duration::from_secs(20),
        "a tick after the downtime",
        |s| {
            started(s)
                .first()
                .is_some_and(|h| h.missed_before.is_some())
        },
    )
    .await;
    let after_downtime = started(&s)[0].clone();
    assert!(
        after_downtime.missed_before >= Some(1),
        "{after_downtime:#?}"
    );
    // One more tick as usual.
    let next = next_tick(&s);
    let s = wait_schedule(
        &fx,
        "every3",
        Duration::from_secs(20),
        "the tick after",
        |s| started(s).first().is_some_and(|h| h.at.0 >= next),
    )
    .await;

    // Neither skipped nor doubled: every tick from the first to the last is
    // a started tick or one counted as missed during the downtime, once.
    let ticks = started(&s);
    let last = ticks[0].at.0;
    let all: Vec<i64> = (first.as_second()..=last.as_second()).step_by(3).collect();
    let seen: Vec<i64> = ticks.iter().map(|h| h.at.0.as_second()).collect();
    let distinct: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "a tick twice: {seen:?}");
    let missed: u64 = ticks.iter().filter_map(|h| h.missed_before).sum();
    assert_eq!(
        all.len() as u64,
        seen.len() as u64 + missed,
        "ticks {all:?}, started {seen:?}, missed {missed}"
    );
    for t in &all {
        assert!(
            distinct.contains(t)
                || (*t > first.as_second() && *t < after_downtime.at.0.as_second()),
            "tick {t} neither ran nor fell in the downtime: {seen:?}"
        );
    }
    // Each run had exactly one Pod: no tick's run was started twice.
    let events = fx.kubelet().events();
    for h in &ticks {
        let name = h.name.clone().expect("name");
        let bound = events
            .iter()
            .filter(|e| e.kind == KubeletEventKind::Bound && e.pod.starts_with(&format!("{name}-")))
            .count();
        assert!(bound <= 1, "{name}: {bound} Pods");
    }

    // The history limits: at most two finished ticks of each outcome keep
    // their runs; the status remembers more.
    let s = wait_schedule(
        &fx,
        "every3",
        Duration::from_secs(20),
        "old runs deleted",
        |_| true,
    )
    .await;
    let runs = eventually(
        Duration::from_secs(20),
        "at most 2 + active runs",
        async || {
            let runs = runs_of(&fx, "every3").await;
            let finished = runs
                .iter()
                .filter(|r| {
                    r.status
                        .as_ref()
                        .and_then(|st| st.phase)
                        .is_some_and(|p| p.is_terminal())
                })
                .count();
            if finished <= 4 {
                Ok(runs)
            } else {
                Err(format!("{finished} finished runs"))
            }
        },
    )
    .await;
    assert!(history(&s).len() > 4, "{:#?}", history(&s));
    for r in &runs {
        assert_eq!(r.labels()["team"], "checkout");
        assert!(r.annotations().contains_key("testlayer.dev/scheduled-at"));
    }
    let status = s.status.clone().unwrap();
    assert!(status.last_successful_time.is_some(), "{status:#?}");
    assert!(status.last_run.is_some(), "{status:#?}");

    // `kubectl get` shows the schedule's columns.
    let out = fx
        .cp
        .kubectl()
        .args(["get", "testlayerschedules", "-n", &fx.ns, "-o", "wide"])
        .output()
        .expect("kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    for col in [
        "SCHEDULE",
        "SUSPEND",
        "LAST SCHEDULE",
        "LAST RUN",
        "OUTCOME",
        "NEXT",
    ] {
        assert!(text.contains(col), "{col} missing:\n{text}");
    }

    // Deleted, the schedule's runs go with it (owner references).
    let api: Api<TestLayerSchedule> = fx.api();
    api.delete("every3", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(
        Duration::from_secs(30),
        "the runs deleted with it",
        async || {
            let n = runs_of(&fx, "every3").await.len();
            if n == 0 {
                Ok(())
            } else {
                Err(format!("{n} runs"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_past_its_starting_deadline_is_missed_not_run() {
    let mut fx = Fixture::new("sched-deadline").await;
    fx.layer_config_map("layers", CONFIG).await;
    create(
        &fx,
        schedule(
            "dl",
            json!({"schedule": "*/5 * * * * *", "startingDeadlineSeconds": 1}),
        ),
    )
    .await;
    let s = wait_schedule(&fx, "dl", Duration::from_secs(20), "a first tick", |s| {
        !started(s).is_empty()
    })
    .await;
    let tick = next_tick(&s);
    fx.stop_controller();
    // Back 2.5 s after the tick: past its deadline of 1 s.
    sleep_until(tick, 2500).await;
    fx.start_controller().await;
    let s = wait_schedule(&fx, "dl", Duration::from_secs(20), "the missed tick", |s| {
        history(s).first().is_some_and(|h| h.at.0 == tick)
    })
    .await;
    let h = history(&s)[0].clone();
    assert_eq!(h.action, TickAction::Missed, "{h:#?}");
    let runs = runs_of(&fx, "dl").await;
    let missed_name = format!("dl-{}", tick.as_second());
    assert!(
        runs.iter().all(|r| r.name_any() != missed_name),
        "{missed_name} was created"
    );
    // The next tick runs as usual.
    let next = tick.as_second() + 5;
    wait_schedule(&fx, "dl", Duration::from_secs(20), "the next tick", |s| {
        started(s)
            .first()
            .is_some_and(|h| h.at.0.as_second() == next)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_skips_a_tick_while_a_run_goes_and_replace_cancels_it() {
    let fx = Fixture::new("sched-policy").await;
    fx.layer_config_map("layers", CONFIG).await;
    for (name, policy) in [("forbid", "Forbid"), ("replace", "Replace")] {
        create(
            &fx,
            schedule(
                name,
                json!({"schedule": "*/3 * * * * *", "concurrencyPolicy": policy,
                    "template": {"spec": {"layer": "slow"}}}),
            ),
        )
        .await;
    }
    let s = wait_schedule(
        &fx,
        "forbid",
        Duration::from_secs(30),
        "a skipped tick",
        |s| history(s).iter().any(|h| h.action == TickAction::Skipped),
    )
    .await;
    assert_eq!(started(&s).len(), 1, "{:#?}", history(&s));
    assert_eq!(runs_of(&fx, "forbid").await.len(), 1);

    let s = wait_schedule(
        &fx,
        "replace",
        Duration::from_secs(30),
        "a replaced tick",
        |s| started(s).len() >= 2,
    )
    .await;
    let old = started(&s)
        .last()
        .and_then(|h| h.name.clone())
        .expect("old");
    let old = fx.wait_done(&old, Duration::from_secs(30)).await;
    assert_eq!(
        old.status.as_ref().and_then(|st| st.phase),
        Some(LayerPhase::Cancelled),
        "{:#?}",
        old.status
    );
    let s = wait_schedule(
        &fx,
        "replace",
        Duration::from_secs(20),
        "the old tick's outcome",
        |s| {
            history(s)
                .iter()
                .any(|h| h.phase == Some(LayerPhase::Cancelled))
        },
    )
    .await;
    assert!(history(&s).iter().all(|h| h.action == TickAction::Started));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_per_tick_gates_on_its_own_runs() {
    let fx = Fixture::new("sched-suite").await;
    fx.layer_config_map("layers", CONFIG).await;
    create(
        &fx,
        schedule(
            "suite",
            json!({"schedule": "*/4 * * * * *", "layers": ["core", "fast"],
                "concurrencyPolicy": "Forbid", "template": {"spec": {"layer": null}}}),
        ),
    )
    .await;
    let s = wait_schedule(
        &fx,
        "suite",
        Duration::from_secs(40),
        "a suite that passed",
        |s| {
            s.status
                .as_ref()
                .and_then(|st| st.last_run.as_ref())
                .is_some_and(|r| r.phase == Some(LayerPhase::Succeeded))
        },
    )
    .await;
    let last = s.status.unwrap().last_run.unwrap();
    let at = last.scheduled_at.0.as_second();
    // Created in dependency order.
    assert_eq!(
        last.runs,
        [format!("suite-{at}-fast"), format!("suite-{at}-core")],
        "{last:#?}"
    );
    let core = fx
        .runs()
        .get(&format!("suite-{at}-core"))
        .await
        .expect("core");
    let fast = fx
        .runs()
        .get(&format!("suite-{at}-fast"))
        .await
        .expect("fast");
    assert_eq!(core.labels()["testlayer.dev/suite"], format!("suite-{at}"));
    // core started after fast ended: it gated on its own suite's fast.
    let started = core
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .expect("core start");
    let ended = fast
        .status
        .as_ref()
        .and_then(|s| s.completion_time.clone())
        .expect("fast end");
    assert!(
        started.0 >= ended.0,
        "core {started:?} before fast ended {ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_stalls_naming_the_field_and_creates_nothing() {
    let fx = Fixture::new("sched-bad").await;
    fx.layer_config_map("layers", CONFIG).await;
    let cases = [
        (
            "cron",
            json!({"schedule": "*/3 * * * * * *"}),
            "spec.schedule: ",
        ),
        (
            "zone",
            json!({"schedule": "*/3 * * * * *", "timeZone": "Mars/Olympus"}),
            "spec.timeZone: ",
        ),
        (
            "layer",
            json!({"schedule": "*/3 * * * * *", "template": {"spec": {"layer": "nope"}}}),
            "spec.template.spec.layer: ",
        ),
        (
            "list",
            json!({"schedule": "*/3 * * * * *", "layers": ["fast", "nope"], "template": {"spec": {"layer": null}}}),
            "spec.layers[1]: ",
        ),
        (
            "nocm",
            json!({"schedule": "*/3 * * * * *", "template": {"spec": {"config": {"configMapRef": {"name": "later"}}}}}),
            "spec.template.spec.config: ConfigMap later not found",
        ),
    ];
    for (name, spec, _) in &cases {
        create(&fx, schedule(name, spec.clone())).await;
    }
    for (name, _, want) in &cases {
        let s = wait_schedule(&fx, name, Duration::from_secs(20), "Stalled", |s| {
            s.status.as_ref().is_some_and(|st| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True")
            })
        })
        .await;
        let st = s.status.unwrap();
        let c = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert_eq!(c.reason, "InvalidSchedule");
        assert!(c.message.starts_with(want), "{name}: {}", c.message);
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False", "{name}");
    }
    // Ticks pass; nothing is created.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = fx.runs().list(&ListParams::default()).await.expect("runs");
    assert!(
        all.items.is_empty(),
        "{:?}",
        all.items.iter().map(|r| r.name_any()).collect::<Vec<_>>()
    );

    // The ConfigMap created later: that schedule recovers by itself.
    fx.layer_config_map("later", CONFIG).await;
    wait_schedule(
        &fx,
        "nocm",
        Duration::from_secs(30),
        "a tick once the ConfigMap exists",
        |s| !started(s).is_empty(),
    )
    .await;
}
