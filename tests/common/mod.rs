//! Test support shared by the test binaries that run against the real control
//! plane (`mod common;`) and by the operator benchmark
//! (`#[path = "../tests/common/mod.rs"] mod common;`):
//!
//! - [`control_plane`]: the process's shared control plane, with the CRDs
//!   installed once per process;
//! - [`Fixture`]: a fresh namespace with an admin client, a test kubelet and
//!   the controller running in-process, typed APIs and submit helpers;
//! - [`eventually`]: the one way to wait for something, polling every 100 ms
//!   and panicking with the state last seen when it does not happen in time.
//!
//! Not every binary uses every helper.
#![allow(dead_code)]

pub mod browser;
pub mod release;
pub mod triggers;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use testlayer::api::{CategoryRun, LayerPhase, TestLayerRun};
use testlayer::controller::{ControllerOptions, RunError, run as run_controller};
use testlayer::plan::Phase;
use testlayer_testkit::kubelet::{KubeletEvent, KubeletEventKind};
use testlayer_testkit::{ControlPlane, RealNode, TestKubelet};
use tokio::task::JoinHandle;

/// The CRDs the controller needs, as `kubectl wait` names them.
pub const CRDS: [&str; 5] = [
    "testlayerruns.testlayer.dev",
    "categoryruns.testlayer.dev",
    "testlayerschedules.testlayer.dev",
    "testlayertriggers.testlayer.dev",
    "testlayerresources.testlayer.dev",
];

/// How often [`eventually`] looks.
pub const POLL: Duration = Duration::from_millis(100);

/// Installs the project's CRDs (`crds/`) into `cp` and waits until they are
/// Established; once per process, whoever asks first.
pub fn install_crds(cp: &ControlPlane) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"));
        cp.install_crds(dir, &CRDS)
            .unwrap_or_else(|e| panic!("installing the CRDs in {}: {e}", dir.display()));
    });
}

/// The CRDs of Flux and Argo CD that tests install, as `kubectl wait`
/// names them.
pub const GITOPS_CRDS: [&str; 6] = [
    "kustomizations.kustomize.toolkit.fluxcd.io",
    "helmreleases.helm.toolkit.fluxcd.io",
    "gitrepositories.source.toolkit.fluxcd.io",
    "applications.argoproj.io",
    "appprojects.argoproj.io",
    "rollouts.argoproj.io",
];

/// Installs the CRDs of Flux and Argo CD (from their Go modules, by
/// `scripts/gitops-crds.sh`; `TESTLAYER_GITOPS_CRDS` names a directory
/// that holds them already) into `cp`; once per process.
pub fn install_gitops_crds(cp: &ControlPlane) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = match std::env::var_os("TESTLAYER_GITOPS_CRDS") {
            Some(d) => std::path::PathBuf::from(d),
            None => {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gitops-crds.sh");
                let out = std::process::Command::new("bash")
                    .arg(script)
                    .output()
                    .unwrap_or_else(|e| panic!("running {script}: {e}"));
                assert!(
                    out.status.success(),
                    "{script} failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let text = String::from_utf8_lossy(&out.stdout);
                std::path::PathBuf::from(text.lines().last().unwrap_or_default().trim())
            }
        };
        cp.install_crds(&dir, &GITOPS_CRDS)
            .unwrap_or_else(|e| panic!("installing the CRDs in {}: {e}", dir.display()));
    });
}

/// The control plane shared by this process, with the CRDs installed.
pub fn control_plane() -> &'static ControlPlane {
    let cp = ControlPlane::shared();
    install_crds(cp);
    cp
}

/// The control plane shared by this process with kube-scheduler and a real
/// node (kubelet, containerd, runc), with the CRDs installed.
pub fn real_cluster() -> (&'static ControlPlane, &'static RealNode) {
    let (cp, node) = RealNode::shared();
    install_crds(cp);
    (cp, node)
}

// ---------------------------------------------------------------------------
// Waiting

/// What one look of [`eventually`] found: the awaited value, or the state
/// seen instead (shown when time runs out).
pub trait Look {
    /// The awaited value.
    type Output;
    /// `Ok` when done, else a description of what was seen.
    fn look(self) -> Result<Self::Output, String>;
}

/// `Some(value)` when done; `None` when not yet (nothing more to show).
impl<T> Look for Option<T> {
    type Output = T;
    fn look(self) -> Result<T, String> {
        self.ok_or_else(|| "(not yet, no detail)".to_string())
    }
}

/// `Ok(value)` when done; `Err(state)` with what was seen instead.
impl<T, S: Display> Look for Result<T, S> {
    type Output = T;
    fn look(self) -> Result<T, String> {
        self.map_err(|s| s.to_string())
    }
}

/// Calls `check` every 100 ms until it gives a value, and returns that value.
/// Panics after `timeout` with `what` and the state that the last look saw.
///
/// ```ignore
/// let pod = eventually(Duration::from_secs(20), "the pod", async || {
///     pods.get_opt("p").await.unwrap()
/// })
/// .await;
/// ```
pub async fn eventually<L: Look>(
    timeout: Duration,
    what: impl Display,
    check: impl AsyncFnMut() -> L,
) -> L::Output {
    eventually_every(POLL, timeout, what, check).await
}

/// [`eventually`] with another polling interval (the benchmark times with a
/// finer one).
pub async fn eventually_every<L: Look>(
    every: Duration,
    timeout: Duration,
    what: impl Display,
    mut check: impl AsyncFnMut() -> L,
) -> L::Output {
    let start = Instant::now();
    loop {
        let seen = match check().await.look() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if start.elapsed() > timeout {
            panic!(
                "timed out after {:.1} s waiting for {what}; last seen:\n{seen}",
                timeout.as_secs_f64()
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// A seed for a randomised test: `$var` when set (to replay one), else
/// from the clock. The caller prints it.
pub fn seed(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

// ---------------------------------------------------------------------------
// Runs

/// A TestLayerRun `name` of `layer` with an inline `config` and image busybox;
/// the fields of `extra` (camelCase, as in YAML) replace or add spec fields.
pub fn test_layer_run(name: &str, layer: &str, config: &str, extra: Value) -> TestLayerRun {
    let mut spec = json!({"layer": layer, "config": {"inline": config}, "image": "busybox"});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("TestLayerRun {name} does not deserialize: {e}"))
}

/// The run's phase, if it has one yet.
pub fn phase(r: &TestLayerRun) -> Option<LayerPhase> {
    r.status.as_ref().and_then(|s| s.phase)
}

/// Whether the run has ended.
pub fn is_done(r: &TestLayerRun) -> bool {
    phase(r).is_some_and(|p| p.is_terminal())
}

/// Phase of each category, by category name, as the run's status shows them.
pub fn category_phases(r: &TestLayerRun) -> BTreeMap<String, Phase> {
    r.status
        .as_ref()
        .map(|s| {
            s.categories
                .iter()
                .map(|c| (c.name.clone(), c.phase))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts the controller in-process with `client`; the task ends with what
/// the controller returned (abort it to stop the controller).
/// Creates ConfigMap `name` in `ns` holding a layer config under the
/// default key (`test_layers.yaml`).
pub async fn create_layer_config_map(client: &Client, ns: &str, name: &str, config: &str) {
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": name}, "data": {"test_layers.yaml": config}}),
    )
    .expect("config map");
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap_or_else(|e| panic!("creating ConfigMap {ns}/{name}: {e}"));
}

/// The `testlayer controller` process for namespace `ns` (output dropped),
/// as people run it, for tests that kill it or measure it.
pub fn controller_process(cp: &ControlPlane, ns: &str, identity: &str) -> std::process::Child {
    controller_process_of(cp, Some(ns), identity)
}

/// [`controller_process`] of namespace `ns`, or of every namespace when
/// `None`.
pub fn controller_process_of(
    cp: &ControlPlane,
    ns: Option<&str>,
    identity: &str,
) -> std::process::Child {
    // A profiler to start the controller under (`heaptrack`, `perf record
    // -g --`): its words, then the controller's command.
    let wrapper = std::env::var("TESTLAYER_CONTROLLER_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut c = std::process::Command::new(program);
            c.args(words).arg(env!("CARGO_BIN_EXE_testlayer"));
            c
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_testlayer")),
    };
    cmd.args(["controller", "--listen", "127.0.0.1:0"])
        .args(ns.map(|ns| ["--namespace", ns]).into_iter().flatten())
        .args(["--identity", identity, "--kubeconfig"])
        .arg(cp.kubeconfig())
        .stdout(std::process::Stdio::null())
        .stderr(log_file(std::env::var_os("TESTLAYER_CONTROLLER_LOG")))
        .spawn()
        .expect("start the controller process")
}

/// Where a controller process's log goes: appended to the file `path`
/// names (`TESTLAYER_CONTROLLER_LOG`, to see what a benchmark's
/// controller did), else nowhere.
fn log_file(path: Option<std::ffi::OsString>) -> std::process::Stdio {
    let file = path.map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("opening the controller's log {p:?}: {e}"))
    });
    file.map_or_else(std::process::Stdio::null, std::process::Stdio::from)
}

/// Most Pods whose name starts with `prefix` with a running container at
/// once, in the test kubelet's record (a Pod counts from Running to its
/// first end).
pub fn peak_running(events: &[KubeletEvent], prefix: &str) -> usize {
    let mut running = std::collections::BTreeSet::new();
    let mut peak = 0;
    for e in events.iter().filter(|e| e.pod.starts_with(prefix)) {
        match e.kind {
            KubeletEventKind::Running => {
                running.insert(e.pod.clone());
            }
            KubeletEventKind::Bound => {}
            _ => {
                running.remove(&e.pod);
            }
        }
        peak = peak.max(running.len());
    }
    peak
}

/// The kubelet's record of Pods whose name starts with `prefix`, one line
/// per event with milliseconds from the first: for a failure message.
pub fn timeline(events: &[KubeletEvent], prefix: &str) -> String {
    let mut mine = events.iter().filter(|e| e.pod.starts_with(prefix));
    let Some(first) = mine.next() else {
        return String::new();
    };
    std::iter::once(first)
        .chain(mine)
        .map(|e| {
            format!(
                "{:>7} ms {} {:?}\n",
                e.at.duration_since(first.at).as_millis(),
                e.pod,
                e.kind
            )
        })
        .collect()
}

/// Checks the CategoryRuns `crs` against `expect` (name, phase, number of
/// attempts), and the test kubelet's record against them: each attempt one
/// Pod bound once, no Pod bound that is no attempt. `context` goes into
/// every message (a seed, say).
pub fn assert_attempts(
    crs: &[CategoryRun],
    expect: &[(&str, Phase, usize)],
    events: &[KubeletEvent],
    context: &str,
) {
    for (name, phase, attempts) in expect {
        let cr = crs
            .iter()
            .find(|c| c.name_any() == *name)
            .unwrap_or_else(|| panic!("no CategoryRun {name} ({context})"));
        let st = cr.status.clone().unwrap_or_default();
        assert_eq!(st.phase, Some(*phase), "{name} ({context}): {st:#?}");
        assert_eq!(
            st.attempts.len(),
            *attempts,
            "{name} ({context}): {:#?}",
            st.attempts
        );
        for a in &st.attempts {
            let bound = events
                .iter()
                .filter(|e| e.pod == a.pod_name && e.kind == KubeletEventKind::Bound)
                .count();
            assert_eq!(bound, 1, "{} bound {bound} times ({context})", a.pod_name);
        }
    }
    let recorded: std::collections::BTreeSet<&str> = crs
        .iter()
        .flat_map(|c| c.status.iter().flat_map(|s| s.attempts.iter()))
        .map(|a| a.pod_name.as_str())
        .collect();
    for e in events.iter().filter(|e| e.kind == KubeletEventKind::Bound) {
        assert!(
            recorded.contains(e.pod.as_str()),
            "pod {} ran but is no attempt ({context})",
            e.pod
        );
    }
}

pub fn spawn_controller(
    client: Client,
    opts: ControllerOptions,
) -> JoinHandle<Result<(), RunError>> {
    tokio::spawn(run_controller(client, opts))
}

// ---------------------------------------------------------------------------
// The fixture

/// A fresh namespace on the shared control plane (CRDs installed), with an
/// admin client, a test kubelet playing some Nodes for the namespace, and
/// the controller running in-process watching only that namespace.
pub struct Fixture {
    /// The shared control plane.
    pub cp: &'static ControlPlane,
    /// An admin client.
    pub client: Client,
    /// The namespace, fresh for this fixture.
    pub ns: String,
    kubelet: Option<TestKubelet>,
    options: ControllerOptions,
    controller: Option<JoinHandle<()>>,
}

/// How a [`Fixture`] starts: see [`Fixture::builder`].
pub struct FixtureBuilder {
    prefix: String,
    nodes: usize,
    controller: bool,
    concurrency: u16,
    identity: Option<String>,
    real_node: bool,
}

impl FixtureBuilder {
    /// Pods run as real containers on the shared real node, placed by
    /// kube-scheduler (no test kubelet).
    pub fn real_node(mut self) -> Self {
        self.real_node = true;
        self.nodes = 0;
        self
    }

    /// Nodes the test kubelet plays (default 2); 0: no kubelet at all, Pods
    /// stay Pending.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Do not start the controller (start it later with
    /// [`Fixture::start_controller`]).
    pub fn without_controller(mut self) -> Self {
        self.controller = false;
        self
    }

    /// Runs the controller reconciles at once (default 4).
    pub fn concurrency(mut self, n: u16) -> Self {
        self.concurrency = n;
        self
    }

    /// The controller's identity, its events' reporting instance (default
    /// `<namespace>-controller`).
    pub fn identity(mut self, identity: &str) -> Self {
        self.identity = Some(identity.to_string());
        self
    }

    /// Creates the namespace and starts the kubelet and the controller.
    pub async fn start(self) -> Fixture {
        let cp = if self.real_node {
            real_cluster().0
        } else {
            control_plane()
        };
        let ns = cp
            .create_namespace(&self.prefix)
            .await
            .unwrap_or_else(|e| panic!("creating a namespace {}-…: {e}", self.prefix));
        let client = cp.admin_client().await.expect("admin client");
        let kubelet = match self.nodes {
            0 => None,
            n => Some(
                TestKubelet::start(client.clone(), &ns, n)
                    .await
                    .unwrap_or_else(|e| panic!("starting the test kubelet in {ns}: {e}")),
            ),
        };
        let options = ControllerOptions {
            listen: "127.0.0.1:0".parse().expect("address"),
            namespace: Some(ns.clone()),
            concurrency: self.concurrency,
            identity: self.identity.unwrap_or_else(|| format!("{ns}-controller")),
            leader_election: None,
            resources_namespace: None,
        };
        let mut fx = Fixture {
            cp,
            client,
            ns,
            kubelet,
            options,
            controller: None,
        };
        if self.controller {
            fx.start_controller().await;
        }
        fx
    }
}

impl Fixture {
    /// A fixture with the defaults: 2 Nodes, the controller running with
    /// concurrency 4. Namespaces are named `<prefix>-<pid>-<n>`.
    pub async fn new(prefix: &str) -> Fixture {
        Self::builder(prefix).start().await
    }

    /// A fixture to set up before it starts.
    pub fn builder(prefix: &str) -> FixtureBuilder {
        FixtureBuilder {
            prefix: prefix.to_string(),
            nodes: 2,
            controller: true,
            concurrency: 4,
            identity: None,
            real_node: false,
        }
    }

    /// The test kubelet (panics if the fixture was built with `nodes(0)`).
    pub fn kubelet(&self) -> &TestKubelet {
        self.kubelet
            .as_ref()
            .expect("this fixture was started without a kubelet")
    }

    /// Stops the test kubelet (Pods stay as they are).
    pub fn stop_kubelet(&mut self) {
        self.kubelet = None;
    }

    /// The options the fixture's controller runs with: listens on a free
    /// port, watches the fixture's namespace, no leader election. A start
    /// point for controllers of a test's own.
    pub fn controller_options(&self) -> ControllerOptions {
        self.options.clone()
    }

    /// Starts the fixture's controller with its options (stopping one that runs).
    pub async fn start_controller(&mut self) {
        self.start_controller_with(self.options.clone()).await;
    }

    /// Starts the fixture's controller with `opts` instead (stopping one that
    /// runs); it has its own admin client. The controller task panics if the
    /// controller stops with an error.
    pub async fn start_controller_with(&mut self, opts: ControllerOptions) {
        self.stop_controller();
        let client = self.cp.admin_client().await.expect("admin client");
        self.controller = Some(tokio::spawn(async move {
            run_controller(client, opts).await.unwrap();
        }));
    }

    /// Stops the fixture's controller (aborts its task), if it runs.
    pub fn stop_controller(&mut self) {
        if let Some(h) = self.controller.take() {
            h.abort();
        }
    }

    /// Stops the fixture's controller, waits `downtime`, and starts it again.
    pub async fn restart_controller(&mut self, downtime: Duration) {
        self.stop_controller();
        tokio::time::sleep(downtime).await;
        self.start_controller().await;
    }

    /// Whether the fixture's controller was started and has not stopped.
    pub fn controller_running(&self) -> bool {
        self.controller.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Starts one more controller with `opts` and its own admin client,
    /// besides the fixture's (replicas under leader election).
    pub async fn spawn_controller(
        &self,
        opts: ControllerOptions,
    ) -> JoinHandle<Result<(), RunError>> {
        let client = self.cp.admin_client().await.expect("admin client");
        spawn_controller(client, opts)
    }

    /// Any namespaced resource in the fixture's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// TestLayerRuns.
    pub fn runs(&self) -> Api<TestLayerRun> {
        self.api()
    }

    /// CategoryRuns.
    pub fn crs(&self) -> Api<CategoryRun> {
        self.api()
    }

    /// Pods.
    pub fn pods(&self) -> Api<Pod> {
        self.api()
    }

    /// Creates ConfigMap `name` in the fixture's namespace holding `config`.
    pub async fn layer_config_map(&self, name: &str, config: &str) {
        create_layer_config_map(&self.client, &self.ns, name, config).await;
    }

    /// Creates the TestLayerRun of [`test_layer_run`] and returns it as created.
    /// Declares shared resource `name` (a TestLayerResource) with
    /// `capacity` in the fixture's namespace.
    pub async fn declare_resource(&self, name: &str, capacity: u32) {
        use testlayer::api::{TestLayerResource, TestLayerResourceSpec};
        let r = TestLayerResource::new(
            name,
            TestLayerResourceSpec {
                capacity,
                description: None,
            },
        );
        self.api::<TestLayerResource>()
            .create(&PostParams::default(), &r)
            .await
            .unwrap_or_else(|e| panic!("creating TestLayerResource {name}: {e}"));
    }

    pub async fn submit(
        &self,
        name: &str,
        layer: &str,
        config: &str,
        extra: Value,
    ) -> TestLayerRun {
        self.runs()
            .create(
                &PostParams::default(),
                &test_layer_run(name, layer, config, extra),
            )
            .await
            .unwrap_or_else(|e| panic!("creating TestLayerRun {name}: {e}"))
    }

    /// Names of the Pods matching `selector` ("" for all).
    pub async fn pod_names(&self, selector: &str) -> Vec<String> {
        self.pods()
            .list_metadata(&ListParams::default().labels(selector))
            .await
            .unwrap_or_else(|e| panic!("listing pods {selector:?}: {e}"))
            .items
            .iter()
            .map(|p| p.name_any())
            .collect()
    }

    /// The CategoryRun of `category` (its Kubernetes name) in run `run`.
    pub async fn category(&self, run: &str, category: &str) -> CategoryRun {
        let name = format!("{run}-{category}");
        self.crs()
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("reading CategoryRun {name}: {e}"))
    }

    /// One line per CategoryRun matching `selector` ("" for all): its name
    /// and status, for failure messages.
    pub async fn describe_category_runs(&self, selector: &str) -> String {
        let lp = ListParams::default().labels(selector);
        match self.crs().list(&lp).await {
            Ok(list) => list
                .items
                .iter()
                .map(|c| format!("{}: {:?}", c.name_any(), c.status))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("(cannot list the CategoryRuns: {e})"),
        }
    }

    /// Waits until run `name` (which must exist) satisfies `pred`, and returns
    /// it; on timeout panics with its status and its CategoryRuns.
    pub async fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&TestLayerRun) -> bool,
    ) -> TestLayerRun {
        eventually(timeout, format!("{what} of {name}"), async || {
            let r = self
                .runs()
                .get(name)
                .await
                .unwrap_or_else(|e| panic!("reading TestLayerRun {name}: {e}"));
            if pred(&r) {
                return Ok(r);
            }
            let crs = self
                .describe_category_runs(&format!("testlayer.dev/run={name}"))
                .await;
            Err(format!("status: {:#?}\ncategory runs:\n{crs}", r.status))
        })
        .await
    }

    /// Waits until a category of run `name` runs (its Pods can take a
    /// while to start on the real node), and returns the run.
    pub async fn wait_category_running(&self, name: &str) -> TestLayerRun {
        self.wait_for(name, Duration::from_secs(90), "a category running", |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.categories.iter().any(|c| c.phase == Phase::Running))
        })
        .await
    }

    /// Waits until the first attempt of `category` of run `run` has ended,
    /// and returns the category's status.
    pub async fn wait_first_attempt_ended(
        &self,
        run: &str,
        category: &str,
        within: Duration,
    ) -> testlayer::api::CategoryRunStatus {
        eventually(within, "the first attempt ended", async || {
            let st = self
                .category(run, category)
                .await
                .status
                .unwrap_or_default();
            match st.attempts.first() {
                Some(a) if a.completion_time.is_some() => Ok(st),
                _ => Err(format!("{st:#?}")),
            }
        })
        .await
    }

    /// Waits until run `name` has ended, and returns it.
    pub async fn wait_done(&self, name: &str, timeout: Duration) -> TestLayerRun {
        self.wait_for(name, timeout, "the end", is_done).await
    }

    /// The shop example as `examples/k8s/run.yaml`'s header gives it, as a
    /// newcomer types it: its ConfigMap, the run applied, and `kubectl
    /// wait` for `Succeeded` up to `timeout`; returns the run.
    pub async fn run_shop_example(&self, timeout: &str) -> TestLayerRun {
        self.kubectl(&[
            "create",
            "configmap",
            "shop-layers",
            "--from-file=test_layers.yaml=examples/shop/testlayer.yaml",
        ])
        .await;
        self.kubectl(&["apply", "-f", "examples/k8s/run.yaml"])
            .await;
        let timeout = format!("--timeout={timeout}");
        self.kubectl(&["wait", "--for=condition=Succeeded", "tlr/shop", &timeout])
            .await;
        self.wait_done("shop", Duration::from_secs(10)).await
    }

    /// Runs `kubectl ARGS` in the fixture's namespace, from the repository
    /// root (where the docs' commands run), and fails with its output.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let mut cmd = self.cp.kubectl();
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["-n", &self.ns])
            .args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("kubectl task")
            .expect("running kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The Helm chart, `charts/testlayer`.
pub fn chart_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/testlayer")
}

/// Runs the `helm` built beside the control plane with `args`, and fails
/// with its output.
pub fn helm(args: &[&str]) -> String {
    let bin = testlayer_testkit::bin_dir().expect("bin dir").join("helm");
    let out = std::process::Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm template RELEASE` of the chart into `namespace`, with the values
/// file `values` (YAML text) if any and `sets`; the rendered text.
pub fn helm_template(
    release: &str,
    namespace: &str,
    values: Option<&str>,
    sets: &[&str],
) -> String {
    let chart = chart_dir();
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut args = vec![
        "template",
        release,
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
    ];
    if let Some(values) = values {
        std::fs::write(file.path(), values).unwrap();
        args.extend(["-f", file.path().to_str().unwrap()]);
    }
    for s in sets {
        args.extend(["--set", s]);
    }
    helm(&args)
}

/// A GET of `path` on 127.0.0.1:`port`: the status code and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        code,
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

/// Waits until a controller serving on `port` answers 200 on `/readyz`.
pub async fn wait_ready(port: u16, what: &str) {
    eventually(Duration::from_secs(20), what, async || {
        let answer = tokio::task::spawn_blocking(move || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()
                .then(|| http_get(port, "/readyz"))
        })
        .await
        .unwrap();
        match answer {
            Some((200, _)) => Ok(()),
            other => Err(format!("not ready: {other:?}")),
        }
    })
    .await;
}

/// `helm template` of the chart with `sets`, which must be refused; Helm's
/// error output.
pub fn helm_refused(sets: &[&str]) -> String {
    let bin = testlayer_testkit::bin_dir().expect("bin dir").join("helm");
    let chart = chart_dir();
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["template", "tl", chart.to_str().unwrap()]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        !out.status.success(),
        "helm template accepted {sets:?}:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop_controller();
    }
}

/// A namespaced API of any kind (`(group, version, kind)`, `plural`), for
/// objects the project has no type for (Flux's, Argo CD's).
pub fn dynamic_api(
    client: &Client,
    ns: &str,
    (group, version, kind): (&str, &str, &str),
    plural: &str,
) -> Api<kube::api::DynamicObject> {
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// Sets `spec.delaySeconds` of trigger `name` in the fixture's namespace.
pub async fn set_trigger_delay(fx: &Fixture, name: &str, seconds: u32) {
    let api: Api<testlayer::api::TestLayerTrigger> = fx.api();
    let patch = json!({"spec": {"delaySeconds": seconds}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap_or_else(|e| panic!("setting the delay of trigger {name}: {e}"));
}

/// The Pods of namespace `ns` whose application containers the real node's
/// containerd runs (asked of containerd, not the apiserver).
pub fn running_in(node: &RealNode, ns: &str) -> Vec<String> {
    node.running_containers()
        .unwrap_or_else(|e| panic!("asking containerd: {e}"))
        .into_iter()
        .filter(|c| c.namespace == ns)
        .map(|c| c.pod)
        .collect()
}

/// Waits until the Pods whose containers run in `ns` on the real node are
/// what `want` accepts.
pub async fn wait_containers(
    node: &RealNode,
    ns: &str,
    within: Duration,
    what: &str,
    want: impl Fn(&[String]) -> bool,
) {
    eventually(within, what, async || {
        let running = running_in(node, ns);
        if want(&running) {
            Ok(())
        } else {
            Err(format!("running: {running:?}"))
        }
    })
    .await;
}
