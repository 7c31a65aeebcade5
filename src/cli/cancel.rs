//! `testlayer cancel RUN... | --suite S`: asks the controller to stop runs
//! (`spec.cancel`); running attempts get their grace period, the runs end
//! `Cancelled`.

use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::cluster_args::{Target, with_client};
use super::common::EXIT_BAD_INPUT;
use crate::api::names::LABEL_SUITE;
use crate::api::{LayerPhase, TestLayerRun};

/// Options of `testlayer cancel`.
#[derive(Debug, Clone, clap::Args)]
pub struct CancelArgs {
    /// The runs to cancel (TestLayerRun names).
    #[arg(required_unless_present = "suite", conflicts_with = "suite")]
    pub runs: Vec<String>,
    /// Cancel every run of this suite.
    #[arg(long)]
    pub suite: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

/// Runs `cancel`; returns the exit code (1 if a run could not be cancelled).
pub fn cancel(a: &CancelArgs) -> i32 {
    with_client(&a.target, |client, ns| async move {
        let api: Api<TestLayerRun> = Api::namespaced(client, &ns);
        let names = match &a.suite {
            None => a.runs.clone(),
            Some(suite) => {
                let lp = ListParams::default().labels(&format!("{LABEL_SUITE}={suite}"));
                match api.list(&lp).await {
                    Ok(l) if l.items.is_empty() => {
                        eprintln!("error: no run of suite {suite} in namespace {ns}");
                        return EXIT_BAD_INPUT;
                    }
                    Ok(l) => l.items.iter().map(|r| r.name_any()).collect(),
                    Err(e) => {
                        eprintln!("error: cannot list the runs of suite {suite}: {e}");
                        return 1;
                    }
                }
            }
        };
        let mut code = 0;
        for name in names {
            match api.get_opt(&name).await {
                Ok(None) => {
                    eprintln!("error: TestLayerRun {name} not found in namespace {ns}");
                    code = 1;
                }
                Ok(Some(r))
                    if r.status
                        .as_ref()
                        .and_then(|s| s.phase)
                        .is_some_and(LayerPhase::is_terminal) =>
                {
                    let phase = r.status.and_then(|s| s.phase).unwrap_or_default();
                    println!(
                        "testlayerrun/{name} already ended ({}); nothing to cancel",
                        phase.as_str()
                    );
                }
                Ok(Some(_)) => {
                    let patch = json!({"spec": {"cancel": true}});
                    match api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => println!("testlayerrun/{name} cancelled"),
                        Err(e) => {
                            eprintln!("error: cannot cancel {name}: {e}");
                            code = 1;
                        }
                    }
                }
                Err(e) => {
                    eprintln!("error: cannot read TestLayerRun {name}: {e}");
                    code = 1;
                }
            }
        }
        code
    })
}
