//! A test kubelet: registers Nodes, binds pending Pods of one namespace to
//! them, and moves each Pod through Running to Succeeded or Failed as its
//! [`PodScript`] says. It acts only through the API server, as a kubelet
//! does, and finishes the deletion of Pods that are deleted while bound.

mod logs;
mod script;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

pub use script::{PodEnd, PodScript};

use logs::{LogServer, LogStore};

use crate::TestkitError;

/// Decides the script of each Pod.
pub type ScriptFn = Arc<dyn Fn(&Pod) -> PodScript + Send + Sync>;

/// Something the kubelet did, for tests to assert on.
#[derive(Debug, Clone, PartialEq)]
pub enum KubeletEventKind {
    /// Bound to a node.
    Bound,
    /// Container running.
    Running,
    /// Container ended (exit code).
    Terminated(i32),
    /// Pod evicted.
    Evicted,
    /// Deletion of a bound Pod finished.
    Deleted,
}

/// One recorded action.
#[derive(Debug, Clone)]
pub struct KubeletEvent {
    /// Pod name.
    pub pod: String,
    /// What happened.
    pub kind: KubeletEventKind,
    /// When.
    pub at: Instant,
}

type Log = Arc<Mutex<Vec<KubeletEvent>>>;

/// A running test kubelet. Dropping it stops it (Pods it was running stay as
/// they are).
pub struct TestKubelet {
    task: JoinHandle<()>,
    _logs: LogServer,
    log: Log,
    nodes: Vec<String>,
}

impl TestKubelet {
    /// Registers `nodes` Nodes named `<namespace>-node-<i>` and starts
    /// playing them for Pods in `namespace`, scripted by [`PodScript::from_pod`].
    pub async fn start(
        client: Client,
        namespace: &str,
        nodes: usize,
    ) -> Result<Self, TestkitError> {
        Self::start_with(client, namespace, nodes, Arc::new(PodScript::from_pod)).await
    }

    /// Like [`TestKubelet::start`] with a script of the test's own.
    pub async fn start_with(
        client: Client,
        namespace: &str,
        nodes: usize,
        script: ScriptFn,
    ) -> Result<Self, TestkitError> {
        let names: Vec<String> = (0..nodes.max(1))
            .map(|i| format!("{namespace}-node-{i}"))
            .collect();
        let store: LogStore = Arc::default();
        let server = LogServer::start(store.clone()).await?;
        for n in &names {
            register_node(&client, n, server.port).await?;
        }
        let log: Log = Arc::default();
        let task = tokio::spawn(run(
            client,
            namespace.to_string(),
            names.clone(),
            script,
            log.clone(),
            store,
        ));
        Ok(Self {
            task,
            _logs: server,
            log,
            nodes: names,
        })
    }

    /// Names of the Nodes it plays.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Everything it did so far, in order.
    pub fn events(&self) -> Vec<KubeletEvent> {
        self.log.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

impl Drop for TestKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn register_node(client: &Client, name: &str, port: u16) -> Result<(), TestkitError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "testlayer.dev/test-node": "true"}},
    }))
    .map_err(|e| TestkitError::Kubeconfig { path: Default::default(), problem: e.to_string() })?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => {
            return Err(TestkitError::Kube {
                what: format!("registering node {name}"),
                source: e,
            });
        }
    }
    let now = now();
    let capacity = json!({"cpu": "64", "memory": "256Gi", "pods": "1000"});
    let status = json!({"status": {
        "capacity": capacity, "allocatable": capacity,
        // The apiserver reaches the log endpoint here (pods/log).
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test kubelet is ready",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "nodeInfo": {"kubeletVersion": "v1.34.4-test", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
                     "containerRuntimeVersion": "test://1", "kernelVersion": "", "osImage": "test", "machineID": "", "systemUUID": "", "bootID": ""},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(TestkitError::kube(format!(
            "setting the status of node {name}"
        )))?;
    Ok(())
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn record(log: &Log, pod: &str, kind: KubeletEventKind) {
    if let Ok(mut g) = log.lock() {
        g.push(KubeletEvent {
            pod: pod.to_string(),
            kind,
            at: Instant::now(),
        });
    }
}

async fn run(
    client: Client,
    namespace: String,
    nodes: Vec<String>,
    script: ScriptFn,
    log: Log,
    store: LogStore,
) {
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut deleting: HashMap<String, ()> = HashMap::new();
    let mut next = 0usize;
    let mut stream = watcher(pods.clone(), watcher::Config::default()).boxed();
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "test kubelet watch error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(uid) = pod.metadata.uid.clone() else {
            continue;
        };
        let name = pod.name_any();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            if let Some(h) = running.remove(&uid) {
                h.abort();
            }
            let bound = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some();
            if bound && deleting.insert(uid.clone(), ()).is_none() {
                let pods = pods.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let dp = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: Some(Preconditions {
                            uid: Some(uid),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    match pods.delete(&name, &dp).await {
                        Ok(_) => record(&log, &name, KubeletEventKind::Deleted),
                        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                        Err(e) => {
                            tracing::warn!(pod = %name, error = %e, "test kubelet could not finish a deletion")
                        }
                    }
                });
            }
            continue;
        }
        if phase == "Succeeded" || phase == "Failed" || running.contains_key(&uid) {
            continue;
        }
        let node = match pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            Some(n) if nodes.contains(&n) => Some(n),
            Some(_) => continue, // another kubelet's Pod
            None => None,
        };
        let node = node.unwrap_or_else(|| {
            next += 1;
            nodes[next % nodes.len()].clone()
        });
        let ip = format!(
            "10.244.{}.{}",
            (running.len() / 250) % 250,
            running.len() % 250 + 2
        );
        let s = script(&pod);
        running.insert(
            uid,
            tokio::spawn(drive(
                pods.clone(),
                pod,
                node,
                ip,
                s,
                log.clone(),
                store.clone(),
            )),
        );
        running.retain(|_, h| !h.is_finished());
    }
}

async fn drive(
    pods: Api<Pod>,
    pod: Pod,
    node: String,
    ip: String,
    script: PodScript,
    log: Log,
    store: LogStore,
) {
    let name = pod.name_any();
    if let Err(e) = drive_inner(&pods, &pod, &node, &ip, script, &log, &store).await {
        match &e {
            kube::Error::Api(a) if a.code == 404 || a.code == 409 || a.code == 422 => {
                tracing::debug!(pod = %name, error = %e, "test kubelet: pod went away")
            }
            _ => tracing::warn!(pod = %name, error = %e, "test kubelet could not drive a pod"),
        }
    }
}

async fn drive_inner(
    pods: &Api<Pod>,
    pod: &Pod,
    node: &str,
    ip: &str,
    script: PodScript,
    log: &Log,
    store: &LogStore,
) -> Result<(), kube::Error> {
    let name = pod.name_any();
    let containers: Vec<(String, String)> = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_none()
    {
        let binding = Binding {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some(node.to_string()),
                api_version: Some("v1".into()),
                ..Default::default()
            },
        };
        let _: serde_json::Value = pods
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await?;
        record(log, &name, KubeletEventKind::Bound);
    }
    tokio::time::sleep(script.start_delay).await;
    let started = now();
    let host_ip = format!(
        "10.1.0.{}",
        node.rsplit('-')
            .next()
            .and_then(|i| i.parse::<u32>().ok())
            .unwrap_or(0)
            % 250
            + 1
    );
    let condition = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now()});

    if script.end == PodEnd::ImagePullError {
        let statuses: Vec<_> = containers
            .iter()
            .map(|(c, image)| json!({"name": c, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
                "state": {"waiting": {"reason": "ErrImagePull", "message": format!("failed to pull image {image:?}: not found")}}}))
            .collect();
        set_status(pods, &name, json!({"phase": "Pending", "hostIP": host_ip, "startTime": started,
            "conditions": [condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", false), condition("Ready", false)],
            "containerStatuses": statuses}))
        .await?;
        return Ok(());
    }

    let running: Vec<_> = containers
        .iter()
        .map(|(c, image)| json!({"name": c, "image": image, "imageID": format!("test://{image}"), "containerID": format!("test://{}-{c}", pod.metadata.uid.clone().unwrap_or_default()),
            "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": started}}}))
        .collect();
    set_status(pods, &name, json!({"phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}], "startTime": started,
        "conditions": [condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", true), condition("Ready", true)],
        "containerStatuses": running}))
    .await?;
    record(log, &name, KubeletEventKind::Running);
    if let (Ok(mut g), Some(ns)) = (store.lock(), pod.metadata.namespace.clone()) {
        for (i, (c, _)) in containers.iter().enumerate() {
            g.insert(
                (ns.clone(), name.clone(), c.clone()),
                if i == 0 {
                    script.logs.clone()
                } else {
                    Vec::new()
                },
            );
        }
    }

    if script.end == PodEnd::RunForever {
        futures::future::pending::<()>().await;
    }
    tokio::time::sleep(script.run_for).await;

    let (code, reason) = match script.end {
        PodEnd::Exit(0) => (0, "Completed"),
        PodEnd::Exit(c) => (c, "Error"),
        PodEnd::OomKilled => (137, "OOMKilled"),
        _ => (137, "ContainerStatusUnknown"),
    };
    let fallback = (code != 0)
        .then(|| {
            let policy = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.termination_message_policy.clone());
            (policy.as_deref() == Some("FallbackToLogsOnError")).then(|| {
                let lines = &script.logs[script.logs.len().saturating_sub(80)..];
                let text = lines.join("\n");
                let cut = text.len().saturating_sub(2048);
                text[text
                    .char_indices()
                    .map(|(i, _)| i)
                    .find(|&i| i >= cut)
                    .unwrap_or(text.len())..]
                    .to_string()
            })
        })
        .flatten();
    let message = script.message.clone().or(fallback);
    let finished = now();
    let terminated: Vec<_> = containers
        .iter()
        .enumerate()
        .map(|(i, (c, image))| {
            let mut t = json!({"exitCode": if i == 0 { code } else { 0 }, "reason": if i == 0 { reason } else { "Completed" },
                "startedAt": started, "finishedAt": finished,
                "containerID": format!("test://{}-{c}", pod.metadata.uid.clone().unwrap_or_default())});
            if i == 0
                && let Some(m) = &message
            {
                t["message"] = json!(m);
            }
            json!({"name": c, "image": image, "imageID": format!("test://{image}"), "ready": false, "restartCount": 0, "started": false,
                "state": {"terminated": t}})
        })
        .collect();
    let mut status = json!({
        "phase": if code == 0 && script.end != PodEnd::Evicted { "Succeeded" } else { "Failed" },
        "conditions": [condition("PodScheduled", true), condition("Initialized", true), condition("ContainersReady", false), condition("Ready", false)],
        "containerStatuses": terminated,
    });
    if script.end == PodEnd::Evicted {
        status["reason"] = json!("Evicted");
        status["message"] = json!(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi."
        );
        if let Some(c) = status["conditions"].as_array_mut() {
            c.push(json!({"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "lastTransitionTime": now()}));
        }
    }
    set_status(pods, &name, status).await?;
    record(
        log,
        &name,
        if script.end == PodEnd::Evicted {
            KubeletEventKind::Evicted
        } else {
            KubeletEventKind::Terminated(code)
        },
    );
    Ok(())
}

async fn set_status(
    pods: &Api<Pod>,
    name: &str,
    status: serde_json::Value,
) -> Result<(), kube::Error> {
    let patch = json!({ "status": status });
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}
