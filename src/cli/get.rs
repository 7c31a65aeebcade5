//! `testlayer get RUN`: one run as a tree of its categories and their
//! attempts (phase, reason, duration, counts, failing tests), or as the
//! stored objects (`-o yaml|json`: the run and its CategoryRuns).

use clap::ValueEnum;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use super::cluster_args::{Target, with_client};
use super::run_results::category_runs;
use super::views::line::Lines;
use super::views::tree::render;
use crate::api::{CategoryRun, TestLayerResource, TestLayerRun};

/// How `get` shows a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GetFormat {
    /// A tree: the run, its categories, their attempts.
    Tree,
    /// The run and its CategoryRuns as a YAML List.
    Yaml,
    /// The run and its CategoryRuns as a JSON List.
    Json,
}

/// Options of `testlayer get`.
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// The run (TestLayerRun name).
    pub run: String,
    #[command(flatten)]
    pub target: Target,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = GetFormat::Tree)]
    pub output: GetFormat,
}

/// Runs `get`; returns the exit code.
pub fn get(a: &GetArgs) -> i32 {
    with_client(&a.target, |client, ns| async move {
        let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), &ns);
        let run = match runs.get_opt(&a.run).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                eprintln!("error: TestLayerRun {} not found in namespace {ns}", a.run);
                return 1;
            }
            Err(e) => {
                eprintln!("error: cannot read TestLayerRun {}: {e}", a.run);
                return 1;
            }
        };
        let crs: Api<CategoryRun> = Api::namespaced(client.clone(), &ns);
        let list = match category_runs(&crs, &a.run).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot list the CategoryRuns of {}: {e}", a.run);
                return 1;
            }
        };
        match a.output {
            GetFormat::Tree => {
                let lines = lines(client, &ns).await;
                print!("{}", render(&run, &list, &lines, Timestamp::now()))
            }
            GetFormat::Yaml | GetFormat::Json => {
                let mut items = vec![serde_json::to_value(&run).unwrap_or_default()];
                items.extend(
                    list.iter()
                        .map(|c| serde_json::to_value(c).unwrap_or_default()),
                );
                let doc = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
                let text = if a.output == GetFormat::Json {
                    serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())
                } else {
                    serde_yaml::to_string(&doc).map_err(|e| e.to_string())
                };
                match text {
                    Ok(t) => println!("{}", t.trim_end()),
                    Err(e) => {
                        eprintln!("error: cannot write the run: {e}");
                        return 1;
                    }
                }
            }
        }
        0
    })
}

/// The lines of the shared resources of namespace `ns`, as their statuses
/// say; none when they cannot be read (a user who may not list them sees
/// what each claim says, without its place).
async fn lines(client: kube::Client, ns: &str) -> Lines {
    let api: Api<TestLayerResource> = Api::namespaced(client, ns);
    match api.list(&Default::default()).await {
        Ok(list) => Lines(
            list.items
                .into_iter()
                .filter_map(|r| Some((kube::ResourceExt::name_any(&r), r.status?)))
                .collect(),
        ),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the shared resources' lines");
            Lines::default()
        }
    }
}
