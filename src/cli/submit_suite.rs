//! `testlayer submit --all` and `submit -l a,b,c`: one TestLayerRun per
//! layer, labelled with a common suite name (`testlayer.dev/suite`) and the
//! suite's layers (`testlayer.dev/suite-layers`), so that their layer
//! dependencies gate on each other, not on other runs of those layers;
//! followed together to one summary, one exit code and one JUnit file.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::common::{EXIT_BAD_INPUT, OutputFormat};
use super::run_results::{add_test_cases, category_runs};
use super::submit_args::SubmitArgs;
use super::suite::suite_line;
use crate::api::names::{ANNOTATION_SUITE_LAYERS, LABEL_SUITE};
use crate::api::{CategoryRun, LayerPhase, TestLayerRun};
use crate::config::Config;
use crate::plan::LayerOutcome;
use crate::plan::suite::{LayerEnding, LayerState, Suite, SuiteLayer, SuiteOutcome};
use crate::report::{RunReport, SuiteJunitLayer, SuiteLayerReport, SuiteReport, suite_junit};
use crate::words::Reason;
/// Longest name of a Kubernetes object that is also a label value.
const MAX_NAME: usize = 63;

/// The suite to submit: its name and, in dependency order, each layer's key,
/// run name and whether it is in the background.
struct Planned {
    name: String,
    suite: Suite,
    runs: Vec<String>,
    text: String,
}

fn plan(a: &SubmitArgs) -> Result<Planned, String> {
    if a.config_map.is_some() {
        return Err(
            "a suite is submitted from a config file (-c), which is checked here and sent inline"
                .into(),
        );
    }
    let origin = a.config.display().to_string();
    let text = std::fs::read_to_string(&a.config)
        .map_err(|e| format!("{origin}: cannot read the file: {e}"))?;
    let config = Config::parse(&text, &origin).map_err(|e| e.to_string())?;
    let keys = super::common::suite_keys(a.all, a.layer.as_deref(), &config);
    let mut layers = Vec::new();
    let mut problems = Vec::new();
    for key in &keys {
        match config.resolve_with(key, a.env.as_deref(), &a.overrides.to_overrides()) {
            Ok(p) => layers.push(SuiteLayer {
                key: p.settings.key.clone(),
                dependencies: p.settings.dependencies.clone(),
                background: p.settings.background(),
            }),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let suite = Suite::new(layers).map_err(|e| format!("-l: {e}"))?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => format!("suite-{}", super::common::random_hex()),
    };
    let mut runs = Vec::new();
    for l in suite.layers() {
        let slug = crate::config::names::slug(&l.key).unwrap_or_else(|_| "layer".into());
        let run = format!("{name}-{slug}");
        if run.len() > MAX_NAME {
            return Err(format!(
                "--name: run name {run:?} is over {MAX_NAME} characters; choose a shorter suite name"
            ));
        }
        runs.push(run);
    }
    Ok(Planned {
        name,
        suite,
        runs,
        text,
    })
}

/// Creates the suite's runs and, with `--wait`, follows them; returns the
/// exit code.
pub(super) async fn submit_suite(a: &SubmitArgs) -> i32 {
    let planned = match plan(a) {
        Ok(p) => p,
        Err(e) => {
            for line in e.lines() {
                eprintln!(
                    "{}",
                    if line.starts_with("error") {
                        line.to_string()
                    } else {
                        format!("error: {line}")
                    }
                );
            }
            return EXIT_BAD_INPUT;
        }
    };
    super::common::note_outside(&planned.suite);
    let (client, ns) =
        match super::controller::client_in(a.kubeconfig.as_ref(), a.namespace.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        };
    let specs: Vec<serde_json::Value> = planned
        .suite
        .layers()
        .iter()
        .map(|l| {
            let mut spec = json!({"layer": l.key, "config": {"inline": planned.text}});
            for (k, v) in [
                ("environment", &a.env),
                ("image", &a.image),
                ("command", &a.command),
            ] {
                if let Some(v) = v {
                    spec[k] = json!(v);
                }
            }
            if let Some(o) = a.overrides.to_spec() {
                spec["overrides"] = o;
            }
            spec
        })
        .collect();
    create_and_follow(a, client, &ns, &planned, specs).await
}

/// Creates the suite's runs (`specs`, in its order, with the suite's label
/// and annotation) and, with `--wait`, follows them; returns the exit code.
async fn create_and_follow(
    a: &SubmitArgs,
    client: Client,
    ns: &str,
    planned: &Planned,
    specs: Vec<serde_json::Value>,
) -> i32 {
    let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), ns);
    let keys: Vec<&str> = planned
        .suite
        .layers()
        .iter()
        .map(|l| l.key.as_str())
        .collect();
    for (mut spec, run_name) in specs.into_iter().zip(&planned.runs) {
        if let Some(ttl) = a.ttl {
            spec["ttlSecondsAfterFinished"] = json!(ttl);
        }
        let mut labels = a.label_map();
        labels.insert(LABEL_SUITE.to_string(), json!(planned.name));
        let obj = json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": run_name,
                "labels": labels,
                "annotations": {ANNOTATION_SUITE_LAYERS: keys.join(",")}},
            "spec": spec});
        let run: TestLayerRun = match serde_json::from_value(obj) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        };
        if let Err(e) = runs.create(&PostParams::default(), &run).await {
            eprintln!("error: cannot create TestLayerRun {run_name} in namespace {ns}: {e}");
            return 1;
        }
        eprintln!("testlayerrun.testlayer.dev/{run_name} created in namespace {ns}");
    }
    if !a.wait {
        println!("{}", planned.name);
        return 0;
    }
    follow(a, client, ns, planned).await
}

/// `--rerun-failed SUITE`: a new suite whose every run reruns what did not
/// pass in the old suite's run of its layer (`spec.rerunOf`), gating on each
/// other as the old ones did.
pub(super) async fn rerun_suite(
    a: &SubmitArgs,
    client: Client,
    ns: &str,
    old: &str,
    old_runs: Vec<TestLayerRun>,
) -> i32 {
    let mut layers = Vec::new();
    let mut of = BTreeMap::new();
    for r in &old_runs {
        let st = r.status.clone().unwrap_or_default();
        if !st.phase.is_some_and(|p| p.is_terminal()) {
            eprintln!(
                "error: --rerun-failed: run {} of suite {old} has not finished",
                r.name_any()
            );
            return EXIT_BAD_INPUT;
        }
        let plan = st.plan.as_ref();
        layers.push(SuiteLayer {
            key: r.spec.layer.clone(),
            dependencies: plan
                .map(|p| p.layer_dependencies.clone())
                .unwrap_or_default(),
            background: plan.is_some_and(|p| p.background) || r.spec.background,
        });
        of.insert(
            r.spec.layer.clone(),
            (r.name_any(), r.spec.environment.clone()),
        );
    }
    let suite = match Suite::new(layers) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --rerun-failed: suite {old}: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let name = match &a.name {
        Some(n) => n.clone(),
        None => {
            let stem: String = old.chars().take(30).collect();
            format!(
                "{}-rerun-{}",
                stem.trim_end_matches('-'),
                super::common::random_hex()
            )
        }
    };
    let mut runs = Vec::new();
    let mut specs = Vec::new();
    for l in suite.layers() {
        let slug = crate::config::names::slug(&l.key).unwrap_or_else(|_| "layer".into());
        let run = format!("{name}-{slug}");
        if run.len() > MAX_NAME {
            eprintln!(
                "error: --name: run name {run:?} is over {MAX_NAME} characters; choose a shorter suite name"
            );
            return EXIT_BAD_INPUT;
        }
        runs.push(run);
        let (old_run, env) = of[&l.key].clone();
        let mut spec = json!({"layer": l.key, "rerunOf": old_run});
        if let Some(env) = env {
            spec["environment"] = json!(env);
        }
        specs.push(spec);
    }
    let planned = Planned {
        name,
        suite,
        runs,
        text: String::new(),
    };
    create_and_follow(a, client, ns, &planned, specs).await
}

/// How a suite's run ended, as the suite's rule reads it: its phase, and
/// for a run whose dependency gate failed (`DependencyFailed`), that it did
/// not start because a dependency did not pass (so that one whose
/// dependency was cancelled is Cancelled with it, as locally).
fn ending(run: &TestLayerRun) -> Option<LayerEnding> {
    let st = run.status.as_ref()?;
    let outcome = match st.phase? {
        LayerPhase::Succeeded => LayerOutcome::Succeeded,
        LayerPhase::TimedOut => LayerOutcome::TimedOut,
        LayerPhase::Cancelled => LayerOutcome::Cancelled,
        LayerPhase::Failed => LayerOutcome::Failed,
        _ => return None,
    };
    let gate_failed = st.conditions.iter().any(|c| {
        c.type_ == "Succeeded"
            && c.status == "False"
            && c.reason == Reason::DependencyFailed.as_str()
    });
    Some(if outcome == LayerOutcome::Failed && gate_failed {
        LayerEnding::DependencyNotPassed(None)
    } else {
        LayerEnding::Ran(outcome)
    })
}

/// Follows the suite's runs: a line per change of a run's phase, the
/// blocking layers' summaries and the suite line as soon as they all
/// ended, then the background layers'; with `-o json`, one suite report
/// at the end. The outcome and exit code follow the suite's rule, as
/// locally: 0 every layer not in the background passed, 130 one was
/// cancelled (Ctrl-C, SIGTERM, or a cancel of its run), else 1.
async fn follow(a: &SubmitArgs, client: Client, ns: &str, planned: &Planned) -> i32 {
    let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), ns);
    let crs: Api<CategoryRun> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client, ns);
    let suite = &planned.suite;
    let layers = suite.layers();
    let start = Instant::now();
    let colour = std::io::stdout().is_terminal();
    let text_output = a.follow.output == OutputFormat::Text;
    let mut seen: BTreeMap<String, LayerPhase> = BTreeMap::new();
    let mut reports: Vec<Option<RunReport>> = layers.iter().map(|_| None).collect();
    let mut endings: Vec<Option<LayerEnding>> = layers.iter().map(|_| None).collect();
    let mut told = false;
    let mut cancelled = false;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    // The suite's runs, followed through a watch: errors are retried with
    // backoff and said once per outage; a relist replaces what is known.
    let wc = watcher::Config::default()
        .labels(&format!("{LABEL_SUITE}={}", planned.name))
        .timeout(30);
    let mut events = watcher(runs.clone(), wc).default_backoff().boxed();
    let mut by_name: BTreeMap<String, TestLayerRun> = BTreeMap::new();
    let mut relisted: BTreeMap<String, TestLayerRun> = BTreeMap::new();
    let mut outage: Option<Instant> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.follow.timeout);
    let states = loop {
        for (i, name) in planned.runs.iter().enumerate() {
            let Some(run) = by_name.get(name) else {
                continue;
            };
            let st = run.status.clone().unwrap_or_default();
            let Some(phase) = st.phase else { continue };
            if seen.insert(name.clone(), phase) != Some(phase) {
                eprintln!(
                    "[{:>6.1}s] {}: {}{}",
                    start.elapsed().as_secs_f64(),
                    layers[i].key,
                    phase.as_str(),
                    st.message
                        .as_deref()
                        .map(|m| format!(" — {m}"))
                        .unwrap_or_default()
                );
            }
            if phase.is_terminal() && reports[i].is_none() {
                let list = category_runs(&crs, name).await.unwrap_or_default();
                let mut report = testlayer_operator::report::run_report(run, &list);
                if a.follow.junit.is_some() {
                    add_test_cases(&cms, &list, &mut report).await;
                }
                reports[i] = Some(report);
                endings[i] = ending(run);
            }
        }
        let states = suite.states(&endings);
        if !told && suite.blocking_done(&states) {
            told = true;
            if text_output {
                for (l, r) in layers.iter().zip(&reports) {
                    if let (false, Some(r)) = (l.background, r) {
                        print!("{}", r.summary(colour));
                    }
                }
                println!(
                    "suite {}: {} — {}",
                    planned.name,
                    SuiteOutcome::of(suite, &states).word(),
                    suite_line(suite, &states, false)
                );
            }
            let waiting: Vec<&str> = layers
                .iter()
                .zip(&reports)
                .filter(|(l, r)| l.background && r.is_none())
                .map(|(l, _)| l.key.as_str())
                .collect();
            if !waiting.is_empty() {
                eprintln!(
                    "waiting for background layers: {} (Ctrl-C cancels them)",
                    waiting.join(", ")
                );
            }
        }
        if states.iter().all(LayerState::is_done) {
            break states;
        }
        let interrupted = tokio::select! {
            ev = events.next() => {
                match ev {
                    None => {
                        eprintln!("error: the watch of suite {} ended", planned.name);
                        return 1;
                    }
                    Some(Err(e)) => {
                        if outage.is_none() {
                            eprintln!("cannot watch the runs of suite {} ({e}); trying again", planned.name);
                            outage = Some(Instant::now());
                        }
                    }
                    Some(Ok(ev)) => {
                        if let Some(since) = outage.take() {
                            eprintln!("watching the runs of suite {} again after {:.0}s", planned.name, since.elapsed().as_secs_f64());
                        }
                        match ev {
                            watcher::Event::Init => relisted.clear(),
                            watcher::Event::InitApply(r) => {
                                relisted.insert(r.name_any(), r);
                            }
                            watcher::Event::InitDone => by_name = std::mem::take(&mut relisted),
                            watcher::Event::Apply(r) => {
                                by_name.insert(r.name_any(), r);
                            }
                            watcher::Event::Delete(r) => {
                                by_name.remove(&r.name_any());
                            }
                        }
                    }
                }
                false
            }
            _ = tokio::time::sleep_until(deadline) => {
                eprintln!(
                    "error: suite {} did not finish within {}s; it goes on in the cluster",
                    planned.name, a.follow.timeout
                );
                return 1;
            }
            _ = async { match int.as_mut() { Some(i) => { i.recv().await; } None => std::future::pending().await } } => true,
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => true,
        };
        // A second Ctrl-C (or SIGTERM) leaves at once; the runs stop in
        // the cluster.
        if interrupted && cancelled {
            eprintln!(
                "leaving; suite {} is being cancelled in the cluster",
                planned.name
            );
            return 130;
        }
        if interrupted && !cancelled {
            cancelled = true;
            let patch = json!({"spec": {"cancel": true}});
            for (name, r) in planned.runs.iter().zip(&reports) {
                if r.is_none()
                    && let Err(e) = runs
                        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                {
                    eprintln!("error: cannot cancel {name}: {e}");
                }
            }
            eprintln!(
                "cancelling suite {}; waiting for its runs to stop",
                planned.name
            );
        }
    };
    if text_output && layers.iter().any(|l| l.background) {
        println!("background layers (not in the outcome):");
        for (l, r) in layers.iter().zip(&reports) {
            if let (true, Some(r)) = (l.background, r) {
                print!("{}", r.summary(colour));
            }
        }
        println!("background: {}", suite_line(suite, &states, true));
    }
    if let Some(path) = &a.follow.junit {
        let junit: Vec<SuiteJunitLayer> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| SuiteJunitLayer {
                key: &l.key,
                background: l.background,
                state: &states[i],
                report: reports[i].as_ref(),
                categories: &[],
                error: None,
            })
            .collect();
        match suite_junit(&junit) {
            Ok(xml) => {
                if let Err(e) = std::fs::write(path, xml) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("error: cannot make the JUnit report: {e}"),
        }
    }
    let outcome = SuiteOutcome::of(suite, &states);
    if a.follow.output == OutputFormat::Json {
        let json = SuiteReport {
            suite: Some(planned.name.clone()),
            outcome: outcome.word().into(),
            rerun_of: None,
            layers: layers
                .iter()
                .zip(&planned.runs)
                .zip(states.iter().zip(reports))
                .map(|((l, run), (s, report))| SuiteLayerReport {
                    layer: l.key.clone(),
                    run: Some(run.clone()),
                    background: l.background,
                    state: s.word().into(),
                    skipped_because: match s {
                        LayerState::Skipped(d) => Some(d.clone()),
                        _ => None,
                    },
                    error: None,
                    report,
                })
                .collect(),
            plan: None,
        };
        match serde_json::to_string_pretty(&json) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot write the JSON report: {e}"),
        }
    }
    outcome.exit_code()
}
