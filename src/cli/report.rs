//! `testlayer report`: one self-contained HTML picture of a run, from a
//! JSON report or from a TestLayerRun in the cluster.

use std::path::PathBuf;

#[cfg(feature = "cluster")]
use kube::Api;

use super::common::EXIT_BAD_INPUT;
#[cfg(feature = "cluster")]
use crate::api::{CategoryRun, TestLayerRun};
use crate::parse_words::{json_from_str, json_from_value};
use crate::report::RunReport;

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A JSON report (`testlayer run --output json`, `testlayer submit --output json`).
    #[arg(required_unless_present = "run", conflicts_with = "run")]
    pub file: Option<PathBuf>,
    /// A TestLayerRun in the cluster instead (finished or not).
    #[arg(long)]
    pub run: Option<String>,
    /// Namespace of the run (default: the kubeconfig context's).
    #[arg(long, short = 'n', requires = "run")]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config, or in-cluster).
    #[arg(long, requires = "run")]
    pub kubeconfig: Option<PathBuf>,
    /// The layer to draw, from a suite's JSON report (`run --all -o json`).
    #[arg(long, short = 'l')]
    pub layer: Option<String>,
    /// Where to write the HTML.
    #[arg(long, short = 'o', default_value = "testlayer-report.html")]
    pub output: PathBuf,
}

/// Writes the report; returns the exit code.
pub fn report(a: &ReportArgs) -> i32 {
    let report = match (&a.file, &a.run) {
        (Some(file), _) => from_file(file, a.layer.as_deref()),
        (None, Some(run)) => from_cluster(a, run),
        (None, None) => Err("name a JSON report or --run RUN".into()),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    match std::fs::write(&a.output, report.to_html()) {
        Ok(()) => {
            eprintln!("wrote {}", a.output.display());
            0
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", a.output.display());
            1
        }
    }
}

/// A suite's JSON report, as much as `report` reads of it.
#[derive(serde::Deserialize)]
struct SuiteFile {
    layers: Vec<SuiteFileLayer>,
}

#[derive(serde::Deserialize)]
struct SuiteFileLayer {
    layer: String,
    #[serde(default)]
    report: Option<RunReport>,
}

fn from_file(file: &PathBuf, layer: Option<&str>) -> Result<RunReport, String> {
    let shown = file.display();
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("{shown}: cannot read the file: {e}"))?;
    let value: serde_json::Value = json_from_str(&text).map_err(|e| format!("{shown}:{e}"))?;
    if value.get("layers").is_some_and(serde_json::Value::is_array) {
        // A suite: one layer of it.
        let suite: SuiteFile = json_from_value(value).map_err(|e| {
            format!("{shown}: not a suite report of `testlayer run --all` (-o json): {e}")
        })?;
        let ran: Vec<String> = suite
            .layers
            .iter()
            .filter(|l| l.report.is_some())
            .map(|l| l.layer.clone())
            .collect();
        let Some(want) = layer else {
            return Err(format!(
                "{shown} is a suite's report: name the layer to draw with -l ({})",
                ran.join(", ")
            ));
        };
        return suite
            .layers
            .into_iter()
            .find(|l| l.layer == want)
            .and_then(|l| l.report)
            .ok_or_else(|| {
                format!(
                    "{shown}: layer {want} did not run in this suite; layers that ran: {}",
                    ran.join(", ")
                )
            });
    }
    json_from_value(value).map_err(|e| {
        format!("{shown}: not a JSON report of `testlayer run` or `testlayer submit` (--output json): {e}")
    })
}

#[cfg(not(feature = "cluster"))]
fn from_cluster(_a: &ReportArgs, name: &str) -> Result<RunReport, String> {
    Err(format!(
        "--run {name}: this testlayer was built without the cluster verbs (--no-default-features); build it with them to read a run from a cluster"
    ))
}

#[cfg(feature = "cluster")]
fn from_cluster(a: &ReportArgs, name: &str) -> Result<RunReport, String> {
    let rt = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let (client, ns) =
            super::controller::client_in(a.kubeconfig.as_ref(), a.namespace.as_deref()).await?;
        let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), &ns);
        let run = runs
            .get_opt(name)
            .await
            .map_err(|e| format!("cannot read TestLayerRun {name} in namespace {ns}: {e}"))?
            .ok_or_else(|| format!("run {name} not found in namespace {ns}"))?;
        let crs: Api<CategoryRun> = Api::namespaced(client, &ns);
        let list = super::run_results::category_runs(&crs, name)
            .await
            .map_err(|e| format!("cannot list the CategoryRuns of {name}: {e}"))?;
        Ok(testlayer_operator::report::run_report(&run, &list))
    })
}
