//! The test control plane and the test kubelet against each other: a real
//! apiserver with RBAC, garbage collection, conflicts, and Pods driven
//! through their lifecycle.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use testlayer_testkit::kubelet::KubeletEventKind;
use testlayer_testkit::{ControlPlane, TestKubelet};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn setup(prefix: &str) -> (&'static ControlPlane, Client, String) {
    let cp = ControlPlane::shared();
    let ns = cp.create_namespace(prefix).await.unwrap();
    (cp, cp.admin_client().await.unwrap(), ns)
}

#[tokio::test]
async fn rbac_is_enforced_for_service_accounts() {
    let (cp, admin, ns) = setup("rbac").await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    sas.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "reader"}})),
    )
    .await
    .unwrap();
    let reader = cp.service_account_client(&ns, "reader").await.unwrap();
    let pods: Api<Pod> = Api::namespaced(reader.clone(), &ns);
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("listing pods without a role must be forbidden, got {other:?}"),
    }
    let roles: Api<Role> = Api::namespaced(admin.clone(), &ns);
    roles
        .create(&PostParams::default(), &obj(json!({"metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]})))
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(admin, &ns);
    bindings
        .create(&PostParams::default(), &obj(json!({"metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]})))
        .await
        .unwrap();
    eventually(
        "the role binding to take effect",
        Duration::from_secs(10),
        || {
            let pods = pods.clone();
            async move { pods.list(&ListParams::default()).await.is_ok() }
        },
    )
    .await;
    // Still no write access.
    let cms: Api<ConfigMap> = Api::namespaced(reader, &ns);
    match cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "x"}})),
        )
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403),
        other => panic!("creating a config map must be forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_collector_deletes_owned_objects_and_stale_updates_conflict() {
    let (_cp, admin, ns) = setup("gc").await;
    let cms: Api<ConfigMap> = Api::namespaced(admin, &ns);
    let owner = cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "owner"}})),
        )
        .await
        .unwrap();
    let uid = owner.uid().unwrap();
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "owned", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "controller": true, "blockOwnerDeletion": true}]}})),
    )
    .await
    .unwrap();

    // A write with a stale resourceVersion is refused with 409.
    let mut stale = owner.clone();
    let mut fresh = owner.clone();
    fresh.data = Some([("a".to_string(), "1".to_string())].into());
    cms.replace("owner", &PostParams::default(), &fresh)
        .await
        .unwrap();
    stale.data = Some([("a".to_string(), "2".to_string())].into());
    match cms.replace("owner", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 409, "{e:?}"),
        other => panic!("a stale update must conflict, got {other:?}"),
    }

    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    eventually(
        "the garbage collector to delete the owned config map",
        Duration::from_secs(60),
        || {
            let cms = cms.clone();
            async move { cms.get_opt("owned").await.unwrap().is_none() }
        },
    )
    .await;
}

fn pod(name: &str, script: &str) -> Pod {
    obj(json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "test", "image": "busybox", "command": ["/bin/sh", "-c", script],
                 "terminationMessagePolicy": "FallbackToLogsOnError"}]}
    }))
}

fn terminated(p: &Pod) -> Option<(i32, String, Option<String>)> {
    let t = p
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .terminated
        .as_ref()?
        .clone();
    Some((t.exit_code, t.reason.unwrap_or_default(), t.message))
}

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn test_kubelet_drives_pods_through_their_lifecycle() {
    let (_cp, admin, ns) = setup("kubelet").await;
    let kubelet = TestKubelet::start(admin.clone(), &ns, 2).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(admin, &ns);
    let cases = [
        ("ok", "echo '2 passed in 0.1s'; sleep 0.3; exit 0"),
        (
            "fails",
            "echo 'assert 1 == 2'; echo '1 failed in 0.1s'; exit 3",
        ),
        ("oom", "sleep 0.2; oom"),
        ("evicted", "evict"),
        ("message", "message 'custom message'; exit 1"),
        ("forever", "sleep infinity"),
        ("imagepull", "imagepull"),
    ];
    let started = Instant::now();
    for (name, script) in cases {
        pods.create(&PostParams::default(), &pod(name, script))
            .await
            .unwrap();
    }
    eventually(
        "every scripted pod to reach its state",
        Duration::from_secs(30),
        || {
            let pods = pods.clone();
            async move {
                let all = pods.list(&ListParams::default()).await.unwrap().items;
                all.len() == 7
                    && all.iter().all(|p| match p.name_any().as_str() {
                        "forever" => phase(p) == "Running",
                        "imagepull" => {
                            phase(p) == "Pending"
                                && p.status
                                    .as_ref()
                                    .is_some_and(|s| s.container_statuses.is_some())
                        }
                        _ => phase(p) == "Succeeded" || phase(p) == "Failed",
                    })
            }
        },
    )
    .await;
    let get = |n: &'static str| {
        let pods = pods.clone();
        async move { pods.get(n).await.unwrap() }
    };
    let ok = get("ok").await;
    assert_eq!(phase(&ok), "Succeeded");
    assert_eq!(terminated(&ok), Some((0, "Completed".into(), None)));
    assert!(
        kubelet
            .nodes()
            .contains(ok.spec.as_ref().unwrap().node_name.as_ref().unwrap())
    );
    let fails = get("fails").await;
    assert_eq!(phase(&fails), "Failed");
    // FallbackToLogsOnError: the log tail becomes the termination message.
    assert_eq!(
        terminated(&fails),
        Some((
            3,
            "Error".into(),
            Some("assert 1 == 2\n1 failed in 0.1s".into())
        ))
    );
    assert_eq!(
        terminated(&get("oom").await).map(|t| (t.0, t.1)),
        Some((137, "OOMKilled".into()))
    );
    let evicted = get("evicted").await;
    assert_eq!(
        evicted.status.as_ref().unwrap().reason.as_deref(),
        Some("Evicted")
    );
    assert_eq!(
        terminated(&get("message").await).and_then(|t| t.2),
        Some("custom message".into())
    );
    let pull = get("imagepull").await;
    let waiting = pull.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("ErrImagePull"));
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Logs through the apiserver (pods/log), served by the kubelet, also
    // after the container ended.
    assert_eq!(
        pods.logs("ok", &LogParams::default()).await.unwrap(),
        "2 passed in 0.1s\n"
    );
    let tail = LogParams {
        tail_lines: Some(1),
        ..LogParams::default()
    };
    assert_eq!(
        pods.logs("fails", &tail).await.unwrap(),
        "1 failed in 0.1s\n"
    );
    let limited = LogParams {
        limit_bytes: Some(6),
        ..LogParams::default()
    };
    assert_eq!(pods.logs("fails", &limited).await.unwrap(), "assert");

    // Deleting a running, bound Pod completes: the kubelet confirms it.
    pods.delete("forever", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the running pod to be deleted",
        Duration::from_secs(20),
        || {
            let pods = pods.clone();
            async move { pods.get_opt("forever").await.unwrap().is_none() }
        },
    )
    .await;
    // The kubelet records the deletion when its own delete is answered,
    // which may come a moment after the Pod is gone from the API.
    eventually(
        "the kubelet to record the deletion",
        Duration::from_secs(10),
        || {
            let events = kubelet.events();
            async move {
                events
                    .iter()
                    .any(|e| e.pod == "forever" && e.kind == KubeletEventKind::Deleted)
            }
        },
    )
    .await;
    let events = kubelet.events();
    assert!(
        events
            .iter()
            .any(|e| e.pod == "ok" && e.kind == KubeletEventKind::Terminated(0))
    );
}
