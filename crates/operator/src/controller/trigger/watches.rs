//! One watch per kind that triggers watch: a change to any object of the
//! kind wakes the triggers that watch that kind in its namespace. The watches
//! follow the triggers (started for a kind a trigger names, stopped when
//! none does); nothing is cached, each trigger reads its resources when it
//! is woken.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::task::AbortOnDropHandle;

use super::reconcile::{TriggerContext, api_resource};
use crate::api::{Decoded, TestLayerTrigger};

/// How often the set of watched kinds is brought in line with the triggers.
const FOLLOW: Duration = Duration::from_secs(2);

/// Keeps one watch per watched kind until dropped; wakes triggers through
/// `wake`. A controller of every namespace watches each kind in all of
/// them; one of a single namespace (`namespace`) watches each kind in each
/// namespace its triggers name (e.g. `flux-system`), which its Role must
/// allow.
pub async fn follow(
    ctx: Arc<TriggerContext>,
    namespace: Option<String>,
    wake: UnboundedSender<ObjectRef<Decoded<TestLayerTrigger>>>,
) {
    type Key = (String, String, Option<String>);
    let mut running: HashMap<Key, AbortOnDropHandle<()>> = HashMap::new();
    loop {
        let mut wanted = HashMap::new();
        for t in ctx.triggers.state() {
            if let Some(t) = t.valid() {
                let w = &t.spec.watch;
                let scope = namespace
                    .as_ref()
                    .map(|own| w.namespace.clone().unwrap_or_else(|| own.clone()));
                wanted.insert((w.api_version.clone(), w.kind.clone(), scope), w.clone());
            }
        }
        running.retain(|key, task| {
            let keep = wanted.contains_key(key) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, w) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            // A kind the cluster does not serve: the trigger says so; try
            // again on the next round.
            let Ok(ar) = api_resource(&ctx, &w).await else {
                continue;
            };
            let api: Api<DynamicObject> = match &key.2 {
                Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &ar),
                None => Api::all_with(ctx.client.clone(), &ar),
            };
            tracing::info!(api_version = %key.0, kind = %key.1, namespace = ?key.2, "watching a kind for triggers");
            let (ctx, wake, key2) = (ctx.clone(), wake.clone(), key.clone());
            let task = AbortOnDropHandle::new(tokio::spawn(async move {
                let mut changes = watcher(api, watcher::Config::default())
                    .backoff(crate::controller::kit::cache::watch_backoff())
                    .touched_objects()
                    .boxed();
                while let Some(change) = changes.next().await {
                    let obj = match change {
                        Ok(o) => o,
                        Err(e) => {
                            tracing::debug!(error = %e, kind = %key2.1, "watch of a triggering kind");
                            continue;
                        }
                    };
                    let ns = obj.namespace();
                    for t in ctx.triggers.state() {
                        let Some(valid) = t.valid() else { continue };
                        let w = &valid.spec.watch;
                        if (w.api_version.as_str(), w.kind.as_str())
                            == (key2.0.as_str(), key2.1.as_str())
                            && w.namespace.clone().or_else(|| valid.namespace()) == ns
                        {
                            let _ = wake.unbounded_send(ObjectRef::from_obj(t.as_ref()));
                        }
                    }
                }
            }));
            running.insert(key, task);
        }
        tokio::time::sleep(FOLLOW).await;
    }
}
