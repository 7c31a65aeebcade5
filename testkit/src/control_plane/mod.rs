//! A real etcd + kube-apiserver + kube-controller-manager on loopback ports,
//! started from the binaries `tests/cluster/build.sh` builds.
//!
//! The flags follow controller-runtime's envtest, with client-certificate
//! auth for the admin, service-account tokens, and RBAC authorization on.
//!
//! This file holds [`ControlPlane`] itself (the shared one, what it offers,
//! stopping it); `start` starts its processes; `clients` makes clients and
//! kubeconfigs; `setup` installs CRDs and creates namespaces.

mod clients;
mod setup;
mod start;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use clients::client_from_kubeconfig;
pub use start::ControlPlaneOptions;

use crate::TestkitError;
use crate::certs::Pki;
use crate::process::{Component, on_lasting_thread, remove_at_exit};

/// Binaries the control plane is made of.
pub const BINARIES: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
];

/// Where the control-plane binaries are: `$TESTLAYER_BIN_DIR`, else what
/// `tests/cluster/build.sh --print-bin-dir` names.
pub fn bin_dir() -> Result<PathBuf, TestkitError> {
    built_dir(
        "TESTLAYER_BIN_DIR",
        "tests/cluster/build.sh",
        "--print-bin-dir",
    )
}

/// A directory a build script fills: `$env` when set, else what the
/// repository's `script flag` prints.
pub(crate) fn built_dir(env: &str, script: &str, flag: &str) -> Result<PathBuf, TestkitError> {
    if let Some(d) = std::env::var_os(env).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(script);
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(flag)
        .output()
        .map_err(TestkitError::io(format!("running {}", script.display())))?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A running control plane. Dropping it stops every process and removes its
/// directory; the shared one is cleaned up when the test process exits.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    bin_dir: PathBuf,
    server: String,
    kubeconfig: PathBuf,
    pki: Pki,
    components: Mutex<Vec<Component>>,
    owns_dir: bool,
}

static SHARED: OnceLock<(bool, Result<ControlPlane, String>)> = OnceLock::new();

impl ControlPlane {
    /// The control plane shared by every test of this test binary, started on
    /// first use. Panics with the reason when it cannot be started, so that a
    /// missing build fails the test loudly instead of skipping it.
    pub fn shared() -> &'static ControlPlane {
        Self::shared_with(ControlPlaneOptions::default())
    }

    /// The shared control plane, started with `options` on first use. A test
    /// binary uses one kind: asking for another panics.
    pub fn shared_with(options: ControlPlaneOptions) -> &'static ControlPlane {
        let (scheduler, r) = SHARED.get_or_init(|| {
            let r = on_lasting_thread("control-plane", move || {
                ControlPlane::start_with(None, options)
            })
            .map(|mut cp| {
                cp.owns_dir = false;
                remove_at_exit(cp.dir.clone());
                cp
            });
            (options.scheduler, r)
        });
        assert_eq!(
            *scheduler, options.scheduler,
            "this test binary asked for the shared control plane with and without a scheduler"
        );
        match r {
            Ok(cp) => cp,
            Err(e) => panic!("the test control plane could not be started: {e}"),
        }
    }

    /// An error naming the first component that has exited, if any.
    pub fn check_alive(&self) -> Result<(), TestkitError> {
        if let Ok(mut g) = self.components.lock() {
            for c in g.iter_mut() {
                c.check_alive()?;
            }
        }
        Ok(())
    }

    /// The apiserver URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// An admin kubeconfig file (client certificate in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The directory holding certificates, logs and etcd data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// Its certificates and keys.
    pub(crate) fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Path of one of the control-plane binaries.
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Kills one of its processes (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`) as a crash would, starts it again after
    /// `down` with the same arguments and data, and waits until the
    /// apiserver is ready again. Blocking: call it from a blocking task.
    pub fn restart(&self, component: &str, down: Duration) -> Result<(), TestkitError> {
        {
            let mut g = self.components.lock().map_err(|_| TestkitError::Io {
                what: "locking the control plane's processes".into(),
                source: std::io::Error::other("poisoned"),
            })?;
            let c = g
                .iter_mut()
                .find(|c| c.name() == component)
                .ok_or_else(|| TestkitError::Io {
                    what: format!("restarting {component}"),
                    source: std::io::Error::other("no such component"),
                })?;
            c.restart(down)?;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let ready = self
                .kubectl()
                .args(["get", "--raw=/readyz", "--request-timeout=5s"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                return Ok(());
            }
            self.check_alive()?;
            if std::time::Instant::now() > deadline {
                return Err(TestkitError::Io {
                    what: format!("waiting for the apiserver after restarting {component}"),
                    source: std::io::Error::other("not ready in 120 s"),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A `kubectl` command for the admin.
    pub fn kubectl(&self) -> std::process::Command {
        let mut c = std::process::Command::new(self.binary("kubectl"));
        c.arg(format!("--kubeconfig={}", self.kubeconfig.display()));
        c
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Ok(mut g) = self.components.lock() {
            // Stop in reverse order: controllers, apiserver, etcd.
            while let Some(mut c) = g.pop() {
                c.stop(Duration::from_secs(5));
            }
        }
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
