//! The options of `testlayer submit`.

use super::follow::FollowFlags;
use super::run_options::OverrideArgs;
use std::path::PathBuf;

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
    #[arg(long, value_name = "RUN", conflicts_with_all = ["layer", "config_map", "env", "image", "command", "strategy", "max_parallel", "fail_fast", "retries", "timeout_multiplier"])]
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
    #[command(flatten)]
    pub follow: FollowFlags,
    /// Delete the finished run this many seconds after it ends.
    #[arg(long)]
    pub ttl: Option<i64>,
    /// A label of the run, `KEY=VALUE` (repeatable), e.g. to find it again
    /// with `testlayer list -l`.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
    pub labels: Vec<(String, String)>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

impl SubmitArgs {
    /// The labels `--label` gives a run.
    pub(super) fn label_map(&self) -> serde_json::Map<String, serde_json::Value> {
        self.labels
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect()
    }
}

fn label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}
