//! `testlayer controller`: the watches, caches and reconcilers, wired
//! together and run until SIGTERM or Ctrl-C.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{self, Action as Requeue};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::background::{Background, listed, ready_once};
use super::caches::{WATCH_SECONDS, api, cached, controller_of, nodes, pods};
use super::launchers::{schedules, triggers};
use super::leadership::lead;
use super::options::{ControllerOptions, RunError};
use super::waiting::{Waiting, wakes};
use crate::api::names::LABEL_RESOURCE;
use crate::api::names::LABEL_RUN;
use crate::api::{CategoryRun, Decoded, TestLayerResource, TestLayerRun};
use crate::controller::kit::context::{Context, RunIndexes};
use crate::controller::kit::error::ControllerError;
use crate::controller::kit::error::requeue_after;
use crate::controller::kit::metrics::Metrics;
use crate::controller::kit::server::{Readiness, serve};
use crate::controller::run::reconcile::reconcile;

fn error_policy(
    _run: Arc<Decoded<TestLayerRun>>,
    err: &ControllerError,
    ctx: Arc<Context>,
) -> Requeue {
    requeue_after(&ctx.metrics, err, "run")
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(client: Client, opts: ControllerOptions) -> Result<(), RunError> {
    let ns = opts.namespace.as_deref();
    if let (Some(watched), Some(resources)) = (ns, opts.resources_namespace.as_deref())
        && watched != resources
    {
        return Err(RunError::ResourcesNamespace {
            resources: resources.to_string(),
            watched: watched.to_string(),
        });
    }
    let metrics = Arc::new(Metrics::default());
    let ready = Readiness::default();
    let (addr, _server) = serve(opts.listen, metrics.clone(), ready.clone())
        .await
        .map_err(|source| RunError::Serve {
            addr: opts.listen,
            source,
        })?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");

    // A standby replica is ready: readiness says it serves and can take
    // over, not that it leads (else a rolling update of two replicas would
    // wait for a leadership the old Pod holds).
    if opts.leader_election.is_some() {
        ready.set(true);
    }

    // With leader election, wait for the Lease before watching anything.
    let mut leadership = match &opts.leader_election {
        Some(le) => Some(lead(&client, le, &opts.identity).await?),
        None => None,
    };
    metrics.leader.set(1);

    // A watch is renewed every 30 s: one that an apiserver leaves silent
    // (seen after an etcd restart) costs at most that.
    let wc = watcher::Config::default().timeout(WATCH_SECONDS);
    let by_run = RunIndexes::default();
    let (cr_reader, cr_stream) = cached(
        api::<Decoded<CategoryRun>>(&client, ns),
        wc.clone(),
        Some(by_run.category_runs.clone()),
    );
    let (pod_reader, pod_stream) = pods(&client, ns, &wc, by_run.pods.clone());
    let (node_reader, node_stream) = nodes(&client, &wc);

    // Shared resources: their declarations, and the grants of their units
    // (all in one namespace when it serves every namespace's runs).
    let res_ns = opts.resources_namespace.as_deref().or(ns);
    let (res_reader, res_stream) = cached(
        api::<Decoded<TestLayerResource>>(&client, res_ns),
        wc.clone(),
        None,
    );
    let (grant_reader, grant_stream) = cached(
        api::<Lease>(&client, res_ns),
        wc.clone().labels(LABEL_RESOURCE),
        None,
    );

    // Runs and CategoryRuns are watched as stored, valid or not: one object
    // that does not decode must not stop the watch of all the others.
    let controller = controller_of(api::<Decoded<TestLayerRun>>(&client, ns), wc.clone());
    let runs = controller.store();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "testlayer-controller".into(),
            instance: Some(opts.identity.clone()),
        },
    );
    let (sched_runs, schedules) = schedules(&client, ns, &wc, &recorder, &metrics);
    let (trig_runs, watches, triggers) = triggers(&client, ns, &wc, &recorder, &metrics);

    let ctx = Arc::new(Context {
        client,
        runs: runs.clone(),
        category_runs: cr_reader.clone(),
        pods: pod_reader.clone(),
        nodes: node_reader,
        resources: res_reader.clone(),
        grants: grant_reader.clone(),
        resources_namespace: opts.resources_namespace.clone(),
        recorder,
        metrics,
        own: Default::default(),
        by_run,
    });

    // Every task of this controller ends with this function, returned or
    // dropped (a controller stopped by abort leaves nothing running).
    let mut background = Background::start(&ctx);
    background.spawn(ready_once(
        ready,
        vec![
            listed(&runs),
            listed(&sched_runs),
            listed(&trig_runs),
            listed(&cr_reader),
            listed(&pod_reader),
            listed(&res_reader),
            listed(&grant_reader),
        ],
    ));
    background.hold(watches);

    let waiting = Waiting { ctx: ctx.clone() };
    let (wake, woken) = futures::channel::mpsc::unbounded::<ObjectRef<Decoded<TestLayerRun>>>();
    let (grant_wakes, resource_wakes) = wakes(waiting, grant_stream, res_stream, wake.clone());
    background.hold(grant_wakes);
    background.hold(resource_wakes);
    background.spawn(crate::controller::run::node_health::wake_runs(
        node_stream,
        pod_reader.clone(),
        wake.clone(),
    ));
    let controller = controller
        .owns_stream(cr_stream)
        .watches_stream(pod_stream, |pod: Pod| {
            let run = pod.labels().get(LABEL_RUN).cloned();
            let ns = pod.namespace();
            run.zip(ns)
                .map(|(run, ns)| ObjectRef::<Decoded<TestLayerRun>>::new(&run).within(&ns))
        })
        .reconcile_on(woken)
        .with_config(controller::Config::default().concurrency(opts.concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile error");
            }
        });
    let controller = futures::future::join3(controller, schedules, triggers);
    let result = match leadership.as_mut() {
        Some(l) => tokio::select! {
            _ = controller => Ok(()),
            e = l.lost() => Err(e),
        },
        None => {
            controller.await;
            Ok(())
        }
    };
    // Nothing of this controller runs once it gives up its lease.
    drop(background);
    ctx.metrics.leader.set(0);
    if let Some(l) = leadership {
        l.release().await;
    }
    tracing::info!("controller stopped");
    result
}
