//! `testlayer list`: the runs of a namespace (or of all, `-A`), as a table;
//! `-l` selects by labels, `-w` goes on printing each run that changes.

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};

use super::cluster_args::{Target, with_client};
use super::views::table::{headers, render, row};
use crate::api::TestLayerRun;

/// Options of `testlayer list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
    /// Runs of every namespace.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// Label selector, e.g. `testlayer.dev/suite=nightly`.
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// After the table, print each run again as it changes (Ctrl-C ends).
    #[arg(long, short = 'w')]
    pub watch: bool,
}

/// Runs `list`; returns the exit code.
pub fn list(a: &ListArgs) -> i32 {
    with_client(&a.target, |client, ns| async move {
        let api: Api<TestLayerRun> = if a.all_namespaces {
            Api::all(client)
        } else {
            Api::namespaced(client, &ns)
        };
        let mut lp = ListParams::default();
        if let Some(s) = &a.selector {
            lp = lp.labels(s);
        }
        let mut runs = match api.list(&lp).await {
            Ok(l) => l.items,
            Err(e) => {
                eprintln!("error: cannot list TestLayerRuns: {e}");
                return 1;
            }
        };
        // Newest first, as people look for the run they just made.
        runs.sort_by(|a, b| {
            b.metadata
                .creation_timestamp
                .cmp(&a.metadata.creation_timestamp)
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
        let now = Timestamp::now();
        let rows: Vec<Vec<String>> = runs.iter().map(|r| row(r, a.all_namespaces, now)).collect();
        if rows.is_empty() && !a.watch {
            let place = if a.all_namespaces {
                "any namespace".to_string()
            } else {
                format!("namespace {ns}")
            };
            eprintln!("No TestLayerRuns in {place}.");
            return 0;
        }
        print!("{}", render(&headers(a.all_namespaces), &rows));
        if !a.watch {
            return 0;
        }
        let mut wc = watcher::Config::default();
        if let Some(s) = &a.selector {
            wc = wc.labels(s);
        }
        let mut changes = watcher(api, wc).default_backoff().applied_objects().boxed();
        let mut seen: std::collections::BTreeMap<(String, String), Vec<String>> = runs
            .iter()
            .map(|r| {
                (
                    (r.namespace().unwrap_or_default(), r.name_any()),
                    row(r, a.all_namespaces, now),
                )
            })
            .collect();
        loop {
            tokio::select! {
                change = changes.next() => match change {
                    Some(Ok(r)) => {
                        let now = Timestamp::now();
                        let cells = row(&r, a.all_namespaces, now);
                        let key = (r.namespace().unwrap_or_default(), r.name_any());
                        // The AGE column alone changing is no change.
                        let age = headers(a.all_namespaces).iter().position(|h| *h == "AGE");
                        let same = seen.get(&key).is_some_and(|old| {
                            old.iter().zip(&cells).enumerate().all(|(i, (x, y))| Some(i) == age || x == y)
                        });
                        if !same {
                            let table = render(&headers(a.all_namespaces), std::slice::from_ref(&cells));
                            // The row alone, aligned on its own.
                            print!("{}", table.lines().nth(1).map(|l| format!("{l}\n")).unwrap_or_default());
                            seen.insert(key, cells);
                        }
                    }
                    Some(Err(e)) => eprintln!("warning: watching TestLayerRuns: {e}; trying again"),
                    None => return 1,
                },
                _ = tokio::signal::ctrl_c() => return 0,
            }
        }
    })
}
