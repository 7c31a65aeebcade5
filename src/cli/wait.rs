//! `testlayer wait RUN`: follows a run that was submitted earlier (after
//! `submit` without `--wait`, or when `submit --wait` gave up) to its end,
//! with the same progress, summary, reports and exit codes as
//! `submit --wait`.

use std::path::PathBuf;

use super::cluster_args::{Target, with_client};
use super::common::OutputFormat;
use super::follow::{FollowArgs, follow};

/// Options of `testlayer wait`.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// The run (TestLayerRun name).
    pub run: String,
    #[command(flatten)]
    pub target: Target,
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

/// Runs `wait`; returns the exit code.
pub fn wait(a: &WaitArgs) -> i32 {
    with_client(&a.target, |client, ns| async move {
        let f = FollowArgs {
            timeout: a.timeout,
            output: a.output,
            junit: a.junit.as_deref(),
        };
        follow(client, &ns, &a.run, &f).await
    })
}
