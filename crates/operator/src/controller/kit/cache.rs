//! The controller's caches: waiting for a cache's first list, the backoff
//! of its watch, and what the Pod cache keeps of a Pod.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector;
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::watcher::ExponentialBackoff;

/// Waits until a cache has had its first full list. Asks again every 200 ms
/// rather than relying on one wake-up, which was seen to be missed when the
/// list completes while the first wait is being set up.
pub async fn synced<K: kube::Resource + Clone>(store: &reflector::Store<K>)
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready())
        .await
        .is_err()
    {}
}

/// The backoff of the controller's watches after an error: kube's default
/// (from 0.8 s, doubling, with jitter) but at most 5 s apart rather than
/// 30, so that the caches are back within seconds of an apiserver or etcd
/// restart (each retry is one request of one client); reset after a minute
/// without errors.
pub fn watch_backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    ResetTimerBackoff::new(
        ExponentialBackoff::from(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(800))
                .with_max_delay(Duration::from_secs(5))
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
        ),
        Duration::from_secs(60),
    )
}

/// What the Pod cache keeps of a Pod: its metadata, its status, its
/// scheduling gates, its node, its grace period and its deadline, which is
/// all a step reads (the rest of the spec is the controller's own, from its
/// CategoryRun).
pub fn trim_pod(pod: &mut Pod) {
    pod.managed_fields_mut().clear();
    pod.spec = pod.spec.take().map(|s| {
        let gates = s.scheduling_gates.filter(|g| !g.is_empty());
        // The grace period and deadline: a stopped Pod that is kept is
        // due to end within its grace period, and its deadline is only
        // ever cut.
        k8s_openapi::api::core::v1::PodSpec {
            scheduling_gates: gates,
            node_name: s.node_name,
            termination_grace_period_seconds: s.termination_grace_period_seconds,
            active_deadline_seconds: s.active_deadline_seconds,
            ..Default::default()
        }
    });
}
