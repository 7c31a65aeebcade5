//! What each run on this machine keeps and waits for, published next to
//! the locks: runs that keep a layer's resources while their categories
//! wait for units the others keep wait for each other for ever, and no
//! lock can see it. Each run writes `run-PID-N.state`, locked for as long
//! as it lives (a killed run's file is not read), and reads the others'
//! when it waits.
//!
//! A file holds lines of words:
//! ```text
//! who pid 4242 layer e2e
//! since 1733212800000
//! keeps staging-db 1
//! waits run staging-db=1
//! waits attempt sandbox=1 pool=2
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use testlayer_core::resources::{Claim, Serving, StuckRun, Waiter, deadlock};

use crate::lock_error::LockError;

/// State files made by this process so far (several runs may share it).
static MADE: AtomicU64 = AtomicU64::new(0);

/// Units wanted (or kept), by resource.
pub type Units = BTreeMap<String, u32>;

/// What one run says it keeps and waits for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Who it is (`pid 4242 layer e2e`).
    pub who: String,
    /// When it began, in milliseconds since the epoch (the younger gives
    /// way in a deadlock).
    pub since: i64,
    /// Units it keeps until it ends (its layer's `uses`).
    pub keeps: Units,
    /// Its waiting claims: whether each is for the whole run, and what.
    pub waits: Vec<(bool, Units)>,
}

impl Published {
    fn text(&self) -> String {
        let mut s = format!("who {}\nsince {}\n", self.who, self.since);
        for (r, n) in &self.keeps {
            s += &format!("keeps {r} {n}\n");
        }
        for (whole, units) in &self.waits {
            let units: Vec<String> = units.iter().map(|(r, n)| format!("{r}={n}")).collect();
            let what = if *whole { "run" } else { "attempt" };
            s += &format!("waits {what} {}\n", units.join(" "));
        }
        s
    }

    /// Reads a file's text; lines it does not know are passed over (a
    /// file being written may be cut short: it then says less, never
    /// more).
    fn parse(text: &str) -> Published {
        let mut p = Published::default();
        for line in text.lines() {
            let mut words = line.split(' ');
            match words.next() {
                Some("who") => p.who = words.collect::<Vec<_>>().join(" "),
                Some("since") => p.since = words.next().and_then(|s| s.parse().ok()).unwrap_or(0),
                Some("keeps") => {
                    if let (Some(r), Some(Ok(n))) = (words.next(), words.next().map(str::parse)) {
                        p.keeps.insert(r.to_string(), n);
                    }
                }
                Some("waits") => {
                    let whole = words.next() == Some("run");
                    let units: Units = words
                        .filter_map(|w| {
                            let (r, n) = w.split_once('=')?;
                            Some((r.to_string(), n.parse().ok()?))
                        })
                        .collect();
                    if !units.is_empty() {
                        p.waits.push((whole, units));
                    }
                }
                _ => {}
            }
        }
        p
    }
}

/// This run's state file, locked while the run lives.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    file: File,
    now: Published,
}

impl StateFile {
    /// Makes this run's file in `dir`.
    pub fn create(dir: &Path, who: &str, since: i64) -> Result<StateFile, LockError> {
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("run-{}-{n}.state", std::process::id()));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        let mut s = StateFile {
            path: path.clone(),
            file,
            now: Published {
                who: who.to_string(),
                since,
                ..Published::default()
            },
        };
        s.write().map_err(io)?;
        Ok(s)
    }

    /// Says what the run keeps and waits for now (written when it changed).
    pub fn publish(&mut self, keeps: &Units, waits: &[(bool, Units)]) -> Result<(), LockError> {
        if &self.now.keeps == keeps && self.now.waits == waits {
            return Ok(());
        }
        self.now.keeps = keeps.clone();
        self.now.waits = waits.to_vec();
        self.write().map_err(|source| LockError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn write(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(self.now.text().as_bytes())?;
        self.file.flush()
    }

    /// Who this run is.
    pub fn who(&self) -> &str {
        &self.now.who
    }
}

impl Drop for StateFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What every run of `dir` that lives says.
pub fn read_all(dir: &Path) -> Result<Vec<Published>, LockError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LockError::Io { path, source }
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let is_state = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("run-") && n.ends_with(".state"));
        if !is_state {
            continue;
        }
        // Gone meanwhile: its run ended.
        let Ok(mut f) = File::open(&path) else {
            continue;
        };
        match f.try_lock_shared() {
            // Nobody holds it: its run died without removing it.
            Ok(()) => continue,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let mut text = String::new();
        if f.read_to_string(&mut text).is_ok() {
            out.push(Published::parse(&text));
        }
    }
    Ok(out)
}

/// A deadlock this run is part of, and the run that gives way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDeadlock {
    /// The runs that can never go on.
    pub stuck: Vec<StuckRun<String>>,
    /// The youngest of those that keep units: it stops, so that the others
    /// go on.
    pub victim: String,
}

/// The deadlock `me` is part of among `runs`, if any; `capacity` gives the
/// capacity of a resource.
pub fn find(
    runs: &[Published],
    me: &str,
    capacity: &dyn Fn(&str) -> Option<u32>,
) -> Option<LocalDeadlock> {
    let mut kept: BTreeMap<String, Units> = BTreeMap::new();
    let mut waiting = Vec::new();
    for r in runs {
        if !r.keeps.is_empty() {
            kept.insert(r.who.clone(), r.keeps.clone());
        }
        for (i, (whole, units)) in r.waits.iter().enumerate() {
            waiting.push(Waiter {
                run: r.who.clone(),
                whole_run: *whole,
                claim: Claim {
                    key: (r.who.clone(), i),
                    priority: 0,
                    since: r.since,
                    wants: units.clone(),
                },
            });
        }
    }
    let mut capacities = BTreeMap::new();
    for r in runs {
        for name in r
            .keeps
            .keys()
            .chain(r.waits.iter().flat_map(|(_, u)| u.keys()))
        {
            if let Some(c) = capacity(name) {
                capacities.insert(name.clone(), c);
            }
        }
    }
    let stuck = deadlock(&capacities, &kept, &waiting, Serving::AnyFree);
    if !stuck.iter().any(|s| s.run == me) {
        return None;
    }
    let since: BTreeMap<&str, i64> = runs.iter().map(|r| (r.who.as_str(), r.since)).collect();
    let victim = stuck
        .iter()
        .filter(|s| !s.holds.is_empty())
        .max_by_key(|s| {
            (
                since.get(s.run.as_str()).copied().unwrap_or(0),
                s.run.clone(),
            )
        })?
        .run
        .clone();
    Some(LocalDeadlock { stuck, victim })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(u: &[(&str, u32)]) -> Units {
        u.iter().map(|(r, n)| (r.to_string(), *n)).collect()
    }

    #[test]
    fn a_state_file_reads_back_and_a_dead_runs_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = StateFile::create(dir.path(), "pid 1 layer a", 10).unwrap();
        a.publish(
            &units(&[("db", 1)]),
            &[(false, units(&[("sandbox", 1), ("pool", 2)]))],
        )
        .unwrap();
        let read = read_all(dir.path()).unwrap();
        assert_eq!(
            read,
            [Published {
                who: "pid 1 layer a".into(),
                since: 10,
                keeps: units(&[("db", 1)]),
                waits: vec![(false, units(&[("sandbox", 1), ("pool", 2)]))],
            }]
        );
        // A file left by a run that died (nobody holds its lock).
        std::fs::write(dir.path().join("run-99-0.state"), "who dead\nkeeps db 1\n").unwrap();
        assert_eq!(read_all(dir.path()).unwrap().len(), 1);
        drop(a);
        assert!(read_all(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn two_runs_keeping_what_the_other_waits_for_find_it_and_the_younger_gives_way() {
        let run = |who: &str, since, keeps: &[(&str, u32)], waits: &[(&str, u32)]| Published {
            who: who.into(),
            since,
            keeps: units(keeps),
            waits: vec![(false, units(waits))],
        };
        let runs = [
            run("old", 1, &[("db", 1)], &[("sandbox", 1)]),
            run("young", 2, &[("sandbox", 1)], &[("db", 1)]),
        ];
        let one = |_: &str| Some(1);
        let d = find(&runs, "old", &one).unwrap();
        assert_eq!(d.victim, "young");
        assert_eq!(d.stuck.len(), 2);
        assert_eq!(find(&runs, "young", &one).unwrap().victim, "young");
        // With two units of each, nobody waits for ever.
        assert_eq!(find(&runs, "old", &|_| Some(2)), None);
    }
}
