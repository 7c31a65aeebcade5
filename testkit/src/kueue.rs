//! Kueue's manager, as released (`tests/kueue/build.sh` builds
//! `sigs.k8s.io/kueue/cmd/kueue` from the Go module proxy), run against a
//! test control plane out of cluster.
//!
//! What a Deployment in the cluster would give it is given here by other
//! means:
//! - Its webhooks (the pod, Workload, ClusterQueue, ResourceFlavor, ...
//!   ones of `config/components/webhook/manifests.yaml`, and the CRDs'
//!   conversion webhook) are reached by `url: https://127.0.0.1:PORT/...`,
//!   as the control plane has no Services to route through; they serve
//!   with the apiserver's certificate (it names 127.0.0.1) and the cluster
//!   CA is their `caBundle`.
//! - Its metrics server reads a certificate from the fixed path
//!   `/etc/kueue/metrics/certs`; the manager runs in a mount namespace of
//!   its own where an overlay on `/etc` holds it, so nothing is written to
//!   the host's `/etc` (this needs root, as the real node does).
//! - Only the plain-Pod integration is on, and only Pods in namespaces
//!   labelled [`NAMESPACE_LABEL`]`=true` are managed (both the pod webhooks'
//!   namespace selector and Kueue's `managedJobsNamespaceSelector`), so the
//!   other tests of a binary are untouched.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::ByteString;
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::control_plane::built_dir;
use crate::ports::free_port;
use crate::process::{Component, on_lasting_thread};
use crate::{ControlPlane, TestkitError};

/// Pods in namespaces with this label set to `true` are Kueue's.
pub const NAMESPACE_LABEL: &str = "testlayer.test/kueue";

/// Where Kueue's manager and manifests are: `$TESTLAYER_KUEUE_DIR`, else what
/// `tests/kueue/build.sh --print-dir` names.
pub fn kueue_build_dir() -> Result<PathBuf, TestkitError> {
    built_dir("TESTLAYER_KUEUE_DIR", "tests/kueue/build.sh", "--print-dir")
}

fn problem(p: impl Into<String>) -> TestkitError {
    TestkitError::Kueue { problem: p.into() }
}

/// A running Kueue manager.
#[derive(Debug)]
pub struct Kueue {
    /// Held so that dropping the handle stops the manager.
    _manager: Component,
    dir: PathBuf,
}

impl Kueue {
    /// Kueue for the shared control plane `cp`, started on first use (its
    /// CRDs installed, its webhooks registered, its manager ready) and
    /// stopped when the test process exits. Panics with the reason when it
    /// cannot be started, so that a missing build fails the test.
    pub fn shared(cp: &'static ControlPlane) -> &'static Kueue {
        static KUEUE: OnceLock<Result<Kueue, String>> = OnceLock::new();
        let r = KUEUE.get_or_init(|| on_lasting_thread("kueue", move || Kueue::start(cp)));
        match r {
            Ok(k) => k,
            Err(e) => panic!("Kueue could not be started: {e}"),
        }
    }

    /// Installs Kueue's CRDs into `cp`, starts its manager and registers its
    /// webhooks. Blocking.
    pub fn start(cp: &ControlPlane) -> Result<Kueue, TestkitError> {
        let build = kueue_build_dir()?;
        let binary = build.join("bin/kueue");
        if !binary.is_file() {
            return Err(problem(format!(
                "{} not found: build it with `bash tests/kueue/build.sh` \
                 (or set TESTLAYER_KUEUE_DIR to the directory it prints with --print-dir)",
                binary.display()
            )));
        }
        let dir = cp.dir().join("kueue");
        let webhook_port = free_port()?;
        let health_port = free_port()?;
        let url = |path: &str| format!("https://127.0.0.1:{webhook_port}{path}");

        // Serving certificates: the apiserver's (SAN 127.0.0.1, cluster CA).
        let certs = dir.join("webhook-certs");
        let metrics = dir.join("etc-upper/kueue/metrics/certs");
        for d in [&certs, &metrics, &dir.join("etc-work"), &dir.join("crds")] {
            std::fs::create_dir_all(d)
                .map_err(TestkitError::io(format!("creating {}", d.display())))?;
        }
        for d in [&certs, &metrics] {
            copy(&cp.pki().serving_cert, &d.join("tls.crt"))?;
            copy(&cp.pki().serving_key, &d.join("tls.key"))?;
        }
        let ca = ByteString(cp.pki().ca_pem.clone().into_bytes());

        // CRDs, with the conversion webhook of config/components/crd/patches.
        let names = write_crds(
            &build.join("config/crd"),
            &dir.join("crds"),
            &url("/convert"),
            &ca,
        )?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        cp.install_crds(&dir.join("crds"), &names)?;
        kubectl(cp, &["create", "namespace", "kueue-system"], true)?;

        let config = dir.join("config.yaml");
        let text = serde_json::to_string_pretty(&json!({
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": "kueue-system",
            "health": {"healthProbeBindAddress": format!("127.0.0.1:{health_port}")},
            "metrics": {"bindAddress": "0"},
            "webhook": {"port": webhook_port, "host": "127.0.0.1", "certDir": certs},
            "leaderElection": {"leaderElect": false},
            "internalCertManagement": {"enable": false},
            "managedJobsNamespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "true"}},
            "integrations": {"frameworks": ["pod"]},
            "featureGates": {"VisibilityOnDemand": false},
        }))
        .map_err(|e| problem(format!("writing its configuration: {e}")))?;
        std::fs::write(&config, text)
            .map_err(TestkitError::io(format!("writing {}", config.display())))?;

        // The manager, in a mount namespace with /etc/kueue/metrics/certs.
        let overlay = format!(
            "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && exec \"$0\" \"$@\"",
            dir.join("etc-upper").display(),
            dir.join("etc-work").display()
        );
        let args: Vec<String> = vec![
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            overlay,
            binary.display().to_string(),
            format!("--config={}", config.display()),
            "--zap-log-level=3".into(),
        ];
        let env = [(
            "KUBECONFIG".to_string(),
            cp.kubeconfig().display().to_string(),
        )];
        let mut manager = Component::spawn_env(
            "kueue",
            Path::new("unshare"),
            &args,
            &env,
            dir.join("kueue.log"),
        )?;
        manager.wait_ready(Duration::from_secs(90), || http_ok(health_port, "/readyz"))?;

        register_webhooks(cp, &build.join("config/webhooks.yaml"), &dir, &url, &ca)?;
        tracing::info!(dir = %dir.display(), webhook_port, "kueue ready");
        Ok(Kueue {
            _manager: manager,
            dir,
        })
    }

    /// The manager's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("kueue.log")
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), TestkitError> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(TestkitError::io(format!(
            "copying {} to {}",
            from.display(),
            to.display()
        )))
}

fn kubectl(cp: &ControlPlane, args: &[&str], may_exist: bool) -> Result<(), TestkitError> {
    let out = cp
        .kubectl()
        .args(args)
        .output()
        .map_err(TestkitError::io("running kubectl"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || (may_exist && err.contains("AlreadyExists")) {
        return Ok(());
    }
    Err(problem(format!("kubectl {}: {err}", args.join(" "))))
}

/// CRDs served by more than one version get Kueue's conversion webhook, as
/// its `config/components/crd/patches/webhook_in_*.yaml` give them.
fn write_crds(
    from: &Path,
    to: &Path,
    url: &str,
    ca: &ByteString,
) -> Result<Vec<String>, TestkitError> {
    let mut names = Vec::new();
    let entries =
        std::fs::read_dir(from).map_err(TestkitError::io(format!("reading {}", from.display())))?;
    for e in entries {
        let path = e
            .map_err(TestkitError::io("reading a directory entry"))?
            .path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(TestkitError::io(format!("reading {}", path.display())))?;
        let mut crd: Value =
            serde_yaml::from_str(&text).map_err(|e| problem(format!("{}: {e}", path.display())))?;
        let name = crd["metadata"]["name"]
            .as_str()
            .ok_or_else(|| problem(format!("{}: no metadata.name", path.display())))?
            .to_string();
        let versions = crd["spec"]["versions"].as_array().map_or(0, Vec::len);
        if versions > 1 {
            crd["spec"]["conversion"] = json!({
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"url": url, "caBundle": ca},
                    "conversionReviewVersions": ["v1"],
                },
            });
        }
        let out = to.join(format!("{name}.json"));
        std::fs::write(&out, crd.to_string())
            .map_err(TestkitError::io(format!("writing {}", out.display())))?;
        names.push(name);
    }
    if names.is_empty() {
        return Err(problem(format!("no CRDs in {}", from.display())));
    }
    Ok(names)
}

/// Whether a webhook of Kueue's manifests is one this setup serves: the
/// plain-Pod integration's and those of Kueue's own kinds.
fn served(path: &str) -> bool {
    path.ends_with("--v1-pod") || path.contains("-kueue-x-k8s-io-")
}

/// Registers the webhooks of `manifests` that [`served`] keeps, reached by
/// `url`, the pod ones limited to the managed namespaces.
fn register_webhooks(
    cp: &ControlPlane,
    manifests: &Path,
    dir: &Path,
    url: &dyn Fn(&str) -> String,
    ca: &ByteString,
) -> Result<(), TestkitError> {
    let text = std::fs::read_to_string(manifests)
        .map_err(TestkitError::io(format!("reading {}", manifests.display())))?;
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut v = Value::deserialize(doc)
            .map_err(|e| problem(format!("{}: {e}", manifests.display())))?;
        let name = match v["kind"].as_str() {
            Some("MutatingWebhookConfiguration") => "kueue-mutating-webhook-configuration",
            Some("ValidatingWebhookConfiguration") => "kueue-validating-webhook-configuration",
            _ => continue,
        };
        v["metadata"] = json!({"name": name});
        let hooks = v["webhooks"].as_array().cloned().unwrap_or_default();
        let mut kept = Vec::new();
        for mut w in hooks {
            let Some(path) = w["clientConfig"]["service"]["path"]
                .as_str()
                .map(str::to_string)
            else {
                continue;
            };
            if !served(&path) {
                continue;
            }
            w["clientConfig"] = json!({"url": url(&path), "caBundle": ca});
            let pods = w["rules"].as_array().into_iter().flatten().any(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|x| x == "pods"))
            });
            if pods {
                w["namespaceSelector"] = json!({"matchLabels": {NAMESPACE_LABEL: "true"}});
            }
            kept.push(w);
        }
        v["webhooks"] = Value::Array(kept);
        objects.push(v);
    }
    if objects.len() != 2 {
        return Err(problem(format!(
            "{}: expected a mutating and a validating webhook configuration, found {}",
            manifests.display(),
            objects.len()
        )));
    }
    let file = dir.join("webhooks.json");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    std::fs::write(&file, list.to_string())
        .map_err(TestkitError::io(format!("writing {}", file.display())))?;
    let file = file.display().to_string();
    kubectl(cp, &["apply", "--server-side", "-f", &file], false)
}

/// Whether `GET http://127.0.0.1:port{path}` answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}
