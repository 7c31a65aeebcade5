//! `testlayer wait RUN`: follows a run that was submitted earlier (after
//! `submit` without `--wait`, or when `submit --wait` gave up) to its end,
//! with the same progress, summary, reports and exit codes as
//! `submit --wait`.

use super::cluster_args::{Target, with_client};
use super::follow::{FollowFlags, follow};

/// Options of `testlayer wait`.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// The run (TestLayerRun name).
    pub run: String,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub follow: FollowFlags,
}

/// Runs `wait`; returns the exit code.
pub fn wait(a: &WaitArgs) -> i32 {
    with_client(&a.target, |client, ns| async move {
        follow(client, &ns, &a.run, &a.follow).await
    })
}
