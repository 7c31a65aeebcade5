//! The `testlayer controller` process itself: it stops within a bound on
//! SIGTERM, even when the apiserver does not answer.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A kubeconfig for an apiserver that is not there (a closed loopback port).
fn unreachable_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context: {{cluster: gone, user: u}}\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn sigterm_stops_the_controller_within_five_seconds_without_an_apiserver() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    for leader_elect in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_testlayer"));
        cmd.args(["controller", "--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if leader_elect {
            cmd.args(["--leader-elect", "--lease-namespace", "default"]);
        }
        let mut child = cmd.spawn().unwrap();
        // Let it start its watches (or its wait for the Lease) and retry.
        std::thread::sleep(Duration::from_secs(2));
        assert!(child.try_wait().unwrap().is_none(), "it should still run");
        let sent = Instant::now();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if sent.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("still running 10 s after SIGTERM (leader election: {leader_elect})");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "stopped after {took:?} (leader election: {leader_elect}), {status:?}"
        );
    }
}
