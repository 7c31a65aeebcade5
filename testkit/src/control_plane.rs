//! A real etcd + kube-apiserver + kube-controller-manager on loopback ports,
//! started from the binaries `tests/cluster/build.sh` builds.
//!
//! The flags follow controller-runtime's envtest, with client-certificate
//! auth for the admin, service-account tokens, and RBAC authorization on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::TestkitError;
use crate::certs::{self, Pki};
use crate::process::{Component, free_port, remove_at_exit};

/// Binaries the control plane is made of.
pub const BINARIES: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
];

/// Controllers of kube-controller-manager that tests rely on: garbage
/// collection of owned objects, namespace deletion, default service accounts,
/// endpoints for services, and the root CA config map.
const CONTROLLERS: &str =
    "garbagecollector,namespace,serviceaccount,endpoint,endpointslice,root-ca-cert-publisher";

/// Where the control-plane binaries are: `$TESTLAYER_BIN_DIR`, else what
/// `tests/cluster/build.sh --print-bin-dir` names.
pub fn bin_dir() -> Result<PathBuf, TestkitError> {
    if let Some(d) = std::env::var_os("TESTLAYER_BIN_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/cluster/build.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("--print-bin-dir")
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

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static NAMESPACES: AtomicU32 = AtomicU32::new(0);

impl ControlPlane {
    /// The control plane shared by every test of this test binary, started on
    /// first use. Panics with the reason when it cannot be started, so that a
    /// missing build fails the test loudly instead of skipping it.
    pub fn shared() -> &'static ControlPlane {
        let r = SHARED.get_or_init(|| {
            // Started from a thread that never ends: the children's
            // parent-death signal fires when the thread that started them
            // exits, and test threads end with their test.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("control-plane".into())
                .spawn(move || {
                    let _ = tx.send(ControlPlane::start_in(None));
                    loop {
                        std::thread::park();
                    }
                })
                .map_err(|e| e.to_string())
                .and_then(|_| rx.recv().map_err(|e| e.to_string()))
                .and_then(|r| r.map_err(|e| e.to_string()))
                .map(|mut cp| {
                    cp.owns_dir = false;
                    remove_at_exit(cp.dir.clone());
                    cp
                })
        });
        match r {
            Ok(cp) => cp,
            Err(e) => panic!("the test control plane could not be started: {e}"),
        }
    }

    /// Starts a control plane in a new temporary directory.
    pub fn start() -> Result<ControlPlane, TestkitError> {
        Self::start_in(None)
    }

    /// Starts a control plane in `dir` (a new temporary directory if `None`).
    pub fn start_in(dir: Option<PathBuf>) -> Result<ControlPlane, TestkitError> {
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

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let api_port = free_port()?;
        let kcm_port = free_port()?;
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("admin.kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            &server,
            &pki.ca_cert,
            &format!(
                "client-certificate: {}\n    client-key: {}",
                admin_crt.display(),
                admin_key.display()
            ),
        )?;

        let mut cp = ControlPlane {
            dir: dir.clone(),
            bin_dir: bin_dir.clone(),
            server: server.clone(),
            kubeconfig: kubeconfig.clone(),
            pki: pki.clone(),
            components: Mutex::new(Vec::new()),
            owns_dir,
        };

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args: Vec<String> = vec![
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ];
        let mut etcd = Component::spawn(
            "etcd",
            &bin_dir.join("etcd"),
            &etcd_args,
            dir.join("etcd.log"),
        )?;
        etcd.wait_ready(Duration::from_secs(60), || tcp_open(etcd_port))?;
        cp.push(etcd);

        let api_args: Vec<String> = vec![
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
            "--enable-priority-and-fairness=false".into(),
            "--max-requests-inflight=1000".into(),
            "--max-mutating-requests-inflight=500".into(),
            "--v=1".into(),
        ];
        let mut api = Component::spawn(
            "kube-apiserver",
            &bin_dir.join("kube-apiserver"),
            &api_args,
            dir.join("kube-apiserver.log"),
        )?;
        let kubectl = bin_dir.join("kubectl");
        api.wait_ready(Duration::from_secs(120), || {
            std::process::Command::new(&kubectl)
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args(["get", "--raw=/readyz", "--request-timeout=5s"])
                .output()
                .is_ok_and(|o| o.status.success())
        })?;
        cp.push(api);

        let kcm_args: Vec<String> = vec![
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--authentication-kubeconfig={}", kubeconfig.display()),
            format!("--authorization-kubeconfig={}", kubeconfig.display()),
            format!("--controllers={CONTROLLERS}"),
            format!("--root-ca-file={}", pki.ca_cert.display()),
            format!(
                "--service-account-private-key-file={}",
                pki.sa_key.display()
            ),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={kcm_port}"),
            format!("--cert-dir={}", dir.join("kcm-certs").display()),
            "--concurrent-gc-syncs=5".into(),
            "--v=1".into(),
        ];
        let mut kcm = Component::spawn(
            "kube-controller-manager",
            &bin_dir.join("kube-controller-manager"),
            &kcm_args,
            dir.join("kube-controller-manager.log"),
        )?;
        kcm.wait_ready(Duration::from_secs(60), || tcp_open(kcm_port))?;
        cp.push(kcm);
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

    /// Path of one of the control-plane binaries.
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// A `kubectl` command for the admin.
    pub fn kubectl(&self) -> std::process::Command {
        let mut c = std::process::Command::new(self.binary("kubectl"));
        c.arg(format!("--kubeconfig={}", self.kubeconfig.display()));
        c
    }

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
        let mut wait = self.kubectl();
        wait.args(["wait", "--for=condition=Established", "--timeout=30s"]);
        wait.args(names.iter().map(|n| format!("crd/{n}")));
        let out = wait.output().map_err(TestkitError::io("running kubectl"))?;
        if !out.status.success() {
            return Err(fail("waiting for the CRDs", out));
        }
        Ok(())
    }

    /// A new client for the admin.
    pub async fn admin_client(&self) -> Result<Client, TestkitError> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// A new client for the admin that does not retry answers 429, 503 and
    /// 504 (kube's default client retries them up to 15 times, with
    /// back-offs that add up to minutes): to see a refused eviction or a
    /// failing log request at once.
    pub async fn admin_client_without_retries(&self) -> Result<Client, TestkitError> {
        client_from_kubeconfig_with(&self.kubeconfig, false).await
    }

    /// Writes a kubeconfig that authenticates as the ServiceAccount
    /// `namespace/name` (which must exist) with a one-hour token, and returns
    /// its path.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, TestkitError> {
        let client = self.admin_client().await?;
        let sas: Api<ServiceAccount> = Api::namespaced(client, namespace);
        let req = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let tr = sas
            .create_token_request(name, &PostParams::default(), &req)
            .await
            .map_err(TestkitError::kube(format!(
                "requesting a token for serviceaccount {namespace}/{name}"
            )))?;
        let token = tr.status.map(|s| s.token).unwrap_or_default();
        let path = self.dir.join(format!("sa-{namespace}-{name}.kubeconfig"));
        write_kubeconfig(
            &path,
            &self.server,
            &self.pki.ca_cert,
            &format!("token: {token}"),
        )?;
        Ok(path)
    }

    /// A new client acting as the ServiceAccount `namespace/name`.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Client, TestkitError> {
        let path = self.service_account_kubeconfig(namespace, name).await?;
        client_from_kubeconfig(&path).await
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

/// A client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client, TestkitError> {
    client_from_kubeconfig_with(path, true).await
}

async fn client_from_kubeconfig_with(path: &Path, retry: bool) -> Result<Client, TestkitError> {
    let bad = |problem: String| TestkitError::Kubeconfig {
        path: path.to_path_buf(),
        problem,
    };
    let kc = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    config.default_retry = retry;
    Client::try_from(config).map_err(TestkitError::kube("building a client"))
}

fn write_kubeconfig(path: &Path, server: &str, ca: &Path, user: &str) -> Result<(), TestkitError> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testlayer-test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
         users:\n- name: user\n  user:\n    {user}\ncontexts:\n- name: testlayer-test\n  context:\n    cluster: testlayer-test\n    user: user\n    namespace: default\n\
         current-context: testlayer-test\n",
        ca = ca.display()
    );
    std::fs::write(path, text).map_err(TestkitError::io(format!("writing {}", path.display())))
}

fn tcp_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}
