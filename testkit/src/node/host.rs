//! What a real node changes on the machine, and undoing it: the slot lock,
//! the bridges, the cgroup root, mounts under the node's directory, and
//! processes (containerd's shims, containers) that outlive their parent.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::config::Layout;
use crate::TestkitError;

/// Node slots on one machine.
const SLOTS: u8 = 16;

/// The directory under which each slot has its own.
pub fn base_dir() -> PathBuf {
    std::env::temp_dir().join("testlayer-nodes")
}

/// A slot held by this process: a lock on `slot-N.lock` that the kernel
/// drops when the process ends, however it ends. Whoever takes a slot next
/// cleans up what a killed holder left.
#[derive(Debug)]
pub struct Slot {
    /// The slot number.
    pub number: u8,
    _lock: Flock<File>,
}

/// Takes the first free slot.
pub fn take_slot(base: &Path) -> Result<Slot, TestkitError> {
    std::fs::create_dir_all(base)
        .map_err(TestkitError::io(format!("creating {}", base.display())))?;
    for number in 0..SLOTS {
        let path = base.join(format!("slot-{number}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(TestkitError::io(format!("opening {}", path.display())))?;
        if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            return Ok(Slot {
                number,
                _lock: lock,
            });
        }
    }
    Err(TestkitError::Node {
        problem: format!("all {SLOTS} node slots under {} are taken", base.display()),
    })
}

/// Runs `ip args`, failing with its message.
fn ip(args: &[&str]) -> Result<(), TestkitError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(TestkitError::io("running ip (Debian package iproute2)"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(TestkitError::Node {
        problem: format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// The node's address on a bridge of its own (a dummy interface would do,
/// but kernels without the dummy module exist; the bridge module is needed
/// for the Pods' network anyway).
pub fn ensure_node_address(l: &Layout) -> Result<(), TestkitError> {
    let name = l.node_bridge();
    let exists = Path::new("/sys/class/net").join(&name).exists();
    if !exists {
        ip(&["link", "add", &name, "type", "bridge"])?;
    }
    let addr = format!("{}/32", l.node_ip());
    let shown = Command::new("ip")
        .args(["-4", "addr", "show", "dev", &name])
        .output()
        .map_err(TestkitError::io("running ip"))?;
    if !String::from_utf8_lossy(&shown.stdout).contains(&format!("inet {addr}")) {
        ip(&["addr", "add", &addr, "dev", &name])?;
    }
    ip(&["link", "set", &name, "up"])
}

/// The cgroup v1 hierarchies mounted under /sys/fs/cgroup (real
/// directories, not the `cpu -> cpu,cpuacct` links).
fn hierarchies() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Creates the kubelet's cgroup root in every hierarchy (the kubelet refuses
/// a root that does not exist), with cpuset's CPUs and memory nodes copied
/// from the parent as cpuset requires.
pub fn create_cgroup_root(l: &Layout) -> Result<(), TestkitError> {
    let rel = l.cgroup_root();
    for h in hierarchies() {
        let dir = h.join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(&dir)
            .map_err(TestkitError::io(format!("creating {}", dir.display())))?;
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let parent = h.join(f);
            if parent.exists() {
                let value = std::fs::read_to_string(&parent).unwrap_or_default();
                let _ = std::fs::write(dir.join(f), value.trim());
            }
        }
    }
    Ok(())
}

/// Removes the cgroup root and everything under it, deepest first (a cgroup
/// is removed with rmdir once its processes are gone).
pub fn remove_cgroup_root(l: &Layout) {
    let rel = l.cgroup_root();
    for h in hierarchies() {
        remove_cgroup_tree(&h.join(rel.trim_start_matches('/')));
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = (b[i] == b'\\' && i + 4 <= b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 4]).ok())
            .flatten()
            .and_then(|t| u8::from_str_radix(t, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Detaches every mount under `dir` (container root filesystems, Pod
/// volumes, network namespaces).
pub fn unmount_under(dir: &Path) {
    for m in mounts_under(dir) {
        if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid C string; MNT_DETACH never blocks.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// Kills every process whose command line names `dir` (containerd, its
/// shims, the kubelet) and every process in a cgroup under the node's root
/// (the containers): what outlives a killed test process.
pub fn kill_leftovers(l: &Layout) {
    // With the trailing slash: slot 1 must not match slot 10.
    let mut needle = l.dir.as_os_str().as_encoded_bytes().to_vec();
    needle.push(b'/');
    let me = std::process::id();
    let mut pids: Vec<i32> = crate::process::processes_naming(&needle)
        .into_iter()
        .map(|p| p as i32)
        .collect();
    let rel = l.cgroup_root();
    for h in hierarchies() {
        collect_cgroup_pids(&h.join(rel.trim_start_matches('/')), &mut pids);
    }
    pids.sort_unstable();
    pids.dedup();
    for pid in pids {
        if pid as u32 != me {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn collect_cgroup_pids(dir: &Path, pids: &mut Vec<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_cgroup_pids(&e.path(), pids);
            }
        }
    }
}

/// Everything a node of this slot may have left: processes, mounts,
/// cgroups, files. The bridges stay (they are reused).
pub fn clean_slot(l: &Layout) {
    kill_leftovers(l);
    super::api_route::remove(l);
    // Killed processes leave their cgroups a moment later.
    for _ in 0..50 {
        let mut left = Vec::new();
        let rel = l.cgroup_root();
        for h in hierarchies() {
            collect_cgroup_pids(&h.join(rel.trim_start_matches('/')), &mut left);
        }
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    unmount_under(&l.dir);
    remove_cgroup_root(l);
    let _ = std::fs::remove_dir_all(&l.dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(
            unescape_mount_path(r"/tmp/a\040b/c"),
            PathBuf::from("/tmp/a b/c")
        );
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
    }

    #[test]
    fn needles_are_found() {
        assert!(crate::process::contains(
            b"--address\0/tmp/x/1/sock",
            b"/tmp/x/1"
        ));
        assert!(!crate::process::contains(b"abc", b""));
    }
}
