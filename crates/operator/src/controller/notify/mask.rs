//! What may be shown of a notification's secrets: nothing. A URL is shown
//! as `scheme://host` (its path and query may hold a token), and any text
//! that reaches a status, an Event or a log is scrubbed of every secret
//! value the notification read. Pure.

/// Secret values shorter than this are not searched for in text (they
/// would match ordinary words); none of a URL's, token's or key's length.
const SHORTEST_SCRUBBED: usize = 4;

/// `url` as it may be shown: `scheme://host`, or `a URL` when it does not
/// parse.
pub fn origin(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(u) => match (u.scheme_str(), u.host()) {
            (Some(s), Some(h)) => format!("{s}://{h}"),
            _ => "a URL".into(),
        },
        Err(_) => "a URL".into(),
    }
}

/// `text` with every value of `secrets` (and, for a URL, its path and
/// query) replaced by `***`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    let mut parts: Vec<String> = Vec::new();
    for s in secrets {
        parts.push(s.to_string());
        if let Ok(u) = s.parse::<hyper::Uri>()
            && let Some(pq) = u.path_and_query()
            && pq.as_str() != "/"
        {
            parts.push(pq.as_str().to_string());
        }
    }
    // Longest first, so that a URL goes before its own path.
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in parts {
        if p.len() >= SHORTEST_SCRUBBED {
            out = out.replace(&p, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_shows_its_scheme_and_host_only() {
        assert_eq!(
            origin("https://hooks.slack.com/services/T0/B0/xyz?token=1"),
            "https://hooks.slack.com"
        );
        assert_eq!(origin("http://127.0.0.1:8080/hook"), "http://127.0.0.1");
        assert_eq!(origin("not a url"), "a URL");
    }

    #[test]
    fn secrets_are_scrubbed_from_text() {
        let url = "https://hooks.slack.com/services/T0/B0/xyz";
        let text =
            format!("error sending to {url}: token ghp_abcdef rejected; path /services/T0/B0/xyz");
        let s = scrub(&text, &[url, "ghp_abcdef", ""]);
        assert!(!s.contains("xyz") && !s.contains("ghp_abcdef"), "{s}");
        assert!(s.contains("***"), "{s}");
    }
}
