//! `testlayer controller`: runs the operator.

use std::net::SocketAddr;
use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::controller::{ControllerOptions, run};

/// Options of `testlayer controller`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "TESTLAYER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Watch this namespace only (default: every namespace).
    #[arg(long, env = "TESTLAYER_NAMESPACE")]
    pub namespace: Option<String>,
    /// TestLayerRuns reconciled at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// Kubeconfig file (default: in-cluster config, else $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// A client from a kubeconfig file, or the default (in-cluster, then
/// `$KUBECONFIG`).
pub async fn client(kubeconfig: Option<&PathBuf>) -> Result<Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes configuration found: {e}"))?,
    };
    Client::try_from(config).map_err(|e| format!("cannot create a Kubernetes client: {e}"))
}

/// Runs the controller; returns the exit code.
pub fn controller(a: &ControllerArgs) -> i32 {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        let client = match client(a.kubeconfig.as_ref()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_BAD_INPUT;
            }
        };
        let opts = ControllerOptions {
            listen: a.listen,
            namespace: a.namespace.clone(),
            concurrency: a.concurrency.max(1),
        };
        match run(client, opts).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    })
}
