//! One attempt of one category as a child process in its own process group, so
//! that a stop kills everything it started.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use super::progress::Progress;
use crate::results::{
    FailedTests, LogTail, OutputScanner, Quarantine, QuarantineSort, RunnerFormat, TestCase,
    TestCounts, read_junit_file,
};

/// How long a stopped process group gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Lines and bytes of output kept for reports.
const TAIL_LINES: usize = 200;
const TAIL_BYTES: usize = 16 * 1024;

/// Everything needed to start one attempt.
#[derive(Debug, Clone)]
pub struct AttemptSpec {
    /// Category index.
    pub category: usize,
    /// Attempt number.
    pub attempt: u32,
    /// Shell command line.
    pub command: String,
    /// Environment added to the inherited one.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub working_dir: PathBuf,
    /// Where to write the full output, if anywhere.
    pub log_file: Option<PathBuf>,
    /// A JUnit XML file the command writes, relative to the working directory.
    pub junit_report: Option<String>,
    /// Tests whose failures do not count.
    pub quarantine: Quarantine,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// Category index.
    pub category: usize,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Set when the process could not be started at all.
    pub spawn_error: Option<String>,
    /// Whether it was stopped on request.
    pub stopped: bool,
    /// Run time.
    pub duration: Duration,
    /// Test counts, from the JUnit file or the output.
    pub counts: Option<(RunnerFormat, TestCounts)>,
    /// End of the output.
    pub tail: String,
    /// Problem reading the JUnit report, if one was named.
    pub junit_error: Option<String>,
    /// The failing tests its JUnit report names that are not quarantined
    /// (attempt numbers 0).
    pub failed_tests: FailedTests,
    /// Its failing tests sorted by the quarantine.
    pub quarantine: QuarantineSort,
    /// Every test case of its JUnit report.
    pub cases: Vec<TestCase>,
}

/// A running attempt: dropping the handle does not stop it; `stop` does.
#[derive(Debug)]
pub struct AttemptHandle {
    stop: Option<oneshot::Sender<()>>,
}

impl AttemptHandle {
    /// Asks the attempt to stop (SIGTERM to its group, SIGKILL after the grace).
    /// Further calls do nothing.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts an attempt; its result arrives on `done`.
pub fn spawn(
    spec: AttemptSpec,
    progress: Arc<dyn Progress>,
    done: mpsc::UnboundedSender<AttemptResult>,
) -> AttemptHandle {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let r = run(spec, rx, progress).await;
        let _ = done.send(r);
    });
    AttemptHandle { stop: Some(tx) }
}

async fn run(
    spec: AttemptSpec,
    mut stop: oneshot::Receiver<()>,
    progress: Arc<dyn Progress>,
) -> AttemptResult {
    let started = Instant::now();
    let wall_start = SystemTime::now();
    let mut result = AttemptResult {
        category: spec.category,
        exit_code: None,
        signal: None,
        spawn_error: None,
        stopped: false,
        duration: Duration::ZERO,
        counts: None,
        tail: String::new(),
        junit_error: None,
        failed_tests: FailedTests::default(),
        quarantine: QuarantineSort::default(),
        cases: Vec::new(),
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&spec.command)
        .current_dir(&spec.working_dir)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => {
            tracing::debug!(
                category = spec.category,
                attempt = spec.attempt,
                pid = c.id(),
                "attempt started"
            );
            c
        }
        Err(e) => {
            result.spawn_error = Some(format!(
                "cannot start /bin/sh in {}: {e}",
                spec.working_dir.display()
            ));
            return result;
        }
    };
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let (line_tx, mut line_rx) = mpsc::channel::<String>(256);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(read_lines(out, line_tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(read_lines(err, line_tx.clone()));
    }
    drop(line_tx);
    let mut log = match &spec.log_file {
        Some(p) => match tokio::fs::File::create(p).await {
            Ok(f) => Some(tokio::io::BufWriter::new(f)),
            Err(e) => {
                tracing::warn!(file = %p.display(), error = %e, "cannot write the log file");
                None
            }
        },
        None => None,
    };
    let mut scanner = OutputScanner::new();
    let mut tail = LogTail::new(TAIL_LINES, TAIL_BYTES);
    let mut status = None;
    let mut lines_open = true;
    let mut kill_at: Option<tokio::time::Instant> = None;
    // Output still open after the exit (a child that left the group) is given up
    // on after a while.
    let mut drain_until: Option<tokio::time::Instant> = None;
    // Run until the process has exited and its output is drained.
    while status.is_none() || lines_open {
        tokio::select! {
            line = line_rx.recv(), if lines_open => match line {
                Some(line) => {
                    scanner.feed_line(&line);
                    tail.push_line(&line);
                    progress.output(spec.category, &line);
                    if let Some(w) = log.as_mut() {
                        let _ = w.write_all(line.as_bytes()).await;
                        let _ = w.write_all(b"\n").await;
                    }
                }
                None => lines_open = false,
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                drain_until = Some(tokio::time::Instant::now() + STOP_GRACE);
                // Whatever the command left behind in its group goes with it,
                // which also closes pipes held open by stray children.
                if let Some(g) = pgid {
                    let _ = killpg(g, Signal::SIGKILL);
                }
            },
            _ = &mut stop, if !result.stopped => {
                result.stopped = true;
                if let Some(g) = pgid {
                    let _ = killpg(g, Signal::SIGTERM);
                }
                kill_at = Some(tokio::time::Instant::now() + STOP_GRACE);
            },
            _ = sleep_until(drain_until), if drain_until.is_some() => {
                drain_until = None;
                lines_open = false;
            },
            _ = sleep_until(kill_at), if kill_at.is_some() => {
                kill_at = None;
                if let Some(g) = pgid {
                    let _ = killpg(g, Signal::SIGKILL);
                }
            },
        }
    }
    if let Some(w) = log.as_mut() {
        let _ = w.flush().await;
    }
    result.duration = started.elapsed();
    match status {
        Some(Ok(s)) => {
            use std::os::unix::process::ExitStatusExt;
            result.exit_code = s.code();
            result.signal = s.signal();
        }
        Some(Err(e)) => result.spawn_error = Some(format!("cannot wait for the process: {e}")),
        None => {}
    }
    result.counts = scanner.counts();
    if let Some(rel) = &spec.junit_report {
        let path = spec.working_dir.join(rel);
        let fresh = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= wall_start - Duration::from_secs(1));
        if fresh {
            let mut failed = FailedTests::default();
            let mut sort = QuarantineSort::default();
            let mut cases = Vec::new();
            let read = read_junit_file(&path, |case| {
                sort.record(&spec.quarantine, &case, 0);
                if !spec.quarantine.covers(&case.id) {
                    failed.record(&case, 0);
                }
                cases.push(case);
            });
            match read {
                Ok(c) => {
                    result.counts = Some((RunnerFormat::JUnitXml, c));
                    result.failed_tests = failed;
                    result.quarantine = sort;
                    result.cases = cases;
                }
                Err(e) => result.junit_error = Some(e.to_string()),
            }
        } else if !result.stopped {
            result.junit_error = Some(format!(
                "{} was not written by this attempt",
                path.display()
            ));
        }
    }
    result.tail = tail.text();
    result
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn read_lines<R: AsyncRead + Unpin>(r: R, tx: mpsc::Sender<String>) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buf.pop();
                }
                if tx
                    .send(String::from_utf8_lossy(&buf).into_owned())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
