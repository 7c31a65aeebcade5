//! `testlayer controller`: watches, caches and the reconcile loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::controller::{self, Action as Requeue, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;

use crate::api::names::{LABEL_HOLDER_NAMESPACE, LABEL_RESOURCE};
use crate::api::names::{LABEL_MANAGED_BY, LABEL_RUN, MANAGER};
use crate::api::names::{LABEL_SCHEDULE, LABEL_TRIGGER};
use crate::api::{
    CategoryRun, Decoded, TestLayerResource, TestLayerRun, TestLayerSchedule, TestLayerTrigger,
};
use crate::controller::kit::cache::synced;
use crate::controller::kit::cache::trim_pod;
use crate::controller::kit::cache::watch_backoff;
use crate::controller::kit::context::{Context, FIELD_MANAGER};
use crate::controller::kit::error::ControllerError;
use crate::controller::kit::error::requeue_after;
use crate::controller::kit::metrics::Metrics;
use crate::controller::kit::server::{Readiness, serve};
use crate::controller::run::reconcile::reconcile;
use crate::controller::schedule::reconcile::{
    ScheduleContext, error_policy as schedule_error_policy, reconcile as reconcile_schedule,
};
use crate::controller::trigger::reconcile::{
    TriggerContext, error_policy as trigger_error_policy, reconcile as reconcile_trigger,
};
use crate::controller::trigger::watches::follow as follow_watched;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: SocketAddr,
    /// Watch one namespace only (default: all).
    pub namespace: Option<String>,
    /// Runs reconciled at once.
    pub concurrency: u16,
    /// This replica's name (events name it as their reporting instance).
    pub identity: String,
    /// Act only while holding this Lease (for more than one replica).
    pub leader_election: Option<LeaderElection>,
    /// Serve the shared resources of every namespace's runs from the
    /// TestLayerResources (and grants) of this namespace, in one line; by
    /// default each namespace has its own.
    pub resources_namespace: Option<String>,
}

/// Leader election through a `coordination.k8s.io` Lease.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// Seconds a leader holds the Lease without renewing it.
    pub lease_seconds: u64,
    /// Seconds before expiry at which the leader renews.
    pub grace_seconds: u64,
}

/// Seconds a watch lasts before it is renewed.
const WATCH_SECONDS: u32 = 30;

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The Lease could not be used.
    #[error("leader election through Lease {namespace}/{name}: {source}")]
    Lease {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        source: kube_lease_manager::LeaseManagerError,
    },
    /// Another replica took the Lease over.
    #[error("lost the leadership (Lease {0}); stopping so that only the leader acts")]
    LostLeadership(String),
    /// One line across namespaces needs a controller of every namespace.
    #[error(
        "--resources-namespace {resources} serves the runs of every namespace in one line, but this controller watches only namespace {watched}; drop --namespace, or use --resources-namespace {watched}"
    )]
    ResourcesNamespace {
        /// The namespace of the resources.
        resources: String,
        /// The one namespace watched.
        watched: String,
    },
    /// The health endpoint could not be served.
    #[error("cannot serve {addr}: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

fn error_policy(
    _run: Arc<Decoded<TestLayerRun>>,
    err: &ControllerError,
    ctx: Arc<Context>,
) -> Requeue {
    requeue_after(&ctx.metrics, err, "run")
}

/// A cache of the objects `api` lists under `wc` (without their
/// managedFields: large, and never read) and the stream of the watch
/// events that keeps it, backing off as [`watch_backoff`] says (the default
/// lets it wait up to a minute after a burst of errors, as an apiserver or
/// etcd restart makes).
fn reflected<K>(
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
fn cached<K>(
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
fn controller_of<K>(api: Api<K>, wc: watcher::Config) -> Controller<K>
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

/// The runs whose claims wait for shared resources, to wake when a grant
/// or a TestLayerResource changes.
#[derive(Clone)]
struct Waiting {
    category_runs: reflector::Store<Decoded<CategoryRun>>,
    runs: reflector::Store<Decoded<TestLayerRun>>,
    /// One line for every namespace: a change in `ns` wakes runs of all.
    across: bool,
}

impl Waiting {
    /// The runs served by the line of `ns` with a claim on `resource` (on
    /// any, when `None`).
    fn runs(&self, ns: &str, resource: Option<&str>) -> Vec<ObjectRef<Decoded<TestLayerRun>>> {
        let wants = |c: &crate::api::ResourceClaim| {
            resource.is_none_or(|r| c.wants.iter().any(|w| w.resource == r))
        };
        let served = |of: Option<String>| self.across || of.as_deref() == Some(ns);
        let mut names = std::collections::BTreeSet::new();
        for cr in self.category_runs.state() {
            if let Some(cr) = cr.valid()
                && served(cr.namespace())
                && cr
                    .status
                    .as_ref()
                    .and_then(|s| s.resource_claim.as_ref())
                    .is_some_and(wants)
            {
                names.insert((cr.namespace().unwrap_or_default(), cr.spec.run_name.clone()));
            }
        }
        for r in self.runs.state() {
            if let Some(r) = r.valid()
                && served(r.namespace())
                && r.status
                    .as_ref()
                    .and_then(|s| s.resource_claim.as_ref())
                    .is_some_and(wants)
            {
                names.insert((r.namespace().unwrap_or_default(), r.name_any()));
            }
        }
        names
            .into_iter()
            .map(|(ns, n)| ObjectRef::new(&n).within(&ns))
            .collect()
    }
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
        Some(le) => {
            let lease_err = |source| RunError::Lease {
                namespace: le.namespace.clone(),
                name: le.lease_name.clone(),
                source,
            };
            // The apiserver may not answer yet (a control plane that
            // restarts): try again rather than exit.
            let manager = loop {
                let built = LeaseManagerBuilder::new(client.clone(), &le.lease_name)
                    .with_namespace(&le.namespace)
                    .with_identity(&opts.identity)
                    .with_duration(le.lease_seconds)
                    .with_grace(le.grace_seconds)
                    .with_field_manager(format!("{FIELD_MANAGER}-lease"))
                    .build()
                    .await;
                match built {
                    Ok(m) => break m,
                    Err(e) => {
                        tracing::warn!(error = %lease_err(e), "cannot use the Lease yet; trying again");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            };
            let (mut channel, task) = manager.watch().await;
            tracing::info!(lease = %le.lease_name, identity = %opts.identity, "waiting for the leadership");
            while !*channel.borrow_and_update() {
                if channel.changed().await.is_err() {
                    let err = match task.await {
                        Ok(Err(e)) => lease_err(e),
                        _ => RunError::LostLeadership(le.lease_name.clone()),
                    };
                    return Err(err);
                }
            }
            tracing::info!(lease = %le.lease_name, identity = %opts.identity, "leading");
            Some((channel, task, le.lease_name.clone()))
        }
        None => None,
    };

    // A watch is renewed every 30 s: one that an apiserver leaves silent
    // (seen after an etcd restart) costs at most that.
    let wc = watcher::Config::default().timeout(WATCH_SECONDS);
    let (cr_reader, cr_stream) = cached(api::<Decoded<CategoryRun>>(&client, ns), wc.clone());
    let (pod_reader, pod_writer) = reflector::store();
    let pod_wc = wc.clone().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let pod_stream = reflector::reflector(
        pod_writer,
        watcher(api::<Pod>(&client, ns), pod_wc).modify(trim_pod),
    )
    .backoff(watch_backoff())
    .touched_objects();

    // Nodes, for attempts whose node stopped answering (cluster-wide; an
    // empty cache when they may not be read).
    let (node_reader, node_writer) = reflector::store();
    let node_stream = reflector::reflector(
        node_writer,
        watcher(Api::<Node>::all(client.clone()), wc.clone())
            .modify(crate::controller::run::node_health::trim_node),
    )
    .backoff(watch_backoff())
    .touched_objects();

    // Shared resources: their declarations, and the grants of their units
    // (all in one namespace when it serves every namespace's runs).
    let res_ns = opts.resources_namespace.as_deref().or(ns);
    let (res_reader, res_stream) = cached(
        api::<Decoded<TestLayerResource>>(&client, res_ns),
        wc.clone(),
    );
    let (grant_reader, grant_stream) = cached(
        api::<Lease>(&client, res_ns),
        wc.clone().labels(LABEL_RESOURCE),
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
    // Schedules, with the runs they created (a second, narrow watch of
    // runs: only those labelled by a schedule).
    let (sched_runs, sched_runs_stream) = cached(
        api::<Decoded<TestLayerRun>>(&client, ns),
        wc.clone().labels(LABEL_SCHEDULE),
    );
    let schedule_ctx = Arc::new(ScheduleContext {
        client: client.clone(),
        runs: sched_runs.clone(),
        recorder: recorder.clone(),
        metrics: metrics.clone(),
    });
    let schedules = controller_of(api::<Decoded<TestLayerSchedule>>(&client, ns), wc.clone())
        .owns_stream(sched_runs_stream)
        .shutdown_on_signal()
        .run(reconcile_schedule, schedule_error_policy, schedule_ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "schedule reconcile error");
            }
        });

    // Triggers, with the runs they created, woken also by the watches of
    // the kinds they watch.
    let (trig_runs, trig_runs_stream) = cached(
        api::<Decoded<TestLayerRun>>(&client, ns),
        wc.clone().labels(LABEL_TRIGGER),
    );
    let (wake, woken) = futures::channel::mpsc::unbounded();
    let trigger_controller =
        controller_of(api::<Decoded<TestLayerTrigger>>(&client, ns), wc.clone())
            .owns_stream(trig_runs_stream)
            .reconcile_on(woken);
    let trigger_ctx = Arc::new(TriggerContext {
        client: client.clone(),
        runs: trig_runs.clone(),
        triggers: trigger_controller.store(),
        recorder: recorder.clone(),
        metrics: metrics.clone(),
        kinds: Default::default(),
    });
    let watches = tokio::spawn(follow_watched(
        trigger_ctx.clone(),
        opts.namespace.clone(),
        wake,
    ));
    let triggers = trigger_controller
        .shutdown_on_signal()
        .run(reconcile_trigger, trigger_error_policy, trigger_ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "trigger reconcile error");
            }
        });

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
    });

    // The gauge of CategoryRuns by phase: a pass over the whole cache once
    // a second, not one per reconcile.
    let gauge = {
        let (crs, metrics) = (cr_reader.clone(), ctx.metrics.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let all = crs.state();
                metrics.set_categories(all.iter().filter_map(|c| {
                    c.valid().map(|c| {
                        c.status
                            .as_ref()
                            .and_then(|s| s.phase)
                            .unwrap_or(crate::plan::Phase::Pending)
                            .as_str()
                    })
                }));
                let (mut categories, mut tests) = (0i64, 0i64);
                for s in all.iter().filter_map(|c| c.valid()?.status.as_ref()) {
                    categories += i64::from(s.flaky);
                    tests = tests
                        .saturating_add(i64::try_from(s.flaky_tests.total()).unwrap_or(i64::MAX));
                }
                metrics.flaky_categories.set(categories);
                metrics.flaky_tests.set(tests);
            }
        })
    };
    let sweeper = tokio::spawn(crate::controller::shared::sweep::sweep(ctx.clone()));
    let pod_sweeper = tokio::spawn(crate::controller::run::pod_sweep::sweep(ctx.clone()));
    let resource_statuses = tokio::spawn(crate::controller::shared::status::keep(ctx.clone()));
    let readiness = {
        let (runs, crs, pods) = (runs.clone(), cr_reader.clone(), pod_reader.clone());
        tokio::spawn(async move {
            synced(&runs).await;
            synced(&sched_runs).await;
            synced(&trig_runs).await;
            synced(&crs).await;
            synced(&pods).await;
            synced(&res_reader).await;
            synced(&grant_reader).await;
            ready.set(true);
            tracing::info!("caches synced; ready");
        })
    };

    let waiting = Waiting {
        category_runs: cr_reader.clone(),
        runs: runs.clone(),
        across: opts.resources_namespace.is_some(),
    };
    // Grants and TestLayerResources wake the runs that wait for them
    // through a channel, from tasks of their own, rather than as streams
    // of the run controller: so joined, they were seen to leave the
    // controller blind to Pod changes for a minute after an etcd restart.
    let (wake, woken) = futures::channel::mpsc::unbounded::<ObjectRef<Decoded<TestLayerRun>>>();
    let grant_wakes = tokio::spawn({
        let (waiting, wake) = (waiting.clone(), wake.clone());
        grant_stream.for_each(move |grant| {
            if let Ok(grant) = grant {
                // Its holder's run, and every run whose claims wait for a
                // unit of the resource.
                let ns = grant.namespace().unwrap_or_default();
                let labels = grant.labels();
                let holder_ns = labels.get(LABEL_HOLDER_NAMESPACE).unwrap_or(&ns);
                let own = labels
                    .get(LABEL_RUN)
                    .map(|r| ObjectRef::<Decoded<TestLayerRun>>::new(r).within(holder_ns));
                let resource = labels.get(LABEL_RESOURCE).cloned().unwrap_or_default();
                for r in own.into_iter().chain(waiting.runs(&ns, Some(&resource))) {
                    let _ = wake.unbounded_send(r);
                }
            }
            futures::future::ready(())
        })
    });
    let node_wakes = tokio::spawn(crate::controller::run::node_health::wake_runs(
        node_stream,
        pod_reader.clone(),
        wake.clone(),
    ));
    let resource_wakes = tokio::spawn(res_stream.for_each(move |r| {
        if let Ok(r) = r {
            let ns = r.namespace().unwrap_or_default();
            for run in waiting.runs(&ns, None) {
                let _ = wake.unbounded_send(run);
            }
        }
        futures::future::ready(())
    }));
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
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile error");
            }
        });
    let controller = futures::future::join3(controller, schedules, triggers);
    let result = match leadership.as_mut() {
        Some((channel, _, lease)) => {
            let lost = async {
                loop {
                    if channel.changed().await.is_err() || !*channel.borrow_and_update() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = controller => Ok(()),
                _ = lost => Err(RunError::LostLeadership(lease.clone())),
            }
        }
        None => {
            controller.await;
            Ok(())
        }
    };
    readiness.abort();
    gauge.abort();
    sweeper.abort();
    pod_sweeper.abort();
    resource_statuses.abort();
    grant_wakes.abort();
    resource_wakes.abort();
    node_wakes.abort();
    watches.abort();
    if let Some((channel, task, _)) = leadership {
        // Closing the channel makes the manager release the Lease.
        drop(channel);
        let _ = task.await;
    }
    tracing::info!("controller stopped");
    result
}
