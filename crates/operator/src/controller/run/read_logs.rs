//! Reading a finished attempt's log through the apiserver: its end, for
//! test counts and the tail, and the JUnit report printed in it; bounded in
//! time and bytes, and tried once more after a passing failure.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

use crate::api::names::CONTAINER;
use crate::controller::kit::context::Context;
use crate::controller::run::step::{AttemptLog, CaseList, LogAnswer, ReportRead};
use crate::results::{CaseListWriter, FailedTests, ReportOutcome, read_attempt_log};

/// Log bytes kept from the end of a finished attempt's log, for test
/// counts and the tail.
const LOG_READ_BYTES: usize = 1 << 20;
/// Lines asked for from the end of a log (the kubelet sends no more).
const LOG_READ_LINES: i64 = 20_000;
/// Longest a log read may wait for its next bytes (a kubelet that does
/// not answer).
const LOG_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a log read may take in all (a kubelet that answers slowly).
const LOG_READ_BOUND: Duration = Duration::from_secs(60);
/// Wait before a failed log read is tried again.
const LOG_READ_AGAIN_AFTER: Duration = Duration::from_secs(1);
/// Bytes read at most of the log of an attempt that prints a JUnit report
/// (a kubelet serves only the current log file, which it rotates at 10 MiB
/// by default).
const REPORT_LOG_BYTES: i64 = 16 << 20;
/// Largest JUnit report read from a log, in bytes.
const REPORT_BYTES: u64 = 12 << 20;
/// Logs with a JUnit report read at once (each holds a few chunks and the
/// report's largest element).
static REPORT_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// The log of `pod` (with the JUnit report `report` in it, if any); a read
/// that failed other than by the kubelet not answering (a dropped
/// connection, an apiserver error, a kubelet's passing error) is tried once
/// more before its error is the answer, so one fault does not cost an
/// attempt its counts.
pub(crate) async fn log_read_again_once(
    ctx: &Context,
    ns: &str,
    pod: &str,
    report: Option<&str>,
) -> LogAnswer {
    let read = async || match report {
        None => logs(ctx, ns, pod).await.map(AttemptLog::plain),
        Some(r) => logs_with_report(ctx, ns, pod, r).await,
    };
    match read().await {
        Err(e) if !e.starts_with(NO_ANSWER) => {
            tracing::warn!(pod, error = %e, "reading a log failed; trying once more");
            tokio::time::sleep(LOG_READ_AGAIN_AFTER).await;
            read().await
        }
        answer => answer,
    }
}

/// How a log read that got no answer in time begins its error.
const NO_ANSWER: &str = "no answer in ";

async fn logs(ctx: &Context, ns: &str, pod: &str) -> Result<String, String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    // The end of the log holds the summary and the tail: ask for its last
    // lines, and keep only its last bytes of whatever comes.
    let lp = LogParams {
        container: Some(CONTAINER.into()),
        tail_lines: Some(LOG_READ_LINES),
        ..LogParams::default()
    };
    let mut end = LogEnd::new(LOG_READ_BYTES);
    stream_log(&pods, pod, &lp, |chunk| {
        end.push(&chunk);
        std::future::ready(true)
    })
    .await?;
    let text = end.text();
    match kubelet_error(&text) {
        Some(e) => Err(e.to_string()),
        None => Ok(text),
    }
}

/// Streams the test container's log of `pod`, as `lp` asks, a chunk at a
/// time into `each` (which returns false to stop), giving up when no bytes
/// come for [`LOG_READ_TIMEOUT`] or the whole takes [`LOG_READ_BOUND`].
async fn stream_log<F, Fut>(
    pods: &Api<Pod>,
    pod: &str,
    lp: &LogParams,
    mut each: F,
) -> Result<(), String>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let no_answer = || format!("{NO_ANSWER}{}s", LOG_READ_TIMEOUT.as_secs());
    let read = async {
        let stream = tokio::time::timeout(LOG_READ_TIMEOUT, pods.log_stream(pod, lp))
            .await
            .map_err(|_| no_answer())?
            .map_err(|e| e.to_string())?;
        let mut stream = std::pin::pin!(stream);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::time::timeout(
                LOG_READ_TIMEOUT,
                futures::AsyncReadExt::read(&mut stream, &mut buf),
            )
            .await
            .map_err(|_| no_answer())?
            .map_err(|e| e.to_string())?;
            if n == 0 || !each(buf[..n].to_vec()).await {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(LOG_READ_BOUND, read).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the log was not read whole in {}s",
            LOG_READ_BOUND.as_secs()
        )),
    }
}

/// The kubelet's words when it could not read a container's log (a
/// container that has not started yet, or whose log file is gone), which
/// it sends as the log itself with a success status: not a log.
fn kubelet_error(text: &str) -> Option<&str> {
    let line = text.trim_end();
    (line.starts_with("unable to retrieve container logs for ") && !line.contains('\n'))
        .then_some(line)
}

/// The log of `pod` with the JUnit report `report` in it: the report is
/// read as the log streams in (in a blocking task, at most
/// [`REPORT_BYTES`]), its failing tests kept (bounded), and the end of the
/// other lines kept as [`logs`] keeps them.
async fn logs_with_report(ctx: &Context, ns: &str, pod: &str, report: &str) -> LogAnswer {
    let _permit = REPORT_READS.acquire().await.map_err(|e| e.to_string())?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let lp = LogParams {
        container: Some(CONTAINER.into()),
        limit_bytes: Some(REPORT_LOG_BYTES),
        ..LogParams::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let origin = report.to_string();
    let parse = tokio::task::spawn_blocking(move || {
        let input = std::io::BufReader::new(ChunkReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        });
        attempt_log(input, &origin)
    });
    let sender = &tx;
    let fed = stream_log(&pods, pod, &lp, move |chunk| async move {
        sender.send(chunk).await.is_ok()
    })
    .await;
    // The reader sees the end of its input once the sender is gone.
    drop(tx);
    let log = parse.await.map_err(|e| e.to_string())?;
    match fed {
        Err(e) => Err(e),
        Ok(()) => match log {
            Ok(l)
                if l.report
                    .as_ref()
                    .is_some_and(|r| r.outcome == ReportOutcome::Absent) =>
            {
                match kubelet_error(&l.text) {
                    Some(e) => Err(e.to_string()),
                    None => Ok(l),
                }
            }
            other => other,
        },
    }
}

/// Splits the log of an attempt that printed the JUnit report `report`
/// into the end of its plain lines and what the report says (failing tests
/// bounded, attempt numbers left 0 for the step).
pub(crate) fn attempt_log(input: impl std::io::BufRead, report: &str) -> LogAnswer {
    let mut end = LogEnd::new(LOG_READ_BYTES);
    let mut failed = FailedTests::default();
    let mut list = CaseListWriter::default();
    let outcome = read_attempt_log(
        input,
        report,
        REPORT_BYTES,
        |line| {
            end.push(line.as_bytes());
            end.push(b"\n");
        },
        |case| {
            failed.record(&case, 0);
            list.push(&case);
        },
    )
    .map_err(|e| e.to_string())?;
    let (bytes, count, left_out) = list.finish();
    Ok(AttemptLog {
        text: end.text(),
        report: Some(ReportRead {
            outcome,
            failed,
            cases: CaseList {
                bytes: Arc::new(bytes),
                count,
                left_out,
            },
        }),
    })
}

/// A blocking reader over chunks sent from an async task.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The last bytes of a log as it streams in, read as text: bytes that are
/// not UTF-8 become U+FFFD, and a line cut at the start is dropped.
struct LogEnd {
    bytes: std::collections::VecDeque<u8>,
    keep: usize,
    cut: bool,
}

impl LogEnd {
    fn new(keep: usize) -> Self {
        Self {
            bytes: std::collections::VecDeque::with_capacity(keep.min(64 * 1024)),
            keep,
            cut: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        if chunk.len() > self.keep {
            self.cut = true;
        }
        let chunk = &chunk[chunk.len().saturating_sub(self.keep)..];
        let over = (self.bytes.len() + chunk.len()).saturating_sub(self.keep);
        if over > 0 {
            self.bytes.drain(..over);
            self.cut = true;
        }
        self.bytes.extend(chunk);
    }

    fn text(self) -> String {
        let cut = self.cut;
        let mut bytes: Vec<u8> = self.bytes.into();
        if cut {
            let first = bytes.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
            bytes.drain(..first);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::LogEnd;

    #[test]
    fn the_kubelets_words_for_a_log_it_cannot_read_are_not_a_log() {
        let words = "unable to retrieve container logs for containerd://981a72c4";
        assert_eq!(super::kubelet_error(words), Some(words));
        assert_eq!(super::kubelet_error(&format!("{words}\n")), Some(words));
        assert_eq!(super::kubelet_error("started\n3 passed\n"), None);
        assert_eq!(
            super::kubelet_error(&format!("started\n{words}")),
            None,
            "a log that holds the words among others is a log"
        );
    }

    #[test]
    fn the_end_of_a_log_is_kept_whole_lines_and_lossy() {
        let mut end = LogEnd::new(16);
        end.push(b"first line\nsecond line\n");
        end.push(b"caf\xe9 3 passed\n");
        assert_eq!(end.text(), "caf\u{fffd} 3 passed\n");

        let mut short = LogEnd::new(1024);
        short.push(b"a\nb\n");
        assert_eq!(short.text(), "a\nb\n");

        // One chunk larger than what is kept.
        let mut big = LogEnd::new(8);
        big.push(b"0123456789\nabc\n");
        assert_eq!(big.text(), "abc\n");
    }
}
