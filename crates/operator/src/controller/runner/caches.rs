//! The controller's caches and watches: how each is built.

use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::api::names::{LABEL_MANAGED_BY, MANAGER};
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
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, wc).modify(|o| o.managed_fields_mut().clear()),
    )
    .backoff(watch_backoff());
    (reader, stream)
}

/// A cache of the objects `api` lists under `wc` and the stream of the
/// objects that change in it.
pub(super) fn cached<K>(
    api: Api<K>,
    wc: watcher::Config,
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
    let (reader, events) = reflected(api, wc);
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
/// trimmed to what a step reads) and the stream of those that change.
pub(super) fn pods(
    client: &Client,
    ns: Option<&str>,
    wc: &watcher::Config,
) -> (
    reflector::Store<Pod>,
    impl futures::Stream<Item = Result<Pod, watcher::Error>> + Send + use<>,
) {
    let (reader, writer) = reflector::store();
    let wc = wc.clone().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let stream = reflector::reflector(writer, watcher(api::<Pod>(client, ns), wc).modify(trim_pod))
        .backoff(watch_backoff())
        .touched_objects();
    (reader, stream)
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
