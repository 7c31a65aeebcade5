//! Starts a test control plane for poking at by hand:
//! `cargo run -p testlayer-testkit --bin testlayer-control-plane -- [--node [--image ARCHIVE] | --played-nodes] [DIR]`.
//!
//! - `--node`: also kube-scheduler, the workload controllers and a real
//!   node (kubelet, containerd, runc) with the test images loaded, and the
//!   image archives named by `--image` (the controller's, from
//!   `scripts/image.sh`). When the real node cannot run on this machine it
//!   says why and exits 1: it never falls back on its own.
//! - `--played-nodes`: the test kubelet plays two Nodes for the `default`
//!   namespace instead: no command runs, Pods are played from their
//!   commands; the first line printed says so.
//!
//! Prints the kubeconfig path and runs until Ctrl-C.

use testlayer_testkit::{ControlPlane, ControlPlaneOptions, RealNode, TestKubelet};

const USAGE: &str =
    "usage: testlayer-control-plane [--node [--image ARCHIVE]... | --played-nodes] [DIR]";

/// What runs the Pods.
#[derive(PartialEq)]
enum Nodes {
    None,
    Real,
    Played,
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

fn main() {
    let mut dir = None;
    let mut nodes = Nodes::None;
    let mut images = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--node" => nodes = Nodes::Real,
            "--played-nodes" => nodes = Nodes::Played,
            "--image" => match args.next() {
                Some(i) => images.push(std::path::PathBuf::from(i)),
                None => {
                    eprintln!("error: --image needs an archive ({USAGE})");
                    std::process::exit(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            _ if a.starts_with('-') => {
                eprintln!("error: unknown option {a} ({USAGE})");
                std::process::exit(2);
            }
            _ => dir = Some(std::path::PathBuf::from(a)),
        }
    }
    if !images.is_empty() && nodes != Nodes::Real {
        eprintln!("error: --image needs --node ({USAGE})");
        std::process::exit(2);
    }
    if nodes == Nodes::Played {
        println!(
            "NO COMMAND RUNS: the test kubelet plays two Nodes for namespace `default`; \
             Pods are played from their commands, not run in containers"
        );
    }
    let options = ControlPlaneOptions {
        scheduler: nodes == Nodes::Real,
    };
    let cp = ControlPlane::start_with(dir, options).unwrap_or_else(|e| fail(e));
    let mut node = None;
    let mut played = None;
    match nodes {
        Nodes::None => {}
        Nodes::Real => {
            let n = RealNode::start(&cp).unwrap_or_else(|e| {
                fail(format_args!(
                    "the real node cannot run on this machine: {e}"
                ))
            });
            for image in &images {
                n.import_image(image)
                    .unwrap_or_else(|e| fail(format_args!("importing {}: {e}", image.display())));
            }
            node = Some(n);
        }
        Nodes::Played => {
            played = Some(
                play_nodes(&cp)
                    .unwrap_or_else(|e| fail(format_args!("starting the test kubelet: {e}"))),
            );
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
