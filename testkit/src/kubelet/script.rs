//! What the test kubelet does with one Pod: how long its container "runs",
//! how it ends, and how it behaves on the way. Tests script it directly, or
//! let it be read from the container's command in a tiny language, so a
//! layer config can say what its categories do:
//! `echo '3 passed in 0.1s'; sleep 2; exit 1`.
//!
//! # Knobs
//!
//! Scripts that use none of these behave as they always did, except that a
//! deleted running container now takes a short moment to stop (see SIGTERM).
//!
//! - **SIGTERM** ([`PodScript::sigterm`], words `trap '' TERM`,
//!   `trap 'sleep 2; exit 0' TERM`, `trap - TERM`): what the container does
//!   when its Pod is deleted while it runs. By default it handles SIGTERM
//!   promptly: it ends with exit code 143 [`DEFAULT_SIGTERM_EXIT`] (75 ms)
//!   after the signal. A handler given as a trap takes as long as its `sleep`s and ends
//!   with its `exit` code (143 without one). With `trap '' TERM`
//!   ([`OnSigterm::Ignore`]) it keeps running until the Pod's grace period
//!   (`deletionGracePeriodSeconds`, from `terminationGracePeriodSeconds`,
//!   default 30) runs out and is then killed (exit 137). A script that ends on
//!   its own earlier ends as scripted. The trap applies to the whole run,
//!   wherever it is written.
//! - **Image pulls that fail, then succeed** ([`PodScript::pull_fails_for`],
//!   word `imagepull SECONDS`): for that long the container waits with reason
//!   `ErrImagePull`, then `ImagePullBackOff`, alternating with growing
//!   back-offs as a kubelet does, and then starts normally with the rest of
//!   the script. `imagepull` alone never pulls ([`PodEnd::ImagePullError`]).
//! - **Logs** ([`PodScript::log_serving`], words `logs slow SECONDS`,
//!   `logs hang`, `logs error [STATUS]`, `logs error-once [STATUS]`,
//!   `logs ok`): how the kubelet answers
//!   `pods/log` for this Pod; without it the kubelet-wide setting applies
//!   ([`LogServing`]).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use testlayer_core::results::{REPORT_MARK, unwrapped_command};

/// How a scripted container ends.
#[derive(Debug, Clone, PartialEq)]
pub enum PodEnd {
    /// The container exits with this code (0 → `Succeeded`, else `Failed`).
    Exit(i32),
    /// The container is killed for memory (exit 137, reason `OOMKilled`).
    OomKilled,
    /// The node evicts the Pod (phase `Failed`, reason `Evicted`).
    Evicted,
    /// The image cannot be pulled: the Pod stays `Pending`, its container
    /// waiting with reason `ErrImagePull`.
    ImagePullError,
    /// The container never ends on its own.
    RunForever,
    /// The test kubelet cannot play the command: the container fails to
    /// start (exit 128, reason `StartError`, as when a runtime cannot exec a
    /// command), with this message naming what it does not know.
    Refused(String),
}

/// The words the test kubelet plays, as its refusals list them.
pub const PLAYED_WORDS: &str = "sleep, echo, printf, yes … | head -n N, message, junit, exit, oom, \
     evict, imagepull, trap … TERM, logs, true, :";

/// How long a container that handles SIGTERM by default takes to end after
/// it: a short moment, as a process that exits on the signal.
pub const DEFAULT_SIGTERM_EXIT: Duration = Duration::from_millis(75);

/// What a scripted container does when the kubelet sends it SIGTERM (its Pod
/// was deleted while it ran).
#[derive(Debug, Clone, PartialEq)]
pub enum OnSigterm {
    /// It ends `after` the signal with exit `code` (a default process: 143,
    /// after [`DEFAULT_SIGTERM_EXIT`]). If the grace period runs out first it
    /// is killed (exit 137).
    Exit {
        /// Time from the signal to the exit.
        after: Duration,
        /// Exit code.
        code: i32,
    },
    /// It ignores the signal and runs on until the grace period runs out,
    /// then is killed (exit 137), unless it ends on its own first.
    Ignore,
}

impl Default for OnSigterm {
    fn default() -> Self {
        Self::Exit {
            after: DEFAULT_SIGTERM_EXIT,
            code: 143,
        }
    }
}

/// How the kubelet answers `pods/log` requests (which the apiserver proxies
/// to it) for a Pod's containers.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LogServing {
    /// At once (the default).
    #[default]
    Prompt,
    /// After this delay.
    Slow(Duration),
    /// Never: the request hangs until the kubelet is dropped or this setting
    /// is changed (kubelet-wide setting only).
    Hang,
    /// With this HTTP status and message; the apiserver passes the status on.
    /// (kube's default client retries 429, 503 and 504 for minutes before it
    /// gives up: other statuses show the error at once.)
    Error {
        /// HTTP status code (e.g. 500).
        status: u16,
        /// Body of the answer.
        message: String,
    },
    /// The first request with this HTTP status and message, as [`Error`]
    /// does; every later one at once (a passing fault, once per Pod).
    ///
    /// [`Error`]: LogServing::Error
    ErrorOnce {
        /// HTTP status code (e.g. 500).
        status: u16,
        /// Body of the answer.
        message: String,
    },
}

/// The script for one Pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodScript {
    /// Time between binding and the container running.
    pub start_delay: Duration,
    /// How long the container runs.
    pub run_for: Duration,
    /// How it ends.
    pub end: PodEnd,
    /// The container's log lines, as bytes (a container may write any).
    pub logs: Vec<Vec<u8>>,
    /// The termination message the container writes, if any.
    pub message: Option<String>,
    /// What the container does on SIGTERM (default: ends at once, exit 143).
    pub sigterm: OnSigterm,
    /// For how long the image pull fails (`ErrImagePull`, then
    /// `ImagePullBackOff`) before it succeeds and the container starts;
    /// zero: it succeeds at once.
    pub pull_fails_for: Duration,
    /// How `pods/log` is answered for this Pod; `None`: as the kubelet is
    /// set to.
    pub log_serving: Option<LogServing>,
    /// The JUnit report the command writes (word `junit 'XML'`), printed to
    /// the log after the script's own lines when the container runs
    /// testlayer's report wrapper.
    pub junit: Option<String>,
}

impl Default for PodScript {
    fn default() -> Self {
        Self {
            start_delay: Duration::ZERO,
            run_for: Duration::ZERO,
            end: PodEnd::Exit(0),
            logs: Vec::new(),
            message: None,
            sigterm: OnSigterm::default(),
            pull_fails_for: Duration::ZERO,
            log_serving: None,
            junit: None,
        }
    }
}

impl PodScript {
    /// Exits with `code` after `run_for`.
    pub fn exit(code: i32, run_for: Duration) -> Self {
        Self {
            run_for,
            end: PodEnd::Exit(code),
            ..Self::default()
        }
    }

    /// The same script with a container that ignores SIGTERM.
    pub fn ignoring_sigterm(mut self) -> Self {
        self.sigterm = OnSigterm::Ignore;
        self
    }

    /// The same script with an image pull that fails for `d` first.
    pub fn with_pull_failures(mut self, d: Duration) -> Self {
        self.pull_fails_for = d;
        self
    }

    /// The same script with its logs served as `serving` says.
    pub fn with_log_serving(mut self, serving: LogServing) -> Self {
        self.log_serving = Some(serving);
        self
    }

    /// Reads the script from the Pod's first container: the text after
    /// `sh -c` (or the whole command line), statements separated by `;`, `&&`
    /// or new lines:
    ///
    /// - `sleep SECONDS` runs that much longer (`sleep infinity` never ends),
    /// - `echo TEXT` writes a log line,
    /// - `printf 'FORMAT'` writes FORMAT with its escapes (`\n`, `\t`,
    ///   `\\`, octal `\NNN`, `\xHH`), so logs may hold bytes that are not
    ///   UTF-8; lines end at each `\n`,
    /// - `yes TEXT | head -n N` writes N lines of TEXT,
    /// - `message TEXT` writes the termination message,
    /// - `exit N` ends with exit code N,
    /// - `oom`, `evict`, `imagepull` end in those failures,
    /// - `imagepull SECONDS` fails the image pull for that long, then goes on,
    /// - `trap '' TERM` ignores SIGTERM; `trap 'HANDLER' TERM` handles it by
    ///   running HANDLER (its `sleep`s and `exit`, default 143);
    ///   `trap - TERM` restores the default (see [`OnSigterm`]),
    /// - `logs slow SECONDS`, `logs hang`, `logs error [STATUS]`, `logs ok`
    ///   set how its logs are served (see [`LogServing`]),
    /// - `junit 'XML'` is the JUnit report the command writes,
    /// - `true` and `:` do nothing.
    ///
    /// Anything else, a word with arguments it cannot read (`sleep soon`,
    /// `exit x`) or a container without a command is refused
    /// ([`PodEnd::Refused`]): the container fails to start with a message
    /// naming the word, never an accidental success.
    ///
    /// A container that runs testlayer's report wrapper (a category with a
    /// `junit_report`) is scripted by its command, and when that exits
    /// its log ends with the report as the wrapper prints it (or the line
    /// saying that it is missing). Like the script's other lines, these are
    /// served whole from the start (a real container prints them only once
    /// its command has ended).
    pub fn from_pod(pod: &Pod) -> Self {
        let Some(c) = pod.spec.as_ref().and_then(|s| s.containers.first()) else {
            return Self::refused("the Pod has no container".into());
        };
        let mut words: Vec<String> = c.command.clone().unwrap_or_default();
        words.extend(c.args.clone().unwrap_or_default());
        if words.iter().all(|w| w.trim().is_empty()) {
            return Self::refused(format!(
                "container {:?} has no command: the test kubelet plays only a command, not an image's entrypoint",
                c.name
            ));
        }
        if let Some((command, _)) = unwrapped_command(&words) {
            let mut s = Self::parse(command);
            if matches!(s.end, PodEnd::Exit(_)) {
                s.logs.extend(printed_report(s.junit.as_deref()));
            }
            return s;
        }
        let text = match words.iter().position(|w| w == "-c") {
            Some(i) if i + 1 < words.len() => words[i + 1].clone(),
            _ => words.join(" "),
        };
        Self::parse(&text)
    }

    /// A script that refuses to play, with `why`.
    pub fn refused(why: String) -> Self {
        Self {
            end: PodEnd::Refused(why),
            ..Self::default()
        }
    }

    /// Parses the tiny language of [`PodScript::from_pod`]; what it cannot
    /// play makes a [`PodEnd::Refused`] script.
    pub fn parse(text: &str) -> Self {
        match Self::try_parse(text) {
            Ok(s) => s,
            Err(why) => Self::refused(format!(
                "the test kubelet cannot play {why} in {text:?}; it plays {PLAYED_WORDS}"
            )),
        }
    }

    fn try_parse(text: &str) -> Result<Self, String> {
        let mut s = Self::default();
        for st in split_statements(text).iter().map(|s| s.trim()) {
            if st.is_empty() {
                continue;
            }
            let (cmd, raw) = st.split_once(char::is_whitespace).unwrap_or((st, ""));
            let raw = raw.trim();
            let rest = unquote(raw);
            let seconds = |what: &str| -> Result<Duration, String> {
                rest.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("`{what} {rest}` (not a number of seconds)"))
            };
            match cmd {
                "sleep" if rest == "infinity" => {
                    s.end = PodEnd::RunForever;
                    return Ok(s);
                }
                "sleep" => s.run_for += seconds("sleep")?,
                "echo" => s.logs.push(rest.as_bytes().to_vec()),
                "printf" => s.logs.extend(printf_lines(rest)),
                "yes" => {
                    let (text, n) = yes_head(raw)
                        .ok_or_else(|| format!("`yes {raw}` (only `yes TEXT | head -n N`)"))?;
                    s.logs.extend(std::iter::repeat_n(text.into_bytes(), n));
                }
                "message" => s.message = Some(rest.to_string()),
                "junit" => s.junit = Some(rest.to_string()),
                "true" | ":" => {}
                "exit" => {
                    let code = if rest.is_empty() { Ok(0) } else { rest.parse() };
                    let code =
                        code.map_err(|_| format!("`exit {rest}` (not a whole-number exit code)"))?;
                    s.end = PodEnd::Exit(code);
                    return Ok(s);
                }
                "oom" => {
                    s.end = PodEnd::OomKilled;
                    return Ok(s);
                }
                "evict" => {
                    s.end = PodEnd::Evicted;
                    return Ok(s);
                }
                "imagepull" if rest.is_empty() => {
                    s.end = PodEnd::ImagePullError;
                    return Ok(s);
                }
                "imagepull" => s.pull_fails_for += seconds("imagepull")?,
                "trap" => {
                    if let Some(t) = parse_trap(raw)? {
                        s.sigterm = t;
                    }
                }
                "logs" => {
                    s.log_serving = Some(parse_logs(rest).ok_or_else(|| {
                        format!("`logs {rest}` (only slow SECONDS, hang, error [STATUS], ok)")
                    })?);
                }
                other => return Err(format!("`{other}`")),
            }
        }
        Ok(s)
    }
}

/// The lines testlayer's report wrapper prints after its command: the
/// report behind its mark, or that it is missing.
fn printed_report(report: Option<&str>) -> Vec<Vec<u8>> {
    let line = |s: String| s.into_bytes();
    match report {
        None => vec![Vec::new(), line(format!("{REPORT_MARK} missing"))],
        Some(xml) => {
            let mut out = vec![Vec::new(), line(format!("{REPORT_MARK} begin"))];
            out.extend(xml.lines().map(|l| line(format!("{REPORT_MARK} {l}"))));
            out.push(Vec::new());
            out.push(line(format!("{REPORT_MARK} end")));
            out
        }
    }
}

/// `trap ACTION SIGNAL...`: what it says about TERM, if anything; an
/// error for a trap without a signal or with a handler it cannot play.
fn parse_trap(args: &str) -> Result<Option<OnSigterm>, String> {
    let words = shell_words(args);
    let Some((action, signals)) = words.split_first().filter(|(_, s)| !s.is_empty()) else {
        return Err(format!("`trap {args}` (only `trap ACTION SIGNAL…`)"));
    };
    let term = signals
        .iter()
        .any(|s| matches!(s.as_str(), "TERM" | "SIGTERM" | "15"));
    if !term {
        return Ok(None);
    }
    Ok(Some(match action.as_str() {
        "" => OnSigterm::Ignore,
        "-" => OnSigterm::default(),
        handler => {
            let h = PodScript::try_parse(handler)?;
            if h.end == PodEnd::RunForever {
                return Ok(Some(OnSigterm::Ignore));
            }
            OnSigterm::Exit {
                after: h.run_for,
                code: match h.end {
                    PodEnd::Exit(c) if handler_exits(handler) => c,
                    _ => 143,
                },
            }
        }
    }))
}

fn handler_exits(handler: &str) -> bool {
    split_statements(handler)
        .iter()
        .any(|s| s.trim() == "exit" || s.trim().starts_with("exit "))
}

/// `logs MODE [ARG]`.
fn parse_logs(args: &str) -> Option<LogServing> {
    let (mode, arg) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    let arg = arg.trim();
    match mode {
        "slow" | "delay" => arg
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| LogServing::Slow(Duration::from_secs_f64(s))),
        "hang" => Some(LogServing::Hang),
        "error" | "fail" => Some(LogServing::Error {
            status: error_status(arg),
            message: "the test kubelet was told to fail this log request".into(),
        }),
        "error-once" | "fail-once" => Some(LogServing::ErrorOnce {
            status: error_status(arg),
            message: "the test kubelet was told to fail this log request once".into(),
        }),
        "ok" | "prompt" => Some(LogServing::Prompt),
        _ => None,
    }
}

/// The HTTP status a `logs error` word asks for (500 by default).
fn error_status(arg: &str) -> u16 {
    arg.parse()
        .ok()
        .filter(|c| (400..600).contains(c))
        .unwrap_or(500)
}

/// Splits shell words on white space outside quotes, removing the quotes.
fn shell_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => out.extend(cur.take()),
            (None, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(cur);
    out
}

/// Splits on `;`, `&&` and new lines outside single or double quotes.
fn split_statements(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let split = match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                false
            }
            (Some(_), _) => false,
            (None, '\'' | '"') => {
                quote = Some(c);
                false
            }
            (None, ';' | '\n') => true,
            (None, '&') if chars.peek() == Some(&'&') => {
                chars.next();
                true
            }
            _ => false,
        };
        if split {
            out.push(String::new());
        } else if let Some(s) = out.last_mut() {
            s.push(c);
        }
    }
    out
}

/// The lines `printf FORMAT` writes: its escapes turned into bytes.
fn printf_lines(format: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut bytes = format.bytes().peekable();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let mut v = 0u8;
                for _ in 0..2 {
                    match bytes.peek().and_then(|c| (*c as char).to_digit(16)) {
                        Some(d) => {
                            v = v.wrapping_mul(16).wrapping_add(d as u8);
                            bytes.next();
                        }
                        None => break,
                    }
                }
                out.push(v);
            }
            Some(d @ b'0'..=b'7') => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    match bytes.peek() {
                        Some(c @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(c - b'0');
                            bytes.next();
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            Some(other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    let mut lines: Vec<Vec<u8>> = out.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    lines
}

/// `TEXT | head -n N` (the arguments of `yes`): the text and the count.
fn yes_head(args: &str) -> Option<(String, usize)> {
    let (text, head) = args.split_once('|')?;
    let words = shell_words(head);
    let n = match words.as_slice() {
        [h, flag, n] if h == "head" && flag == "-n" => n.parse().ok()?,
        _ => return None,
    };
    Some((unquote(text.trim()).to_string(), n))
}

fn unquote(s: &str) -> &str {
    for q in ['\'', '"'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_running(command: Vec<String>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "test", "image": "busybox", "command": command}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_wrapped_command_prints_its_report_after_its_lines() {
        let command = testlayer_core::results::wrapped_command(
            "echo '1 failed'; junit '<testsuite>\n<testcase name=\"a\"/>\n</testsuite>'; exit 1",
            "out/junit.xml",
        );
        let s = PodScript::from_pod(&pod_running(command));
        assert_eq!(s.end, PodEnd::Exit(1));
        let lines: Vec<String> = s
            .logs
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        assert_eq!(
            lines,
            [
                "1 failed".to_string(),
                String::new(),
                format!("{REPORT_MARK} begin"),
                format!("{REPORT_MARK} <testsuite>"),
                format!("{REPORT_MARK} <testcase name=\"a\"/>"),
                format!("{REPORT_MARK} </testsuite>"),
                String::new(),
                format!("{REPORT_MARK} end"),
            ]
        );
        // Without a `junit` word the report is missing; a killed container
        // prints nothing after its lines.
        let missing = PodScript::from_pod(&pod_running(testlayer_core::results::wrapped_command(
            "echo hi", "r.xml",
        )));
        assert_eq!(
            missing
                .logs
                .last()
                .map(|l| String::from_utf8_lossy(l).into_owned()),
            Some(format!("{REPORT_MARK} missing"))
        );
        let oom = PodScript::from_pod(&pod_running(testlayer_core::results::wrapped_command(
            "echo hi; oom",
            "r.xml",
        )));
        assert_eq!(oom.logs, vec![b"hi".to_vec()]);
    }

    #[test]
    fn printf_and_yes_write_bytes_and_many_lines() {
        let s = PodScript::parse(r"printf 'caf\351\n\x41b\tc\n'; yes 'fill' | head -n 3");
        assert_eq!(
            s.logs,
            vec![
                b"caf\xe9".to_vec(),
                b"Ab\tc".to_vec(),
                b"fill".to_vec(),
                b"fill".to_vec(),
                b"fill".to_vec()
            ]
        );
    }

    #[test]
    fn parses_statements() {
        let s = PodScript::parse(
            "echo '3 passed in 0.1s'; sleep 1.5 && sleep 0.5\nmessage \"boom\"; exit 3; sleep 100",
        );
        assert_eq!(s.logs, vec![b"3 passed in 0.1s".to_vec()]);
        assert_eq!(s.run_for, Duration::from_secs(2));
        assert_eq!(s.message.as_deref(), Some("boom"));
        assert_eq!(s.end, PodEnd::Exit(3));
        assert_eq!(PodScript::parse("sleep infinity").end, PodEnd::RunForever);
        assert_eq!(PodScript::parse("sleep 1; oom").end, PodEnd::OomKilled);
        assert_eq!(PodScript::parse("evict").end, PodEnd::Evicted);
        assert_eq!(PodScript::parse("imagepull").end, PodEnd::ImagePullError);
        assert_eq!(PodScript::parse("true; :; exit").end, PodEnd::Exit(0));
        let quoted = PodScript::parse("echo 'ok. 3 passed; 0 failed' && echo \"a && b\"; exit 0");
        assert_eq!(
            quoted.logs,
            vec![b"ok. 3 passed; 0 failed".to_vec(), b"a && b".to_vec()]
        );
    }

    fn refusal(text: &str) -> String {
        match PodScript::parse(text).end {
            PodEnd::Refused(why) => why,
            other => panic!("{text:?} was played as {other:?}"),
        }
    }

    #[test]
    fn refuses_what_it_cannot_play_naming_the_word() {
        let why = refusal("echo hi; python3 -m pytest; exit 0");
        assert!(why.contains("cannot play `python3`"), "{why}");
        assert!(why.contains("it plays sleep, echo"), "{why}");
        for (text, word) in [
            ("sleep -1", "`sleep -1`"),
            ("sleep soon", "`sleep soon`"),
            ("exit x", "`exit x`"),
            ("imagepull later", "`imagepull later`"),
            ("logs nonsense", "`logs nonsense`"),
            ("yes y", "`yes y`"),
            ("trap TERM", "`trap TERM`"),
            ("trap 'cleanup' TERM", "`cleanup`"),
            ("pytest -q && exit 1", "`pytest`"),
        ] {
            let why = refusal(text);
            assert!(why.contains(word), "{text}: {why}");
        }
        // A refused script does nothing else: no logs, no run time.
        let s = PodScript::parse("echo hi; sleep 5; make test");
        assert_eq!((s.logs.len(), s.run_for), (0, Duration::ZERO));
        // A trap on another signal is allowed and ignored.
        assert_eq!(
            PodScript::parse("trap 'cleanup' INT; exit 0").end,
            PodEnd::Exit(0)
        );
        let none: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}
        }))
        .unwrap();
        assert!(matches!(
            PodScript::from_pod(&none).end,
            PodEnd::Refused(why) if why.contains("has no command")
        ));
    }

    #[test]
    fn parses_the_realism_words() {
        assert_eq!(PodScript::parse("sleep 1").sigterm, OnSigterm::default());
        let ignore = PodScript::parse("trap '' TERM; sleep infinity");
        assert_eq!(
            (ignore.sigterm, ignore.end),
            (OnSigterm::Ignore, PodEnd::RunForever)
        );
        assert_eq!(
            PodScript::parse("trap \"\" INT SIGTERM").sigterm,
            OnSigterm::Ignore
        );
        assert_eq!(
            PodScript::parse("trap '' INT").sigterm,
            OnSigterm::default()
        );
        assert_eq!(
            PodScript::parse("trap '' TERM; trap - TERM").sigterm,
            OnSigterm::default()
        );
        assert_eq!(
            PodScript::parse("trap 'echo bye; sleep 2; exit 0' TERM; sleep 9").sigterm,
            OnSigterm::Exit {
                after: Duration::from_secs(2),
                code: 0
            }
        );
        assert_eq!(
            PodScript::parse("trap 'sleep 0.5' TERM").sigterm,
            OnSigterm::Exit {
                after: Duration::from_millis(500),
                code: 143
            }
        );
        let pull = PodScript::parse("imagepull 2.5; echo hi; exit 4");
        assert_eq!(
            (pull.pull_fails_for, pull.end, pull.logs),
            (
                Duration::from_millis(2500),
                PodEnd::Exit(4),
                vec![b"hi".to_vec()]
            )
        );
        assert_eq!(
            PodScript::parse("logs slow 1.5").log_serving,
            Some(LogServing::Slow(Duration::from_millis(1500)))
        );
        assert_eq!(
            PodScript::parse("logs hang").log_serving,
            Some(LogServing::Hang)
        );
        assert!(matches!(
            PodScript::parse("logs error 503").log_serving,
            Some(LogServing::Error { status: 503, .. })
        ));
        assert!(matches!(
            PodScript::parse("logs error").log_serving,
            Some(LogServing::Error { status: 500, .. })
        ));
        assert!(matches!(
            PodScript::parse("logs error-once 502").log_serving,
            Some(LogServing::ErrorOnce { status: 502, .. })
        ));
    }

    #[test]
    fn reads_the_shell_text_of_the_first_container() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "t", "command": ["/bin/sh", "-c"], "args": ["sleep 1; exit 2"]}]}
        }))
        .unwrap();
        assert_eq!(
            PodScript::from_pod(&pod),
            PodScript::exit(2, Duration::from_secs(1))
        );
    }
}
