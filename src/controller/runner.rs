//! `testlayer controller`: watches, caches and the reconcile loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::controller::{self, Action as Requeue, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::build::{LABEL_MANAGED_BY, LABEL_RUN, MANAGER};
use super::context::{Context, ControllerError};
use super::metrics::{ErrorLabels, Metrics};
use super::reconcile::reconcile;
use super::server::{Readiness, serve};
use crate::api::{CategoryRun, TestLayerRun};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: SocketAddr,
    /// Watch one namespace only (default: all).
    pub namespace: Option<String>,
    /// Runs reconciled at once.
    pub concurrency: u16,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The health endpoint could not be served.
    #[error("cannot serve {addr}: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

fn error_policy(_run: Arc<TestLayerRun>, err: &ControllerError, ctx: Arc<Context>) -> Requeue {
    ctx.metrics
        .errors
        .get_or_create(&ErrorLabels {
            error: err.metric_label().into(),
        })
        .inc();
    tracing::warn!(error = %err, "reconcile failed");
    match err.metric_label() {
        "conflict" => Requeue::requeue(Duration::from_millis(200)),
        _ => Requeue::requeue(Duration::from_secs(2)),
    }
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
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

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(client: Client, opts: ControllerOptions) -> Result<(), RunError> {
    let ns = opts.namespace.as_deref();
    let metrics = Arc::new(Metrics::default());
    let ready = Readiness::default();
    let (addr, _server) = serve(opts.listen, metrics.clone(), ready.clone())
        .await
        .map_err(|source| RunError::Serve {
            addr: opts.listen,
            source,
        })?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");

    let wc = watcher::Config::default();
    let (cr_reader, cr_writer) = reflector::store();
    let cr_stream = reflector::reflector(
        cr_writer,
        watcher(api::<CategoryRun>(&client, ns), wc.clone()),
    )
    .default_backoff()
    .touched_objects();
    let (pod_reader, pod_writer) = reflector::store();
    let pod_wc = wc.clone().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let pod_stream = reflector::reflector(pod_writer, watcher(api::<Pod>(&client, ns), pod_wc))
        .default_backoff()
        .touched_objects();

    let controller = Controller::new(api::<TestLayerRun>(&client, ns), wc);
    let runs = controller.store();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "testlayer-controller".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let ctx = Arc::new(Context {
        client,
        runs: runs.clone(),
        category_runs: cr_reader.clone(),
        pods: pod_reader.clone(),
        recorder,
        metrics,
    });

    let readiness = {
        let (runs, crs, pods) = (runs.clone(), cr_reader.clone(), pod_reader.clone());
        tokio::spawn(async move {
            let _ = runs.wait_until_ready().await;
            let _ = crs.wait_until_ready().await;
            let _ = pods.wait_until_ready().await;
            ready.set(true);
            tracing::info!("caches synced; ready");
        })
    };

    controller
        .owns_stream(cr_stream)
        .watches_stream(pod_stream, |pod: Pod| {
            let run = pod.labels().get(LABEL_RUN).cloned();
            let ns = pod.namespace();
            run.zip(ns)
                .map(|(run, ns)| ObjectRef::<TestLayerRun>::new(&run).within(&ns))
        })
        .with_config(controller::Config::default().concurrency(opts.concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
    readiness.abort();
    tracing::info!("controller stopped");
    Ok(())
}
