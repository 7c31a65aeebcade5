//! `testlayer submit`: creates a TestLayerRun in the current kubeconfig
//! context and, with `--wait`, follows it to the end: progress lines, a
//! summary, reports, and an exit code that says whether it passed. Also a
//! kubectl plugin when installed as `kubectl-testlayer`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::{EXIT_BAD_INPUT, OutputFormat};
use crate::api::names::{CASES_KEY, LABEL_SUITE};
use crate::api::{CategoryRun, LayerPhase, TestLayerRun};
use crate::config::Config;
use crate::plan::Phase;
use crate::report::RunReport;
use crate::results::read_case_list;

/// Options of `testlayer submit`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Layer key, e.g. `fast_feedback`; several, comma-separated, are
    /// submitted as a suite (one run per layer, in dependency order).
    #[arg(long, short = 'l', required_unless_present_any = ["rerun_failed", "all"])]
    pub layer: Option<String>,
    /// Submit every layer of the config as a suite.
    #[arg(long, conflicts_with_all = ["layer", "rerun_failed"])]
    pub all: bool,
    /// Run again only what did not pass in this earlier run (same
    /// namespace): its frozen plan, not the config; its passes carried over.
    /// A suite's name reruns every layer of that suite as a new suite.
    #[arg(long, value_name = "RUN", conflicts_with_all = ["layer", "config_map", "env", "image", "command"])]
    pub rerun_failed: Option<String>,
    /// Environment whose overrides apply.
    #[arg(long, short = 'e')]
    pub env: Option<String>,
    /// Layer config file, sent inline (checked here first).
    #[arg(
        long,
        short = 'c',
        default_value = "config/test_layers.yaml",
        conflicts_with = "config_map"
    )]
    pub config: PathBuf,
    /// Use the layer config in this ConfigMap (key `test_layers.yaml`) instead of a file.
    #[arg(long)]
    pub config_map: Option<String>,
    /// Default image of the category Pods.
    #[arg(long)]
    pub image: Option<String>,
    /// Default command template of the category Pods (`{category}`, `{layer}`).
    #[arg(long)]
    pub command: Option<String>,
    /// Name of the run (default: `<layer>-` and a random suffix).
    #[arg(long)]
    pub name: Option<String>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Follow the run to its end and exit 0 only if it passed.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (exit 1; the run goes on).
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Report format on standard output, once the run ended.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Delete the finished run this many seconds after it ends.
    #[arg(long)]
    pub ttl: Option<i64>,
}

/// Runs `submit`; returns the exit code.
pub fn submit(a: &SubmitArgs) -> i32 {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    rt.block_on(submit_async(a))
}

fn spec(a: &SubmitArgs, layer: &str) -> Result<serde_json::Value, String> {
    let config = match &a.config_map {
        Some(cm) => json!({"configMapRef": {"name": cm}}),
        None => {
            let text = std::fs::read_to_string(&a.config)
                .map_err(|e| format!("{}: {e}", a.config.display()))?;
            // Refuse bad config here, with the file's own name in the errors.
            let origin = a.config.display().to_string();
            Config::parse(&text, &origin)
                .and_then(|c| c.resolve(layer, a.env.as_deref()))
                .map_err(|e| {
                    e.0.iter()
                        .map(|l| format!("error: {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                })?;
            json!({"inline": text})
        }
    };
    let mut spec = json!({"layer": layer, "config": config});
    for (k, v) in [
        ("environment", &a.env),
        ("image", &a.image),
        ("command", &a.command),
    ] {
        if let Some(v) = v {
            spec[k] = json!(v);
        }
    }
    if let Some(ttl) = a.ttl {
        spec["ttlSecondsAfterFinished"] = json!(ttl);
    }
    Ok(spec)
}

/// The spec of a rerun of `old` (read from namespace `ns`).
async fn rerun_spec(
    a: &SubmitArgs,
    runs: &Api<TestLayerRun>,
    ns: &str,
    old: &str,
) -> Result<serde_json::Value, String> {
    let found = runs
        .get_opt(old)
        .await
        .map_err(|e| format!("cannot read TestLayerRun {old} in namespace {ns}: {e}"))?
        .ok_or_else(|| {
            format!("--rerun-failed: run {old} not found in namespace {ns} (deleted, perhaps by its TTL)")
        })?;
    let mut spec = json!({"layer": found.spec.layer, "rerunOf": old});
    if let Some(env) = &found.spec.environment {
        spec["environment"] = json!(env);
    }
    if let Some(ttl) = a.ttl {
        spec["ttlSecondsAfterFinished"] = json!(ttl);
    }
    Ok(spec)
}

async fn submit_async(a: &SubmitArgs) -> i32 {
    if a.all || a.layer.as_deref().is_some_and(|l| l.contains(',')) {
        return super::submit_suite::submit_suite(a).await;
    }
    let layer = a.layer.clone().unwrap_or_default();
    let spec = match &a.rerun_failed {
        // Read below, once there is a client.
        Some(_) => Ok(serde_json::Value::Null),
        None => spec(a, &layer),
    };
    let spec = match spec {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "{}",
                if e.starts_with("error:") {
                    e
                } else {
                    format!("error: {e}")
                }
            );
            return EXIT_BAD_INPUT;
        }
    };
    let (client, ns) =
        match super::controller::client_in(a.kubeconfig.as_ref(), a.namespace.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        };
    let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), &ns);
    // A suite's name: rerun the suite.
    if let Some(old) = &a.rerun_failed
        && let Ok(None) = runs.get_opt(old).await
    {
        let lp = ListParams::default().labels(&format!("{LABEL_SUITE}={old}"));
        if let Ok(list) = runs.list(&lp).await
            && !list.items.is_empty()
        {
            return super::submit_suite::rerun_suite(a, client, &ns, old, list.items).await;
        }
    }
    let spec = match &a.rerun_failed {
        None => spec,
        Some(old) => match rerun_spec(a, &runs, &ns, old).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        },
    };
    let mut meta = json!({});
    match (&a.name, &a.rerun_failed) {
        (Some(n), _) => meta["name"] = json!(n),
        (None, Some(old)) => {
            // At most 63 characters in all, with the apiserver's 5.
            let stem: String = old.chars().take(50).collect();
            meta["generateName"] = json!(format!("{}-rerun-", stem.trim_end_matches('-')))
        }
        (None, None) => {
            meta["generateName"] = json!(format!(
                "{}-",
                crate::config::names::slug(&layer).unwrap_or_else(|_| "run".into())
            ))
        }
    }
    let obj = json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun", "metadata": meta, "spec": spec});
    let run: TestLayerRun = match serde_json::from_value(obj) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let created = match runs.create(&PostParams::default(), &run).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot create the TestLayerRun in namespace {ns}: {e}");
            return 1;
        }
    };
    let name = created.name_any();
    eprintln!("testlayerrun.testlayer.dev/{name} created in namespace {ns}");
    if !a.wait {
        println!("{name}");
        return 0;
    }
    follow(a, client, &ns, &name).await
}

async fn follow(a: &SubmitArgs, client: Client, ns: &str, name: &str) -> i32 {
    let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), ns);
    let crs: Api<CategoryRun> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client, ns);
    let start = Instant::now();
    let mut seen: BTreeMap<String, (Phase, u32)> = BTreeMap::new();
    let mut last_progress = None;
    let mut last_stall: Option<String> = None;
    let mut asked = false;
    // Listeners made once, so that a signal that arrives while the loop reads
    // the run is not lost.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    loop {
        let run = match runs.get(name).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot read TestLayerRun {name}: {e}");
                return 1;
            }
        };
        let st = run.status.clone().unwrap_or_default();
        for c in &st.categories {
            let prev = seen.insert(c.name.clone(), (c.phase, c.attempts));
            if prev != Some((c.phase, c.attempts)) && (prev.is_some() || c.phase != Phase::Pending)
            {
                let counts = c
                    .counts
                    .map(|n| {
                        format!(
                            " — {} passed, {} failed, {} skipped",
                            n.passed, n.failed, n.skipped
                        )
                    })
                    .unwrap_or_default();
                let reason = c
                    .reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                eprintln!(
                    "[{:>6.1}s] {}: {}{reason}{counts}",
                    start.elapsed().as_secs_f64(),
                    c.name,
                    c.phase
                );
            }
        }
        if st.categories.is_empty() {
            // A large run lists no category in its status: its counts say
            // how far it got.
            if let Some(line) = progress_line(&st).filter(|l| last_progress.as_ref() != Some(l)) {
                eprintln!("[{:>6.1}s] {line}", start.elapsed().as_secs_f64());
                last_progress = Some(line);
            }
        }
        // A run that cannot go on by itself (shared resources that runs
        // waiting for each other keep, a Pod the apiserver refuses) says
        // why, once.
        let stall = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled" && c.status == "True")
            .map(|c| format!("stalled ({}): {}", c.reason, c.message));
        if let Some(line) = stall.as_ref().filter(|l| last_stall.as_ref() != Some(*l)) {
            eprintln!("[{:>6.1}s] {line}", start.elapsed().as_secs_f64());
        }
        last_stall = stall;
        if st.phase.is_some_and(LayerPhase::is_terminal) {
            let list = match category_runs(&crs, name).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: cannot list the CategoryRuns of {name}: {e}");
                    Vec::new()
                }
            };
            let mut report = testlayer_operator::report::run_report(&run, &list);
            if a.junit.is_some() {
                add_test_cases(&cms, &list, &mut report).await;
            }
            return finish(a, &report);
        }
        if start.elapsed() > Duration::from_secs(a.timeout) {
            eprintln!(
                "error: {name} did not finish within {}s; it goes on in the cluster",
                a.timeout
            );
            return 1;
        }
        let interrupted = tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => false,
            _ = async { match int.as_mut() { Some(i) => { i.recv().await; } None => std::future::pending().await } } => true,
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => true,
        };
        if interrupted && !asked {
            asked = true;
            if confirm_cancel(name) {
                let patch = json!({"spec": {"cancel": true}});
                match runs
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => eprintln!("cancelling {name}; waiting for it to stop"),
                    Err(e) => eprintln!("error: cannot cancel {name}: {e}"),
                }
            } else {
                eprintln!("{name} goes on in the cluster; stopped waiting");
                return 130;
            }
        }
    }
}

/// CategoryRuns listed per request.
const LIST_PAGE: u32 = 500;

/// The test cases of each category's last attempt, from the ConfigMaps
/// that keep them, into `report` (for the JUnit file). A ConfigMap that
/// cannot be read is said; that category keeps one test case of its own.
pub(super) async fn add_test_cases(
    cms: &Api<ConfigMap>,
    list: &[CategoryRun],
    report: &mut RunReport,
) {
    for cr in list {
        let Some(name) = cr
            .status
            .as_ref()
            .and_then(|s| s.attempts.last())
            .and_then(|a| a.test_cases.clone())
        else {
            continue;
        };
        let cases = match cms.get_opt(&name).await {
            Ok(Some(cm)) => cm
                .binary_data
                .as_ref()
                .and_then(|d| d.get(CASES_KEY))
                .map(|b| read_case_list(&b.0))
                .unwrap_or_default(),
            Ok(None) => {
                eprintln!(
                    "warning: ConfigMap {name} (test cases of {}) is gone",
                    cr.spec.category
                );
                continue;
            }
            Err(e) => {
                eprintln!(
                    "warning: cannot read ConfigMap {name} (test cases of {}): {e}",
                    cr.spec.category
                );
                continue;
            }
        };
        if let Some(c) = report
            .categories
            .iter_mut()
            .find(|c| c.name == cr.spec.category)
        {
            c.cases = cases;
        }
    }
}

/// Every CategoryRun of the run `name`, a page at a time (a large run has
/// thousands).
pub(super) async fn category_runs(
    crs: &Api<CategoryRun>,
    name: &str,
) -> Result<Vec<CategoryRun>, kube::Error> {
    let mut lp = ListParams::default()
        .labels(&format!("testlayer.dev/run={name}"))
        .limit(LIST_PAGE);
    let mut all = Vec::new();
    loop {
        let page = crs.list(&lp).await?;
        all.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(all),
        }
    }
}

/// `done/all: N passed, N failed, ...` from a run's counts per phase.
fn progress_line(st: &crate::api::TestLayerRunStatus) -> Option<String> {
    let p = st.phases?;
    let parts: Vec<String> = [
        (p.running, "running"),
        (p.succeeded, "passed"),
        (p.failed, "failed"),
        (p.timed_out, "timed out"),
        (p.cancelled, "cancelled"),
        (p.skipped, "skipped"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, w)| format!("{n} {w}"))
    .collect();
    Some(format!(
        "{}/{} done{}{}",
        p.finished(),
        p.total(),
        if parts.is_empty() { "" } else { ": " },
        parts.join(", ")
    ))
}

/// On a terminal, asks; elsewhere (CI was cancelled) cancels.
fn confirm_cancel(name: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return true;
    }
    eprint!("\ncancel the run {name} too? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

fn finish(a: &SubmitArgs, report: &RunReport) -> i32 {
    super::print_reports(report, a.output, a.junit.as_deref())
}
