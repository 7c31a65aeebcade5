//! Pods the apiserver refuses to create, end to end against the real
//! control plane: a ResourceQuota that allows no Pods refuses every Pod of
//! a run. The refusal shows at once (the category's reason, the run's
//! `Stalled` condition, an Event), the create is retried, the run goes on
//! once the quota is lifted, and a Pod that is never created ends by its
//! category's timeout.

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, eventually, phase};
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testlayer::api::{LayerPhase, TestLayerRun};
use testlayer::plan::Phase;

/// The quota's name.
const QUOTA: &str = "no-pods";

/// A quota of no Pods in the fixture's namespace, with the usage the quota
/// controller would record (this control plane does not run it, and the
/// apiserver's quota admission needs it to decide).
async fn no_pods(fx: &Fixture) {
    let quotas: Api<ResourceQuota> = fx.api();
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": QUOTA},
        "spec": {"hard": {"pods": "0"}},
    }))
    .unwrap();
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .unwrap_or_else(|e| panic!("creating the quota: {e}"));
    quotas
        .patch_status(
            QUOTA,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}})),
        )
        .await
        .unwrap_or_else(|e| panic!("recording the quota's usage: {e}"));
}

fn config(timeout: u32) -> String {
    format!(
        "layers:\n  q:\n    execution_mode: parallel\n    categories:\n      - name: a\n        timeout_seconds: {timeout}\n        command: \"echo '1 passed in 0.1s'\"\n"
    )
}

/// A reason as written (`-` when there is none).
fn word(w: Option<&impl ToString>) -> String {
    w.map_or_else(|| "-".to_string(), ToString::to_string)
}

fn stalled(r: &TestLayerRun) -> Option<Condition> {
    r.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
        .cloned()
}

/// The refusal shows within a few seconds: the category's reason and
/// message, the run's `Stalled` condition, a Warning Event.
async fn refusal_shows(fx: &Fixture, run: &str) {
    let cr = format!("{run}-a");
    let message = eventually(
        Duration::from_secs(10),
        "the category to show the refusal",
        async || {
            let Some(c) = fx.crs().get_opt(&cr).await.unwrap() else {
                return Err("no CategoryRun yet".to_string());
            };
            let st = c.status.clone().unwrap_or_default();
            let msg = st.message.clone().unwrap_or_default();
            if word(st.reason.as_ref()) == "PodCreateFailed" && msg.contains("exceeded quota") {
                Ok(msg)
            } else {
                Err(format!("{st:#?}"))
            }
        },
    )
    .await;
    assert!(message.contains(&format!("{cr}-1")), "{message}");
    let r = fx
        .wait_for(run, Duration::from_secs(10), "the Stalled condition", |r| {
            stalled(r).is_some()
        })
        .await;
    let stall = stalled(&r).unwrap();
    assert_eq!(stall.reason, "PodCreateFailed");
    assert!(
        stall.message.contains("category \"a\"") && stall.message.contains("exceeded quota"),
        "{}",
        stall.message
    );
    let events: Api<Event> = fx.api();
    eventually(
        Duration::from_secs(10),
        "a PodCreateFailed event",
        async || {
            let all = events.list(&ListParams::default()).await.unwrap().items;
            let seen: Vec<(Option<String>, Option<String>)> = all
                .iter()
                .map(|e| {
                    (
                        e.reason.clone(),
                        e.regarding.as_ref().and_then(|r| r.name.clone()),
                    )
                })
                .collect();
            all.iter()
                .find(|e| {
                    e.reason.as_deref() == Some("PodCreateFailed")
                        && e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&cr)
                        && e.note
                            .as_deref()
                            .is_some_and(|n| n.contains("exceeded quota"))
                })
                .cloned()
                .ok_or(format!("{seen:?}"))
        },
    )
    .await;
    assert!(fx.pod_names("").await.is_empty(), "no Pod exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_pod_shows_at_once_and_the_run_goes_on_once_the_quota_is_lifted() {
    let fx = Fixture::new("refused").await;
    no_pods(&fx).await;
    fx.submit("lifted", "q", &config(120), json!({})).await;
    refusal_shows(&fx, "lifted").await;

    // The quota is lifted: the next retry creates the Pod.
    let quotas: Api<ResourceQuota> = fx.api();
    quotas
        .delete(QUOTA, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting the quota: {e}"));
    let done = fx.wait_done("lifted", Duration::from_secs(90)).await;
    assert_eq!(
        phase(&done),
        Some(LayerPhase::Succeeded),
        "{:#?}",
        done.status
    );
    assert!(stalled(&done).is_none(), "{:#?}", done.status);
    let a = fx.category("lifted", "a").await.status.unwrap();
    assert_eq!(a.attempts.len(), 1, "{a:#?}");
    assert_eq!(word(a.attempts[0].reason.as_ref()), "Completed");
    assert_eq!(a.counts.map(|c| c.passed), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_is_never_created_ends_by_its_timeout() {
    let fx = Fixture::new("refused").await;
    no_pods(&fx).await;
    let started = Instant::now();
    fx.submit("never", "q", &config(6), json!({})).await;
    refusal_shows(&fx, "never").await;
    let done = fx.wait_done("never", Duration::from_secs(40)).await;
    assert!(started.elapsed() >= Duration::from_secs(6));
    assert_eq!(phase(&done), Some(LayerPhase::Failed), "{:#?}", done.status);
    assert!(stalled(&done).is_none(), "{:#?}", done.status);
    let a = fx.category("never", "a").await.status.unwrap();
    assert_eq!(
        (a.phase, word(a.reason.as_ref()).as_str()),
        (Some(Phase::TimedOut), "DeadlineExceeded"),
        "{a:#?}"
    );
    let message = a.message.unwrap_or_default();
    assert!(
        message.contains("never created") && message.contains("exceeded quota"),
        "{message}"
    );
    assert_eq!(a.attempts.len(), 1);
    assert_eq!(word(a.attempts[0].reason.as_ref()), "PodCreateFailed");
    assert!(fx.pod_names("").await.is_empty());
}
