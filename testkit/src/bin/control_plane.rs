//! Starts a test control plane for poking at by hand:
//! `cargo run -p testlayer-testkit --bin testlayer-control-plane -- [--node] [DIR]`.
//! With `--node`, also kube-scheduler and a real node (kubelet, containerd,
//! runc) with the test images loaded. Prints the kubeconfig path and runs
//! until Ctrl-C.

use testlayer_testkit::{ControlPlane, ControlPlaneOptions, RealNode};

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
    let cp = match ControlPlane::start_with(dir, options) {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let node = if with_node {
        match RealNode::start(&cp) {
            Ok(n) => Some(n),
            Err(e) => {
                eprintln!("error: {e}");
                drop(cp);
                std::process::exit(1);
            }
        }
    } else {
        None
    };
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
    drop(node);
    drop(cp);
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
