//! `testlayer logs RUN [CATEGORY]`: the output of a run's attempts, read
//! from their Pods (`-f`: live, each new attempt's Pod joined as it starts,
//! lines of several prefixed `[category#attempt]`), or, once a Pod is gone,
//! the end of its log that its CategoryRun keeps, said as such.

use std::collections::BTreeSet;

use futures::StreamExt;
use futures::io::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::cluster_args::{Target, with_client};
use super::follow::EXIT_INTERRUPTED;
use super::run_results::category_runs;
use super::views::logs::{Source, choose};
use crate::api::names::LABEL_RUN;
use crate::api::{CategoryRun, LayerPhase, TestLayerRun};

/// Options of `testlayer logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// The run (TestLayerRun name).
    pub run: String,
    /// Only this category (default: every category).
    pub category: Option<String>,
    #[command(flatten)]
    pub target: Target,
    /// Follow: stream the logs as they are written, joining each attempt
    /// as it starts, until the run ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// This attempt (1-based) instead of the last.
    #[arg(long)]
    pub attempt: Option<u32>,
    /// Every attempt, not only the last.
    #[arg(long, conflicts_with = "attempt")]
    pub all: bool,
}

/// One line for standard output, or a note for standard error.
enum Out {
    Line(String),
    Note(String),
}

/// Runs `logs`; returns the exit code.
pub fn logs(a: &LogsArgs) -> i32 {
    with_client(&a.target, |client, ns| async move {
        let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), &ns);
        match runs.get_opt(&a.run).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                eprintln!("error: TestLayerRun {} not found in namespace {ns}", a.run);
                return 1;
            }
            Err(e) => {
                eprintln!("error: cannot read TestLayerRun {}: {e}", a.run);
                return 1;
            }
        }
        let crs: Api<CategoryRun> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        // Lines of several logs are prefixed; of one category's one attempt not.
        let prefixed = a.category.is_none() || a.all;
        if a.follow {
            follow_logs(a, &runs, &crs, &pods, prefixed).await
        } else {
            print_logs(a, &crs, &pods, prefixed).await
        }
    })
}

async fn sources(a: &LogsArgs, crs: &Api<CategoryRun>) -> Result<Vec<Source>, String> {
    let list = category_runs(crs, &a.run)
        .await
        .map_err(|e| format!("cannot list the CategoryRuns of {}: {e}", a.run))?;
    choose(&a.run, &list, a.category.as_deref(), a.attempt, a.all)
}

async fn print_logs(a: &LogsArgs, crs: &Api<CategoryRun>, pods: &Api<Pod>, prefixed: bool) -> i32 {
    let sources = match sources(a, crs).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if sources.is_empty() {
        eprintln!(
            "{}: no attempt has started yet (testlayer logs -f waits for them)",
            a.run
        );
        return 0;
    }
    let mut code = 0;
    for s in &sources {
        let prefix = if prefixed { s.prefix() } else { String::new() };
        match pods.logs(&s.pod, &LogParams::default()).await {
            Ok(text) => {
                for l in text.lines() {
                    println!("{prefix}{l}");
                }
            }
            Err(e) => match gone(s, &e) {
                Some(outs) => {
                    for o in outs {
                        match o {
                            Out::Line(l) => println!("{prefix}{l}"),
                            Out::Note(n) => eprintln!("{prefix}{n}"),
                        }
                    }
                }
                None => {
                    eprintln!("error: cannot read the log of Pod {}: {e}", s.pod);
                    code = 1;
                }
            },
        }
    }
    code
}

/// What is shown of `s` when reading its Pod's log failed with `e`: the
/// kept end of its log once the Pod is gone, a note while its container
/// has not started; `None` for any other failure.
fn gone(s: &Source, e: &kube::Error) -> Option<Vec<Out>> {
    let kube::Error::Api(status) = e else {
        return None;
    };
    match status.code {
        404 => {
            let mut out = vec![Out::Note(match &s.kept {
                Some(_) => format!(
                    "(Pod {} is gone: the end of its log, as its CategoryRun keeps it)",
                    s.pod
                ),
                None => format!("(Pod {} is gone and no log of it was kept)", s.pod),
            })];
            out.extend(
                s.kept
                    .iter()
                    .flat_map(|k| k.lines().map(|l| Out::Line(l.to_string()))),
            );
            Some(out)
        }
        400 => Some(vec![Out::Note(format!(
            "(Pod {} has not started its container yet: {})",
            s.pod, status.message
        ))]),
        _ => None,
    }
}

/// Streams the log of `s` into `tx` until its container ends, waiting for
/// it to start; the kept end once its Pod is gone.
async fn stream_one(pods: Api<Pod>, s: Source, prefix: String, tx: UnboundedSender<Out>) {
    let lp = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut waited = false;
    loop {
        match pods.log_stream(&s.pod, &lp).await {
            Ok(stream) => {
                let mut lines = stream.lines();
                while let Some(line) = lines.next().await {
                    match line {
                        Ok(l) => {
                            let _ = tx.send(Out::Line(format!("{prefix}{l}")));
                        }
                        Err(e) => {
                            let _ =
                                tx.send(Out::Note(format!("{prefix}(the log stream broke: {e})")));
                            break;
                        }
                    }
                }
                return;
            }
            Err(kube::Error::Api(st)) if st.code == 400 => {
                // Its container has not started: look again shortly.
                if !waited {
                    waited = true;
                    let _ = tx.send(Out::Note(format!(
                        "{prefix}(waiting for Pod {} to start)",
                        s.pod
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => {
                for o in gone(&s, &e).unwrap_or_else(|| {
                    vec![Out::Note(format!(
                        "(cannot read the log of Pod {}: {e})",
                        s.pod
                    ))]
                }) {
                    let _ = tx.send(match o {
                        Out::Line(l) => Out::Line(format!("{prefix}{l}")),
                        Out::Note(n) => Out::Note(format!("{prefix}{n}")),
                    });
                }
                return;
            }
        }
    }
}

async fn follow_logs(
    a: &LogsArgs,
    runs: &Api<TestLayerRun>,
    crs: &Api<CategoryRun>,
    pods: &Api<Pod>,
    prefixed: bool,
) -> i32 {
    let (tx, mut rx) = unbounded_channel::<Out>();
    let mut streams = tokio::task::JoinSet::new();
    let mut started: BTreeSet<(String, u32)> = BTreeSet::new();
    let mut cr_changes = watcher(
        crs.clone(),
        watcher::Config::default().labels(&format!("{LABEL_RUN}={}", a.run)),
    )
    .default_backoff()
    .boxed();
    let mut run_changes = watcher(
        runs.clone(),
        watcher::Config::default().fields(&format!("metadata.name={}", a.run)),
    )
    .default_backoff()
    .applied_objects()
    .boxed();
    let mut ended = false;
    loop {
        // Every attempt that has a Pod by now, joined once.
        match sources(a, crs).await {
            Ok(sources) => {
                for s in sources {
                    if started.insert((s.category.clone(), s.attempt)) {
                        let prefix = if prefixed { s.prefix() } else { String::new() };
                        streams.spawn(stream_one(pods.clone(), s, prefix, tx.clone()));
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
        if ended && streams.is_empty() {
            // Lines still queued are printed before leaving.
            while let Ok(o) = rx.try_recv() {
                show(o);
            }
            return 0;
        }
        tokio::select! {
            Some(o) = rx.recv() => { show(o); continue; }
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
            Some(_) = cr_changes.next() => {}
            Some(r) = run_changes.next() => {
                if let Ok(r) = r {
                    ended = r.status.and_then(|s| s.phase).is_some_and(LayerPhase::is_terminal);
                }
            }
            _ = tokio::signal::ctrl_c() => return EXIT_INTERRUPTED,
        }
    }
}

fn show(o: Out) {
    match o {
        Out::Line(l) => println!("{l}"),
        Out::Note(n) => eprintln!("{n}"),
    }
}
