//! Checks of a run's `spec.notify`: every mistake named with its field
//! path, as the run's other spec problems are. Pure.

use crate::api::{MAX_NOTIFY_TARGETS, NotifyTarget, SecretKeyRef};

/// The kinds of target, as status and messages name them.
pub const WEBHOOK: &str = "webhook";
/// See [`WEBHOOK`].
pub const SLACK: &str = "slack";
/// See [`WEBHOOK`].
pub const GITHUB_STATUS: &str = "githubStatus";

/// Longest `githubStatus.context` (GitHub keeps 255 characters).
const MAX_CONTEXT: usize = 255;

/// The kind of `t`: the one field it sets (`None` when it sets none or
/// more than one).
pub fn kind(t: &NotifyTarget) -> Option<&'static str> {
    let set: Vec<&'static str> = [
        (t.webhook.is_some(), WEBHOOK),
        (t.slack.is_some(), SLACK),
        (t.github_status.is_some(), GITHUB_STATUS),
    ]
    .into_iter()
    .filter_map(|(on, k)| on.then_some(k))
    .collect();
    match set.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

/// Every problem of `targets` (the run's `spec.notify`), each naming its
/// field, joined into one message; `Ok` when there is none.
pub fn check(targets: &[NotifyTarget]) -> Result<(), String> {
    let mut problems = Vec::new();
    if targets.len() > MAX_NOTIFY_TARGETS {
        problems.push(format!(
            "spec.notify: {} targets; a run notifies at most {MAX_NOTIFY_TARGETS}",
            targets.len()
        ));
    }
    for (i, t) in targets.iter().enumerate() {
        let at = format!("spec.notify[{i}]");
        if kind(t).is_none() {
            problems.push(format!(
                "{at}: set exactly one of webhook, slack and githubStatus"
            ));
        }
        if let Some(w) = &t.webhook {
            let at = format!("{at}.webhook");
            match (&w.url, &w.url_from) {
                (Some(url), None) => {
                    if let Err(why) = http_url(url) {
                        problems.push(format!("{at}.url: {why}"));
                    }
                }
                (None, Some(r)) => secret_ref(&mut problems, &format!("{at}.urlFrom"), r),
                _ => problems.push(format!("{at}: set exactly one of url and urlFrom")),
            }
            if let Some(r) = &w.secret_ref {
                secret_ref(&mut problems, &format!("{at}.secretRef"), r);
            }
        }
        if let Some(s) = &t.slack {
            let at = format!("{at}.slack");
            match &s.url_from {
                Some(r) => secret_ref(&mut problems, &format!("{at}.urlFrom"), r),
                None => problems.push(format!(
                    "{at}.urlFrom: missing; a Slack webhook URL is a secret: name the Secret key that holds it"
                )),
            }
        }
        if let Some(g) = &t.github_status {
            let at = format!("{at}.githubStatus");
            if !is_repository(&g.repository) {
                problems.push(format!(
                    "{at}.repository: {:?} is not owner/name",
                    g.repository
                ));
            }
            match &g.token_from {
                Some(r) => secret_ref(&mut problems, &format!("{at}.tokenFrom"), r),
                None => problems.push(format!(
                    "{at}.tokenFrom: missing; name the Secret key that holds the token"
                )),
            }
            if let Some(url) = &g.api_url
                && let Err(why) = http_url(url)
            {
                problems.push(format!("{at}.apiUrl: {why}"));
            }
            if let Some(url) = &g.target_url
                && let Err(why) = http_url(url)
            {
                problems.push(format!("{at}.targetUrl: {why}"));
            }
            if let Some(c) = &g.context
                && (c.is_empty() || c.chars().count() > MAX_CONTEXT)
            {
                problems.push(format!(
                    "{at}.context: must have 1 to {MAX_CONTEXT} characters"
                ));
            }
            if let Some(sha) = &g.sha
                && !is_sha(sha)
            {
                problems.push(format!(
                    "{at}.sha: {sha:?} is not a commit SHA (7 to 64 hexadecimal digits)"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn secret_ref(problems: &mut Vec<String>, at: &str, r: &SecretKeyRef) {
    if r.name.is_empty() {
        problems.push(format!("{at}.name: missing"));
    }
    if r.key.is_empty() {
        problems.push(format!("{at}.key: missing"));
    }
}

/// Whether `s` is a URL the controller can POST to: `http://` or
/// `https://` and a host. The error never repeats the URL (it may hold a
/// token).
pub fn http_url(s: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = s
        .parse()
        .map_err(|_| "not a URL (expected http://HOST/... or https://HOST/...)".to_string())?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err("the scheme must be http or https".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(uri)
}

/// Whether `s` is `owner/name` as GitHub spells them.
fn is_repository(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(s.split_once('/'), Some((o, n)) if ok(o) && ok(n))
}

/// Whether `s` is a commit SHA: 7 to 64 hexadecimal digits.
pub fn is_sha(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GithubStatusTarget, SlackTarget, WebhookTarget};

    fn secret(name: &str, key: &str) -> Option<SecretKeyRef> {
        Some(SecretKeyRef {
            name: name.into(),
            key: key.into(),
        })
    }

    #[test]
    fn good_targets_check() {
        let targets = vec![
            NotifyTarget {
                webhook: Some(WebhookTarget {
                    url: Some("https://hooks.example.com/x".into()),
                    secret_ref: secret("hook", "key"),
                    ..Default::default()
                }),
                ..Default::default()
            },
            NotifyTarget {
                slack: Some(SlackTarget {
                    url_from: secret("slack", "url"),
                }),
                ..Default::default()
            },
            NotifyTarget {
                github_status: Some(GithubStatusTarget {
                    repository: "o/r".into(),
                    token_from: secret("gh", "token"),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        assert_eq!(check(&targets), Ok(()));
    }

    #[test]
    fn every_mistake_is_named_with_its_field() {
        let targets = vec![
            NotifyTarget::default(),
            NotifyTarget {
                webhook: Some(WebhookTarget {
                    url: Some("ftp://x/secret-token".into()),
                    ..Default::default()
                }),
                slack: Some(SlackTarget { url_from: None }),
                ..Default::default()
            },
            NotifyTarget {
                webhook: Some(WebhookTarget::default()),
                ..Default::default()
            },
            NotifyTarget {
                github_status: Some(GithubStatusTarget {
                    repository: "nope".into(),
                    token_from: secret("", "token"),
                    sha: Some("xyz".into()),
                    api_url: Some("api.github.com".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        let e = check(&targets).expect_err("mistakes");
        for part in [
            "spec.notify[0]: set exactly one of webhook, slack and githubStatus",
            "spec.notify[1]: set exactly one of",
            "spec.notify[1].webhook.url: the scheme must be http or https",
            "spec.notify[1].slack.urlFrom: missing",
            "spec.notify[2].webhook: set exactly one of url and urlFrom",
            "spec.notify[3].githubStatus.repository: \"nope\" is not owner/name",
            "spec.notify[3].githubStatus.tokenFrom.name: missing",
            "spec.notify[3].githubStatus.apiUrl: ",
            "spec.notify[3].githubStatus.sha: \"xyz\" is not a commit SHA",
        ] {
            assert!(e.contains(part), "{part:?} not in {e}");
        }
        assert!(!e.contains("secret-token"), "{e}");
    }

    #[test]
    fn too_many_targets_are_refused() {
        let t = NotifyTarget {
            slack: Some(SlackTarget {
                url_from: secret("s", "u"),
            }),
            ..Default::default()
        };
        let e = check(&vec![t; 11]).expect_err("too many");
        assert!(e.starts_with("spec.notify: 11 targets"), "{e}");
    }
}
