//! How a JUnit report leaves a container: through its log.
//!
//! A Pod's files are gone with it, a termination message holds 4 KiB, and
//! the controller may not exec into Pods; the log is the one channel every
//! container has. When a category names a `junit_report`, its container
//! runs [`WRAPPER`] with `/bin/sh`: the command runs as before (SIGTERM
//! passed on to it, its exit code kept; as a background job of the wrapper
//! its standard input is `/dev/null`), then the report is printed
//! to the log, every line behind [`REPORT_MARK`], between a `begin` and an
//! `end` line (or one `missing` line when the file was not written).
//! Marking every line keeps the report whole when other output of the test
//! (a daemon it left running) lands between its lines.
//!
//! [`read_attempt_log`] splits such a log back into its plain lines and the
//! report, reading the report as it streams.

use std::io::{BufRead, Read};

use super::{ResultsError, TestCase, TestCounts, read_junit};

/// The mark at the start of each line of the report in the log.
pub const REPORT_MARK: &str = "##testlayer-junit##";

/// The `/bin/sh` script that runs a command and then prints its report. Its
/// arguments: `$1` the command (run with `/bin/sh -c`), `$2` the report's
/// path (relative to the working directory). POSIX sh only; `sed` is used
/// when the image has it, else a `read` loop.
pub const WRAPPER: &str = r#"/bin/sh -c "$1" &
c=$!
t=0
rc=
trap 'kill -TERM "$c" 2>/dev/null; t=1' TERM
while :; do
  wait "$c"
  r=$?
  [ "$r" = 127 ] && [ -n "$rc" ] && break
  rc=$r
  [ "$t" = 1 ] || break
  t=0
done
trap - TERM
m='##testlayer-junit##'
if [ -f "$2" ]; then
  printf '\n%s begin\n' "$m"
  if command -v sed >/dev/null 2>&1; then
    sed "s/^/$m /" "$2"
  else
    while IFS= read -r l || [ -n "$l" ]; do printf '%s %s\n' "$m" "$l"; done < "$2"
  fi
  printf '\n%s end\n' "$m"
else
  printf '\n%s missing\n' "$m"
fi
exit "$rc"
"#;

/// The container command that runs `command` and then prints `report`.
pub fn wrapped_command(command: &str, report: &str) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        WRAPPER.into(),
        "testlayer".into(),
        command.into(),
        report.into(),
    ]
}

/// The command of a container built by [`wrapped_command`], if it is one.
pub fn unwrapped_command(args: &[String]) -> Option<(&str, &str)> {
    match args {
        [sh, c, w, _, command, report] if sh == "/bin/sh" && c == "-c" && w == WRAPPER => {
            Some((command, report))
        }
        _ => None,
    }
}

/// What became of an attempt's JUnit report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Read whole: the counts of its test cases.
    Read(TestCounts),
    /// The command did not write the file.
    Missing,
    /// It is not a JUnit report, or not well-formed, or too large.
    Invalid(String),
    /// The log holds only part of it (its start or end is not there: the
    /// log was rotated or cut, or the container was killed while printing).
    Cut,
    /// The log holds no sign of it (not wrapped, or killed before the end).
    Absent,
}

impl ReportOutcome {
    /// One sentence on a report that could not be used (`None` when read).
    pub fn problem(&self, report: &str) -> Option<String> {
        match self {
            ReportOutcome::Read(_) => None,
            ReportOutcome::Missing => Some(format!("JUnit report {report} was not written")),
            ReportOutcome::Invalid(why) => Some(why.clone()),
            ReportOutcome::Cut => Some(format!(
                "JUnit report {report} is not whole in the log (the log was rotated or cut while it was printed)"
            )),
            ReportOutcome::Absent => Some(format!(
                "JUnit report {report} was not printed (the container ended before the command did)"
            )),
        }
    }
}

/// What the marked lines say.
enum Mark {
    Begin,
    Line,
    End,
    Missing,
}

fn mark(line: &[u8]) -> Option<Mark> {
    let rest = line.strip_prefix(REPORT_MARK.as_bytes())?;
    Some(match rest {
        b" begin" => Mark::Begin,
        b" end" => Mark::End,
        b" missing" => Mark::Missing,
        _ => Mark::Line,
    })
}

/// Reads lines of a log; the report's lines are handed to the XML reader,
/// the others to `plain`.
struct Demux<'p, R> {
    log: R,
    plain: &'p mut dyn FnMut(&str),
    line: Vec<u8>,
    /// Bytes of `line` not yet handed to the XML reader.
    at: usize,
    /// In the report (after `begin`, before `end`).
    inside: bool,
    saw_begin: bool,
    saw_end: bool,
    saw_missing: bool,
    /// Report lines seen outside begin/end.
    stray: bool,
    /// An empty plain line not handed on yet: the wrapper prints one before
    /// its marks (to end a last line without a newline), which is dropped
    /// when a mark follows.
    blank: bool,
}

impl<R: BufRead> Demux<'_, R> {
    /// Reads the next line into `self.line`; false at the end of the log.
    fn next_line(&mut self) -> std::io::Result<bool> {
        self.line.clear();
        self.at = 0;
        if self.log.read_until(b'\n', &mut self.line)? == 0 {
            return Ok(false);
        }
        while self.line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            self.line.pop();
        }
        Ok(true)
    }

    /// Handles the current line when it is not report content for the
    /// reader; returns true when it is (then `line[at..]` is its payload).
    fn classify(&mut self) -> bool {
        let marked = mark(&self.line);
        if marked.is_some() {
            self.blank = false;
        }
        match marked {
            None if self.line.is_empty() => {
                if std::mem::replace(&mut self.blank, true) {
                    (self.plain)("");
                }
                false
            }
            None => {
                if std::mem::take(&mut self.blank) {
                    (self.plain)("");
                }
                (self.plain)(&String::from_utf8_lossy(&self.line));
                false
            }
            Some(Mark::Begin) => {
                self.inside = true;
                self.saw_begin = true;
                false
            }
            Some(Mark::End) => {
                self.inside = false;
                self.saw_end = true;
                false
            }
            Some(Mark::Missing) => {
                self.saw_missing = true;
                false
            }
            Some(Mark::Line) if self.inside => {
                self.at = REPORT_MARK.len() + 1;
                // The payload ends with the newline the log line had.
                self.line.push(b'\n');
                true
            }
            Some(Mark::Line) => {
                self.stray = true;
                false
            }
        }
    }

    /// Reads the rest of the log, handing plain lines on.
    fn drain(&mut self) -> std::io::Result<()> {
        while self.next_line()? {
            self.classify();
        }
        if std::mem::take(&mut self.blank) {
            (self.plain)("");
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Demux<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.at > 0 && self.at < self.line.len() {
                let n = out.len().min(self.line.len() - self.at);
                out[..n].copy_from_slice(&self.line[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            // The report ends at its `end` line (or the end of the log).
            if self.saw_end || !self.next_line()? {
                return Ok(0);
            }
            if self.classify() {
                continue;
            }
            if self.saw_end {
                return Ok(0);
            }
        }
    }
}

/// Reads the log of an attempt whose container ran [`WRAPPER`]: every line
/// that is not part of the report goes to `plain` (bytes that are not UTF-8
/// become U+FFFD), every test case of the report to `case`. The report is
/// read as it streams, at most `limit` bytes of it.
pub fn read_attempt_log<R: BufRead>(
    log: R,
    report: &str,
    limit: u64,
    mut plain: impl FnMut(&str),
    case: impl FnMut(TestCase),
) -> Result<ReportOutcome, std::io::Error> {
    let mut demux = Demux {
        log,
        plain: &mut plain,
        line: Vec::new(),
        at: 0,
        inside: false,
        saw_begin: false,
        saw_end: false,
        saw_missing: false,
        stray: false,
        blank: false,
    };
    // Plain lines up to the report's start.
    let mut parsed = None;
    while demux.next_line()? {
        if demux.classify() || demux.inside {
            // The report starts here: read it through the XML reader,
            // which pulls its lines from the demux.
            let result = read_junit(std::io::BufReader::new(&mut demux), report, limit, case);
            parsed = Some(result);
            break;
        }
    }
    demux.drain()?;
    Ok(match parsed {
        _ if demux.saw_missing => ReportOutcome::Missing,
        Some(_) if !demux.saw_end => ReportOutcome::Cut,
        Some(Ok(counts)) if !demux.stray => ReportOutcome::Read(counts),
        Some(Ok(_)) => ReportOutcome::Cut,
        Some(Err(ResultsError::Malformed { .. } | ResultsError::NotJunit { .. }))
            if demux.stray =>
        {
            ReportOutcome::Cut
        }
        Some(Err(e)) => ReportOutcome::Invalid(e.to_string()),
        None if demux.stray || demux.saw_end => ReportOutcome::Cut,
        None => ReportOutcome::Absent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::CaseResult;

    const XML: &str = "<testsuite name=\"s\">\n  <testcase classname=\"t\" name=\"ok\"/>\n  <testcase classname=\"t\" name=\"bad\"><failure message=\"assert 1 == 2\"/></testcase>\n</testsuite>";

    fn framed(xml: &str) -> String {
        let mut s = format!("\n{REPORT_MARK} begin\n");
        for l in xml.lines() {
            s.push_str(&format!("{REPORT_MARK} {l}\n"));
        }
        s.push_str(&format!("\n{REPORT_MARK} end\n"));
        s
    }

    fn read(log: &str) -> (ReportOutcome, Vec<String>, Vec<TestCase>) {
        let (mut plain, mut cases) = (Vec::new(), Vec::new());
        let outcome = read_attempt_log(
            log.as_bytes(),
            "out/junit.xml",
            1 << 20,
            |l| plain.push(l.to_string()),
            |c| cases.push(c),
        )
        .unwrap();
        (outcome, plain, cases)
    }

    #[test]
    fn the_report_is_split_from_the_log() {
        let log = format!(
            "collected 2 items\n1 failed, 1 passed in 0.1s\n{}",
            framed(XML)
        );
        let (outcome, plain, cases) = read(&log);
        assert_eq!(
            outcome,
            ReportOutcome::Read(TestCounts {
                passed: 1,
                failed: 1,
                skipped: 0
            })
        );
        assert_eq!(plain, ["collected 2 items", "1 failed, 1 passed in 0.1s"]);
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[1].id, "t::bad");
        assert_eq!(cases[1].result, CaseResult::Failed);
        assert_eq!(cases[1].message, "assert 1 == 2");
    }

    #[test]
    fn output_between_report_lines_stays_in_the_log() {
        let mut log = framed(XML);
        log = log.replacen(
            &format!("{REPORT_MARK}   <testcase classname=\"t\" name=\"ok\"/>\n"),
            &format!(
                "daemon: still here\n{REPORT_MARK}   <testcase classname=\"t\" name=\"ok\"/>\n"
            ),
            1,
        );
        let (outcome, plain, cases) = read(&format!("{log}after\n"));
        assert!(matches!(outcome, ReportOutcome::Read(_)), "{outcome:?}");
        assert_eq!(plain, ["daemon: still here", "after"]);
        assert_eq!(cases.len(), 2);
    }

    #[test]
    fn missing_cut_invalid_and_absent_are_told_apart() {
        let (o, plain, _) = read(&format!("ran\n\n{REPORT_MARK} missing\n"));
        assert_eq!(o, ReportOutcome::Missing);
        assert_eq!(plain, ["ran"]);
        assert_eq!(
            o.problem("out/junit.xml").unwrap(),
            "JUnit report out/junit.xml was not written"
        );

        // The start rotated away: only the end of the report is there.
        let full = framed(XML);
        let tail: String = full.lines().skip(3).map(|l| format!("{l}\n")).collect();
        assert_eq!(read(&tail).0, ReportOutcome::Cut);
        // The end never came (the container was killed while printing).
        let head: String = full.lines().take(4).map(|l| format!("{l}\n")).collect();
        assert_eq!(read(&head).0, ReportOutcome::Cut);

        let (o, _, _) = read(&framed("this is not xml <<<"));
        let ReportOutcome::Invalid(why) = &o else {
            panic!("{o:?}")
        };
        assert!(why.starts_with("out/junit.xml: "), "{why}");
        let (o, _, _) = read(&framed("<html><body/></html>"));
        assert!(
            matches!(&o, ReportOutcome::Invalid(w) if w.contains("not a JUnit report")),
            "{o:?}"
        );

        assert_eq!(read("no report here\n").0, ReportOutcome::Absent);
    }

    #[test]
    fn a_report_over_the_limit_is_invalid_and_the_log_still_read() {
        let big: String = (0..2000)
            .map(|i| format!("<testcase name=\"case-{i}\"/>\n"))
            .collect();
        let log = format!(
            "{}tail line\n",
            framed(&format!("<testsuite>\n{big}</testsuite>"))
        );
        let (mut plain, mut n) = (Vec::new(), 0);
        let o = read_attempt_log(
            log.as_bytes(),
            "r.xml",
            4096,
            |l| plain.push(l.to_string()),
            |_| n += 1,
        )
        .unwrap();
        assert!(
            matches!(&o, ReportOutcome::Invalid(w) if w.contains("larger than")),
            "{o:?}"
        );
        assert_eq!(plain, ["tail line"]);
    }

    #[test]
    fn wrapped_commands_round_trip() {
        let args = wrapped_command("pytest -q", "out/junit.xml");
        assert_eq!(
            unwrapped_command(&args),
            Some(("pytest -q", "out/junit.xml"))
        );
        let plain = vec!["/bin/sh".to_string(), "-c".into(), "pytest".into()];
        assert_eq!(unwrapped_command(&plain), None);
    }

    /// Runs the wrapper under this machine's `/bin/sh` in `dir`.
    fn run_wrapper(dir: &std::path::Path, command: &str, path: &str) -> (i32, String) {
        let args = wrapped_command(command, "junit.xml");
        let out = std::process::Command::new(&args[0])
            .args(&args[1..])
            .current_dir(dir)
            .env("PATH", path)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn the_wrapper_prints_the_report_and_keeps_the_exit_code() {
        let dir = std::env::temp_dir().join(format!("testlayer-wrapper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("report.xml"), XML).unwrap();
        // With sed, and without it (a PATH that has none: the read loop).
        for path in ["/usr/bin:/bin", "/nonexistent"] {
            let command = "echo running; cat report.xml > junit.xml 2>/dev/null || printf '%s' \"$(while IFS= read -r l || [ -n \"$l\" ]; do echo \"$l\"; done < report.xml)\" > junit.xml; exit 3";
            let (code, out) = run_wrapper(&dir, command, path);
            assert_eq!(code, 3, "{out}");
            let (o, plain, cases) = read(&out);
            assert!(
                matches!(o, ReportOutcome::Read(_)),
                "PATH={path}: {o:?}\n{out}"
            );
            assert_eq!(plain, ["running"], "{out}");
            assert_eq!(cases.len(), 2);
            std::fs::remove_file(dir.join("junit.xml")).unwrap();
        }
        let (code, out) = run_wrapper(&dir, "true", "/usr/bin:/bin");
        assert_eq!(code, 0);
        assert_eq!(read(&out).0, ReportOutcome::Missing);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_wrapper_passes_sigterm_to_the_command() {
        let args = wrapped_command(
            "trap 'echo stopping; exit 7' TERM; sleep 30 >/dev/null & wait",
            "junit.xml",
        );
        let child = std::process::Command::new(&args[0])
            .args(&args[1..])
            .current_dir(std::env::temp_dir())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let pid = child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(7), "{text}");
        assert!(text.contains("stopping"), "{text}");
        assert_eq!(read(&text).0, ReportOutcome::Missing);
    }
}
