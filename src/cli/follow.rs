//! Following a run in the cluster to its end (`submit --wait`, `wait`):
//! through a watch of that one run that survives apiserver restarts and
//! errors (retried with backoff, said once per outage), progress lines as
//! it goes, and at its end the summary, the reports and the exit code.
//! The first Ctrl-C or SIGTERM asks (on a terminal) or cancels the run (in
//! CI); a second one leaves at once, the run going on.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::common::OutputFormat;
use super::history_cluster::{past_run, past_runs};
use super::run_results::{add_test_cases, category_runs};
use super::views::progress::Progress;
use crate::api::{CategoryRun, LayerPhase, TestLayerRun};

/// Exit code when the user stopped waiting.
pub(super) const EXIT_INTERRUPTED: i32 = 130;

/// How a followed run is waited for and reported at its end (the options
/// of `wait`, and of `submit` and `rerun` with `--wait`).
#[derive(Debug, Clone, clap::Args)]
pub struct FollowFlags {
    /// Give up waiting after this many seconds (exit 1; the run goes on).
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Report format on standard output, once the run ended.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

/// Ctrl-C and SIGTERM, made once so that none that arrives between two
/// looks is lost.
struct Interrupts {
    int: Option<Signal>,
    term: Option<Signal>,
}

impl Interrupts {
    fn new() -> Interrupts {
        Interrupts {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) {
        let int = async {
            match self.int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let term = async {
            match self.term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = int => {},
            _ = term => {},
        }
    }
}

/// Follows run `name` in namespace `ns` to its end; returns the exit code.
pub(super) async fn follow(client: Client, ns: &str, name: &str, f: &FollowFlags) -> i32 {
    let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(f.timeout);
    let stamp = || format!("[{:>6.1}s]", start.elapsed().as_secs_f64());
    let mut progress = Progress::default();
    let wc = watcher::Config::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(30);
    let mut events = watcher(runs.clone(), wc).default_backoff().boxed();
    let mut interrupts = Interrupts::new();
    let mut interrupted = 0;
    let mut answer: Option<tokio::task::JoinHandle<bool>> = None;
    let mut outage: Option<Instant> = None;
    let mut listed_it = false;
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                None => {
                    eprintln!("error: the watch of {name} ended");
                    return 1;
                }
                Some(Err(e)) => {
                    if outage.is_none() {
                        eprintln!("{} cannot watch {name} ({e}); trying again", stamp());
                        outage = Some(Instant::now());
                    }
                    continue;
                }
                Some(Ok(ev)) => {
                    if let Some(since) = outage.take() {
                        eprintln!("{} watching {name} again after {:.0}s", stamp(), since.elapsed().as_secs_f64());
                    }
                    match ev {
                        watcher::Event::Init => { listed_it = false; continue; }
                        watcher::Event::InitDone if !listed_it => {
                            eprintln!("error: TestLayerRun {name} not found in namespace {ns}");
                            return 1;
                        }
                        watcher::Event::InitDone => continue,
                        watcher::Event::Delete(_) => {
                            eprintln!("error: TestLayerRun {name} was deleted before it ended");
                            return 1;
                        }
                        watcher::Event::Apply(run) | watcher::Event::InitApply(run) => {
                            listed_it = true;
                            let st = run.status.clone().unwrap_or_default();
                            for line in progress.lines(&st) {
                                eprintln!("{} {line}", stamp());
                            }
                            if st.phase.is_some_and(LayerPhase::is_terminal) {
                                return finish(client, ns, &run, f).await;
                            }
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                eprintln!("error: {name} did not finish within {}s; it goes on in the cluster", f.timeout);
                return 1;
            }
            _ = interrupts.next() => {
                interrupted += 1;
                if interrupted > 1 {
                    eprintln!("\n{name} goes on in the cluster; stopped waiting");
                    return EXIT_INTERRUPTED;
                }
                if std::io::stdin().is_terminal() {
                    eprint!("\ncancel the run {name} too? [y/N] (Ctrl-C again to leave) ");
                    let _ = std::io::stderr().flush();
                    answer = Some(tokio::task::spawn_blocking(read_yes));
                } else {
                    // CI was cancelled: the run is cancelled too.
                    cancel(&runs, name).await;
                }
                continue;
            }
            yes = async { answer.as_mut().expect("guarded").await }, if answer.is_some() => {
                answer = None;
                if yes.unwrap_or(false) {
                    cancel(&runs, name).await;
                    continue;
                }
                eprintln!("{name} goes on in the cluster; stopped waiting");
                return EXIT_INTERRUPTED;
            }
        }
    }
}

fn read_yes() -> bool {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

async fn cancel(runs: &Api<TestLayerRun>, name: &str) {
    let patch = json!({"spec": {"cancel": true}});
    match runs
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => eprintln!("cancelling {name}; waiting for it to stop (Ctrl-C again to leave)"),
        Err(e) => eprintln!("error: cannot cancel {name}: {e}"),
    }
}

/// The summary and reports of run `run`, which ended; its exit code.
async fn finish(client: Client, ns: &str, run: &TestLayerRun, f: &FollowFlags) -> i32 {
    let name = kube::ResourceExt::name_any(run);
    let crs: Api<CategoryRun> = Api::namespaced(client.clone(), ns);
    let list = match category_runs(&crs, &name).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot list the CategoryRuns of {name}: {e}");
            Vec::new()
        }
    };
    let mut report = testlayer_operator::report::run_report(run, &list);
    if f.junit.is_some() {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        add_test_cases(&cms, &list, &mut report).await;
    }
    let code = super::common::print_reports(&report, f.output, f.junit.as_deref());
    flaky_note(&client, ns, run, &list).await;
    code
}

/// Says on stderr which of `run`'s failing or flaky tests were flaky across
/// the last runs of its layer that the namespace keeps (nothing when they
/// cannot be read: the note is a help, not the result).
async fn flaky_note(client: &Client, ns: &str, run: &TestLayerRun, crs: &[CategoryRun]) {
    use super::trend_view::{NOTE_AT_LEAST, NOTE_RUNS, flaky_note};
    let now = past_run(run, crs);
    if now.failed.is_empty() && now.flaky.is_empty() {
        return;
    }
    let name = kube::ResourceExt::name_any(run);
    match past_runs(client, ns, &run.spec.layer, NOTE_RUNS, Some(&name)).await {
        Ok(earlier) => {
            let (named, looked) =
                crate::trend::flaky_across(&now, &earlier, NOTE_RUNS, NOTE_AT_LEAST);
            if let Some(note) = flaky_note(&named, looked) {
                eprint!("{note}");
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot read the earlier runs for the flaky note"),
    }
}
