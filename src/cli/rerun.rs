//! `testlayer rerun RUN`: `submit --rerun-failed RUN` under its own name: a
//! new run of what did not pass in RUN (its frozen plan; its passes carried
//! over), or of every layer of a suite of that name.

use std::path::PathBuf;

use super::cluster_args::Target;
use super::follow::FollowFlags;
use super::submit_args::SubmitArgs;

/// Options of `testlayer rerun`.
#[derive(Debug, Clone, clap::Args)]
pub struct RerunArgs {
    /// The earlier run (or suite) whose failures run again.
    pub run: String,
    #[command(flatten)]
    pub target: Target,
    /// Name of the new run (default: `<run>-rerun-` and a random suffix).
    #[arg(long)]
    pub name: Option<String>,
    /// Follow the new run to its end and exit 0 only if it passed.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub follow: FollowFlags,
    /// Delete the finished run this many seconds after it ends.
    #[arg(long)]
    pub ttl: Option<i64>,
}

/// Runs `rerun`; returns the exit code.
pub fn rerun(a: &RerunArgs) -> i32 {
    super::submit::submit(&SubmitArgs {
        layer: None,
        all: false,
        rerun_failed: Some(a.run.clone()),
        env: None,
        config: PathBuf::from("config/test_layers.yaml"),
        config_map: None,
        image: None,
        command: None,
        name: a.name.clone(),
        namespace: a.target.namespace.clone(),
        kubeconfig: a.target.kubeconfig.clone(),
        wait: a.wait,
        follow: a.follow.clone(),
        ttl: a.ttl,
        labels: Vec::new(),
        overrides: Default::default(),
    })
}
