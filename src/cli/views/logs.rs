//! Which logs `testlayer logs` shows: the last attempt of each category (or
//! of the one named), a given attempt, or every attempt; and how lines of
//! several are told apart.

use crate::api::CategoryRun;

/// The log of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The category's name.
    pub category: String,
    /// The attempt's number (1-based).
    pub attempt: u32,
    /// Its Pod.
    pub pod: String,
    /// The end of its log kept in the CategoryRun (read once the Pod is gone).
    pub kept: Option<String>,
    /// Whether the attempt ended.
    pub ended: bool,
}

impl Source {
    /// The prefix of its lines when several logs are shown together.
    pub fn prefix(&self) -> String {
        format!("[{}#{}] ", self.category, self.attempt)
    }
}

/// What to show of run `run`'s CategoryRuns `crs`: of category `category`
/// only (else of every category, in the layer's order), attempt `attempt`
/// (else the last, or with `all` every one). A category without attempts
/// yet has nothing to show.
pub fn choose(
    run: &str,
    crs: &[CategoryRun],
    category: Option<&str>,
    attempt: Option<u32>,
    all: bool,
) -> Result<Vec<Source>, String> {
    let mut crs: Vec<&CategoryRun> = crs.iter().collect();
    crs.sort_by_key(|c| c.spec.index);
    if let Some(name) = category {
        crs.retain(|c| c.spec.category == name);
        if crs.is_empty() {
            return Err(format!("run {run} has no category {name:?}"));
        }
    }
    let mut out = Vec::new();
    for cr in crs {
        let st = cr.status.clone().unwrap_or_default();
        let picked: Vec<_> = match attempt {
            Some(n) => {
                let found: Vec<_> = st.attempts.iter().filter(|a| a.number == n).collect();
                if found.is_empty() && category.is_some() {
                    return Err(format!(
                        "category {:?} of run {run} has no attempt {n} (it has {})",
                        cr.spec.category,
                        match st.attempts.len() {
                            0 => "none yet".to_string(),
                            1 => "attempt 1".to_string(),
                            k => format!("attempts 1 to {k}"),
                        }
                    ));
                }
                found
            }
            None if all => st.attempts.iter().collect(),
            None => st.attempts.last().into_iter().collect(),
        };
        out.extend(picked.into_iter().map(|a| Source {
            category: cr.spec.category.clone(),
            attempt: a.number,
            pod: a.pod_name.clone(),
            kept: a.log_tail.clone().or_else(|| {
                // The category keeps the tail of its last attempt.
                (Some(a.number) == st.attempts.last().map(|l| l.number))
                    .then(|| st.log_tail.clone())
                    .flatten()
            }),
            ended: a.completion_time.is_some(),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cr(index: u32, name: &str, attempts: u32) -> CategoryRun {
        let attempts: Vec<_> = (1..=attempts)
            .map(|n| {
                json!({"number": n, "podName": format!("r-{name}-{n}"),
                    "startTime": "2026-01-01T00:00:00Z",
                    "completionTime": "2026-01-01T00:00:10Z",
                    "logTail": format!("tail {n}")})
            })
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "CategoryRun",
            "metadata": {"name": format!("r-{name}")},
            "spec": {"runName": "r", "layer": "fast", "category": name, "index": index,
                "image": "busybox", "command": "true", "timeoutSeconds": 60},
            "status": {"attempts": attempts}
        }))
        .unwrap()
    }

    fn pods(s: &[Source]) -> Vec<&str> {
        s.iter().map(|s| s.pod.as_str()).collect()
    }

    #[test]
    fn the_last_attempt_of_each_category_a_chosen_one_or_every_one() {
        let crs = [cr(1, "api", 2), cr(0, "unit", 1), cr(2, "e2e", 0)];
        let last = choose("r", &crs, None, None, false).unwrap();
        assert_eq!(pods(&last), ["r-unit-1", "r-api-2"]);
        assert_eq!(last[1].prefix(), "[api#2] ");
        assert_eq!(last[1].kept.as_deref(), Some("tail 2"));
        assert!(last[1].ended);
        let all = choose("r", &crs, None, None, true).unwrap();
        assert_eq!(pods(&all), ["r-unit-1", "r-api-1", "r-api-2"]);
        let one = choose("r", &crs, Some("api"), Some(1), false).unwrap();
        assert_eq!(pods(&one), ["r-api-1"]);
        assert!(
            choose("r", &crs, Some("e2e"), None, false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_unknown_category_or_attempt_is_named() {
        let crs = [cr(0, "api", 2)];
        assert_eq!(
            choose("r", &crs, Some("apl"), None, false).unwrap_err(),
            "run r has no category \"apl\""
        );
        assert_eq!(
            choose("r", &crs, Some("api"), Some(3), false).unwrap_err(),
            "category \"api\" of run r has no attempt 3 (it has attempts 1 to 2)"
        );
    }
}
