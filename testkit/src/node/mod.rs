//! A real node: the kubelet built beside the control plane, containerd 2
//! with runc, and the CNI bridge, running real containers from the images
//! `tests/node/build.sh` builds.
//!
//! Each node takes a slot on the machine (a lock file the kernel releases
//! when the process ends); whoever takes a slot next cleans up what a killed
//! holder left: shims, containers, mounts, cgroups. A node is stopped and
//! cleaned when it drops, and at exit when it is the shared one.
//!
//! `config` holds the config files (pure); `host` what the node changes on
//! the machine and how it is undone; `runtime` asks containerd about its
//! containers; `api_route` lets Pods reach the apiserver through the
//! `kubernetes` Service.

mod api_route;
mod config;
mod host;
mod runtime;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use config::{Layout, PAUSE_IMAGE};
pub use runtime::RunningContainer;

use crate::process::{Component, first_at_exit, on_lasting_thread};
use crate::{ControlPlane, ControlPlaneOptions, TestkitError};

/// Images every node imports (the archives `tests/node/build.sh` writes).
pub const IMAGES: [(&str, &str); 3] = [
    ("pause.tar", PAUSE_IMAGE),
    ("busybox.tar", "docker.io/library/busybox:1.35"),
    ("shop-tests.tar", "localhost/testlayer/shop-tests:1"),
];

/// Where the node's binaries and images are: `$TESTLAYER_NODE_DIR`, else
/// what `tests/node/build.sh --print-dir` names.
pub fn node_build_dir() -> Result<PathBuf, TestkitError> {
    crate::control_plane::built_dir("TESTLAYER_NODE_DIR", "tests/node/build.sh", "--print-dir")
}

/// The controller's image archive that `scripts/image.sh` builds:
/// `$TESTLAYER_IMAGE`, else what `scripts/image.sh --print-path` names. An
/// error names the script when the archive is not there.
pub fn image_archive() -> Result<PathBuf, TestkitError> {
    let path =
        crate::control_plane::built_dir("TESTLAYER_IMAGE", "scripts/image.sh", "--print-path")?;
    if path.is_file() {
        return Ok(path);
    }
    Err(TestkitError::Node {
        problem: format!(
            "the controller's image {} is missing: build it with `bash scripts/image.sh` \
             (or set TESTLAYER_IMAGE to the archive it prints)",
            path.display()
        ),
    })
}

/// A running real node.
#[derive(Debug)]
pub struct RealNode {
    layout: Layout,
    ctr: PathBuf,
    /// The kubelet: a lock, as tests kill and start it again on the shared node.
    kubelet: std::sync::Mutex<Option<Component>>,
    containerd: Option<Component>,
    api_route: Option<api_route::ApiRoute>,
    active: Arc<AtomicBool>,
    slot: Option<host::Slot>,
}

impl RealNode {
    /// Starts a node registered with `cp`: takes a slot, cleans what a
    /// killed holder left, starts containerd, imports the images, starts the
    /// kubelet, and waits until the Node is Ready with no taint left (the
    /// control plane needs [`ControlPlaneOptions::scheduler`]).
    pub fn start(cp: &ControlPlane) -> Result<RealNode, TestkitError> {
        let started = Instant::now();
        let build = node_build_dir()?;
        let bin = build.join("bin");
        let kubelet_bin = cp.binary("kubelet");
        let mut needed = vec![
            bin.join("containerd"),
            bin.join("containerd-shim-runc-v2"),
            bin.join("ctr"),
            kubelet_bin.clone(),
            PathBuf::from("/usr/sbin/runc"),
            PathBuf::from("/usr/lib/cni/bridge"),
            PathBuf::from("/usr/lib/cni/host-local"),
            PathBuf::from("/usr/lib/cni/loopback"),
        ];
        needed.extend(IMAGES.iter().map(|(f, _)| build.join("images").join(f)));
        if let Some(missing) = needed.iter().find(|p| !p.is_file()) {
            return Err(TestkitError::Node {
                problem: format!(
                    "{} is missing: build the node with `bash tests/node/build.sh` \
                     (or set TESTLAYER_NODE_DIR to what it prints with --print-dir)",
                    missing.display()
                ),
            });
        }

        let base = host::base_dir();
        let slot = host::take_slot(&base)?;
        let layout = Layout::new(&base, slot.number);
        host::clean_slot(&layout);
        let active = Arc::new(AtomicBool::new(true));
        {
            let (layout, active) = (layout.clone(), active.clone());
            first_at_exit(Box::new(move || {
                if active.swap(false, Ordering::SeqCst) {
                    host::clean_slot(&layout);
                }
            }));
        }
        let mut node = RealNode {
            layout: layout.clone(),
            ctr: bin.join("ctr"),
            kubelet: std::sync::Mutex::new(None),
            containerd: None,
            api_route: None,
            active,
            slot: Some(slot),
        };

        for d in [
            layout.dir.join("containerd"),
            layout.cni_conf_dir(),
            layout.dir.join("kubelet"),
            layout.pod_logs(),
        ] {
            std::fs::create_dir_all(&d)
                .map_err(TestkitError::io(format!("creating {}", d.display())))?;
        }
        write(
            &layout.containerd_config(),
            &config::containerd_toml(&layout),
        )?;
        write(
            &layout.cni_conf_dir().join("10-testlayer.conflist"),
            &config::cni_conflist(&layout),
        )?;
        write(
            &layout.kubelet_config(),
            &config::kubelet_yaml(&layout, &cp.dir().join("ca.crt")),
        )?;
        host::ensure_node_address(&layout)?;
        host::create_cgroup_root(&layout)?;
        node.api_route = Some(api_route::ApiRoute::start(
            &layout,
            apiserver_address(cp.server())?,
        )?);

        // containerd finds its shim on PATH.
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        );
        let mut containerd = Component::spawn_env(
            "containerd",
            &bin.join("containerd"),
            &[format!("--config={}", layout.containerd_config().display())],
            &[("PATH".into(), path)],
            layout.dir.join("containerd.log"),
        )?;
        let sock = layout.containerd_socket();
        let ctr = node.ctr.clone();
        containerd.wait_ready(Duration::from_secs(30), || {
            sock.exists()
                && std::process::Command::new(&ctr)
                    .args(["--address", &sock.display().to_string(), "version"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        })?;
        node.containerd = Some(containerd);
        for (file, _) in IMAGES {
            node.ctr_ok(&[
                "images",
                "import",
                &build.join("images").join(file).display().to_string(),
            ])?;
        }

        let kubelet_args: Vec<String> = vec![
            format!("--config={}", layout.kubelet_config().display()),
            format!("--kubeconfig={}", cp.kubeconfig().display()),
            format!("--root-dir={}", layout.kubelet_root().display()),
            format!("--cert-dir={}", layout.dir.join("kubelet/pki").display()),
            format!("--hostname-override={}", layout.node_name),
            format!("--node-ip={}", layout.node_ip()),
            "--v=1".into(),
        ];
        let mut kubelet = Component::spawn(
            "kubelet",
            &kubelet_bin,
            &kubelet_args,
            layout.dir.join("kubelet.log"),
        )?;
        kubelet.wait_ready(Duration::from_secs(90), || {
            node_schedulable(cp.kubectl(), &layout.node_name)
        })?;
        node.kubelet = std::sync::Mutex::new(Some(kubelet));
        tracing::info!(
            node = %layout.node_name,
            dir = %layout.dir.display(),
            took_ms = started.elapsed().as_millis() as u64,
            "real node ready"
        );
        Ok(node)
    }

    /// The shared control plane (with kube-scheduler) and a real node
    /// registered with it, started on first use and cleaned up when the test
    /// process exits. Panics with the reason when either cannot be started,
    /// so that a missing build fails the test instead of skipping it.
    pub fn shared() -> (&'static ControlPlane, &'static RealNode) {
        static NODE: OnceLock<Result<RealNode, String>> = OnceLock::new();
        let cp = ControlPlane::shared_with(ControlPlaneOptions { scheduler: true });
        let r = NODE.get_or_init(|| on_lasting_thread("real-node", move || RealNode::start(cp)));
        match r {
            Ok(node) => (cp, node),
            Err(e) => panic!("the real node could not be started: {e}"),
        }
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.layout.node_name
    }

    /// The node's directory (containerd's and the kubelet's files and logs).
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// Where the kubelet keeps container logs
    /// (`<namespace>_<pod>_<uid>/<container>/<restart>.log`, CRI format).
    pub fn pod_logs_dir(&self) -> PathBuf {
        self.layout.pod_logs()
    }

    /// The kubelet's log file.
    pub fn kubelet_log(&self) -> PathBuf {
        self.layout.dir.join("kubelet.log")
    }

    /// Freezes the kubelet (SIGSTOP), as a node whose kubelet hangs: its
    /// port still accepts connections and answers nothing (log reads, exec),
    /// it reports no status and renews no lease; the containers go on. The
    /// kubelet goes on when the guard drops.
    pub fn freeze_kubelet(&self) -> Result<FrozenKubelet<'_>, TestkitError> {
        self.signal_kubelet(nix::sys::signal::Signal::SIGSTOP)?;
        Ok(FrozenKubelet { node: self })
    }

    /// Kills the kubelet (SIGKILL, also when frozen), as a node that died:
    /// the containers go on under their shims, nobody reports them, the
    /// Node's lease expires. [`RealNode::restart_kubelet`] brings it back.
    pub fn kill_kubelet(&self) -> Result<(), TestkitError> {
        self.signal_kubelet(nix::sys::signal::Signal::SIGKILL)
    }

    /// Starts the kubelet again with the same arguments (after
    /// [`RealNode::kill_kubelet`], or killing it first) and waits until the
    /// Node is Ready with no taint left.
    pub fn restart_kubelet(&self, cp: &ControlPlane) -> Result<(), TestkitError> {
        let mut guard = self.kubelet.lock().unwrap_or_else(|e| e.into_inner());
        let k = guard.as_mut().ok_or_else(|| TestkitError::Node {
            problem: "the kubelet was never started".into(),
        })?;
        k.restart(Duration::ZERO)?;
        let name = self.layout.node_name.clone();
        k.wait_ready(Duration::from_secs(90), || {
            node_schedulable(cp.kubectl(), &name)
        })
    }

    fn signal_kubelet(&self, signal: nix::sys::signal::Signal) -> Result<(), TestkitError> {
        let guard = self.kubelet.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .ok_or_else(|| TestkitError::Node {
                problem: "the kubelet is not running".into(),
            })?
            .signal(signal)
    }

    /// Application containers (not sandboxes) the runtime reports running,
    /// asked of containerd itself rather than the apiserver.
    pub fn running_containers(&self) -> Result<Vec<RunningContainer>, TestkitError> {
        runtime::running_containers(&self.ctr, &self.layout.containerd_socket())
    }

    /// Imports an OCI image archive into the node's containerd, where the
    /// kubelet finds it (nothing is ever pulled), under the name the
    /// archive gives.
    pub fn import_image(&self, archive: &Path) -> Result<(), TestkitError> {
        self.ctr_ok(&["images", "import", &archive.display().to_string()])
    }

    /// Gives the image `source` the further name `target` in the node's
    /// containerd (as `docker tag` does); `target` replaced if it exists.
    pub fn tag_image(&self, source: &str, target: &str) -> Result<(), TestkitError> {
        self.ctr_ok(&["images", "tag", "--force", source, target])
    }

    /// Removes the image `name` from the node's containerd.
    pub fn remove_image(&self, name: &str) -> Result<(), TestkitError> {
        self.ctr_ok(&["images", "rm", "--sync", name])
    }

    fn ctr_ok(&self, args: &[&str]) -> Result<(), TestkitError> {
        runtime::ctr(&self.ctr, &self.layout.containerd_socket(), args).map(|_| ())
    }

    fn stop(&mut self) {
        let kubelet = self
            .kubelet
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut k) = kubelet {
            k.stop(Duration::from_secs(3));
        }
        self.api_route.take();
        if self.active.swap(false, Ordering::SeqCst) {
            host::clean_slot(&self.layout);
        }
        self.containerd.take();
        self.slot.take();
    }
}

/// A frozen kubelet; dropping it lets the kubelet go on (SIGCONT).
#[derive(Debug)]
pub struct FrozenKubelet<'a> {
    node: &'a RealNode,
}

impl Drop for FrozenKubelet<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.node.signal_kubelet(nix::sys::signal::Signal::SIGCONT) {
            tracing::warn!(error = %e, "cannot let the kubelet go on");
        }
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The apiserver's loopback address, from its URL (`https://127.0.0.1:PORT`).
fn apiserver_address(server: &str) -> Result<std::net::SocketAddr, TestkitError> {
    server
        .strip_prefix("https://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| TestkitError::Node {
            problem: format!("cannot read the apiserver's address from {server}"),
        })
}

fn write(path: &Path, text: &str) -> Result<(), TestkitError> {
    std::fs::write(path, text).map_err(TestkitError::io(format!("writing {}", path.display())))
}

/// The Node is Ready and carries no taint (the node lifecycle controller
/// lifts `not-ready` once the kubelet reports Ready).
fn node_schedulable(mut kubectl: std::process::Command, name: &str) -> bool {
    let out = kubectl
        .args([
            "get",
            "node",
            name,
            "--request-timeout=5s",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.spec.taints}",
        ])
        .output();
    let Ok(out) = out else { return false };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    out.status.success() && text.trim() == "True"
}
