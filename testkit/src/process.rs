//! Child processes of the control plane: each writes to its own log file, dies
//! with the test process (parent-death signal, and an exit hook), and is killed
//! when its handle drops.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::TestkitError;

/// Processes and directories to clean up when the test process exits.
static CLEANUP: Mutex<(Vec<i32>, Vec<PathBuf>)> = Mutex::new((Vec::new(), Vec::new()));
/// Cleanups that run first at exit (a real node: its containers and mounts).
type ExitTask = Box<dyn FnOnce() + Send>;
static FIRST_AT_EXIT: Mutex<Vec<ExitTask>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

extern "C" fn cleanup_at_exit() {
    let tasks: Vec<ExitTask> = FIRST_AT_EXIT
        .lock()
        .map(|mut g| g.drain(..).collect())
        .unwrap_or_default();
    for t in tasks {
        t();
    }
    let Ok(mut g) = CLEANUP.lock() else { return };
    for pid in g.0.drain(..) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
    }
    for dir in g.1.drain(..) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn install_hook() {
    HOOK.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function with no arguments.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
    });
}

/// Runs `task` when the test process exits, before its processes are killed.
pub(crate) fn first_at_exit(task: ExitTask) {
    install_hook();
    if let Ok(mut g) = FIRST_AT_EXIT.lock() {
        g.push(task);
    }
}

/// Removes `dir` when the test process exits.
pub(crate) fn remove_at_exit(dir: PathBuf) {
    install_hook();
    if let Ok(mut g) = CLEANUP.lock() {
        g.1.push(dir);
    }
}

/// Runs `start` on a thread of its own that never ends, and returns what it
/// gave. Children started there outlive the calling thread: a child's
/// parent-death signal fires when the thread that started it exits, and test
/// threads (and tokio's blocking threads) end long before the test process.
pub(crate) fn on_lasting_thread<T, E>(
    name: &str,
    start: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, String>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(start());
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| e.to_string())
        .and_then(|_| rx.recv().map_err(|e| e.to_string()))
        .and_then(|r| r.map_err(|e| e.to_string()))
}

/// A running child process.
#[derive(Debug)]
pub struct Component {
    name: String,
    child: Child,
    log: PathBuf,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Component {
    /// Starts `program args` with output to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<Self, TestkitError> {
        Self::spawn_env(name, program, args, &[], log)
    }

    /// Starts `program args` with `env` added to its environment.
    pub fn spawn_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: PathBuf,
    ) -> Result<Self, TestkitError> {
        install_hook();
        let out =
            File::create(&log).map_err(TestkitError::io(format!("creating {}", log.display())))?;
        let child = Self::start(program, args, env, out)?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
            program: program.to_path_buf(),
            args: args.to_vec(),
            env: env.to_vec(),
        })
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id of its current process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process (SIGSTOP freezes it as a hung
    /// process: its sockets stay open and answer nothing; SIGCONT lets it
    /// go on).
    pub fn signal(&self, signal: Signal) -> Result<(), TestkitError> {
        kill(Pid::from_raw(self.child.id() as i32), signal).map_err(|e| TestkitError::Io {
            what: format!("sending {signal} to {}", self.name),
            source: std::io::Error::from(e),
        })
    }

    /// Kills the process (SIGKILL, as a crash would), waits `down`, and
    /// starts it again with the same arguments, its output appended to the
    /// same log.
    pub fn restart(&mut self, down: Duration) -> Result<(), TestkitError> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        let out = File::options()
            .append(true)
            .open(&self.log)
            .map_err(TestkitError::io(format!("opening {}", self.log.display())))?;
        // Started from a thread that never ends, as the first start was: the
        // parent-death signal fires when the starting thread exits.
        let (program, args, env) = (self.program.clone(), self.args.clone(), self.env.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("{}-restarted", self.name))
            .spawn(move || {
                let _ = tx.send(Self::start(&program, &args, &env, out));
                loop {
                    std::thread::park();
                }
            })
            .map_err(TestkitError::io("starting a thread"))?;
        self.child = rx.recv().map_err(|e| TestkitError::Io {
            what: format!("restarting {}", self.name),
            source: std::io::Error::other(e),
        })??;
        Ok(())
    }

    fn start(
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        out: File,
    ) -> Result<Child, TestkitError> {
        let err = out
            .try_clone()
            .map_err(TestkitError::io("duplicating a log file handle"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(TestkitError::io(format!("starting {}", program.display())))?;
        if let Ok(mut g) = CLEANUP.lock() {
            g.0.push(child.id() as i32);
        }
        Ok(child)
    }

    /// The last `lines` lines of its log.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// An error if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), TestkitError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(TestkitError::Exited {
                component: self.name.clone(),
                status: status.to_string(),
                log: self.log.clone(),
                tail: self.tail(30),
            }),
            _ => Ok(()),
        }
    }

    /// Polls `ready` until it returns true, failing if the process exits or
    /// `timeout` passes.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), TestkitError> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            if ready() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(TestkitError::NotReady {
                    component: self.name.clone(),
                    seconds: timeout.as_secs(),
                    log: self.log.clone(),
                    tail: self.tail(30),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
        if let Ok(mut g) = CLEANUP.lock() {
            let id = self.child.id() as i32;
            g.0.retain(|p| *p != id);
        }
    }
}

/// Every process but this one whose command line holds `needle` (bytes,
/// as in `/proc/PID/cmdline`, arguments separated by NUL).
pub fn processes_naming(needle: &[u8]) -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if pid != me && contains(&cmdline, needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `hay` holds `needle` (an empty needle is in nothing).
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
