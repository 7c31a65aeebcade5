//! What the test kubelet does with one Pod: how long its container "runs" and
//! how it ends. Tests script it directly, or let it be read from the
//! container's command in a tiny language, so a layer config can say what its
//! categories do: `echo '3 passed in 0.1s'; sleep 2; exit 1`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

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
    /// The container's log lines.
    pub logs: Vec<String>,
    /// The termination message the container writes, if any.
    pub message: Option<String>,
}

impl Default for PodScript {
    fn default() -> Self {
        Self {
            start_delay: Duration::ZERO,
            run_for: Duration::ZERO,
            end: PodEnd::Exit(0),
            logs: Vec::new(),
            message: None,
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

    /// Reads the script from the Pod's first container: the text after
    /// `sh -c` (or the whole command line), statements separated by `;`, `&&`
    /// or new lines:
    ///
    /// - `sleep SECONDS` runs that much longer (`sleep infinity` never ends),
    /// - `echo TEXT` writes a log line,
    /// - `message TEXT` writes the termination message,
    /// - `exit N` ends with exit code N,
    /// - `oom`, `evict`, `imagepull` end in those failures,
    /// - anything else succeeds at once.
    pub fn from_pod(pod: &Pod) -> Self {
        let Some(c) = pod.spec.as_ref().and_then(|s| s.containers.first()) else {
            return Self::default();
        };
        let mut words: Vec<String> = c.command.clone().unwrap_or_default();
        words.extend(c.args.clone().unwrap_or_default());
        let text = match words.iter().position(|w| w == "-c") {
            Some(i) if i + 1 < words.len() => words[i + 1].clone(),
            _ => words.join(" "),
        };
        Self::parse(&text)
    }

    /// Parses the tiny language of [`PodScript::from_pod`].
    pub fn parse(text: &str) -> Self {
        let mut s = Self::default();
        for st in split_statements(text).iter().map(|s| s.trim()) {
            let (cmd, rest) = st.split_once(char::is_whitespace).unwrap_or((st, ""));
            let rest = unquote(rest.trim());
            match cmd {
                "sleep" if rest == "infinity" => {
                    s.end = PodEnd::RunForever;
                    return s;
                }
                "sleep" => {
                    if let Ok(secs) = rest.parse::<f64>()
                        && secs.is_finite()
                        && secs >= 0.0
                    {
                        s.run_for += Duration::from_secs_f64(secs);
                    }
                }
                "echo" => s.logs.push(rest.to_string()),
                "message" => s.message = Some(rest.to_string()),
                "exit" => {
                    s.end = PodEnd::Exit(rest.parse().unwrap_or(1));
                    return s;
                }
                "oom" => {
                    s.end = PodEnd::OomKilled;
                    return s;
                }
                "evict" => {
                    s.end = PodEnd::Evicted;
                    return s;
                }
                "imagepull" => {
                    s.end = PodEnd::ImagePullError;
                    return s;
                }
                _ => {}
            }
        }
        s
    }
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

    #[test]
    fn parses_statements() {
        let s = PodScript::parse(
            "echo '3 passed in 0.1s'; sleep 1.5 && sleep 0.5\nmessage \"boom\"; exit 3; sleep 100",
        );
        assert_eq!(s.logs, vec!["3 passed in 0.1s"]);
        assert_eq!(s.run_for, Duration::from_secs(2));
        assert_eq!(s.message.as_deref(), Some("boom"));
        assert_eq!(s.end, PodEnd::Exit(3));
        assert_eq!(PodScript::parse("sleep infinity").end, PodEnd::RunForever);
        assert_eq!(PodScript::parse("sleep 1; oom").end, PodEnd::OomKilled);
        assert_eq!(PodScript::parse("evict").end, PodEnd::Evicted);
        assert_eq!(PodScript::parse("imagepull").end, PodEnd::ImagePullError);
        assert_eq!(PodScript::parse("python3 -m pytest").end, PodEnd::Exit(0));
        let quoted = PodScript::parse("echo 'ok. 3 passed; 0 failed' && echo \"a && b\"; exit 0");
        assert_eq!(quoted.logs, vec!["ok. 3 passed; 0 failed", "a && b"]);
        assert_eq!(
            PodScript::parse("sleep -1; sleep x").run_for,
            Duration::ZERO
        );
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
