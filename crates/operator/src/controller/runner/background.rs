//! The controller's tasks beside its reconcilers (the gauge, the sweepers,
//! the keeper of shared resources' statuses, the sender of
//! notifications, readiness, wakes): each ends
//! when the [`Background`] that holds it is dropped, so a controller that
//! stops, or whose own task is aborted, leaves none of them running.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::runtime::reflector::Store;
use tokio_util::task::AbortOnDropHandle;

use super::gauge;
use crate::controller::kit::cache::synced;
use crate::controller::kit::context::Context;
use crate::controller::kit::server::Readiness;

/// Tasks that end together, when this is dropped.
#[derive(Default)]
pub(super) struct Background(Vec<AbortOnDropHandle<()>>);

impl Background {
    /// The tasks over the controller's context: the gauge of CategoryRuns,
    /// the sweepers of grants and Pods, the keeper of resources' statuses,
    /// the sender of notifications.
    pub(super) fn start(ctx: &Arc<Context>) -> Background {
        let mut b = Background::default();
        b.spawn(gauge::keep(
            ctx.runs.clone(),
            ctx.category_runs.clone(),
            ctx.metrics.clone(),
        ));
        b.spawn(crate::controller::shared::sweep::sweep(ctx.clone()));
        b.spawn(crate::controller::run::pod_sweep::sweep(ctx.clone()));
        b.spawn(crate::controller::shared::status::keep(ctx.clone()));
        b.spawn(crate::controller::notify::deliver::deliver(ctx.clone()));
        b
    }

    /// Runs `task` until this is dropped.
    pub(super) fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.hold(AbortOnDropHandle::new(tokio::spawn(task)));
    }

    /// Ends `task` with the others.
    pub(super) fn hold(&mut self, task: AbortOnDropHandle<()>) {
        self.0.push(task);
    }
}

/// Waits for `store` to have listed.
pub(super) fn listed<K>(store: &Store<K>) -> BoxFuture<'static, ()>
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let store = store.clone();
    async move { synced(&store).await }.boxed()
}

/// Says the controller is ready once every cache in `caches` has listed.
pub(super) async fn ready_once(ready: Readiness, caches: Vec<BoxFuture<'static, ()>>) {
    futures::future::join_all(caches).await;
    ready.set(true);
    tracing::info!("caches synced; ready");
}
