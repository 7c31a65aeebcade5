//! Objects the controller cannot use, against the real control plane: one
//! stored under an older, looser CRD before an upgrade, a CategoryRun edited
//! by hand, values the schema refuses. Each stalls on its own, named; the
//! controller keeps running every other run, in every namespace.
//!
//! Its own test binary: it swaps the CRDs of its control plane.

mod common;

use std::time::Duration;

use common::{CRDS, Fixture, control_plane, eventually};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use testlayer::api::{CategoryRun, Decoded, LayerPhase, TestLayerRun, TestLayerSchedule, all_crds};
use testlayer::controller::ControllerOptions;

/// The tests of this binary one at a time: one of them installs looser CRDs
/// for a while.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ONE: &str = "layers:\n  one:\n    execution_mode: parallel\n    categories:\n      - name: unit\n        timeout_seconds: 30\n        command: \"sleep 1\"\n";

const TWO: &str = "layers:\n  two:\n    execution_mode: parallel\n    categories:\n      - name: slow\n        timeout_seconds: 60\n        command: \"sleep 6\"\n      - name: after\n        timeout_seconds: 60\n        command: \"sleep 1\"\n        dependencies: [slow]\n";

/// Writes the project's CRDs with every schema replaced by "anything goes",
/// as an older, looser version of them would be; returns the directory.
fn loose_crds() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut yaml = String::new();
    for crd in all_crds() {
        let mut v = serde_json::to_value(&crd).expect("crd json");
        for version in v["spec"]["versions"].as_array_mut().expect("versions") {
            version["schema"]["openAPIV3Schema"] =
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
            version["additionalPrinterColumns"] = json!([]);
        }
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml::to_string(&v).expect("yaml"));
    }
    std::fs::write(dir.path().join("loose.yaml"), yaml).expect("write");
    dir
}

fn api_resource(kind: &str) -> ApiResource {
    let plural = format!("{}s", kind.to_ascii_lowercase());
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("testlayer.dev", "v1alpha1", kind),
        &plural,
    )
}

/// Creates an object as raw JSON (which the typed API could not hold).
async fn create_raw(fx: &Fixture, kind: &str, obj: serde_json::Value) -> DynamicObject {
    let ar = api_resource(kind);
    let api: Api<DynamicObject> = Api::namespaced_with(fx.client.clone(), &fx.ns, &ar);
    let obj: DynamicObject = serde_json::from_value(obj).expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("creating {kind}: {e}"))
}

fn stalled(conditions: &[Condition]) -> Option<&Condition> {
    conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
}

/// The conditions of an object as stored, whether it decodes or not.
async fn conditions_of<K>(api: &Api<Decoded<K>>, name: &str) -> Vec<Condition>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K: serde::Serialize,
{
    let obj = api
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    match obj {
        Decoded::Valid(k) => serde_json::to_value(k.as_ref())
            .ok()
            .and_then(|v| {
                serde_json::from_value::<Vec<Condition>>(v["status"]["conditions"].clone()).ok()
            })
            .unwrap_or_default(),
        Decoded::Invalid(u) => u.conditions.clone(),
    }
}

/// The `Stalled=True` condition of run `name`, once it has one.
async fn wait_stalled(runs: &Api<Decoded<TestLayerRun>>, name: &str) -> Condition {
    eventually(
        Duration::from_secs(30),
        format!("{name} stalled"),
        async || {
            let conds = conditions_of(runs, name).await;
            stalled(&conds).cloned().ok_or(format!("{conds:#?}"))
        },
    )
    .await
}

async fn wait_succeeded(fx: &Fixture, name: &str) {
    let r = fx.wait_done(name, Duration::from_secs(90)).await;
    assert_eq!(
        r.status.as_ref().and_then(|s| s.phase),
        Some(LayerPhase::Succeeded),
        "{name}: {:#?}",
        r.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_stored_under_a_looser_crd_stall_alone() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fx = Fixture::builder("loose").without_controller().start().await;
    let other = Fixture::builder("loose-b")
        .without_controller()
        .start()
        .await;
    let cp = control_plane();

    // Before the upgrade: a looser schema took what the controller cannot use.
    let loose = loose_crds();
    cp.install_crds(loose.path(), &CRDS).expect("loose CRDs");
    create_raw(
        &fx,
        "TestLayerRun",
        json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": "broken"},
            "spec": {"layer": "one", "config": {"inline": ONE}, "image": "busybox",
                     "overrides": {"maxParallel": "lots"}},
        }),
    )
    .await;
    let held = create_raw(
        &fx,
        "TestLayerRun",
        json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": "held"},
            "spec": {"layer": "one", "config": {"inline": ONE}, "image": "busybox"},
        }),
    )
    .await;
    create_raw(
        &fx,
        "CategoryRun",
        json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "CategoryRun",
            "metadata": {"name": "held-unit", "ownerReferences": [{
                "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun", "name": "held",
                "uid": held.uid().expect("uid"), "controller": true,
            }]},
            "spec": {"runName": "held", "layer": "one", "category": "unit", "index": 0,
                     "image": "busybox", "command": "sleep 1", "timeoutSeconds": "soon"},
        }),
    )
    .await;

    create_raw(
        &fx,
        "TestLayerSchedule",
        json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerSchedule",
            "metadata": {"name": "broken-schedule"},
            "spec": {"schedule": 5, "template": {"spec": {"layer": "one"}}},
        }),
    )
    .await;

    // The upgrade: the current CRDs, then the controller, for all namespaces.
    let real = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"));
    cp.install_crds(real, &CRDS).expect("current CRDs");
    let controller = fx
        .spawn_controller(ControllerOptions {
            namespace: None,
            ..fx.controller_options()
        })
        .await;

    // Every other run, in either namespace, runs.
    fx.submit("fine", "one", ONE, json!({})).await;
    other.submit("fine", "one", ONE, json!({})).await;
    wait_succeeded(&fx, "fine").await;
    wait_succeeded(&other, "fine").await;

    // The run that does not decode is Stalled, its field named, with an Event.
    let runs: Api<Decoded<TestLayerRun>> = fx.api();
    let c = wait_stalled(&runs, "broken").await;
    assert_eq!(c.reason, "InvalidSpec");
    assert!(
        c.message
            .starts_with("spec.overrides.maxParallel: expected a whole number, 0 or more, found the text \"lots\""),
        "{}",
        c.message
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = fx.api();
    eventually(
        Duration::from_secs(20),
        "an InvalidSpec event",
        async || {
            let list = events.list(&Default::default()).await.expect("events");
            list.items
                .iter()
                .find(|e| {
                    e.reason.as_deref() == Some("InvalidSpec")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
                })
                .map(|_| ())
                .ok_or(format!("{} events", list.items.len()))
        },
    )
    .await;

    // So is the schedule that does not decode; nothing is created for it.
    let schedules: Api<Decoded<TestLayerSchedule>> = fx.api();
    let c = eventually(
        Duration::from_secs(30),
        "broken-schedule stalled",
        async || {
            let conds = conditions_of(&schedules, "broken-schedule").await;
            stalled(&conds).cloned().ok_or(format!("{conds:#?}"))
        },
    )
    .await;
    assert!(
        c.message
            .starts_with("spec.schedule: expected a cron expression such as \"0 2 * * *\", found the whole number 5"),
        "{}",
        c.message
    );

    // The run whose CategoryRun does not decode is Stalled, naming both.
    let c = wait_stalled(&runs, "held").await;
    assert_eq!(c.reason, "InvalidCategoryRun");
    assert!(
        c.message
            .contains("CategoryRun held-unit: spec.timeoutSeconds: expected a number of seconds, found the text \"soon\""),
        "{}",
        c.message
    );
    let crs: Api<Decoded<CategoryRun>> = fx.api();
    let cr_conds = conditions_of(&crs, "held-unit").await;
    assert_eq!(
        stalled(&cr_conds).map(|c| c.reason.as_str()),
        Some("InvalidSpec"),
        "{cr_conds:#?}"
    );

    // Deleted, the CategoryRun is made again from the run's plan; the run passes.
    crs.delete("held-unit", &DeleteParams::default())
        .await
        .expect("delete");
    wait_succeeded(&fx, "held").await;
    let conds = conditions_of(&runs, "held").await;
    assert!(stalled(&conds).is_none(), "{conds:#?}");
    assert!(!controller.is_finished(), "the controller stopped");
    controller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_run_edited_by_hand_stalls_its_run_until_it_is_fixed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fx = Fixture::new("edited").await;
    fx.submit("edit", "two", TWO, json!({})).await;
    let crs = fx.crs();
    eventually(Duration::from_secs(30), "edit-after exists", async || {
        crs.get_opt("edit-after").await.expect("get")
    })
    .await;

    // The schema refuses what no controller could hold.
    let refused = crs
        .patch(
            "edit-after",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"timeoutSeconds": 1e300}})),
        )
        .await
        .expect_err("a timeout of 1e300 seconds was accepted");
    assert!(refused.to_string().contains("timeoutSeconds"), "{refused}");

    // An index the schema allows but the run's plan does not have.
    crs.patch(
        "edit-after",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"index": 7}})),
    )
    .await
    .expect("patch index");
    let runs: Api<Decoded<TestLayerRun>> = fx.api();
    let c = wait_stalled(&runs, "edit").await;
    assert_eq!(c.reason, "InvalidCategoryRun");
    assert!(
        c.message
            .contains("CategoryRun edit-after: spec.index: 7 is past the last category"),
        "{}",
        c.message
    );
    let typed: Api<Decoded<CategoryRun>> = fx.api();
    let cr_conds = conditions_of(&typed, "edit-after").await;
    assert!(stalled(&cr_conds).is_some(), "{cr_conds:#?}");

    // Fixed: the run goes on and passes.
    crs.patch(
        "edit-after",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"index": 1}})),
    )
    .await
    .expect("patch index back");
    wait_succeeded(&fx, "edit").await;
    let conds = conditions_of(&runs, "edit").await;
    assert!(stalled(&conds).is_none(), "{conds:#?}");
    let cr_conds = conditions_of(&typed, "edit-after").await;
    assert!(stalled(&cr_conds).is_none(), "{cr_conds:#?}");
    assert!(fx.controller_running(), "the controller stopped");
}
