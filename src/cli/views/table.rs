//! The table of `testlayer list`: one row per run, as kubectl prints its
//! own (upper-case headers, columns two spaces apart, no borders).

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::age::{between, human, ran};
use crate::api::TestLayerRun;
use crate::api::names::LABEL_SUITE;

/// The headers of the table (with a NAMESPACE column when `all_namespaces`).
pub fn headers(all_namespaces: bool) -> Vec<&'static str> {
    let mut h = vec![
        "NAME", "LAYER", "PHASE", "DONE", "PASSED", "FAILED", "DURATION", "AGE", "SUITE",
    ];
    if all_namespaces {
        h.insert(0, "NAMESPACE");
    }
    h
}

/// The row of `run` at `now`.
pub fn row(run: &TestLayerRun, all_namespaces: bool, now: Timestamp) -> Vec<String> {
    let st = run.status.clone().unwrap_or_default();
    let done = match st.phases {
        Some(p) => format!("{}/{}", p.finished(), p.total()),
        None if !st.categories.is_empty() => format!(
            "{}/{}",
            st.categories
                .iter()
                .filter(|c| c.phase.is_terminal())
                .count(),
            st.categories.len()
        ),
        None => "-".to_string(),
    };
    let (passed, failed) = st.counts.map_or(("-".to_string(), "-".to_string()), |c| {
        (c.passed.to_string(), c.failed.to_string())
    });
    let mut r = vec![
        run.name_any(),
        run.spec.layer.clone(),
        st.phase.unwrap_or_default().as_str().to_string(),
        done,
        passed,
        failed,
        ran(st.start_time.as_ref(), st.completion_time.as_ref(), now),
        run.metadata
            .creation_timestamp
            .as_ref()
            .map_or("-".to_string(), |t| human(between(t, now))),
        run.labels()
            .get(LABEL_SUITE)
            .cloned()
            .unwrap_or_else(|| "-".to_string()),
    ];
    if all_namespaces {
        r.insert(0, run.namespace().unwrap_or_default());
    }
    r
}

/// `rows` under `headers`, each column as wide as its widest cell, two
/// spaces between columns, no trailing spaces.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: serde_json::Value) -> TestLayerRun {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_row_says_phase_progress_counts_duration_age_and_suite() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let r = run(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": "nightly-x", "namespace": "ci",
                "creationTimestamp": "2026-01-01T00:50:00Z",
                "labels": {LABEL_SUITE: "nightly"}},
            "spec": {"layer": "fast", "config": {"inline": "layers: {}"}},
            "status": {"phase": "Failed", "startTime": "2026-01-01T00:50:01Z",
                "completionTime": "2026-01-01T00:53:13Z",
                "counts": {"passed": 40, "failed": 2, "skipped": 1},
                "categories": [
                    {"name": "unit", "phase": "Succeeded", "attempts": 1},
                    {"name": "api", "phase": "Failed", "attempts": 2},
                    {"name": "e2e", "phase": "Running", "attempts": 1}]}
        }));
        assert_eq!(
            row(&r, true, now),
            [
                "ci",
                "nightly-x",
                "fast",
                "Failed",
                "2/3",
                "40",
                "2",
                "3m12s",
                "10m",
                "nightly"
            ]
        );
        let fresh = run(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": "new"},
            "spec": {"layer": "fast", "config": {"inline": "layers: {}"}}
        }));
        assert_eq!(
            row(&fresh, false, now),
            ["new", "fast", "Pending", "-", "-", "-", "-", "-", "-"]
        );
    }

    #[test]
    fn columns_align_as_kubectl_s() {
        let rows = vec![
            vec!["a".to_string(), "Running".to_string()],
            vec!["longer-name".to_string(), "-".to_string()],
        ];
        assert_eq!(
            render(&["NAME", "PHASE"], &rows),
            "NAME         PHASE\na            Running\nlonger-name  -\n"
        );
    }
}
