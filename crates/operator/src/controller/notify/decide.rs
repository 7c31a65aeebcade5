//! Which notifications a finished run records, decided once per outcome:
//! one entry per target of `spec.notify`, Pending when its `when` matches
//! (Failed at once when it cannot be sent at all, e.g. a commit status
//! without a revision), Skipped when it does not. Pure.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::check::{self, GITHUB_STATUS, is_sha};
use super::history::{Scope, previous_run, previous_suite, scope};
use crate::api::names::ANNOTATION_REVISION;
use crate::api::{
    LayerPhase, NotificationState, NotificationStatus, NotifyTarget, NotifyWhen, TestLayerRun,
};

/// What a finished run does about its notifications now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing: no targets, decided already, or another run of its suite
    /// tells the suite's outcome.
    Nothing,
    /// It leads a suite whose other runs have not all ended: look again.
    WaitForSuite,
    /// Record these entries (one per target, in order) before anything is
    /// sent; `unsendable` says why each entry recorded Failed could not be
    /// sent (for an Event).
    Record {
        /// The entries.
        entries: Vec<NotificationStatus>,
        /// Why some cannot be sent, one message each.
        unsendable: Vec<String>,
    },
}

/// Whether a target notified `when` fires for `outcome`, the previous run
/// (or suite) having ended `previous` (`None`: there was none).
pub fn fires(when: NotifyWhen, outcome: LayerPhase, previous: Option<LayerPhase>) -> bool {
    match when {
        NotifyWhen::Always => true,
        NotifyWhen::OnFailure => outcome != LayerPhase::Succeeded,
        NotifyWhen::OnChange => previous != Some(outcome),
    }
}

/// The commit a commit status of `run` is for: the target's `sha`, else
/// the run's `testlayer.dev/revision` annotation; or why there is none.
pub fn revision(run: &TestLayerRun, sha: Option<&str>) -> Result<String, String> {
    let found = sha.map(str::to_string).or_else(|| {
        run.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REVISION).cloned())
    });
    match found {
        Some(s) if is_sha(&s) => Ok(s),
        Some(s) => Err(format!(
            "cannot post a commit status: the revision {:?} is not a commit SHA",
            s.chars().take(80).collect::<String>()
        )),
        None => Err(format!(
            "cannot post a commit status: the run records no revision (annotation {ANNOTATION_REVISION}) and the target names no sha"
        )),
    }
}

/// Whether any notification of `run` still waits to be sent or is being
/// sent.
pub fn in_flight(run: &TestLayerRun) -> bool {
    run.status
        .as_ref()
        .is_some_and(|s| s.notifications.iter().any(|n| !n.state.is_final()))
}

/// What the finished `run` (its phase terminal) records, among `runs` (the
/// runs of its namespace), at `now`.
pub fn decide(run: &Arc<TestLayerRun>, runs: &[Arc<TestLayerRun>], now: &Time) -> Decision {
    let targets: &[NotifyTarget] = &run.spec.notify;
    let decided = run
        .status
        .as_ref()
        .is_some_and(|s| !s.notifications.is_empty());
    if targets.is_empty() || decided {
        return Decision::Nothing;
    }
    // Checked when the run was accepted; one edited into a mistake since
    // sends nothing, each entry saying why (never silently).
    // A run refused at acceptance for that mistake says so in its Stalled
    // condition and records nothing.
    let invalid = match check::check(targets) {
        Ok(()) => None,
        Err(_) if run.status.as_ref().is_none_or(|s| s.plan.is_none()) => {
            return Decision::Nothing;
        }
        Err(problem) => Some(format!(
            "spec.notify was changed after the run was accepted and is not valid ({problem}): nothing was sent"
        )),
    };
    let (outcome, previous) = match scope(run, runs) {
        None | Some(Scope::NotLeader) => return Decision::Nothing,
        Some(Scope::SuiteRunning) => return Decision::WaitForSuite,
        Some(Scope::Alone(outcome)) => (outcome, previous_run(run, runs)),
        Some(Scope::Suite { outcome, .. }) => (outcome, previous_suite(run, runs)),
    };
    let mut unsendable = Vec::new();
    let entries = targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = check::kind(t).unwrap_or("unknown");
            let mut entry = NotificationStatus {
                target: i as u32,
                kind: kind.to_string(),
                outcome,
                state: NotificationState::Pending,
                attempts: 0,
                response_code: None,
                last_error: None,
                time: Some(now.clone()),
            };
            if let Some(why) = &invalid {
                entry.state = NotificationState::Failed;
                entry.last_error = Some(why.chars().take(500).collect());
            } else if !fires(t.when, outcome, previous) {
                entry.state = NotificationState::Skipped;
                entry.last_error = Some(match t.when {
                    NotifyWhen::OnChange => {
                        format!("OnChange: the previous run ended {} too", outcome.as_str())
                    }
                    w => format!("{}: the outcome is {}", w.as_str(), outcome.as_str()),
                });
            } else if kind == GITHUB_STATUS
                && let Some(g) = &t.github_status
                && let Err(why) = revision(run, g.sha.as_deref())
            {
                entry.state = NotificationState::Failed;
                unsendable.push(format!("spec.notify[{i}] (githubStatus): {why}"));
                entry.last_error = Some(why);
            }
            entry
        })
        .collect();
    unsendable.extend(invalid);
    Decision::Record {
        entries,
        unsendable,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::names::{ANNOTATION_SUITE_LAYERS, LABEL_SCHEDULE, LABEL_SUITE};
    use crate::api::{
        GithubStatusTarget, SecretKeyRef, SlackTarget, TestLayerRunSpec, TestLayerRunStatus,
    };
    use k8s_openapi::jiff::Timestamp;

    fn now() -> Time {
        Time(Timestamp::from_second(1_800_000_000).expect("time"))
    }

    fn slack(when: NotifyWhen) -> NotifyTarget {
        NotifyTarget {
            when,
            slack: Some(SlackTarget {
                url_from: Some(SecretKeyRef {
                    name: "s".into(),
                    key: "url".into(),
                }),
            }),
            ..Default::default()
        }
    }

    fn run(
        name: &str,
        created: i64,
        phase: Option<LayerPhase>,
        notify: Vec<NotifyTarget>,
    ) -> Arc<TestLayerRun> {
        let mut r = TestLayerRun::new(
            name,
            TestLayerRunSpec {
                layer: "unit".into(),
                environment: None,
                config: Default::default(),
                image: None,
                command: None,
                overrides: None,
                pod: None,
                depends_on: vec![],
                rerun_of: None,
                background: false,
                suspend: false,
                cancel: false,
                dependency_wait_seconds: None,
                termination_bound_seconds: None,
                node_lost_seconds: None,
                priority: None,
                ttl_seconds_after_finished: None,
                notify,
            },
        );
        r.metadata.namespace = Some("ns".into());
        r.metadata.creation_timestamp = Some(Time(
            Timestamp::from_second(1_700_000_000 + created).expect("time"),
        ));
        r.status = Some(TestLayerRunStatus {
            phase,
            ..Default::default()
        });
        Arc::new(r)
    }

    fn labelled(r: Arc<TestLayerRun>, labels: &[(&str, &str)], layer: &str) -> Arc<TestLayerRun> {
        let mut r = (*r).clone();
        r.spec.layer = layer.into();
        r.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
        Arc::new(r)
    }

    fn states(d: &Decision) -> Vec<NotificationState> {
        match d {
            Decision::Record { entries, .. } => entries.iter().map(|e| e.state).collect(),
            other => panic!("decided {other:?}"),
        }
    }

    use LayerPhase::{Cancelled, Failed, Succeeded, TimedOut};
    use NotificationState::{Pending, Skipped};

    #[test]
    fn which_targets_fire_for_which_outcome() {
        let table = [
            (NotifyWhen::Always, Succeeded, None, true),
            (NotifyWhen::Always, Failed, Some(Failed), true),
            (NotifyWhen::OnFailure, Succeeded, None, false),
            (NotifyWhen::OnFailure, Failed, Some(Failed), true),
            (NotifyWhen::OnFailure, TimedOut, None, true),
            (NotifyWhen::OnFailure, Cancelled, None, true),
            (NotifyWhen::OnChange, Succeeded, None, true),
            (NotifyWhen::OnChange, Succeeded, Some(Succeeded), false),
            (NotifyWhen::OnChange, Failed, Some(Succeeded), true),
            (NotifyWhen::OnChange, Succeeded, Some(Failed), true),
            (NotifyWhen::OnChange, Failed, Some(Failed), false),
        ];
        for (when, outcome, previous, expected) in table {
            assert_eq!(
                fires(when, outcome, previous),
                expected,
                "{when:?} {outcome:?} {previous:?}"
            );
        }
    }

    #[test]
    fn a_finished_run_records_one_entry_per_target_once() {
        let targets = vec![
            slack(NotifyWhen::OnFailure),
            slack(NotifyWhen::Always),
            slack(NotifyWhen::OnChange),
        ];
        let r = run("b", 10, Some(Succeeded), targets.clone());
        let prev = run("a", 5, Some(Succeeded), targets);
        let d = decide(&r, &[prev.clone(), r.clone()], &now());
        assert_eq!(states(&d), vec![Skipped, Pending, Skipped]);
        // Recorded: nothing more.
        let mut done = (*r).clone();
        if let (Some(s), Decision::Record { entries, .. }) = (done.status.as_mut(), &d) {
            s.notifications = entries.clone();
        }
        assert_eq!(decide(&Arc::new(done), &[prev], &now()), Decision::Nothing);
        // A running run, or one without targets, decides nothing.
        let running = run(
            "c",
            20,
            Some(LayerPhase::Running),
            vec![slack(NotifyWhen::Always)],
        );
        assert_eq!(decide(&running, &[], &now()), Decision::Nothing);
        let quiet = run("d", 20, Some(Failed), vec![]);
        assert_eq!(decide(&quiet, &[], &now()), Decision::Nothing);
    }

    #[test]
    fn on_change_compares_with_the_previous_run_of_the_layer_or_schedule() {
        let t = vec![slack(NotifyWhen::OnChange)];
        let first = run("a", 1, Some(Failed), t.clone());
        assert_eq!(states(&decide(&first, &[], &now())), vec![Pending]);
        let second = run("b", 2, Some(Failed), t.clone());
        assert_eq!(
            states(&decide(&second, std::slice::from_ref(&first), &now())),
            vec![Skipped]
        );
        let third = run("c", 3, Some(Succeeded), t.clone());
        // The latest earlier run counts, not a later one nor another layer's.
        let later = run("d", 4, Some(Succeeded), t.clone());
        let other = labelled(run("x", 2, Some(Succeeded), t.clone()), &[], "other");
        assert_eq!(
            states(&decide(
                &third,
                &[first.clone(), second.clone(), later, other],
                &now()
            )),
            vec![Pending]
        );
        // A scheduled run compares with its schedule's runs only.
        let sched = |r| labelled(r, &[(LABEL_SCHEDULE, "nightly")], "unit");
        let s1 = sched(run("n1", 5, Some(Succeeded), t.clone()));
        let s2 = sched(run("n2", 6, Some(Failed), t.clone()));
        let manual = run("m", 5, Some(Failed), t.clone());
        assert_eq!(
            states(&decide(&s2, &[s1.clone(), manual.clone()], &now())),
            vec![Pending]
        );
        let s3 = sched(run("n3", 7, Some(Failed), t));
        assert_eq!(
            states(&decide(&s3, &[s1, s2, manual], &now())),
            vec![Skipped]
        );
    }

    #[test]
    fn a_suite_tells_its_outcome_once_when_its_last_run_ended() {
        let t = vec![slack(NotifyWhen::Always)];
        let suite = |name: &str, layer: &str, phase| {
            let mut r = (*labelled(
                run(name, 1, phase, t.clone()),
                &[(LABEL_SUITE, "s1")],
                layer,
            ))
            .clone();
            r.metadata.annotations =
                Some([(ANNOTATION_SUITE_LAYERS.to_string(), "unit,api".to_string())].into());
            Arc::new(r)
        };
        let a = suite("s1-api", "api", Some(Failed));
        let b = suite("s1-unit", "unit", Some(LayerPhase::Running));
        // The leader (first by name) waits for the others; the others never tell.
        assert_eq!(
            decide(&a, &[a.clone(), b.clone()], &now()),
            Decision::WaitForSuite
        );
        let b = suite("s1-unit", "unit", Some(Succeeded));
        assert_eq!(
            decide(&b, &[a.clone(), b.clone()], &now()),
            Decision::Nothing
        );
        let d = decide(&a, &[a.clone(), b.clone()], &now());
        let Decision::Record { entries, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].outcome, Failed, "the suite's outcome: its worst");
        // A suite whose layer has no run yet is not over.
        let alone = suite("s1-api", "api", Some(Succeeded));
        assert_eq!(
            decide(&alone, std::slice::from_ref(&alone), &now()),
            Decision::WaitForSuite
        );
    }

    #[test]
    fn a_tick_of_one_layer_is_told_as_its_run() {
        let t = vec![slack(NotifyWhen::OnChange)];
        let tick = |name: &str, created: i64, phase| {
            let mut r = (*labelled(
                run(name, created, Some(phase), t.clone()),
                &[(LABEL_SUITE, name), (LABEL_SCHEDULE, "nightly")],
                "unit",
            ))
            .clone();
            r.metadata.annotations =
                Some([(ANNOTATION_SUITE_LAYERS.to_string(), "unit".to_string())].into());
            Arc::new(r)
        };
        let first = tick("nightly-1", 1, Failed);
        let second = tick("nightly-2", 2, Failed);
        let third = tick("nightly-3", 3, Succeeded);
        assert_eq!(states(&decide(&first, &[], &now())), vec![Pending]);
        let all = [first, second.clone(), third.clone()];
        assert_eq!(states(&decide(&second, &all, &now())), vec![Skipped]);
        assert_eq!(states(&decide(&third, &all, &now())), vec![Pending]);
    }

    #[test]
    fn a_commit_status_without_a_revision_is_recorded_failed_not_sent() {
        let gh = NotifyTarget {
            when: NotifyWhen::Always,
            github_status: Some(GithubStatusTarget {
                repository: "o/r".into(),
                token_from: Some(SecretKeyRef {
                    name: "gh".into(),
                    key: "token".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = run("a", 1, Some(Failed), vec![gh.clone()]);
        let Decision::Record {
            entries,
            unsendable,
        } = decide(&r, &[], &now())
        else {
            panic!("no record")
        };
        assert_eq!(entries[0].state, NotificationState::Failed);
        assert!(
            entries[0]
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("no revision")
        );
        assert_eq!(unsendable.len(), 1);
        let mut with = (*r).clone();
        with.metadata.annotations =
            Some([(ANNOTATION_REVISION.to_string(), "a".repeat(40))].into());
        assert_eq!(states(&decide(&Arc::new(with), &[], &now())), vec![Pending]);
    }

    #[test]
    fn suites_have_an_outcome_of_their_worst_run() {
        use super::super::history::suite_outcome;
        assert_eq!(suite_outcome([Succeeded, Succeeded]), Succeeded);
        assert_eq!(suite_outcome([Succeeded, Cancelled, TimedOut]), TimedOut);
        assert_eq!(suite_outcome([Cancelled, Failed, TimedOut]), Failed);
        assert_eq!(suite_outcome([Succeeded, Cancelled]), Cancelled);
    }
}
