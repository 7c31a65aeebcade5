//! Shared resources: grants made before the Pods they let start, given
//! back when the attempt (or the run) ends, claims served in the order of
//! the namespace's line, and resources that are not declared.

use super::world::t0;
use super::*;
use crate::api::{ResourceClaim, ResourceUnits};
use crate::controller::shared::claims::{RecordedClaim, grant_name};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

const SHARED: &str = r#"
resources:
  staging_db: {}
layers:
  e2e:
    execution_mode: "parallel"
    categories:
      - name: "a"
        timeout_seconds: 30
        uses: [staging_db]
      - name: "b"
        timeout_seconds: 30
        uses: [staging_db]
      - name: "free"
        timeout_seconds: 30
"#;

fn world(config: &str) -> World {
    let mut w = World::new("e2e", config, json!({"command": "true"}))
        .scripts(|_, _| Script::pass(1.0, "1 passed"));
    w.capacities.insert("staging-db".into(), 1);
    w
}

#[test]
fn a_mutex_has_one_holder_at_a_time_and_each_grant_precedes_its_pod() {
    let mut w = world(SHARED);
    w.run_until(LONG, |w| w.count("create pod") >= 2);
    // The category that does not use it started at once; of the two that
    // do, one holds the unit and the other waits, first in line.
    let b = w.category("b").status.clone().unwrap();
    assert_eq!(b.reason, Some(Reason::WaitingForResource), "{b:#?}");
    let claim = b.resource_claim.clone().unwrap();
    assert_eq!(claim.wants[0].resource, "staging-db");
    assert_eq!(
        b.message.as_deref(),
        Some("waiting for shared resources: staging-db")
    );
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    // Never two Pods of the mutex's users at once.
    let mut inside = 0;
    for (_, pod, e) in &w.pod_log {
        if pod.starts_with("r-free-") {
            continue;
        }
        match e {
            PodEvent::Created => {
                inside += 1;
                assert_eq!(inside, 1, "{:#?}", w.pod_log);
            }
            PodEvent::Ended(_) => inside -= 1,
            PodEvent::Deleted => {}
        }
    }
    // Each Pod's grant was written before it; both were given back.
    for cat in ["a", "b"] {
        let grant = w
            .writes
            .iter()
            .position(|x| x == "grant testlayer-grant-staging-db-0")
            .unwrap();
        let pod = w
            .writes
            .iter()
            .position(|x| x == &format!("create pod r-{cat}-1"))
            .unwrap();
        assert!(grant < pod, "{:#?}", w.writes);
    }
    assert_eq!(w.count("grant testlayer-grant"), 2);
    assert_eq!(w.count("release testlayer-grant"), 2);
    assert!(w.grants.is_empty());
    // The claims are gone from the statuses once served.
    assert!(
        w.category("b")
            .status
            .as_ref()
            .unwrap()
            .resource_claim
            .is_none()
    );
}

/// A claim on one unit of staging-db by `holder` of `run`, another run
/// created `secs` after this one.
fn db_claim(holder: &str, run: &str, secs: i64) -> RecordedClaim {
    RecordedClaim {
        holder: holder.into(),
        holder_uid: format!("uid-{holder}"),
        run: run.into(),
        run_namespace: "ns".into(),
        claim: ResourceClaim {
            attempt: 1,
            since: Time(
                t0().checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs))
                    .unwrap(),
            ),
            priority: 0,
            wants: vec![ResourceUnits {
                resource: "staging-db".into(),
                units: 1,
            }],
        },
    }
}

#[test]
fn an_earlier_claim_of_another_run_is_served_first() {
    let mut w = world(SHARED);
    w.foreign_claims.push(db_claim("older-a", "older", -60));
    w.run_until(Duration::from_secs(5), |w| w.count("create pod") >= 1);
    w.run_for(Duration::from_secs(5));
    assert_eq!(w.count("grant "), 0, "{:#?}", w.writes);
    let msg = w.run.status.clone().unwrap().message.unwrap();
    // Nothing runs (the free category is done): the run says what holds
    // it up.
    assert_eq!(msg, "waiting for shared resources: staging-db");
    // The older claim is served (its own run's reconcile makes its grant):
    // ours wait, recorded for every run's reconcile to see.
    for cat in ["a", "b"] {
        let st = w.category(cat).status.clone().unwrap();
        assert_eq!(st.resource_claim.unwrap().wants[0].resource, "staging-db");
    }
    // The older run's claim is granted and done: ours go on in order.
    w.foreign_claims.clear();
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert!(w.first("r-a-", &PodEvent::Created) < w.first("r-b-", &PodEvent::Created));
}

#[test]
fn a_resource_without_its_object_holds_the_run_and_names_it() {
    let mut w = world(SHARED);
    w.capacities.clear();
    w.run_for(Duration::from_secs(10));
    assert_eq!(w.count("create pod"), 0);
    let st = w.run.status.clone().unwrap();
    assert!(
        st.message
            .as_deref()
            .unwrap_or_default()
            .contains("shared resource \"staging-db\" has no TestLayerResource in namespace ns"),
        "{st:#?}"
    );
    w.capacities.insert("staging-db".into(), 1);
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
}

#[test]
fn a_layer_holds_its_resources_for_the_whole_run_and_gives_them_back_at_its_end() {
    let config = r#"
resources:
  staging_db: {capacity: 2}
layers:
  e2e:
    uses: [{name: staging_db, units: 2}]
    categories:
      - name: "a"
        timeout_seconds: 30
      - name: "b"
        timeout_seconds: 30
"#;
    let mut w = world(config);
    w.capacities.insert("staging-db".into(), 2);
    w.run_until(LONG, |w| w.count("create pod") >= 1);
    use kube::ResourceExt;
    let grant = w.grants.get("testlayer-grant-staging-db-1").unwrap();
    // Held by the run, with neither owner nor finalizer: given back by one
    // delete (the step's, or the sweep's once a deleted holder's Pods have
    // stopped).
    assert_eq!(
        grant
            .labels()
            .get("testlayer.dev/holder-uid")
            .map(String::as_str),
        Some("run-uid")
    );
    assert_eq!(
        grant
            .labels()
            .get("testlayer.dev/grant-attempt")
            .map(String::as_str),
        Some("0")
    );
    assert!(grant.metadata.owner_references.is_none(), "{grant:#?}");
    assert!(grant.metadata.finalizers.is_none(), "{grant:#?}");
    w.run_until(LONG, |w| w.count("create pod") >= 2);
    assert_eq!(w.grants.len(), 2, "held between its categories");
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    w.run_for(Duration::from_secs(2));
    assert!(w.grants.is_empty(), "{:#?}", w.writes);
}

#[test]
fn a_cancel_gives_back_what_the_run_holds() {
    let mut w = world(SHARED).scripts(|_, _| Script::forever());
    w.run_until(LONG, |w| w.count("create pod") >= 2);
    assert_eq!(w.grants.len(), 1);
    w.run.spec.cancel = true;
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Cancelled));
    assert!(w.grants.is_empty(), "{:#?}", w.writes);
    assert!(
        w.category("b")
            .status
            .as_ref()
            .unwrap()
            .resource_claim
            .is_none()
    );
}

/// A grant of `resource` unit 0 held by another run's holder.
fn foreign_grant(resource: &str) -> k8s_openapi::api::coordination::v1::Lease {
    serde_json::from_value(json!({
        "metadata": {
            "name": grant_name(resource, 0),
            "namespace": "ns",
            "labels": {
                "testlayer.dev/resource": resource,
                "testlayer.dev/grant-attempt": "1",
                "testlayer.dev/holder": "other-x",
            },
            "ownerReferences": [{"apiVersion": "testlayer.dev/v1alpha1", "kind": "CategoryRun",
                "name": "other-x", "uid": "uid-other-x"}],
        },
        "spec": {"holderIdentity": "other-x"},
    }))
    .unwrap()
}

#[test]
fn waiting_for_a_resource_held_elsewhere_does_not_count_against_the_deadline() {
    let config = |counts: bool| {
        format!(
            "resources:\n  staging_db: {{}}\nlayers:\n  e2e:\n    max_duration_minutes: 0.1\n    deadline_counts_resource_wait: {counts}\n    categories:\n      - name: \"first\"\n        timeout_seconds: 30\n      - name: \"a\"\n        timeout_seconds: 30\n        dependencies: [first]\n        uses: [staging_db]\n"
        )
    };
    for counts in [false, true] {
        let mut w = world(&config(counts)).scripts(|_, _| Script::pass(2.0, "1 passed"));
        // The run's clock starts with "first" (2 s); another run holds the
        // mutex for 10 s, so "a" waits with nothing running; the deadline
        // is 6 s.
        w.grants
            .insert(grant_name("staging-db", 0), foreign_grant("staging-db"));
        w.run_for(Duration::from_secs(10));
        w.grants.clear();
        w.run_to_end(LONG);
        let st = w.run.status.clone().unwrap();
        if counts {
            assert_eq!(st.phase, Some(LayerPhase::TimedOut), "{st:#?}");
        } else {
            assert_eq!(st.phase, Some(LayerPhase::Succeeded), "{st:#?}");
            assert!(st.resource_wait_seconds.unwrap_or(0) >= 7, "{st:#?}");
        }
    }
}

#[test]
fn a_timed_out_attempt_gives_its_grant_back() {
    let config = SHARED.replace("timeout_seconds: 30", "timeout_seconds: 3");
    let mut w = world(&config).scripts(|c, _| match c {
        "a" => Script::forever(),
        _ => Script::pass(1.0, "1 passed"),
    });
    w.run_to_end(LONG);
    assert_eq!(w.cat_phase("a"), Some(Phase::TimedOut));
    assert_eq!(w.cat_phase("b"), Some(Phase::Succeeded));
    assert!(w.grants.is_empty(), "{:#?}", w.writes);
    // b got the unit only once a's Pod had stopped.
    assert!(w.first("r-b-", &PodEvent::Created) >= w.first("r-a-", &PodEvent::Ended(143)));
}

#[test]
fn a_stopped_pod_keeps_its_grant_through_its_grace_period() {
    // Timed out: b gets the unit only once a's Pod has stopped, 3 s after
    // its stop, not when the stop is recorded.
    let config = SHARED.replace("timeout_seconds: 30", "timeout_seconds: 3");
    let mut w = world(&config).scripts(|c, _| match c {
        "a" => Script::forever(),
        _ => Script::pass(1.0, "1 passed"),
    });
    w.grace = Duration::from_secs(3);
    w.run_to_end(LONG);
    assert_eq!(w.cat_phase("a"), Some(Phase::TimedOut));
    assert_eq!(w.cat_phase("b"), Some(Phase::Succeeded));
    let gone = w.first("r-a-", &PodEvent::Ended(143));
    assert!(
        w.first("r-b-", &PodEvent::Created) >= gone,
        "{:#?}",
        w.pod_log
    );
    assert!(w.grants.is_empty(), "{:#?}", w.writes);

    // Cancelled: the run ends at once, its grant stays until its Pod has
    // stopped.
    let mut w = world(SHARED).scripts(|_, _| Script::forever());
    w.grace = Duration::from_secs(3);
    w.run_until(LONG, |w| w.count("create pod") >= 2);
    w.run.spec.cancel = true;
    w.run_until(LONG, |w| w.count("stop pod") > 0);
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.grants.len(), 1, "{:#?}", w.writes);
    assert_eq!(w.count("release testlayer-grant"), 0, "{:#?}", w.writes);
    w.run_to_end(LONG);
    w.run_for(Duration::from_secs(5));
    assert_eq!(w.phase(), Some(LayerPhase::Cancelled));
    assert_eq!(w.live_pods(), 0, "{:#?}", w.pods.keys());
    assert!(w.grants.is_empty(), "{:#?}", w.writes);
}

/// A grant of unit 0 of `resource` that run "other" keeps for its whole run.
fn kept_by_other(resource: &str) -> k8s_openapi::api::coordination::v1::Lease {
    let mut l = foreign_grant(resource);
    let labels = l.metadata.labels.as_mut().unwrap();
    labels.insert("testlayer.dev/grant-attempt".into(), "0".into());
    labels.insert("testlayer.dev/run".into(), "other".into());
    l
}

#[test]
fn runs_that_keep_what_each_other_waits_for_are_stalled_until_one_goes() {
    let config = r#"
resources:
  staging_db: {}
  sandbox: {}
layers:
  e2e:
    uses: [staging_db]
    categories:
      - name: "a"
        timeout_seconds: 30
        uses: [sandbox]
"#;
    let mut w = world(config);
    w.capacities.insert("sandbox".into(), 1);
    // Run "other", younger, keeps the sandbox for its whole run and its
    // category waits for the database, which this run keeps.
    w.grants
        .insert(grant_name("sandbox", 0), kept_by_other("sandbox"));
    w.foreign_claims.push(db_claim("other-x", "other", 60));
    w.run_for(Duration::from_secs(10));
    assert!(w.grants.contains_key(&grant_name("staging-db", 0)));
    let st = w.run.status.clone().unwrap();
    let stalled = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "ResourceDeadlock"),
        "{st:#?}"
    );
    assert_eq!(
        stalled.message,
        "deadlock over shared resources: runs \"other\" and \"r\" wait for each other; \
         \"other\" keeps sandbox and waits for staging-db; \
         \"r\" keeps staging-db and waits for sandbox; cancel or delete one of them"
    );
    assert_eq!(st.message.as_deref(), Some(stalled.message.as_str()));
    let warned = w.events.iter().filter(|n| n.reason == "ResourceDeadlock");
    assert_eq!(warned.count(), 1, "{:#?}", w.events);
    // Stalled, nothing changes: a later look writes nothing (no
    // timestamps rewritten).
    let writes = w.writes.len();
    let later = w
        .now
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(3))
        .unwrap();
    w.advance_to(later);
    w.reconcile();
    assert_eq!(w.writes.len(), writes, "{:?}", &w.writes[writes..]);
    // The other run is cancelled: its grant and claim go, this run goes on.
    w.grants.remove(&grant_name("sandbox", 0));
    w.foreign_claims.clear();
    w.run_to_end(LONG);
    let st = w.run.status.clone().unwrap();
    assert_eq!(st.phase, Some(LayerPhase::Succeeded), "{st:#?}");
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "False")
    );
}

#[test]
fn a_run_waiting_for_a_unit_kept_by_a_run_that_waits_for_nothing_is_not_stalled() {
    let config = r#"
resources:
  staging_db: {}
layers:
  e2e:
    categories:
      - name: "a"
        timeout_seconds: 30
        uses: [staging_db]
"#;
    let mut w = world(config);
    w.grants
        .insert(grant_name("staging-db", 0), kept_by_other("staging-db"));
    w.run_for(Duration::from_secs(10));
    let st = w.run.status.clone().unwrap();
    assert!(
        !st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True"),
        "{st:#?}"
    );
    assert_eq!(
        st.message.as_deref(),
        Some("waiting for shared resources: staging-db")
    );
}

/// A cancelled run gives back what it held only once its holders' Pods
/// have stopped, even when the cache does not show such a Pod yet (two
/// controllers: the other made it a moment ago): the step asks whether it
/// exists, and keeps the grant while it does.
#[test]
fn a_holders_pod_the_cache_does_not_show_keeps_its_grant_after_a_cancel() {
    let mut w = world(SHARED).scripts(|_, _| Script::pass(20.0, "1 passed"));
    w.run_until(LONG, |w| w.count("create pod") >= 2);
    let holder = w
        .pods
        .keys()
        .find(|p| p.starts_with("r-a-") || p.starts_with("r-b-"))
        .cloned()
        .expect("a holder's Pod");
    assert_eq!(w.grants.len(), 1);
    // Its CategoryRun's status does not record the attempt yet (a
    // category that just started is written a moment later).
    assert!(
        w.crs["r-a"]
            .status
            .as_ref()
            .is_none_or(|s| s.attempts.is_empty())
    );
    w.unseen.insert(holder.clone());
    w.run.spec.cancel = true;
    w.run_for(Duration::from_secs(5));
    assert_eq!(w.phase(), Some(LayerPhase::Cancelled));
    assert_eq!(
        w.grants.len(),
        1,
        "given back while its Pod may run: {:?}",
        w.writes
    );
    assert!(
        w.questions
            .iter()
            .any(|q| matches!(q, Question::PodExists(p) if *p == holder)),
        "{:?}",
        w.questions
    );
    // Seen at last, and ended: the grant goes back.
    w.unseen.clear();
    w.run_for(Duration::from_secs(60));
    assert!(w.grants.is_empty(), "{:?}", w.writes);
}
