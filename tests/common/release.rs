//! The chart as a user installs it on the real node: the controller's
//! image built by `scripts/image.sh`, imported into the node's containerd,
//! and a `helm install` of `charts/testlayer` whose controller runs as the
//! Deployment's Pod.

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use testlayer_testkit::RealNode;
use testlayer_testkit::node::image_archive;

use super::{Fixture, chart_dir, helm};

/// The image the chart names by default: `ghcr.io/testlayer/testlayer` at
/// the chart's appVersion, which `scripts/image.sh` builds.
pub fn chart_image() -> String {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    let chart: serde_yaml::Value = serde_yaml::from_str(&text).expect("Chart.yaml parses");
    let version = chart["appVersion"].as_str().expect("appVersion");
    format!("ghcr.io/testlayer/testlayer:{version}")
}

/// Imports the built image into the node once per process.
fn import_image(node: &RealNode) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let archive = image_archive().unwrap_or_else(|e| panic!("{e}"));
        node.import_image(&archive)
            .unwrap_or_else(|e| panic!("importing {}: {e}", archive.display()));
    });
}

/// A release of the chart in the fixture's namespace, watching only that
/// namespace (a Role, not a ClusterRole). Each test names its release
/// differently: the admission policies are cluster-wide objects named
/// after the release.
pub struct Release {
    name: String,
    ns: String,
    kubeconfig: String,
}

impl Release {
    /// `helm install` with `sets`, waiting until the Deployment is
    /// available (its Pods Ready: the readiness probe passed).
    pub async fn install(fx: &Fixture, name: &str, sets: &[&str]) -> Release {
        let (_, node) = RealNode::shared();
        import_image(node);
        let r = Release {
            name: name.to_string(),
            ns: fx.ns.clone(),
            kubeconfig: fx.cp.kubeconfig().display().to_string(),
        };
        let chart = chart_dir().display().to_string();
        let watch = format!("watchNamespace={}", fx.ns);
        let mut args = vec!["install", &r.name, &chart];
        // The CRDs are the cluster's already (kubectl, as every test binary
        // installs them); the chart's CRD templates: tests/chart_upgrade.rs.
        args.extend(["--set", &watch, "--set", "crds.install=false"]);
        for s in sets {
            args.extend(["--set", s]);
        }
        r.helm(&args).await;
        r
    }

    /// `helm ARGS` for this release, waiting for it to settle.
    pub async fn helm(&self, args: &[&str]) -> String {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(
            [
                "--kubeconfig",
                &self.kubeconfig,
                "--namespace",
                &self.ns,
                "--wait",
                "--timeout",
                "180s",
            ]
            .map(String::from),
        );
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            helm(&refs)
        })
        .await
        .expect("helm task")
    }

    /// The release's controller Pods.
    pub async fn pods(&self, fx: &Fixture) -> Vec<Pod> {
        fx.pods()
            .list(&ListParams::default().labels(&format!(
                "app.kubernetes.io/name=testlayer,app.kubernetes.io/instance={}",
                self.name
            )))
            .await
            .expect("listing the controller's Pods")
            .items
    }
}
