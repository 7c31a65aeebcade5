//! Free TCP ports for the components tests start, reserved across the test
//! processes that run side by side.
//!
//! A port is free when it can be bound; but between choosing it and the
//! component binding it, another test process may choose it too (seen as a
//! kube-apiserver that exits with "address already in use"). Each chosen
//! port is therefore also reserved: a lock on its byte of one shared file,
//! held until this process ends (the kernel drops it however it ends), so
//! that no other test process chooses it meanwhile; and this process
//! remembers the ports it chose, so that it hands none out twice.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Mutex;

use crate::TestkitError;

/// The ports this process chose, and its handle on the shared file whose
/// byte N is locked by the process that chose port N.
static RESERVATIONS: Mutex<Reservations> = Mutex::new(Reservations {
    file: None,
    chosen: BTreeSet::new(),
});

struct Reservations {
    file: Option<File>,
    chosen: BTreeSet<u16>,
}

/// A free TCP port on 127.0.0.1, below the kernel's ephemeral range, that no
/// other test process has chosen.
///
/// A port from `bind(0)` comes from the ephemeral range, which outgoing
/// connections use too: between choosing it and the component binding it,
/// one of the apiserver's connections to etcd may take it (seen as a
/// kube-controller-manager that exits at start). Ports below the range are
/// never handed to outgoing connections.
pub fn free_port() -> Result<u16, TestkitError> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (base, top) = (10_000u32, low.max(12_000));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    let mut reservations = RESERVATIONS.lock().map_err(|_| TestkitError::Node {
        problem: "the port reservations' lock was poisoned".into(),
    })?;
    let Reservations { file, chosen } = &mut *reservations;
    if file.is_none() {
        *file = Some(open_reservations()?);
    }
    let file = file.as_ref().ok_or_else(|| TestkitError::Node {
        problem: "the port reservations file is not open".into(),
    })?;
    for i in 0..4_000u32 {
        let port = base + seed.wrapping_add(i.wrapping_mul(7_919)) % (top - base);
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if !chosen.contains(&port)
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && reserve(file, port)
        {
            chosen.insert(port);
            return Ok(port);
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(TestkitError::io("binding a free port"))?;
    Ok(l.local_addr()
        .map_err(TestkitError::io("reading a bound port"))?
        .port())
}

/// Opens the shared reservations file (created by whoever comes first).
fn open_reservations() -> Result<File, TestkitError> {
    let path = std::env::temp_dir().join("testlayer-ports.lock");
    File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(TestkitError::io(format!("opening {}", path.display())))
}

/// Locks byte `port` of `file`, if no other open file description holds
/// it: an open file description lock (Linux), held until `file`'s
/// description is closed, at the latest when this process ends.
fn reserve(file: &File, port: u16) -> bool {
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: libc::off_t::from(port),
        l_len: 1,
        l_pid: 0,
    };
    // SAFETY: F_OFD_SETLK reads the flock structure passed by pointer, which
    // lives for the call; the descriptor is open for as long as `file`.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_handed_out_once_and_reserved_against_other_processes() {
        let mut seen = BTreeSet::new();
        // What another test process holds: its own open file description.
        let other = open_reservations().expect("the reservations file");
        for _ in 0..200 {
            let p = free_port().expect("a free port");
            assert!(seen.insert(p), "port {p} was handed out twice");
            assert!(
                !reserve(&other, p),
                "port {p} could be reserved by another process too"
            );
        }
        // A byte nobody chose is free to reserve.
        let unchosen = (1u16..10_000).find(|p| !seen.contains(p)).expect("a port");
        assert!(reserve(&other, unchosen));
    }
}
