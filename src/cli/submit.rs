//! `testlayer submit`: creates a TestLayerRun in the current kubeconfig
//! context and, with `--wait`, follows it to the end: progress lines, a
//! summary, reports, and an exit code that says whether it passed. Also a
//! kubectl plugin when installed as `kubectl-testlayer`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::common::EXIT_BAD_INPUT;
use crate::api::names::LABEL_SUITE;
use crate::api::{CategoryRun, LayerPhase, TestLayerRun};
use crate::cli::run_results::add_test_cases;
use crate::cli::run_results::category_runs;
use crate::cli::submit_args::SubmitArgs;
use crate::config::Config;
use crate::plan::Phase;
use crate::report::RunReport;

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
    super::common::print_reports(report, a.output, a.junit.as_deref())
}
