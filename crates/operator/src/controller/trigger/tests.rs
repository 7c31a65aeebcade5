//! The trigger step and the reading of rollouts, over made-up objects.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::access::{group_of, resource_name, resource_of, served_as_checked};
use super::rollout::{
    LAST_APPLIED, MAX_IMAGE, MAX_REVISION, Path, known_kind, rollout, shown_revision,
};
use super::step::{TriggerObserved, step};
use crate::api::names::LABEL_TRIGGER;
use crate::api::names::{ANNOTATION_IMAGE, ANNOTATION_REVISION, ANNOTATION_TRIGGERED_BY};
use crate::api::{TestLayerRun, TestLayerTrigger, TestLayerTriggerStatus, TickAction};
use crate::controller::launch::decision::ScheduleStep;
use crate::controller::launch::ticks::Problem;

const CONFIG: &str = r#"
layers:
  fast:
    execution_mode: parallel
    categories:
      - {name: unit, timeout_seconds: 30, command: "true"}
"#;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn trigger(watch: Value, extra: Value) -> TestLayerTrigger {
    let mut spec = json!({"watch": watch,
        "template": {"spec": {"layer": "fast", "config": {"inline": CONFIG}}}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(
        json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerTrigger",
        "metadata": {"name": "on-deploy", "namespace": "staging", "uid": "t-1", "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec}),
    )
    .unwrap()
}

fn deploy_watch() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"})
}

/// A Deployment at `revision`, generation `generation`, observed up to
/// `observed`, with `updated` of 2 replicas updated and available.
fn deployment(revision: u32, generation: i64, observed: i64, updated: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "checkout", "namespace": "staging", "generation": generation,
            "creationTimestamp": "2025-12-01T00:00:00Z",
            "annotations": {"deployment.kubernetes.io/revision": revision.to_string()}},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": format!("shop/checkout:{revision}")}]}}},
        "status": {"observedGeneration": observed, "replicas": 2, "updatedReplicas": updated,
            "availableReplicas": updated, "readyReplicas": updated}})
}

fn observe(
    t: &TestLayerTrigger,
    watched: Vec<Value>,
    runs: Vec<Arc<TestLayerRun>>,
) -> TriggerObserved {
    TriggerObserved {
        trigger: Arc::new(t.clone()),
        runs,
        config: Ok((CONFIG.into(), "inline".into())),
        watched: Ok(watched),
    }
}

/// `t` with the status `st` wrote, as stored.
fn after(t: &TestLayerTrigger, st: &ScheduleStep<TestLayerTriggerStatus>) -> TestLayerTrigger {
    let mut t = t.clone();
    if let Some(status) = &st.status {
        let v = serde_json::to_value(status).unwrap();
        t.status = Some(serde_json::from_value(v).unwrap());
    }
    t
}

fn created(st: &ScheduleStep<TestLayerTriggerStatus>) -> Vec<String> {
    st.create.iter().map(|r| r.name_any()).collect()
}

fn stall(st: &ScheduleStep<TestLayerTriggerStatus>) -> String {
    let s = st.status.as_ref().expect("status");
    let c = s.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(c.status, "True");
    c.message.clone()
}

#[test]
fn a_deployment_fires_once_per_finished_revision_and_never_on_scaling() {
    let t = trigger(deploy_watch(), json!({}));
    // There before the trigger, at revision 1: recorded, not run.
    let st = step(
        &observe(&t, vec![deployment(1, 1, 1, 2)], vec![]),
        ts("2026-01-01T00:00:01Z"),
    );
    assert!(st.create.is_empty());
    let status = st.status.clone().unwrap();
    assert_eq!(status.resources[0].revision.as_deref(), Some("1"));
    assert!(status.watching_since.is_some());
    let t = after(&t, &st);

    // Revision 2 rolling out: 1 of 2 updated. Nothing yet.
    let st = step(
        &observe(&t, vec![deployment(2, 2, 2, 1)], vec![]),
        ts("2026-01-01T00:01:00Z"),
    );
    assert!(st.create.is_empty(), "{:?}", created(&st));
    // Not observed yet, though all "updated" (stale status): nothing.
    let st = step(
        &observe(&t, vec![deployment(2, 3, 2, 2)], vec![]),
        ts("2026-01-01T00:01:01Z"),
    );
    assert!(st.create.is_empty(), "{:?}", created(&st));

    // Finished: one run, recording what triggered it.
    let st = step(
        &observe(&t, vec![deployment(2, 3, 3, 2)], vec![]),
        ts("2026-01-01T00:01:02Z"),
    );
    assert_eq!(created(&st).len(), 1);
    let run = &st.create[0];
    assert!(
        run.name_any().starts_with("on-deploy-"),
        "{}",
        run.name_any()
    );
    assert_eq!(run.labels()[LABEL_TRIGGER], "on-deploy");
    assert_eq!(
        run.annotations()[ANNOTATION_TRIGGERED_BY],
        "Deployment/checkout"
    );
    assert_eq!(run.annotations()[ANNOTATION_REVISION], "2");
    assert_eq!(run.annotations()[ANNOTATION_IMAGE], "shop/checkout:2");
    let env = &run.spec.pod.as_ref().unwrap().env;
    assert!(
        env.iter()
            .any(|e| e.name == "TESTLAYER_TRIGGER_REVISION" && e.value.as_deref() == Some("2"))
    );
    assert!(
        env.iter().any(|e| e.name == "TESTLAYER_TRIGGER_IMAGE"
            && e.value.as_deref() == Some("shop/checkout:2"))
    );
    let status = st.status.clone().unwrap();
    assert_eq!(status.last_revision.as_deref(), Some("2"));
    assert_eq!(status.history[0].action, TickAction::Started);
    let first = run.clone();
    let t = after(&t, &st);

    // Seen again, with its run: nothing new.
    let runs = vec![Arc::new(first.clone())];
    let st = step(
        &observe(&t, vec![deployment(2, 3, 3, 2)], runs.clone()),
        ts("2026-01-01T00:01:03Z"),
    );
    assert!(st.create.is_empty());
    assert!(st.status.is_none(), "{:#?}", st.status);

    // Scaled to 5: a new generation, the same revision. Never a run.
    let mut scaled = deployment(2, 4, 3, 2);
    scaled["spec"]["replicas"] = json!(5);
    let st = step(
        &observe(&t, vec![scaled.clone()], runs.clone()),
        ts("2026-01-01T00:02:00Z"),
    );
    assert!(st.create.is_empty());
    scaled["status"] = json!({"observedGeneration": 4, "replicas": 5, "updatedReplicas": 5, "availableReplicas": 5});
    let st = step(&observe(&t, vec![scaled], runs), ts("2026-01-01T00:02:30Z"));
    assert!(st.create.is_empty());
}

#[test]
fn a_firing_the_status_did_not_record_is_completed_not_repeated() {
    let t = trigger(deploy_watch(), json!({"concurrencyPolicy": "Forbid"}));
    let t = after(
        &t,
        &step(
            &observe(&t, vec![deployment(1, 1, 1, 2)], vec![]),
            ts("2026-01-01T00:00:01Z"),
        ),
    );
    let st = step(
        &observe(&t, vec![deployment(2, 2, 2, 2)], vec![]),
        ts("2026-01-01T00:01:00Z"),
    );
    let run = st.create[0].clone();
    // The controller stopped after the create, before the status: the run
    // exists (still going), the status knows nothing of it.
    let st = step(
        &observe(
            &t,
            vec![deployment(2, 2, 2, 2)],
            vec![Arc::new(run.clone())],
        ),
        ts("2026-01-01T00:01:05Z"),
    );
    assert!(st.create.is_empty(), "{:?}", created(&st));
    let status = st.status.unwrap();
    assert_eq!(
        status.history[0].action,
        TickAction::Started,
        "not skipped as its own active run"
    );
    assert_eq!(status.last_revision.as_deref(), Some("2"));
    assert_eq!(
        status.last_run.unwrap().name,
        run.labels()["testlayer.dev/suite"]
    );
}

#[test]
fn a_delay_waits_for_the_rollout_to_stay_finished() {
    let t = trigger(deploy_watch(), json!({"delaySeconds": 30}));
    let t = after(
        &t,
        &step(
            &observe(&t, vec![deployment(1, 1, 1, 2)], vec![]),
            ts("2026-01-01T00:00:01Z"),
        ),
    );
    let st = step(
        &observe(&t, vec![deployment(2, 2, 2, 2)], vec![]),
        ts("2026-01-01T00:01:00Z"),
    );
    assert!(st.create.is_empty());
    assert_eq!(st.requeue, Some(Duration::from_secs(30)));
    let t = after(&t, &st);
    let st = step(
        &observe(&t, vec![deployment(2, 2, 2, 2)], vec![]),
        ts("2026-01-01T00:01:20Z"),
    );
    assert!(st.create.is_empty());
    assert_eq!(st.requeue, Some(Duration::from_secs(10)));
    let st = step(
        &observe(&t, vec![deployment(2, 2, 2, 2)], vec![]),
        ts("2026-01-01T00:01:31Z"),
    );
    assert_eq!(created(&st).len(), 1);
}

#[test]
fn forbid_skips_a_revision_while_runs_go_and_records_it() {
    let t = trigger(deploy_watch(), json!({"concurrencyPolicy": "Forbid"}));
    let t = after(
        &t,
        &step(
            &observe(&t, vec![deployment(1, 1, 1, 2)], vec![]),
            ts("2026-01-01T00:00:01Z"),
        ),
    );
    let st = step(
        &observe(&t, vec![deployment(2, 2, 2, 2)], vec![]),
        ts("2026-01-01T00:01:00Z"),
    );
    let going = Arc::new(st.create[0].clone());
    let t = after(&t, &st);
    let st = step(
        &observe(&t, vec![deployment(3, 3, 3, 2)], vec![going.clone()]),
        ts("2026-01-01T00:02:00Z"),
    );
    assert!(st.create.is_empty());
    let status = st.status.clone().unwrap();
    assert_eq!(status.history[0].action, TickAction::Skipped);
    assert_eq!(status.history[0].revision, "3");
    // Handled: not run when the earlier run ends.
    let t = after(&t, &st);
    let mut ended = (*going).clone();
    ended.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
    let st = step(
        &observe(&t, vec![deployment(3, 3, 3, 2)], vec![Arc::new(ended)]),
        ts("2026-01-01T00:03:00Z"),
    );
    assert!(st.create.is_empty());
}

#[test]
fn gitops_kinds_fire_on_their_own_revision_once_healthy() {
    // Argo CD Application: once Synced and Healthy.
    let app = |rev: &str, sync: &str, health: &str| {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "shop", "generation": 7, "creationTimestamp": "2026-01-01T00:10:00Z"},
            "status": {"sync": {"status": sync, "revision": rev}, "health": {"status": health}}})
    };
    let t = trigger(
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "name": "shop"}),
        json!({}),
    );
    let t = after(
        &t,
        &step(&observe(&t, vec![], vec![]), ts("2026-01-01T00:00:01Z")),
    );
    for (sync, health) in [
        ("OutOfSync", "Healthy"),
        ("Synced", "Progressing"),
        ("Synced", "Degraded"),
    ] {
        let st = step(
            &observe(&t, vec![app("abc", sync, health)], vec![]),
            ts("2026-01-01T00:11:00Z"),
        );
        assert!(st.create.is_empty(), "{sync} {health}");
    }
    let st = step(
        &observe(&t, vec![app("abc", "Synced", "Healthy")], vec![]),
        ts("2026-01-01T00:11:00Z"),
    );
    assert_eq!(
        st.create.len(),
        1,
        "created after the trigger: its first finished revision runs"
    );
    assert_eq!(st.create[0].annotations()[ANNOTATION_REVISION], "abc");

    // Flux Kustomization: kstatus Current.
    let ks = |rev: &str, ready: &str, observed: i64| {
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "apps", "generation": 2, "creationTimestamp": "2025-01-01T00:00:00Z"},
            "status": {"observedGeneration": observed, "lastAppliedRevision": rev,
                "conditions": [{"type": "Ready", "status": ready, "reason": "R", "message": "m",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    };
    let t = trigger(
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "selector": {"matchLabels": {"tier": "apps"}}}),
        json!({}),
    );
    let t = after(
        &t,
        &step(
            &observe(&t, vec![ks("main@sha1:1", "True", 2)], vec![]),
            ts("2026-01-01T00:00:01Z"),
        ),
    );
    let st = step(
        &observe(&t, vec![ks("main@sha1:2", "Unknown", 2)], vec![]),
        ts("2026-01-01T00:01:00Z"),
    );
    assert!(st.create.is_empty());
    let st = step(
        &observe(&t, vec![ks("main@sha1:2", "True", 1)], vec![]),
        ts("2026-01-01T00:01:00Z"),
    );
    assert!(st.create.is_empty(), "generation not observed");
    let st = step(
        &observe(&t, vec![ks("main@sha1:2", "True", 2)], vec![]),
        ts("2026-01-01T00:01:00Z"),
    );
    assert_eq!(st.create.len(), 1);
    assert_eq!(
        st.create[0].annotations()[ANNOTATION_TRIGGERED_BY],
        "Kustomization/apps"
    );
}

#[test]
fn bad_input_stalls_naming_the_field() {
    let cases = [
        (
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w"}),
            "spec.watch.kind: kind Widget has no known revision",
        ),
        (
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "revisionPath": "status..x"}),
            "spec.watch.revisionPath: field path",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
            "spec.watch: name one resource",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "a", "selector": {}}),
            "spec.watch: name one resource",
        ),
    ];
    for (watch, want) in cases {
        let t = trigger(watch.clone(), json!({}));
        let st = step(&observe(&t, vec![], vec![]), ts("2026-01-01T00:00:01Z"));
        assert!(stall(&st).starts_with(want), "{watch}: {}", stall(&st));
        assert!(st.create.is_empty());
    }
    let t = trigger(
        deploy_watch(),
        json!({"template": {"spec": {"layer": "nope", "config": {"inline": CONFIG}}}}),
    );
    let st = step(&observe(&t, vec![], vec![]), ts("2026-01-01T00:00:01Z"));
    assert!(
        stall(&st).starts_with("spec.template.spec.layer: "),
        "{}",
        stall(&st)
    );
    let mut o = observe(
        &trigger(deploy_watch(), json!({})),
        vec![deployment(1, 1, 1, 2)],
        vec![],
    );
    o.watched = Err(Problem::new(
        "spec.watch.kind",
        "the controller may not read deployments.apps",
    ));
    let st = step(&o, ts("2026-01-01T00:00:01Z"));
    assert!(stall(&st).starts_with("spec.watch.kind: the controller may not read"));
    assert!(st.create.is_empty());
}

#[test]
fn other_kinds_read_the_configured_revision_and_kstatus() {
    let obj = json!({"metadata": {"generation": 3, "annotations": {"example.com/rev": "r9"}},
        "status": {"observedGeneration": 3, "history": [{"digest": "d1"}],
            "conditions": [{"type": "Ready", "status": "True"}]}});
    let p = Path::parse(".metadata.annotations[\"example.com/rev\"]").unwrap();
    let r = rollout(&obj, "example.com/v1", "Widget", Some(&p)).unwrap();
    assert_eq!(r.revision.as_deref(), Some("r9"));
    assert!(r.finished);
    let p = Path::parse("status.history[0].digest").unwrap();
    assert_eq!(
        rollout(&obj, "example.com/v1", "Widget", Some(&p))
            .unwrap()
            .revision
            .as_deref(),
        Some("d1")
    );
    let mut reconciling = obj.clone();
    reconciling["status"]["conditions"] =
        json!([{"type": "Reconciling", "status": "True", "message": "applying"}]);
    let r = rollout(&reconciling, "example.com/v1", "Widget", Some(&p)).unwrap();
    assert!(!r.finished);
    assert!(r.waiting.contains("applying"), "{}", r.waiting);
    assert!(rollout(&obj, "example.com/v1", "Widget", None).is_err());
    for bad in ["", ".", "a..b", "a[", "a[x]", "a[0]."] {
        assert!(Path::parse(bad).is_err(), "{bad:?}");
    }
    for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
        assert!(known_kind("apps/v1", kind));
    }
    assert!(!known_kind("v1", "ConfigMap"));
}

#[test]
fn statefulsets_and_daemonsets_finish_as_their_controllers_say() {
    let sts = |update: &str, current: &str, ready: i64| {
        json!({"metadata": {"generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updateRevision": update, "currentRevision": current,
                "readyReplicas": ready, "updatedReplicas": 3}})
    };
    let r = rollout(&sts("web-2", "web-1", 3), "apps/v1", "StatefulSet", None).unwrap();
    assert_eq!(r.revision.as_deref(), Some("web-2"));
    assert!(!r.finished);
    assert!(
        rollout(&sts("web-2", "web-2", 3), "apps/v1", "StatefulSet", None)
            .unwrap()
            .finished
    );
    assert!(
        !rollout(&sts("web-2", "web-2", 2), "apps/v1", "StatefulSet", None)
            .unwrap()
            .finished
    );

    let ds = |image: &str, updated: i64| {
        json!({"metadata": {"generation": 1}, "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
                "updatedNumberScheduled": updated, "numberAvailable": 2}})
    };
    let a = rollout(&ds("agent:1", 2), "apps/v1", "DaemonSet", None).unwrap();
    let b = rollout(&ds("agent:2", 1), "apps/v1", "DaemonSet", None).unwrap();
    assert!(a.finished && !b.finished);
    assert_ne!(a.revision, b.revision, "a new template is a new revision");
    assert_eq!(
        a.revision,
        rollout(&ds("agent:1", 1), "apps/v1", "DaemonSet", None)
            .unwrap()
            .revision
    );
    let hr = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "lastReleaseRevision": 4,
        "conditions": [{"type": "Ready", "status": "True"}]}});
    let r = rollout(&hr, "helm.toolkit.fluxcd.io/v2", "HelmRelease", None).unwrap();
    assert_eq!(r.revision.as_deref(), Some("4"));
    assert!(r.finished);
}

#[test]
fn more_resources_than_a_status_keeps_are_named_in_the_ready_message() {
    let t = trigger(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "selector": {"matchLabels": {"a": "b"}}}),
        json!({}),
    );
    let many: Vec<Value> = (0..120)
        .map(|i| {
            let mut d = deployment(1, 1, 1, 2);
            d["metadata"]["name"] = json!(format!("d{i:03}"));
            d
        })
        .collect();
    let st = step(&observe(&t, many, vec![]), ts("2026-01-01T00:00:01Z"));
    let status = st.status.unwrap();
    assert_eq!(status.resources.len(), 100);
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    assert!(
        ready.message.contains("the first 100 of 120 Deployment"),
        "{}",
        ready.message
    );
}

#[test]
fn an_argo_rollout_is_finished_once_observed_promoted_and_healthy() {
    let ro = |observed: &str, current: &str, stable: &str, phase: &str| {
        json!({"metadata": {"generation": 2},
            "spec": {"template": {"spec": {"containers": [{"image": "web:2"}]}}},
            "status": {"observedGeneration": observed, "currentPodHash": current,
                "stableRS": stable, "phase": phase}})
    };
    let read = |v: &Value| rollout(v, "argoproj.io/v1alpha1", "Rollout", None).unwrap();
    assert!(
        !read(&ro("1", "aaa", "aaa", "Healthy")).finished,
        "not observed"
    );
    assert!(!read(&ro("2", "bbb", "aaa", "Paused")).finished);
    assert!(
        !read(&ro("2", "bbb", "aaa", "Healthy")).finished,
        "not promoted"
    );
    let r = read(&ro("2", "bbb", "bbb", "Healthy"));
    assert!(r.finished);
    assert_eq!(r.revision.as_deref(), Some("bbb"));
    assert_eq!(r.image.as_deref(), Some("web:2"));
}

/// A Secret `db` whose password is `hunter2`, at resourceVersion `rv`.
fn secret(rv: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "staging", "resourceVersion": rv,
            "creationTimestamp": "2026-01-02T00:00:00Z",
            "annotations": {"example.com/rotated": "2026-01-02",
                LAST_APPLIED: r#"{"apiVersion":"v1","data":{"password":"aHVudGVyMg=="},"kind":"Secret"}"#}},
        "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"})
}

#[test]
fn a_secret_is_watched_only_for_a_revision_in_its_metadata() {
    let watch = |path: Option<&str>| {
        let mut w = json!({"apiVersion": "v1", "kind": "Secret", "name": "db"});
        if let Some(p) = path {
            w["revisionPath"] = json!(p);
        }
        w
    };
    // Its data, its type, the annotation kubectl keeps the data in, or no
    // path: Stalled, naming the field, nothing read into the status.
    for (path, field) in [
        (Some(".data.password"), "spec.watch.revisionPath: "),
        (Some("data[\"password\"]"), "spec.watch.revisionPath: "),
        (Some(".data"), "spec.watch.revisionPath: "),
        (Some(".type"), "spec.watch.revisionPath: "),
        (Some(".metadata"), "spec.watch.revisionPath: "),
        (Some(".metadata.name"), "spec.watch.revisionPath: "),
        (
            Some(".metadata.annotations[\"kubectl.kubernetes.io/last-applied-configuration\"]"),
            "spec.watch.revisionPath: ",
        ),
        (None, "spec.watch.kind: a Secret has no revision of its own"),
    ] {
        let t = trigger(watch(path), json!({}));
        let st = step(
            &observe(&t, vec![secret("7")], vec![]),
            ts("2026-01-03T00:00:00Z"),
        );
        let message = stall(&st);
        assert!(message.starts_with(field), "{path:?}: {message}");
        assert!(
            message.contains("only from its metadata"),
            "{path:?}: {message}"
        );
        assert!(st.create.is_empty());
        let status = serde_json::to_string(&st.status).unwrap();
        assert!(
            !status.contains("aHVudGVy") && !status.contains("hunter2"),
            "{status}"
        );
    }
    // A kind of the same name in another group is no Secret.
    let t = trigger(
        json!({"apiVersion": "example.com/v1", "kind": "Secret", "name": "db",
            "revisionPath": ".spec.value"}),
        json!({}),
    );
    let st = step(&observe(&t, vec![], vec![]), ts("2026-01-03T00:00:00Z"));
    let conditions = st.status.unwrap().conditions;
    assert!(
        !conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True"),
        "{conditions:#?}"
    );

    // Its metadata: watched; a new resourceVersion fires, and only that
    // reaches the status, the annotations and the environment.
    for path in [
        ".metadata.resourceVersion",
        "metadata.generation",
        ".metadata.annotations[\"example.com/rotated\"]",
        "metadata.annotations.rotated",
    ] {
        let t = trigger(watch(Some(path)), json!({}));
        let st = step(
            &observe(&t, vec![secret("7")], vec![]),
            ts("2026-01-03T00:00:00Z"),
        );
        let status = st.status.clone().unwrap();
        assert!(
            !status
                .conditions
                .iter()
                .any(|c| c.type_ == "Stalled" && c.status == "True"),
            "{path}: {:#?}",
            status.conditions
        );
    }
    let t = trigger(watch(Some(".metadata.resourceVersion")), json!({}));
    let t = after(
        &t,
        &step(
            &observe(&t, vec![secret("7")], vec![]),
            ts("2026-01-03T00:00:00Z"),
        ),
    );
    assert_eq!(
        t.status.as_ref().unwrap().resources[0].revision.as_deref(),
        Some("7")
    );
    let st = step(
        &observe(&t, vec![secret("8")], vec![]),
        ts("2026-01-03T00:01:00Z"),
    );
    assert_eq!(st.create.len(), 1);
    let run = &st.create[0];
    assert_eq!(run.annotations()[ANNOTATION_REVISION], "8");
    assert_eq!(run.annotations()[ANNOTATION_TRIGGERED_BY], "Secret/db");
    assert!(!run.annotations().contains_key(ANNOTATION_IMAGE));
    let everything = format!(
        "{}{}",
        serde_json::to_string(&st.status).unwrap(),
        serde_json::to_string(&st.create).unwrap()
    );
    assert!(
        !everything.contains("aHVudGVy") && !everything.contains("hunter2"),
        "{everything}"
    );
}

#[test]
fn a_long_or_odd_revision_is_shown_as_a_digest_and_an_odd_image_not_at_all() {
    let widget = |rev: Value, image: &str| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "generation": 1, "creationTimestamp": "2026-01-02T00:00:00Z"},
            "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
            "status": {"observedGeneration": 1, "revision": rev}})
    };
    let p = Path::parse(".status.revision").unwrap();
    let read = |v: &Value| rollout(v, "example.com/v1", "Widget", Some(&p)).unwrap();
    // Printable and short enough: as read; a number as text.
    let flux_oci = format!("latest@sha256:{}", "a".repeat(64));
    for ok in ["3", "main@sha1:0123abcd", flux_oci.as_str()] {
        assert_eq!(
            read(&widget(json!(ok), "web:1")).revision.as_deref(),
            Some(ok)
        );
    }
    assert_eq!(
        read(&widget(json!(42), "web:1")).revision.as_deref(),
        Some("42")
    );
    // An object or a list is no revision (nothing of it is shown).
    assert_eq!(
        read(&widget(json!({"password": "hunter2"}), "web:1")).revision,
        None
    );
    // Too long, a newline, a space, a control character, not ASCII: a
    // digest, the same for the same value, another for another.
    let long = "x".repeat(MAX_REVISION + 1);
    let odd = [
        long.as_str(),
        "line one\nline two",
        "1.2.3 (build 4)",
        "tab\there",
        "\u{1b}[31mred",
        "révision",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for raw in odd {
        let shown = read(&widget(json!(raw), "web:1")).revision.unwrap();
        assert!(shown.starts_with("sha256-"), "{raw:?}: {shown}");
        assert_eq!(shown.len(), "sha256-".len() + 16, "{shown}");
        assert!(shown.chars().all(|c| c.is_ascii_graphic()));
        assert_eq!(shown, shown_revision(raw));
        seen.insert(shown);
    }
    assert_eq!(seen.len(), odd.len(), "two revisions stay two");
    assert_eq!(
        shown_revision(&"x".repeat(MAX_REVISION)),
        "x".repeat(MAX_REVISION)
    );

    // The image: an image reference, or nothing.
    let digest = format!(
        "registry.example.com:5000/shop/web@sha256:{}",
        "b".repeat(64)
    );
    assert_eq!(
        read(&widget(json!("r"), &digest)).image.as_deref(),
        Some(digest.as_str())
    );
    for bad in [
        "web:1\nX-Injected: yes",
        "web 1",
        "",
        &"w".repeat(MAX_IMAGE + 1),
    ] {
        assert_eq!(read(&widget(json!("r"), bad)).image, None, "{bad:?}");
    }

    // Through the step: status, history, annotations and environment carry
    // the digest, never the value.
    let t = trigger(
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w",
            "revisionPath": ".status.revision"}),
        json!({}),
    );
    let t = after(
        &t,
        &step(&observe(&t, vec![], vec![]), ts("2026-01-01T00:00:00Z")),
    );
    let raw = format!("BEGIN\n{}\nEND", "k".repeat(300));
    let st = step(
        &observe(&t, vec![widget(json!(raw), "web:2 ; rm")], vec![]),
        ts("2026-01-03T00:00:00Z"),
    );
    assert_eq!(st.create.len(), 1);
    let shown = shown_revision(&raw);
    let run = &st.create[0];
    assert_eq!(run.annotations()[ANNOTATION_REVISION], shown);
    assert!(!run.annotations().contains_key(ANNOTATION_IMAGE));
    let env = &run.spec.pod.as_ref().unwrap().env;
    assert!(
        env.iter().any(|e| e.name == "TESTLAYER_TRIGGER_REVISION"
            && e.value.as_deref() == Some(shown.as_str()))
    );
    assert!(env.iter().all(|e| e.name != "TESTLAYER_TRIGGER_IMAGE"));
    let status = st.status.unwrap();
    assert_eq!(status.last_revision.as_deref(), Some(shown.as_str()));
    assert_eq!(status.history[0].revision, shown);
    assert_eq!(
        status.resources[0].revision.as_deref(),
        Some(shown.as_str())
    );
    let everything = format!(
        "{}{}{:?}",
        serde_json::to_string(&status).unwrap(),
        serde_json::to_string(&st.create).unwrap(),
        st.events
    );
    assert!(
        !everything.contains("kkkk") && !everything.contains("rm"),
        "{everything}"
    );
}

#[test]
fn an_empty_watched_namespace_stalls_naming_it() {
    let mut w = deploy_watch();
    w["namespace"] = json!("");
    let st = step(
        &observe(&trigger(w, json!({})), vec![], vec![]),
        ts("2026-01-01T00:00:01Z"),
    );
    assert!(
        stall(&st).starts_with("spec.watch.namespace: empty"),
        "{}",
        stall(&st)
    );
}

#[test]
fn the_resource_the_policy_checks_is_the_one_the_controller_reads_or_nothing_is_read() {
    for (kind, resource) in [
        ("Deployment", "deployments"),
        ("StatefulSet", "statefulsets"),
        ("DaemonSet", "daemonsets"),
        ("Secret", "secrets"),
        ("ConfigMap", "configmaps"),
        ("Kustomization", "kustomizations"),
        ("HelmRelease", "helmreleases"),
        ("Application", "applications"),
        ("Rollout", "rollouts"),
        ("GitRepository", "gitrepositories"),
        ("Ingress", "ingresses"),
        ("NetworkPolicy", "networkpolicies"),
        ("Gateway", "gateways"),
        ("HTTPRoute", "httproutes"),
        ("Box", "boxes"),
        ("Quiz", "quizes"),
        ("Patch", "patches"),
        ("Wish", "wishes"),
        ("Prometheus", "prometheuses"),
        ("Endpoints", "endpoints"),
        ("Y", "ys"),
    ] {
        assert_eq!(resource_of(kind), resource, "{kind}");
    }
    assert!(served_as_checked("apps", "Deployment", "deployments").is_ok());
    let p = served_as_checked("odd.example.com", "Box", "boxen").unwrap_err();
    assert_eq!(p.field, "spec.watch.kind");
    assert!(
        p.message
            .contains("as resource boxen.odd.example.com, not boxes.odd.example.com"),
        "{}",
        p.message
    );
    assert_eq!(resource_name("", "secrets"), "secrets");
    assert_eq!(group_of("v1"), "");
    assert_eq!(group_of("apps/v1"), "apps");
}
