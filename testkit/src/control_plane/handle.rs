//! [`ControlPlane`] itself: its fields, what it offers (paths, `kubectl`,
//! restarting a component) and stopping it when dropped. Starting it is in
//! `start`, clients in `clients`, setting it up in `setup`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::TestkitError;
use crate::certs::Pki;
use crate::process::Component;

/// A running control plane. Dropping it stops every process and removes its
/// directory; the shared one is cleaned up when the test process exits.
#[derive(Debug)]
pub struct ControlPlane {
    pub(super) dir: PathBuf,
    pub(super) bin_dir: PathBuf,
    pub(super) server: String,
    pub(super) kubeconfig: PathBuf,
    pub(super) pki: Pki,
    pub(super) components: Mutex<Vec<Component>>,
    pub(super) owns_dir: bool,
}

impl ControlPlane {
    /// An error naming the first component that has exited, if any.
    pub fn check_alive(&self) -> Result<(), TestkitError> {
        if let Ok(mut g) = self.components.lock() {
            for c in g.iter_mut() {
                c.check_alive()?;
            }
        }
        Ok(())
    }

    /// Each component's name and the id of its current process (for
    /// measuring what each costs).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.components
            .lock()
            .map(|g| g.iter().map(|c| (c.name().to_string(), c.pid())).collect())
            .unwrap_or_default()
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
