//! Starts a test control plane for poking at by hand:
//! `cargo run -p testlayer-testkit --bin testlayer-control-plane`.
//! Prints the kubeconfig path and runs until Ctrl-C.

use testlayer_testkit::ControlPlane;

fn main() {
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from);
    let cp = match ControlPlane::start_in(dir) {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("control plane ready at {}", cp.server());
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
