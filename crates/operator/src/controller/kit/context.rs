//! What every reconcile shares: the client, caches of the objects the
//! controller watches, the event recorder and the metrics.

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};

use crate::api::names::LABEL_RUN;
use crate::api::{CategoryRun, Decoded, TestLayerResource, TestLayerRun};
use crate::controller::kit::by_run::ByRun;
use crate::controller::kit::metrics::Metrics;
use crate::controller::kit::own_writes::OwnWrites;
use crate::controller::kit::refused::RefusedCreates;

/// Field manager of every write (server-side apply and patches).
pub const FIELD_MANAGER: &str = "testlayer-controller";

/// Shared state of the reconcilers.
#[derive(Clone)]
pub struct Context {
    /// API client.
    pub client: Client,
    /// Every TestLayerRun (for layer dependencies), valid or not.
    pub runs: Store<Decoded<TestLayerRun>>,
    /// Every CategoryRun, valid or not.
    pub category_runs: Store<Decoded<CategoryRun>>,
    /// Every Pod the controller manages.
    pub pods: Store<Pod>,
    /// Every Node, trimmed to its readiness (empty when Nodes may not be
    /// read).
    pub nodes: Store<Node>,
    /// Every TestLayerResource (shared resources and their capacities).
    pub resources: Store<Decoded<TestLayerResource>>,
    /// Every grant of a shared resource (Leases labelled with a resource).
    pub grants: Store<Lease>,
    /// Where the TestLayerResources of every namespace's runs are, when one
    /// line serves them all (else each namespace has its own).
    pub resources_namespace: Option<String>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// This controller's recent writes, newer than the caches may be.
    pub own: Arc<Own>,
    /// The names of each run's CategoryRuns and Pods in the caches.
    pub by_run: RunIndexes,
}

/// The names of each run's objects in the caches, kept from their watches.
#[derive(Clone)]
pub struct RunIndexes {
    /// CategoryRuns, by the TestLayerRun that owns them.
    pub category_runs: ByRun<Decoded<CategoryRun>>,
    /// Pods, by their run label.
    pub pods: ByRun<Pod>,
}

impl Default for RunIndexes {
    fn default() -> Self {
        RunIndexes {
            category_runs: ByRun::new(|cr: &Decoded<CategoryRun>| {
                let owner = cr
                    .owner_references()
                    .iter()
                    .find(|o| o.kind == TestLayerRun::kind(&()))?;
                Some((cr.namespace()?, owner.name.clone()))
            }),
            pods: ByRun::new(|p: &Pod| Some((p.namespace()?, p.labels().get(LABEL_RUN)?.clone()))),
        }
    }
}

/// This controller's recent writes, by kind.
#[derive(Default)]
pub struct Own {
    /// TestLayerRun statuses.
    pub runs: OwnWrites<TestLayerRun>,
    /// CategoryRuns created and their statuses.
    pub category_runs: OwnWrites<CategoryRun>,
    /// Pods created and deleted.
    pub pods: OwnWrites<Pod>,
    /// Grants of shared resources created.
    pub grants: OwnWrites<Lease>,
    /// Pod creates the apiserver refused.
    pub refused: RefusedCreates,
}
