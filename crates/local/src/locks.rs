//! Shared resources on one machine: file locks in a machine-wide directory,
//! so runs of different processes (two developers, two CI jobs) take turns
//! on what their configs declare. The kernel releases a lock when its
//! process dies, so a killed run never leaves a resource held.
//!
//! For a resource `NAME` the directory holds:
//! - `NAME.capacity`: the capacity every run using it declared. Each run
//!   holds a shared lock on it while it runs; the first one (no one else
//!   holding it) writes its capacity, and a run that declares another
//!   capacity while the file is held is refused.
//! - `NAME.unit-K.lock` for each unit `K`: held (exclusively) by whoever
//!   holds that unit, with a line saying who.
//! - `run-PID-N.state` for each run: what it keeps and waits for (see
//!   [`crate::lock_state`]), to find runs that wait for each other.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use crate::lock_error::LockError;
use crate::lock_state::{LocalDeadlock, StateFile, Units, find, read_all};

/// The environment variable that names the lock directory.
pub const LOCK_DIR_ENV: &str = "TESTLAYER_LOCK_DIR";

/// The machine-wide default lock directory: `$TESTLAYER_LOCK_DIR`, else
/// `testlayer-locks` in the system's temporary directory.
pub fn default_lock_dir() -> PathBuf {
    match std::env::var_os(LOCK_DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::temp_dir().join("testlayer-locks"),
    }
}

/// The resources one run takes part in, with the capacity files it holds
/// shared for as long as it lives.
#[derive(Debug)]
pub struct Locks {
    dir: PathBuf,
    capacities: BTreeMap<String, u32>,
    /// Held shared while the run lives: the run's say in the capacity.
    _capacity_files: Vec<File>,
    /// Who this run is, written into the unit files it holds.
    who: String,
    /// What this run keeps and waits for, for the others to read.
    state: Mutex<Option<StateFile>>,
}

/// Units held by one holder; dropping it releases them.
#[derive(Debug)]
pub struct Held {
    _files: Vec<File>,
}

/// What keeps a claim waiting: for each resource short of units, who holds
/// them (as the holders wrote it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy(pub Vec<(String, Vec<String>)>);

impl Busy {
    /// `staging-db (held by pid 12 …), sandbox (…)`.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(r, holders)| {
                if holders.is_empty() {
                    r.clone()
                } else {
                    format!("{r} (held by {})", holders.join("; "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Locks {
    /// Joins the resources in `capacities` (those the run uses, with the
    /// capacity its config declares) in directory `dir`, made if missing.
    /// `who` names this run in the unit files it will hold.
    pub fn open(
        dir: &Path,
        capacities: BTreeMap<String, u32>,
        who: &str,
    ) -> Result<Locks, LockError> {
        if !capacities.is_empty() {
            make_dir(dir)?;
        }
        let mut files = Vec::new();
        for (name, &capacity) in &capacities {
            files.push(join_capacity(dir, name, capacity)?);
            // Made now, so that a directory that cannot hold them fails the
            // run before anything starts.
            for k in 0..capacity {
                open_rw(&dir.join(format!("{name}.unit-{k}.lock")))?;
            }
        }
        let who = format!("pid {} {who}", std::process::id());
        let state = if capacities.is_empty() {
            None
        } else {
            let since = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            Some(StateFile::create(dir, &who, since)?)
        };
        Ok(Locks {
            dir: dir.to_path_buf(),
            capacities,
            _capacity_files: files,
            who,
            state: Mutex::new(state),
        })
    }

    /// Says what this run keeps until it ends and which of its claims wait
    /// (whether each is for the whole run, and what it wants).
    pub fn publish(&self, keeps: &Units, waits: &[(bool, Units)]) -> Result<(), LockError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.as_mut() {
            Some(s) => s.publish(keeps, waits),
            None => Ok(()),
        }
    }

    /// The deadlock this run is part of, as the runs of this machine
    /// published what they keep and wait for.
    pub fn deadlock(&self) -> Result<Option<LocalDeadlock>, LockError> {
        let runs = read_all(&self.dir)?;
        let capacity = |name: &str| {
            self.capacities.get(name).copied().or_else(|| {
                std::fs::read_to_string(self.dir.join(format!("{name}.capacity")))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            })
        };
        Ok(find(&runs, &self.who, &capacity))
    }

    /// Who this run is in the files it writes (`pid 4242 layer e2e`).
    pub fn who(&self) -> &str {
        &self.who
    }

    /// Takes every unit `wants` names, or none: `Ok(Err(busy))` when some
    /// are held by others. `what` says who holds them (a category).
    pub fn try_take(
        &self,
        wants: &BTreeMap<String, u32>,
        what: &str,
    ) -> Result<Result<Held, Busy>, LockError> {
        let mut files = Vec::new();
        let mut busy = Vec::new();
        for (name, &n) in wants {
            let capacity = *self
                .capacities
                .get(name)
                .ok_or_else(|| LockError::Undeclared(name.clone()))?;
            let mut got = 0;
            let mut holders = Vec::new();
            for k in 0..capacity {
                if got == n {
                    break;
                }
                let path = self.dir.join(format!("{name}.unit-{k}.lock"));
                let mut f = open_rw(&path)?;
                match f.try_lock() {
                    Ok(()) => {
                        write_line(&mut f, &format!("{} {what}", self.who))
                            .map_err(|source| LockError::Io { path, source })?;
                        files.push(f);
                        got += 1;
                    }
                    Err(TryLockError::WouldBlock) => {
                        let mut text = String::new();
                        let _ = f.read_to_string(&mut text);
                        let text = text.trim();
                        if !text.is_empty() {
                            holders.push(text.to_string());
                        }
                    }
                    Err(TryLockError::Error(source)) => {
                        return Err(LockError::Io { path, source });
                    }
                }
            }
            if got < n {
                busy.push((name.clone(), holders));
            }
        }
        if busy.is_empty() {
            Ok(Ok(Held { _files: files }))
        } else {
            // All or nothing: the files taken close (and unlock) here.
            Ok(Err(Busy(busy)))
        }
    }
}

fn make_dir(dir: &Path) -> Result<(), LockError> {
    let io = |source| LockError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io)?;
        // Machine-wide: every user may add files, none may remove others'.
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
    }
    Ok(())
}

/// Opens (making it, writable by every user) a file to lock. A file another
/// user made and this one may not write is opened for reading: a lock needs
/// no more.
fn open_rw(path: &Path) -> Result<File, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(f) => {
            if let Ok(m) = f.metadata()
                && m.permissions().mode() & 0o666 != 0o666
            {
                let _ = f.set_permissions(std::fs::Permissions::from_mode(0o666));
            }
            Ok(f)
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => File::open(path).map_err(io),
        Err(e) => Err(io(e)),
    }
}

fn write_line(f: &mut File, line: &str) -> std::io::Result<()> {
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    writeln!(f, "{line}")?;
    f.flush()
}

/// Takes part in resource `name` with `capacity`: the first run (no one
/// else in) records it; the others must agree.
fn join_capacity(dir: &Path, name: &str, capacity: u32) -> Result<File, LockError> {
    let path = dir.join(format!("{name}.capacity"));
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut f = open_rw(&path)?;
    match f.try_lock() {
        Ok(()) => {
            // No run uses it now: this one's capacity holds until the last
            // run using it ends.
            write_line(&mut f, &capacity.to_string()).map_err(io)?;
            f.lock_shared().map_err(io)?;
        }
        Err(TryLockError::WouldBlock) => f.lock_shared().map_err(io)?,
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    let mut text = String::new();
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    f.read_to_string(&mut text).map_err(io)?;
    let theirs = text.trim();
    if theirs != capacity.to_string() {
        return Err(LockError::CapacityDiffers {
            resource: name.to_string(),
            ours: capacity,
            theirs: theirs.to_string(),
            path: path.clone(),
        });
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(c: &[(&str, u32)]) -> BTreeMap<String, u32> {
        c.iter().map(|(r, n)| (r.to_string(), *n)).collect()
    }

    #[test]
    fn units_are_taken_all_or_nothing_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = Locks::open(dir.path(), caps(&[("db", 1), ("pool", 3)]), "run a").unwrap();
        let b = Locks::open(dir.path(), caps(&[("db", 1), ("pool", 3)]), "run b").unwrap();
        let two = a.try_take(&caps(&[("pool", 2)]), "x").unwrap().unwrap();
        let one = b.try_take(&caps(&[("pool", 1)]), "y").unwrap().unwrap();
        // The pool is full: a claim on the pool and the free db gets neither.
        let busy = b
            .try_take(&caps(&[("db", 1), ("pool", 1)]), "z")
            .unwrap()
            .unwrap_err();
        assert_eq!(busy.0.len(), 1);
        assert_eq!(busy.0[0].0, "pool");
        assert!(busy.describe().contains("run a x"), "{}", busy.describe());
        // The db was given back: another run takes it.
        let db = a.try_take(&caps(&[("db", 1)]), "w").unwrap().unwrap();
        drop(two);
        let again = b.try_take(&caps(&[("pool", 2)]), "v").unwrap().unwrap();
        drop((one, db, again));
    }

    #[test]
    fn a_second_capacity_is_refused_while_the_first_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let a = Locks::open(dir.path(), caps(&[("db", 1)]), "a").unwrap();
        let e = Locks::open(dir.path(), caps(&[("db", 2)]), "b").unwrap_err();
        assert!(
            e.to_string()
                .contains("capacity of 1 in a run already going")
                && e.to_string().contains("but 2 in this config"),
            "{e}"
        );
        drop(a);
        // Nobody uses it any more: the new capacity holds.
        let b = Locks::open(dir.path(), caps(&[("db", 2)]), "b").unwrap();
        let _x = b.try_take(&caps(&[("db", 2)]), "x").unwrap().unwrap();
    }
}
