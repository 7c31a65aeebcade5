//! `testlayer controller`: runs the operator.

use std::net::SocketAddr;
use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::controller::{ControllerOptions, LeaderElection, run};

/// Options of `testlayer controller`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "TESTLAYER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Watch this namespace only (default: every namespace).
    #[arg(long, env = "TESTLAYER_NAMESPACE")]
    pub namespace: Option<String>,
    /// Serve the shared resources of every namespace's runs from the
    /// TestLayerResources of this namespace, in one line across namespaces
    /// (default: each namespace has its own resources and line). Needs a
    /// controller of every namespace.
    #[arg(long, env = "TESTLAYER_RESOURCES_NAMESPACE")]
    pub resources_namespace: Option<String>,
    /// TestLayerRuns reconciled at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// Kubeconfig file (default: in-cluster config, else $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Name of this replica (default: the host name). A random suffix makes
    /// each process its own Lease holder: a replica restarted in place waits
    /// out the Lease of its crashed predecessor, whose last writes may still
    /// be landing, instead of taking it over at once.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Act only while holding a Lease, so that of several replicas one acts.
    #[arg(long, env = "TESTLAYER_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "testlayer-controller")]
    pub lease_name: String,
    /// Seconds a leader holds the Lease without renewing it.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
    /// Seconds before the Lease expires at which the leader renews it.
    #[arg(long, default_value_t = 5)]
    pub lease_grace_seconds: u64,
}

fn default_identity() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "testlayer".into())
}

/// `name` with a suffix that no other process has (random per process).
fn process_identity(name: &str) -> String {
    format!("{name}-{}", super::common::random_hex())
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

/// A client as [`client`] makes it, and `namespace` or else the
/// kubeconfig's default namespace.
pub async fn client_in(
    kubeconfig: Option<&PathBuf>,
    namespace: Option<&str>,
) -> Result<(Client, String), String> {
    let client = client(kubeconfig).await?;
    let ns = namespace.map_or_else(|| client.default_namespace().to_string(), str::to_string);
    Ok((client, ns))
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
                return super::common::EXIT_BAD_INPUT;
            }
        };
        if a.leader_elect && a.lease_grace_seconds >= a.lease_seconds {
            eprintln!(
                "error: --lease-grace-seconds ({}) must be less than --lease-seconds ({})",
                a.lease_grace_seconds, a.lease_seconds
            );
            return super::common::EXIT_BAD_INPUT;
        }
        let opts = ControllerOptions {
            listen: a.listen,
            namespace: a.namespace.clone(),
            concurrency: a.concurrency.max(1),
            identity: process_identity(&a.identity.clone().unwrap_or_else(default_identity)),
            leader_election: a.leader_elect.then(|| LeaderElection {
                namespace: a.lease_namespace.clone(),
                lease_name: a.lease_name.clone(),
                lease_seconds: a.lease_seconds,
                grace_seconds: a.lease_grace_seconds,
            }),
            resources_namespace: a.resources_namespace.clone().filter(|n| !n.is_empty()),
        };
        tokio::spawn(exit_after_stop_signal(STOP_BOUND));
        match run(client, opts).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    })
}

/// Longest a stop (SIGTERM, Ctrl-C) may take before the process exits anyway.
const STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(4);

/// The controller stops gracefully on SIGTERM or Ctrl-C (reconciles finish,
/// the Lease is released); when that takes longer than `bound` (an
/// apiserver that does not answer, a request that retries), the process exits
/// so that a Pod's termination never waits for its grace period.
async fn exit_after_stop_signal(bound: std::time::Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::time::sleep(bound).await;
    tracing::warn!(
        seconds = bound.as_secs(),
        "the controller did not stop in time; exiting"
    );
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_identity_is_its_own() {
        let (a, b) = (process_identity("pod-x"), process_identity("pod-x"));
        assert!(
            a.starts_with("pod-x-") && a.len() == "pod-x-".len() + 8,
            "{a}"
        );
        assert_ne!(a, b, "two holders of one name must differ");
    }
}
