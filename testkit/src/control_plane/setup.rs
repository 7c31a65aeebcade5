//! What tests set up in a control plane: CRDs, and fresh namespaces ready
//! for Pods.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};

use super::handle::ControlPlane;
use crate::TestkitError;

static NAMESPACES: AtomicU32 = AtomicU32::new(0);

impl ControlPlane {
    /// Applies the CRD manifests in `dir` (server-side) and waits until the
    /// CRDs named are Established.
    pub fn install_crds(&self, dir: &Path, names: &[&str]) -> Result<(), TestkitError> {
        let fail = |what: &str, out: std::process::Output| TestkitError::Io {
            what: what.to_string(),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        };
        let out = self
            .kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(dir)
            .output()
            .map_err(TestkitError::io("running kubectl"))?;
        if !out.status.success() {
            return Err(fail(
                &format!("applying the CRDs in {}", dir.display()),
                out,
            ));
        }
        // `kubectl wait` gives up at once on a CRD whose status has no
        // conditions yet (just created); such an answer is asked again.
        for _ in 0..20 {
            let mut wait = self.kubectl();
            wait.args(["wait", "--for=condition=Established", "--timeout=30s"]);
            wait.args(names.iter().map(|n| format!("crd/{n}")));
            let out = wait.output().map_err(TestkitError::io("running kubectl"))?;
            if out.status.success() {
                return Ok(());
            }
            if !String::from_utf8_lossy(&out.stderr).contains("accessor error") {
                return Err(fail("waiting for the CRDs", out));
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        Err(TestkitError::Io {
            what: "waiting for the CRDs".into(),
            source: std::io::Error::other("their status never had conditions"),
        })
    }

    /// Creates a fresh namespace `<prefix>-<n>` and waits for its `default`
    /// ServiceAccount (Pods cannot be created before it exists).
    pub async fn create_namespace(&self, prefix: &str) -> Result<String, TestkitError> {
        let n = NAMESPACES.fetch_add(1, Ordering::Relaxed);
        let prefix: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(40)
            .collect();
        let name = format!(
            "{}-{}-{n}",
            prefix.to_ascii_lowercase(),
            std::process::id() % 100_000
        );
        let client = self.admin_client().await?;
        let nss: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
            .map_err(|e| TestkitError::Kubeconfig {
                path: PathBuf::new(),
                problem: e.to_string(),
            })?;
        nss.create(&PostParams::default(), &ns)
            .await
            .map_err(TestkitError::kube(format!("creating namespace {name}")))?;
        let sas: Api<ServiceAccount> = Api::namespaced(client, &name);
        let deadline = Instant::now() + Duration::from_secs(60);
        while sas
            .get_opt("default")
            .await
            .map_err(TestkitError::kube("reading serviceaccount default"))?
            .is_none()
        {
            if Instant::now() > deadline {
                self.check_alive()?;
                return Err(TestkitError::NotReady {
                    component: format!("serviceaccount default in namespace {name}"),
                    seconds: 60,
                    log: self.dir.join("kube-controller-manager.log"),
                    tail: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(name)
    }
}
