//! What every verb that reads the cluster takes: where (kubeconfig,
//! namespace), and how it starts (a runtime, a client).

use std::future::Future;
use std::path::PathBuf;

use kube::Client;

use super::common::EXIT_BAD_INPUT;

/// The cluster and namespace a verb works in.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// Runs `verb` with a client of `target` and its namespace on a runtime of
/// its own; returns its exit code (2 when there is no cluster to talk to).
pub(super) fn with_client<F, Fut>(target: &Target, verb: F) -> i32
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = i32>,
{
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        match super::controller::client_in(target.kubeconfig.as_ref(), target.namespace.as_deref())
            .await
        {
            Ok((client, ns)) => verb(client, ns).await,
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_BAD_INPUT
            }
        }
    })
}
