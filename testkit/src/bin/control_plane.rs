//! Starts a test control plane for poking at by hand:
//! `cargo run -p testlayer-testkit --bin testlayer-control-plane -- [--node] [DIR]`.
//! With `--node`, also kube-scheduler and a real node (kubelet, containerd,
//! runc) with the test images loaded; when the real node cannot run on this
//! machine, it says why and falls back to the test kubelet playing two Nodes
//! for the `default` namespace (Pods are played from their commands, not
//! run). Prints the kubeconfig path and runs until Ctrl-C.

use testlayer_testkit::{ControlPlane, ControlPlaneOptions, RealNode, TestKubelet};

fn main() {
    let mut dir = None;
    let mut with_node = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--node" => with_node = true,
            "-h" | "--help" => {
                println!("usage: testlayer-control-plane [--node] [DIR]");
                return;
            }
            _ if a.starts_with('-') => {
                eprintln!(
                    "error: unknown option {a} (usage: testlayer-control-plane [--node] [DIR])"
                );
                std::process::exit(2);
            }
            _ => dir = Some(std::path::PathBuf::from(a)),
        }
    }
    let options = ControlPlaneOptions {
        scheduler: with_node,
    };
    let mut cp = match ControlPlane::start_with(dir.clone(), options) {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let mut node = None;
    let mut played = None;
    if with_node {
        match RealNode::start(&cp) {
            Ok(n) => node = Some(n),
            Err(e) => {
                eprintln!("the real node cannot run on this machine: {e}");
                eprintln!(
                    "falling back to the test kubelet: it plays two Nodes for namespace `default`, \
                     Pods are played from their commands, not run in containers"
                );
                drop(cp);
                cp = match ControlPlane::start_with(dir, ControlPlaneOptions::default()) {
                    Ok(cp) => cp,
                    Err(e) => {
                        eprintln!("error: {e}");
                        std::process::exit(1);
                    }
                };
                match play_nodes(&cp) {
                    Ok(k) => played = Some(k),
                    Err(e) => {
                        eprintln!("error: starting the test kubelet: {e}");
                        std::process::exit(1);
                    }
                }
            }
        }
    }
    println!("control plane ready at {}", cp.server());
    if let Some(n) = &node {
        println!(
            "real node {} ready (images loaded; its files and logs: {})",
            n.name(),
            n.dir().display()
        );
    }
    println!("logs and certificates: {}", cp.dir().display());
    println!();
    println!("  export KUBECONFIG={}", cp.kubeconfig().display());
    println!(
        "  export PATH={}:$PATH   # kubectl",
        cp.binary("kubectl")
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    println!("  kubectl get namespaces");
    println!();
    println!("Ctrl-C stops it.");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let handler = move || {
        let _ = tx.send(());
    };
    if let Err(e) = ctrlc_handler(handler) {
        eprintln!("error: {e}");
    }
    let _ = rx.recv();
    println!("stopping");
    drop(played);
    drop(node);
    drop(cp);
}

/// The test kubelet on a runtime of its own, playing two Nodes for the
/// `default` namespace (dropped before its runtime).
fn play_nodes(
    cp: &ControlPlane,
) -> Result<(TestKubelet, tokio::runtime::Runtime), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let kubelet = rt.block_on(async {
        let client = cp.admin_client().await?;
        TestKubelet::start(client, "default", 2).await
    })?;
    Ok((kubelet, rt))
}

fn ctrlc_handler(f: impl Fn() + Send + 'static) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            f();
        });
    });
    Ok(())
}
