//! What is written and in which order: crash-safe ordering, the write budget, the spec digest.

use super::*;

#[test]
fn a_stop_is_recorded_before_its_pod_is_stopped_and_the_clock_before_the_first_pod() {
    let config = "layers:\n  s:\n    execution_mode: parallel\n    categories:\n      - name: hang\n        timeout_seconds: 1\n";
    let mut w =
        World::new("s", config, json!({"command": "true"})).scripts(|_, _| Script::forever());
    w.grace = Duration::from_secs(3);
    w.run_to_end(LONG);
    let at = |prefix: &str| {
        w.writes
            .iter()
            .position(|x| x.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {:?}", w.writes))
    };
    assert!(at("run status") < at("create pod"), "{:?}", w.writes);
    assert!(
        at("cr status r-hang") < at("stop pod r-hang-1"),
        "{:?}",
        w.writes
    );
    // A Pod that stops is not stopped again while it does, nor deleted:
    // it is kept with its log.
    assert_eq!(w.count("stop pod"), 1, "{:?}", w.writes);
    assert_eq!(w.count("delete pod"), 0, "{:?}", w.writes);
    assert_eq!(w.cat_phase("hang"), Some(Phase::TimedOut));
}

#[test]
fn writes_stay_within_the_budget() {
    // 100 categories of 0.2 s, one attempt each: one CategoryRun create, one
    // Pod create and one status write each; the run's own writes are few.
    let mut w = World::new("wide", &wide(100, "", ""), json!({"command": "true"}))
        .scripts(|_, _| Script::pass(0.2, ""));
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert_eq!(
        w.count("cr status"),
        100,
        "one status write per short category"
    );
    assert!(w.count("run status") <= 6, "{}", w.count("run status"));
    // Categories that run for seconds are recorded Running too: two writes.
    let mut w = World::new("wide", &wide(10, "", ""), json!({"command": "true"}))
        .scripts(|_, _| Script::pass(5.0, ""));
    w.run_until(LONG, |w| w.count("cr status") >= 10);
    assert!(
        w.crs
            .values()
            .all(|c| c.status.as_ref().and_then(|s| s.phase) == Some(Phase::Running))
    );
    w.run_to_end(LONG);
    assert_eq!(w.count("cr status"), 20);
}

#[test]
fn the_spec_hash_is_a_stable_digest_and_an_older_format_starts_nothing_over() {
    use crate::controller::run::step::{spec_changed, spec_hash};
    let mut w = World::new("wide", &wide(2, "", ""), json!({"command": "true"}));
    let h = spec_hash(&w.run);
    assert!(h.starts_with("sha256:") && h.len() == 7 + 64, "{h}");
    // Pinned: the same spec gives the same digest on every build.
    assert_eq!(h, PINNED_HASH);
    w.run.spec.cancel = true;
    assert_eq!(spec_hash(&w.run), h, "cancel does not define the run");
    w.run.spec.image = Some("other".into());
    assert_ne!(spec_hash(&w.run), h);
    assert!(!spec_changed(None, &h));
    assert!(!spec_changed(Some(&h), &h));
    assert!(spec_changed(Some("sha256:00"), &h));
    assert!(
        !spec_changed(Some("0123456789abcdef"), &h),
        "an older format is no change"
    );
    // A run that started under an older controller goes on, finished or not.
    let mut w = World::new("wide", &wide(2, "", ""), json!({"command": "true"}))
        .scripts(|_, _| Script::forever());
    w.reconcile();
    w.run.status.as_mut().unwrap().spec_hash = Some("0123456789abcdef".into());
    w.reconcile();
    assert_eq!(w.count("delete"), 0);
    w.run.spec.cancel = true;
    w.run_to_end(LONG);
    w.run.status.as_mut().unwrap().spec_hash = Some("0123456789abcdef".into());
    w.reconcile();
    assert_eq!(
        w.count("delete") + w.count("stop pod"),
        2,
        "only the stopped Pods: {:?}",
        w.writes
    );
}

const PINNED_HASH: &str = "sha256:8cccc609ed1fe7a51dc3e9eafda2b36b15cdad884c0028e19550786955dbc33d";
