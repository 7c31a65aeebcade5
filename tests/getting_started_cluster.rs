//! Every command block of `docs/getting-started/own-cluster.md`, run as
//! written, line by line, against a cluster of the test's own: the test
//! control plane with a test kubelet playing its node, a fresh namespace as
//! the kubeconfig's default, that kubeconfig at `~/.kube/config` (`HOME` is
//! a directory of the test's), and `kubectl` and the `testlayer` this test
//! was built with on the `PATH`. `testlayer controller` runs until the end,
//! as in the terminal a reader leaves it in; a watch (`-w`) must still be
//! watching after a few seconds. The lines run at the repository's root, as
//! the page says, and write nothing there.

mod doc_blocks;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use testlayer_testkit::{ControlPlane, TestKubelet};

const PAGE: &str = "docs/getting-started/own-cluster.md";

/// A shell as the reader's: `HOME` and `PATH` set, nothing of `cargo test`.
fn shell(line: &str, home: &Path, path: &str) -> Command {
    let mut command = Command::new("bash");
    command
        .args(["-c", line])
        .current_dir(doc_blocks::repo())
        .env("HOME", home)
        .env("PATH", path)
        .env_remove("KUBECONFIG");
    doc_blocks::as_in_a_shell(&mut command);
    command
}

/// A command left running (the controller), stopped with its process
/// group when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Runs `command` off the async runtime.
async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("running bash"))
        .await
        .expect("the command's task")
}

fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_of_the_own_cluster_page_runs_as_written() {
    let cp = ControlPlane::shared();
    let ns = cp
        .create_namespace("own-cluster")
        .await
        .expect("a namespace");
    let client = cp.admin_client().await.expect("an admin client");
    let _kubelet = TestKubelet::start(client, &ns, 1)
        .await
        .expect("the test kubelet");

    let home = tempfile::tempdir().expect("a home directory");
    let kube = home.path().join(".kube");
    std::fs::create_dir_all(&kube).expect(".kube");
    let config = kube.join("config");
    std::fs::copy(cp.kubeconfig(), &config).expect("the kubeconfig");
    let kubectl: PathBuf = cp.binary("kubectl");
    let set = Command::new(&kubectl)
        .arg(format!("--kubeconfig={}", config.display()))
        .args([
            "config",
            "set-context",
            "--current",
            &format!("--namespace={ns}"),
        ])
        .output()
        .expect("kubectl config");
    assert!(set.status.success(), "{}", printed(&set));
    let testlayer = Path::new(env!("CARGO_BIN_EXE_testlayer"));
    let path = format!(
        "{}:{}:{}",
        kubectl.parent().expect("kubectl's directory").display(),
        testlayer.parent().expect("testlayer's directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut left_running = Vec::new();
    let mut ran = 0;
    for block in doc_blocks::to_run(PAGE) {
        for line in block.commands() {
            let command = line.split(" #").next().unwrap_or(&line).trim().to_string();
            let at = format!("{PAGE}:{}: `{command}`", block.line);
            ran += 1;
            if command.starts_with("testlayer controller") {
                let mut shell = shell(&command, home.path(), &path);
                shell
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0);
                left_running.push((at, Running(shell.spawn().expect("the controller"))));
                continue;
            }
            if command.ends_with(" -w") {
                let out = output(shell(&format!("timeout 5 {command}"), home.path(), &path)).await;
                assert_eq!(
                    out.status.code(),
                    Some(124),
                    "{at} ended by itself:\n{}",
                    printed(&out)
                );
                assert!(
                    printed(&out).contains("smoke-then-unit"),
                    "{at} printed:\n{}",
                    printed(&out)
                );
                continue;
            }
            let out = output(shell(&command, home.path(), &path)).await;
            assert!(out.status.success(), "{at} failed:\n{}", printed(&out));
            if command.starts_with("kubectl wait") {
                assert!(
                    printed(&out).contains("condition met"),
                    "{at} printed:\n{}",
                    printed(&out)
                );
            }
        }
    }
    assert!(ran >= 6, "only {ran} commands ran");
    // What was left running is still running: it did the work above.
    for (at, running) in &mut left_running {
        assert!(
            matches!(running.0.try_wait(), Ok(None)),
            "{at} stopped before the end"
        );
    }
}
