//! Asking containerd (through `ctr`) what runs on the node.

use std::path::Path;
use std::process::Command;

use crate::TestkitError;

/// An application container the runtime reports running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningContainer {
    /// containerd's container id.
    pub id: String,
    /// The Pod's namespace.
    pub namespace: String,
    /// The Pod's name.
    pub pod: String,
    /// The container's name in the Pod.
    pub container: String,
}

/// Runs `ctr --address SOCK -n k8s.io ARGS`, returning its output.
pub(crate) fn ctr(ctr: &Path, sock: &Path, args: &[&str]) -> Result<String, TestkitError> {
    let out = Command::new(ctr)
        .arg("--address")
        .arg(sock)
        .args(["--namespace", "k8s.io"])
        .args(args)
        .output()
        .map_err(TestkitError::io(format!("running {}", ctr.display())))?;
    if !out.status.success() {
        return Err(TestkitError::Node {
            problem: format!(
                "ctr {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Running tasks whose container is an application container (label
/// `io.cri-containerd.kind=container`, not a sandbox).
pub(crate) fn running_containers(
    ctr_bin: &Path,
    sock: &Path,
) -> Result<Vec<RunningContainer>, TestkitError> {
    let tasks = ctr(ctr_bin, sock, &["tasks", "ls"])?;
    let mut out = Vec::new();
    for id in running_task_ids(&tasks) {
        // A task may end between the two questions.
        let Ok(info) = ctr(ctr_bin, sock, &["containers", "info", &id]) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&info).map_err(|e| TestkitError::Node {
            problem: format!("ctr containers info {id}: {e}"),
        })?;
        let label = |k: &str| v["Labels"][k].as_str().unwrap_or_default().to_string();
        if label("io.cri-containerd.kind") != "container" {
            continue;
        }
        out.push(RunningContainer {
            id,
            namespace: label("io.kubernetes.pod.namespace"),
            pod: label("io.kubernetes.pod.name"),
            container: label("io.kubernetes.container.name"),
        });
    }
    Ok(out)
}

/// Ids of the RUNNING tasks in `ctr tasks ls` output (`TASK PID STATUS`).
fn running_task_ids(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (id, _pid, status) = (f.next()?, f.next()?, f.next()?);
            (status == "RUNNING").then(|| id.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_tasks_are_read_from_the_table() {
        let t = "TASK    PID     STATUS    \nabc     12      RUNNING\ndef     0       STOPPED\n";
        assert_eq!(running_task_ids(t), vec!["abc".to_string()]);
    }
}
