//! The controller's caches and watches: how each is built.

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::api::names::{LABEL_MANAGED_BY, MANAGER};
use crate::controller::kit::by_run::ByRun;
use crate::controller::kit::cache::{trim_pod, watch_backoff};
use crate::controller::run::node_health::trim_node;

/// Seconds a watch lasts before it is renewed.
pub(super) const WATCH_SECONDS: u32 = 30;

/// A cache of the objects `api` lists under `wc` (without their
/// managedFields: large, and never read) and the stream of the watch
/// events that keeps it, backing off as [`watch_backoff`] says (the default
/// lets it wait up to a minute after a burst of errors, as an apiserver or
/// etcd restart makes).
pub(super) fn reflected<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> (
    reflector::Store<K>,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    indexed(
        watcher(api, wc).modify(|o| o.managed_fields_mut().clear()),
        None,
    )
}

/// A cache of what `events` bring, and the stream of those events; with
/// `by_run` kept from the same events (names added before the cache takes
/// an object, removed after it lets one go).
fn indexed<K>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    by_run: Option<ByRun<K>>,
) -> (
    reflector::Store<K>,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
)
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let before = by_run.clone();
    let events = events.inspect(move |e| {
        if let (Ok(e), Some(ix)) = (e, &before) {
            ix.before_cache(e);
        }
    });
    let stream = reflector::reflector(writer, events)
        .inspect(move |e| {
            if let (Ok(e), Some(ix)) = (e, &by_run) {
                ix.after_cache(e);
            }
        })
        .backoff(watch_backoff());
    (reader, stream)
}

/// A cache of the objects `api` lists under `wc` and the stream of the
/// objects that change in it; with the names of each run's objects kept in
/// `by_run`, if given.
pub(super) fn cached<K>(
    api: Api<K>,
    wc: watcher::Config,
    by_run: Option<ByRun<K>>,
) -> (
    reflector::Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, events) = indexed(
        watcher(api, wc).modify(|o| o.managed_fields_mut().clear()),
        by_run,
    );
    (reader, events.touched_objects())
}

/// A controller of the objects `api` lists under `wc`, over a cache as
/// [`reflected`] keeps it.
pub(super) fn controller_of<K>(api: Api<K>, wc: watcher::Config) -> Controller<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, events) = reflected(api, wc);
    Controller::for_stream(events.applied_objects(), reader)
}

pub(super) fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The cache of the Pods this controller made (labelled as managed by it,
/// trimmed to what a step reads), the names of each run's kept in
/// `by_run`, and the stream of those that change.
pub(super) fn pods(
    client: &Client,
    ns: Option<&str>,
    wc: &watcher::Config,
    by_run: ByRun<Pod>,
) -> (
    reflector::Store<Pod>,
    impl futures::Stream<Item = Result<Pod, watcher::Error>> + Send + use<>,
) {
    let wc = wc.clone().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let (reader, events) = indexed(
        watcher(api::<Pod>(client, ns), wc).modify(trim_pod),
        Some(by_run),
    );
    (reader, events.touched_objects())
}

/// The cache of the cluster's Nodes (for attempts whose node stopped
/// answering; empty when they may not be read) and the stream of those
/// that change.
pub(super) fn nodes(
    client: &Client,
    wc: &watcher::Config,
) -> (
    reflector::Store<Node>,
    impl futures::Stream<Item = Result<Node, watcher::Error>> + Send + use<>,
) {
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<Node>::all(client.clone()), wc.clone()).modify(trim_node),
    )
    .backoff(watch_backoff())
    .touched_objects();
    (reader, stream)
}
