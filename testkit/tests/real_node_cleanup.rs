//! A real node whose process was killed (SIGKILL: no drop, no exit hook)
//! leaves containers, shims and mounts behind; the next node to take its
//! slot cleans them up before it starts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testlayer_testkit::{ControlPlane, ControlPlaneOptions, RealNode};

/// Processes whose command line names `dir/` (the slot's containerd, shims).
fn processes_naming(dir: &str) -> Vec<(u32, String)> {
    let needle = format!("{dir}/");
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (pid != me && cmd.contains(&needle)).then_some((pid, cmd))
        })
        .collect()
}

fn mounts_naming(part: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.contains(part))
        .map(str::to_string)
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn the_next_node_cleans_up_after_a_killed_one() {
    let cp_dir = tempfile::tempdir().unwrap();
    // A node in a process of its own, killed while a container runs.
    let mut child = Command::new(env!("CARGO_BIN_EXE_testlayer-control-plane"))
        .arg("--node")
        .arg(cp_dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut slot_dir = None;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("its files and logs: ").nth(1) {
            slot_dir = Some(rest.trim_end_matches(')').to_string());
        }
        if line.starts_with("logs and certificates") {
            break;
        }
        assert!(
            !line.contains("falling back"),
            "the real node must start here: {line}"
        );
    }
    // Keep reading, so that the node's process never writes to a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    let slot_dir = slot_dir.expect("the node's directory");
    let kubectl = |args: &[&str]| {
        let out = Command::new(testlayer_testkit::bin_dir().unwrap().join("kubectl"))
            .arg(format!(
                "--kubeconfig={}",
                cp_dir.path().join("admin.kubeconfig").display()
            ))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    kubectl(&[
        "run",
        "sleeper",
        "--image=busybox:1.35",
        "--restart=Never",
        "--command",
        "--",
        "sleep",
        "600",
    ]);
    kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/sleeper",
        "--timeout=60s",
    ]);
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(2));

    // What the killed node left: the container's shim (and the container),
    // and the container's root filesystem mount.
    let shims: Vec<u32> = processes_naming(&slot_dir)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("containerd-shim"))
        .map(|(pid, _)| pid)
        .collect();
    assert!(!shims.is_empty(), "a shim outlives its killed node");
    let task_mounts = mounts_naming(&format!("{slot_dir}/containerd/state"));
    assert!(!task_mounts.is_empty(), "the container's mounts stay");

    // The next node (in this process, on a control plane of its own) takes
    // a slot; when it is the same slot, it cleans up first.
    let cp = ControlPlane::start_with(None, ControlPlaneOptions { scheduler: true }).unwrap();
    let started = Instant::now();
    let node = RealNode::start(&cp).unwrap();
    if node.dir() == std::path::Path::new(&slot_dir) {
        for pid in &shims {
            assert!(!alive(*pid), "shim {pid} of the killed node still runs");
        }
        let left: Vec<String> = mounts_naming(&format!("{slot_dir}/containerd/state"))
            .into_iter()
            .filter(|m| task_mounts.contains(m))
            .collect();
        assert!(left.is_empty(), "mounts of the killed node left: {left:?}");
        assert!(
            node.running_containers().unwrap().is_empty(),
            "the new node runs nothing yet"
        );
    } else {
        panic!(
            "the killed node's slot {slot_dir} was taken by another process meanwhile; \
             the new node got {}",
            node.dir().display()
        );
    }
    eprintln!("cleaned up and started in {:?}", started.elapsed());
    drop(node);
    // After a clean stop, nothing names the slot any more.
    assert!(processes_naming(&slot_dir).is_empty());
    assert!(mounts_naming(&slot_dir).is_empty());
}
