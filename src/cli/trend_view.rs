//! What `testlayer history` prints, and the note under a run's summary
//! naming its tests that are flaky across runs. Pure: text from a
//! [`Trend`].

use crate::trend::{TestCount, Trend};

/// Runs the note under a summary looks back over (this one included).
pub const NOTE_RUNS: usize = 10;
/// Runs of those a test must have failed or flaked in to be named.
pub const NOTE_AT_LEAST: usize = 2;

/// Seconds as `1m05s`, `12.3s`.
fn took(secs: f64) -> String {
    if secs >= 60.0 {
        let s = secs.round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{secs:.1}s")
    }
}

/// The trend of `layer` as a table of its last runs, then the tests that
/// failed and flaked most.
pub fn render(layer: &str, t: &Trend) -> String {
    if t.runs.is_empty() {
        return format!("no finished runs of layer {layer} are kept\n");
    }
    let mut out = format!(
        "layer {layer}: {} of the last {} runs passed",
        t.succeeded, t.decided
    );
    let cancelled = t.runs.len() - t.decided;
    if cancelled > 0 {
        out.push_str(&format!(" ({cancelled} more cancelled)"));
    }
    out.push('\n');
    let mut durations: Vec<f64> = (t.runs.iter())
        .filter(|r| r.outcome == "Succeeded")
        .map(|r| r.duration_secs)
        .collect();
    durations.sort_by(f64::total_cmp);
    if let Some(median) = durations.get(durations.len() / 2) {
        out.push_str(&format!(
            "median duration of a passing run: {}\n",
            took(*median)
        ));
    }
    out.push('\n');
    let name_width = (t.runs.iter())
        .map(|r| r.name.as_deref().unwrap_or("-").len())
        .max()
        .unwrap_or(1)
        .max(3);
    out.push_str(&format!(
        "{:<20}  {:<name_width$}  {:<9}  {:>9}  FAILED TESTS\n",
        "ENDED", "RUN", "OUTCOME", "DURATION"
    ));
    for r in &t.runs {
        let failed = match r.failed.len() {
            0 => "-".to_string(),
            1 => r.failed[0].clone(),
            n => format!("{} (+{} more)", r.failed[0], n - 1),
        };
        out.push_str(&format!(
            "{:<20}  {:<name_width$}  {:<9}  {:>9}  {failed}\n",
            r.ended_at,
            r.name.as_deref().unwrap_or("-"),
            r.outcome,
            took(r.duration_secs),
        ));
    }
    for (title, list) in [
        ("Failed most", &t.most_failed),
        (
            "Flaky (flaked, or failed in some runs and not others)",
            &t.most_flaky,
        ),
    ] {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}:\n"));
        for c in list {
            out.push_str(&format!(
                "  {}  in {} of {} runs\n",
                c.test,
                c.runs,
                t.runs.len()
            ));
        }
    }
    out
}

/// The note under a run's summary: its tests that are flaky across the
/// `looked` runs looked at (none: no note).
pub fn flaky_note(named: &[TestCount], looked: usize) -> Option<String> {
    if named.is_empty() {
        return None;
    }
    let mut out = format!(
        "Flaky across runs (failed or flaked in at least {NOTE_AT_LEAST} of the last {looked} runs of this layer, and not in all):\n"
    );
    for c in named {
        out.push_str(&format!("  {}: {} of {looked}\n", c.test, c.runs));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trend::{PastRun, trend};

    fn run(at: u32, outcome: &str, failed: &[&str]) -> PastRun {
        PastRun {
            name: Some(format!("nightly-{at}")),
            ended_at: format!("2026-12-0{at}T03:00:00Z"),
            outcome: outcome.into(),
            duration_secs: 60.0 + f64::from(at),
            failed: failed.iter().map(|s| s.to_string()).collect(),
            flaky: vec![],
        }
    }

    #[test]
    fn the_history_names_each_run_and_the_tests_that_failed_most() {
        let t = trend(
            vec![
                run(1, "Succeeded", &[]),
                run(2, "Failed", &["unit › test_a", "unit › test_b"]),
                run(3, "Failed", &["unit › test_a"]),
                run(4, "Cancelled", &[]),
            ],
            20,
            10,
        );
        let text = render("unit", &t);
        assert!(
            text.starts_with("layer unit: 1 of the last 3 runs passed (1 more cancelled)\n"),
            "{text}"
        );
        assert!(
            text.contains("median duration of a passing run: 1m01s"),
            "{text}"
        );
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("2026-")).collect();
        assert_eq!(rows.len(), 4, "{text}");
        assert!(
            rows[0].contains("nightly-4") && rows[0].contains("Cancelled"),
            "{text}"
        );
        assert!(rows[2].contains("unit › test_a (+1 more)"), "{text}");
        assert!(
            text.contains("Failed most:\n  unit › test_a  in 2 of 4 runs\n"),
            "{text}"
        );
        assert_eq!(
            render("web", &trend(vec![], 20, 10)),
            "no finished runs of layer web are kept\n"
        );
    }

    #[test]
    fn the_note_names_each_flaky_test_with_its_count() {
        assert_eq!(flaky_note(&[], 10), None);
        let named = [TestCount {
            test: "api › test_login".into(),
            runs: 3,
        }];
        let note = flaky_note(&named, 7).unwrap();
        assert!(note.ends_with("  api › test_login: 3 of 7\n"), "{note}");
    }
}
