//! Starting a control plane: etcd, kube-apiserver and
//! kube-controller-manager with their flags, each waited for until ready.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::binaries::{BINARIES, bin_dir};
use super::clients::write_kubeconfig;
use super::handle::ControlPlane;
use crate::TestkitError;
use crate::certs;
use crate::ports::free_port;
use crate::process::Component;

/// Controllers of kube-controller-manager that tests rely on: garbage
/// collection of owned objects, namespace deletion, default service accounts,
/// endpoints for services, and the root CA config map.
const CONTROLLERS: &str =
    "garbagecollector,namespace,serviceaccount,endpoint,endpointslice,root-ca-cert-publisher";

/// Controllers a cluster with a real node runs besides: the node lifecycle
/// controller (it lifts a new node's `not-ready` taint and marks a node
/// that stops answering), and the workload controllers, so that
/// Deployments (the chart's controller), StatefulSets and DaemonSets roll
/// out for real.
const NODE_CONTROLLERS: &str = "nodelifecycle,deployment,replicaset,statefulset,daemonset";

/// What a control plane runs beside etcd, kube-apiserver and
/// kube-controller-manager.
#[derive(Debug, Clone, Copy, Default)]
pub struct ControlPlaneOptions {
    /// Runs kube-scheduler, the node lifecycle controller that lifts a new
    /// node's `not-ready` taint, and the workload controllers (Deployments,
    /// ReplicaSets, StatefulSets, DaemonSets): for a real node, whose Pods
    /// the cluster places and rolls out. Without it the test kubelet binds
    /// Pods itself.
    pub scheduler: bool,
}

impl ControlPlane {
    /// Starts a control plane in a new temporary directory.
    pub fn start() -> Result<ControlPlane, TestkitError> {
        Self::start_in(None)
    }

    /// Starts a control plane in `dir` (a new temporary directory if `None`).
    pub fn start_in(dir: Option<PathBuf>) -> Result<ControlPlane, TestkitError> {
        Self::start_with(dir, ControlPlaneOptions::default())
    }

    /// Starts a control plane in `dir` (a new temporary directory if
    /// `None`) with `options`.
    pub fn start_with(
        dir: Option<PathBuf>,
        options: ControlPlaneOptions,
    ) -> Result<ControlPlane, TestkitError> {
        let started = Instant::now();
        let bin_dir = bin_dir()?;
        for b in BINARIES {
            if !bin_dir.join(b).is_file() {
                return Err(TestkitError::MissingBinary {
                    binary: b.into(),
                    dir: bin_dir,
                });
            }
        }
        let (dir, owns_dir) = match dir {
            Some(d) => {
                std::fs::create_dir_all(&d)
                    .map_err(TestkitError::io(format!("creating {}", d.display())))?;
                (d, false)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("testlayer-cp-")
                    .tempdir()
                    .map_err(TestkitError::io("creating a temporary directory"))?;
                (t.keep(), true)
            }
        };
        let pki = certs::generate(&dir)?;
        let admin_crt = dir.join("admin.crt");
        let admin_key = dir.join("admin.key");
        std::fs::write(&admin_crt, &pki.admin_cert_pem)
            .map_err(TestkitError::io("writing admin.crt"))?;
        std::fs::write(&admin_key, &pki.admin_key_pem)
            .map_err(TestkitError::io("writing admin.key"))?;

        let kubeconfig = dir.join("admin.kubeconfig");
        let mut cp = ControlPlane {
            dir: dir.clone(),
            bin_dir: bin_dir.clone(),
            server: String::new(),
            kubeconfig: kubeconfig.clone(),
            pki: pki.clone(),
            components: Mutex::new(Vec::new()),
            owns_dir,
        };

        let etcd_args = |etcd_port: u16| -> Result<Vec<String>, TestkitError> {
            // A try that exited may have begun a data directory that names
            // its peer port.
            let _ = std::fs::remove_dir_all(dir.join("etcd"));
            let etcd_url = format!("http://127.0.0.1:{etcd_port}");
            let peer_url = format!("http://127.0.0.1:{}", free_port()?);
            Ok(vec![
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync=true".into(),
                // As kubeadm runs it: the apiserver's watch cache learns of
                // etcd's progress every 5 s, not every 10 minutes, which it
                // needs to serve consistent lists and to resume watches after
                // an etcd restart.
                "--watch-progress-notify-interval=5s".into(),
                "--log-level=warn".into(),
            ])
        };
        let (etcd, etcd_port) = spawn_on_free_port(
            "etcd",
            &bin_dir.join("etcd"),
            &dir,
            etcd_args,
            Duration::from_secs(60),
            tcp_open,
        )?;
        cp.push(etcd);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");

        // The admin's kubeconfig names the apiserver's port: it is written
        // again for each port the apiserver is tried on.
        let api_args = |api_port: u16| -> Result<Vec<String>, TestkitError> {
            write_kubeconfig(
                &kubeconfig,
                &format!("https://127.0.0.1:{api_port}"),
                &pki.ca_cert,
                &format!(
                    "client-certificate: {}\n    client-key: {}",
                    admin_crt.display(),
                    admin_key.display()
                ),
            )?;
            Ok(vec![
                format!("--etcd-servers={etcd_url}"),
                "--advertise-address=127.0.0.1".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--cert-dir={}", dir.join("apiserver-certs").display()),
                format!("--tls-cert-file={}", pki.serving_cert.display()),
                format!("--tls-private-key-file={}", pki.serving_key.display()),
                format!("--client-ca-file={}", pki.ca_cert.display()),
                "--authorization-mode=RBAC".into(),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                "--allow-privileged=true".into(),
                format!("--service-account-key-file={}", pki.sa_pub.display()),
                format!(
                    "--service-account-signing-key-file={}",
                    pki.sa_key.display()
                ),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                "--kubelet-preferred-address-types=InternalIP".into(),
                // A real kubelet asks for a client certificate on logs.
                format!("--kubelet-client-certificate={}", admin_crt.display()),
                format!("--kubelet-client-key={}", admin_key.display()),
                "--enable-priority-and-fairness=false".into(),
                // MutatingAdmissionPolicies (beta, off by default), which
                // tests use to stand in for admission webhooks (Kueue's,
                // which gates the Pods of a queue): webhooks would need a
                // Service the test control plane cannot route to.
                "--feature-gates=MutatingAdmissionPolicy=true".into(),
                "--runtime-config=admissionregistration.k8s.io/v1beta1=true".into(),
                "--max-requests-inflight=1000".into(),
                "--max-mutating-requests-inflight=500".into(),
                "--v=1".into(),
            ])
        };
        let kubectl = bin_dir.join("kubectl");
        let (api, api_port) = spawn_on_free_port(
            "kube-apiserver",
            &bin_dir.join("kube-apiserver"),
            &dir,
            api_args,
            Duration::from_secs(120),
            |_| {
                std::process::Command::new(&kubectl)
                    .arg(format!("--kubeconfig={}", kubeconfig.display()))
                    .args(["get", "--raw=/readyz", "--request-timeout=5s"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
        )?;
        cp.push(api);
        let server = format!("https://127.0.0.1:{api_port}");
        cp.server = server.clone();

        let kcm_args = |port: u16| -> Result<Vec<String>, TestkitError> {
            Ok(vec![
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--authentication-kubeconfig={}", kubeconfig.display()),
                format!("--authorization-kubeconfig={}", kubeconfig.display()),
                if options.scheduler {
                    format!("--controllers={CONTROLLERS},{NODE_CONTROLLERS}")
                } else {
                    format!("--controllers={CONTROLLERS}")
                },
                format!("--root-ca-file={}", pki.ca_cert.display()),
                format!(
                    "--service-account-private-key-file={}",
                    pki.sa_key.display()
                ),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                format!("--cert-dir={}", dir.join("kcm-certs").display()),
                "--concurrent-gc-syncs=5".into(),
                "--v=1".into(),
            ])
        };
        let (kcm, _) = spawn_on_free_port(
            "kube-controller-manager",
            &bin_dir.join("kube-controller-manager"),
            &dir,
            kcm_args,
            Duration::from_secs(60),
            tcp_open,
        )?;
        cp.push(kcm);
        if options.scheduler {
            let scheduler = bin_dir.join("kube-scheduler");
            if !scheduler.is_file() {
                return Err(TestkitError::MissingBinary {
                    binary: "kube-scheduler".into(),
                    dir: bin_dir,
                });
            }
            let sched_args = |port: u16| -> Result<Vec<String>, TestkitError> {
                Ok(vec![
                    format!("--kubeconfig={}", kubeconfig.display()),
                    format!("--authentication-kubeconfig={}", kubeconfig.display()),
                    format!("--authorization-kubeconfig={}", kubeconfig.display()),
                    "--leader-elect=false".into(),
                    "--bind-address=127.0.0.1".into(),
                    format!("--secure-port={port}"),
                    format!("--cert-dir={}", dir.join("scheduler-certs").display()),
                    "--v=1".into(),
                ])
            };
            let (sched, _) = spawn_on_free_port(
                "kube-scheduler",
                &scheduler,
                &dir,
                sched_args,
                Duration::from_secs(60),
                tcp_open,
            )?;
            cp.push(sched);
        }
        // The service-account controller creating `default` in `default`
        // shows the controllers are running.
        let default_sa = bin_dir.join("kubectl");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = std::process::Command::new(&default_sa)
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args([
                    "get",
                    "serviceaccount",
                    "default",
                    "-n",
                    "default",
                    "--request-timeout=5s",
                ])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            cp.check_alive()?;
            if Instant::now() > deadline {
                let log = dir.join("kube-controller-manager.log");
                return Err(TestkitError::NotReady {
                    component: "kube-controller-manager (default service account)".into(),
                    seconds: 60,
                    tail: std::fs::read_to_string(&log)
                        .unwrap_or_default()
                        .lines()
                        .rev()
                        .take(30)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        tracing::info!(server = %server, dir = %dir.display(), took_ms = started.elapsed().as_millis() as u64, "test control plane ready");
        Ok(cp)
    }

    fn push(&mut self, c: Component) {
        if let Ok(mut g) = self.components.lock() {
            g.push(c);
        }
    }
}

/// Starts a component that listens on a port of its own and waits until it
/// is `ready` (asked with its port). A component that exits at start (its
/// port taken in the meantime by a process that is not a test's) is tried
/// again on another port, up to three times; each try has its own log
/// (`NAME.log`, `NAME.2.log`, ...). Returns it with its port.
fn spawn_on_free_port(
    name: &str,
    program: &std::path::Path,
    dir: &std::path::Path,
    args: impl Fn(u16) -> Result<Vec<String>, TestkitError>,
    timeout: Duration,
    mut ready: impl FnMut(u16) -> bool,
) -> Result<(Component, u16), TestkitError> {
    let mut tries = 1;
    loop {
        let port = free_port()?;
        let log = if tries == 1 {
            dir.join(format!("{name}.log"))
        } else {
            dir.join(format!("{name}.{tries}.log"))
        };
        let mut c = Component::spawn(name, program, &args(port)?, log)?;
        match c.wait_ready(timeout, || ready(port)) {
            Ok(()) => return Ok((c, port)),
            Err(TestkitError::Exited { .. }) if tries < 3 => {
                tracing::warn!(
                    component = name,
                    port,
                    "exited at start; trying another port"
                );
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn tcp_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_that_exits_at_start_is_tried_again_on_another_port() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let tried = std::cell::RefCell::new(Vec::new());
        // Exits on its first port, as a component whose port was taken
        // does; keeps running on the second.
        let args = |port: u16| -> Result<Vec<String>, TestkitError> {
            tried.borrow_mut().push(port);
            let script = if tried.borrow().len() == 1 {
                "echo 'bind: address already in use'; exit 1"
            } else {
                "exec sleep 30"
            };
            Ok(vec!["-c".into(), script.into()])
        };
        let (mut c, port) = spawn_on_free_port(
            "component",
            std::path::Path::new("/bin/sh"),
            dir.path(),
            args,
            Duration::from_secs(10),
            |_| tried.borrow().len() == 2,
        )
        .expect("started on the second try");
        let tried = tried.borrow().clone();
        assert_eq!(tried.len(), 2);
        assert_eq!(port, tried[1]);
        assert_ne!(tried[0], tried[1]);
        assert!(dir.path().join("component.log").is_file());
        assert!(dir.path().join("component.2.log").is_file());
        c.stop(Duration::from_secs(1));
    }

    #[test]
    fn a_component_that_exits_three_times_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let r = spawn_on_free_port(
            "component",
            std::path::Path::new("/bin/sh"),
            dir.path(),
            |_| Ok(vec!["-c".into(), "echo no; exit 3".into()]),
            Duration::from_secs(10),
            |_| false,
        );
        match r {
            Err(TestkitError::Exited { component, .. }) => assert_eq!(component, "component"),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a component that always exits was started"),
        }
        assert!(dir.path().join("component.3.log").is_file());
    }
}
