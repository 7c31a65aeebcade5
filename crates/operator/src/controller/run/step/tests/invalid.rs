//! Objects the controller cannot use: CategoryRuns edited by hand or stored
//! under an older CRD, runs that do not decode, and random values in every
//! number of a spec (no input makes the step panic).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use proptest::prelude::*;

use super::*;
use crate::api::{CategoryRun, Decoded, TestLayerRun, Undecodable};
use crate::controller::status::conditions::Stall;
use crate::controller::status::invalid::marked_stalled;
use crate::controller::status::reasons::StallReason;

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:#?}"))
}

fn run_conditions(w: &World) -> Vec<Condition> {
    w.run.status.clone().unwrap_or_default().conditions
}

fn run_until_stalled(w: &mut World) {
    w.run_until(LONG, |w| {
        run_conditions(w)
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    });
}

/// The chain run once its first category runs.
fn started() -> World {
    let mut w = chain().scripts(|c, _| match c {
        "smoke" => Script::pass(5.0, "2 passed in 5s"),
        _ => Script::pass(1.0, "1 passed in 1s"),
    });
    w.run_until(LONG, |w| w.cat_phase("smoke") == Some(Phase::Running));
    w
}

#[test]
fn a_bad_quarantine_pattern_edited_in_by_hand_stalls_the_run() {
    let mut w = started();
    w.crs.get_mut("r-unit").unwrap().spec.quarantine = vec!["t::ok".into(), "t::\\x".into()];
    run_until_stalled(&mut w);
    let conds = run_conditions(&w);
    let stalled = condition(&conds, "Stalled");
    assert!(
        stalled.message.contains(
            "CategoryRun r-unit: spec.quarantine[1]: test id pattern \"t::\\\\x\" has `\\x`"
        ),
        "{}",
        stalled.message
    );
}

#[test]
fn an_index_past_the_plan_stalls_the_run_until_it_is_fixed() {
    let mut w = started();
    w.crs.get_mut("r-unit").unwrap().spec.index = 99;
    let pods = w.count("create pod");
    run_until_stalled(&mut w);
    let conds = run_conditions(&w);
    let stalled = condition(&conds, "Stalled");
    assert_eq!(stalled.reason, StallReason::InvalidCategoryRun.as_str());
    assert!(
        stalled
            .message
            .contains("CategoryRun r-unit: spec.index: 99 is past the last category"),
        "{}",
        stalled.message
    );
    assert_eq!(condition(&conds, "Reconciling").status, "False");
    let cr = w.crs["r-unit"].status.clone().unwrap().conditions;
    let cr_stalled = condition(&cr, "Stalled");
    assert_eq!(
        (cr_stalled.status.as_str(), cr_stalled.reason.as_str()),
        ("True", StallReason::InvalidSpec.as_str())
    );
    assert!(w.events.iter().any(|e| e.warning
        && e.reason == StallReason::InvalidCategoryRun.as_str()
        && e.note.contains("spec.index")));
    // Stalled: nothing else happens, and nothing is written again.
    let writes = w.writes.len();
    w.advance_to(w.now + std::time::Duration::from_secs(120));
    w.reconcile();
    assert_eq!(w.writes.len(), writes, "{:?}", &w.writes[writes..]);
    assert_eq!(w.count("create pod"), pods);

    // Fixed: the run goes on and passes; Stalled is False again.
    w.crs.get_mut("r-unit").unwrap().spec.index = 1;
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert_eq!(condition(&run_conditions(&w), "Stalled").status, "False");
    let cr = w.crs["r-unit"].status.clone().unwrap().conditions;
    assert_eq!(condition(&cr, "Stalled").status, "False");
}

#[test]
fn an_absurd_timeout_is_named_not_obeyed() {
    let mut w = started();
    w.crs.get_mut("r-e2e").unwrap().spec.timeout_seconds = 1e300;
    run_until_stalled(&mut w);
    let conds = run_conditions(&w);
    assert!(
        condition(&conds, "Stalled")
            .message
            .contains("CategoryRun r-e2e: spec.timeoutSeconds: 1e300 is not a number of seconds"),
        "{conds:#?}"
    );
}

fn undecodable(w: &World, name: &str, field: &str, value: serde_json::Value) -> Undecodable {
    let mut json = serde_json::to_value(&w.crs[name]).unwrap();
    json["spec"][field] = value;
    match Decoded::<CategoryRun>::from_json(&json.to_string()) {
        Decoded::Invalid(u) => (*u).clone(),
        Decoded::Valid(_) => panic!("{field} decoded"),
    }
}

#[test]
fn a_category_run_that_does_not_decode_stalls_the_run_and_deleting_it_recovers() {
    let mut w = started();
    let u = undecodable(&w, "r-api-tests", "retries", json!("many"));
    w.crs.remove("r-api-tests");
    w.invalid.insert("r-api-tests".into(), u);
    run_until_stalled(&mut w);
    let conds = run_conditions(&w);
    assert!(
        condition(&conds, "Stalled")
            .message
            .contains("CategoryRun r-api-tests: spec.retries: expected a whole number, 0 or more, found the text \"many\""),
        "{conds:#?}"
    );
    assert_eq!(
        condition(&w.invalid["r-api-tests"].conditions, "Stalled").status,
        "True"
    );
    // Deleted by hand: made again from the run's plan, and the run passes.
    w.invalid.clear();
    w.run_to_end(LONG);
    assert_eq!(w.phase(), Some(LayerPhase::Succeeded));
    assert!(w.crs.contains_key("r-api-tests"));
}

#[test]
fn a_run_that_does_not_decode_is_marked_once() {
    let w = chain();
    let mut json = serde_json::to_value(&w.run).unwrap();
    json["spec"]["overrides"] = json!({"maxParallel": "lots"});
    let Decoded::Invalid(u) = Decoded::<TestLayerRun>::from_json(&json.to_string()) else {
        panic!("decoded")
    };
    assert_eq!(
        u.problem,
        "spec.overrides.maxParallel: expected a whole number, 0 or more, found the text \"lots\""
    );
    let stall = Stall {
        reason: StallReason::InvalidSpec.as_str().into(),
        message: u.problem.clone(),
    };
    let Some(conds) = marked_stalled(&u.conditions, &stall, u.metadata.generation, w.now) else {
        panic!("not marked: {:?}", u.conditions)
    };
    assert_eq!(condition(&conds, "Stalled").status, "True");
    assert_eq!(condition(&conds, "Stalled").reason, "InvalidSpec");
    assert_eq!(condition(&conds, "Reconciling").status, "False");
    // Once marked, it is not marked again (no write, no second Event).
    let later = w.now + std::time::Duration::from_secs(90);
    assert_eq!(
        marked_stalled(&conds, &stall, u.metadata.generation, later),
        None
    );
}

/// Any value of a number field, and some that are none.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
        Just(1e300),
        0.0..100.0f64,
    ]
}

#[derive(Debug, Clone)]
struct Edit {
    category: usize,
    index: u32,
    timeout: f64,
    backoff: f64,
    expected: Option<f64>,
    retries: u32,
    infra_retries: u32,
    cpu: Option<u64>,
    memory: Option<u64>,
    attempt_count: u32,
    attempt_number: u32,
    exit_code: Option<i32>,
    priority: i64,
}

fn edit() -> impl Strategy<Value = Edit> {
    (
        (
            0..4usize,
            prop_oneof![0..5u32, any::<u32>()],
            any_f64(),
            any_f64(),
            proptest::option::of(any_f64()),
            prop_oneof![0..3u32, any::<u32>()],
            prop_oneof![0..3u32, any::<u32>()],
        ),
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            any::<u32>(),
            any::<u32>(),
            proptest::option::of(any::<i32>()),
            any::<i64>(),
        ),
    )
        .prop_map(
            |(
                (category, index, timeout, backoff, expected, retries, infra_retries),
                (cpu, memory, attempt_count, attempt_number, exit_code, priority),
            )| Edit {
                category,
                index,
                timeout,
                backoff,
                expected,
                retries,
                infra_retries,
                cpu,
                memory,
                attempt_count,
                attempt_number,
                exit_code,
                priority,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A CategoryRun edited by hand with any values, spec and status, at
    /// any moment of a run: the step never panics, the run either stalls
    /// naming a field or goes on, and nothing is written in a loop.
    #[test]
    fn no_edit_of_a_category_run_panics_the_step(e in edit(), at in 0.0..8.0f64) {
        let mut w = chain().scripts(|c, n| match (c, n) {
            ("smoke", _) => Script::pass(2.0, "2 passed in 2s"),
            ("unit", 1) => Script::fail(1.0, 1, "1 failed in 1s"),
            _ => Script::pass(1.0, "1 passed in 1s"),
        });
        let t = w.now + std::time::Duration::from_secs_f64(at);
        w.run_until(LONG, |w| w.now >= t || w.phase().is_some_and(LayerPhase::is_terminal));
        let name = w.crs.keys().nth(e.category).cloned().unwrap();
        {
            let cr = w.crs.get_mut(&name).unwrap();
            let s = &mut cr.spec;
            s.index = e.index;
            s.timeout_seconds = e.timeout;
            s.retry_backoff_seconds = e.backoff;
            s.expected_duration_seconds = e.expected;
            s.retries = e.retries;
            s.infra_retries = e.infra_retries;
            s.resources.limits.cpu_millis = e.cpu;
            s.resources.requests.memory_bytes = e.memory;
            s.priority_order = e.priority;
            let st = cr.status.get_or_insert_with(Default::default);
            st.attempt_count = e.attempt_count;
            if let Some(a) = st.attempts.last_mut() {
                a.number = e.attempt_number;
                a.exit_code = e.exit_code;
            }
        }
        // A few reconciles and an hour of virtual time, whatever happens.
        for _ in 0..30 {
            let next = w.reconcile();
            let d = match next {
                Next::After(d) => d.min(std::time::Duration::from_secs(600)),
                _ => std::time::Duration::from_secs(60),
            };
            w.advance_to(w.now + d);
            if w.phase().is_some_and(LayerPhase::is_terminal) {
                break;
            }
        }
        let conds = run_conditions(&w);
        let stalled = conds.iter().any(|c| c.type_ == "Stalled" && c.status == "True");
        if stalled {
            // A stalled run names a field of the edited CategoryRun, and
            // writes nothing more while it stays as it is.
            let message = &conds.iter().find(|c| c.type_ == "Stalled").unwrap().message;
            // (Two CategoryRuns at one index: either may be named first.)
            prop_assert!(
                message.contains(&format!("CategoryRun {name}: spec."))
                    || message.contains(&format!("spec.index: {} is the index of CategoryRun {name} too", e.index)),
                "{message}"
            );
            let before = w.writes.len();
            w.reconcile();
            prop_assert_eq!(w.writes.len(), before, "{:?}", &w.writes[before..]);
        }
    }

    /// Any JSON value in any field of a TestLayerRun's spec decodes or is
    /// named; nothing panics.
    #[test]
    fn any_value_in_a_run_spec_decodes_or_is_named(
        field in prop::sample::select(vec![
            "layer", "environment", "config", "image", "command", "overrides", "pod",
            "dependsOn", "background", "suspend", "cancel", "dependencyWaitSeconds",
            "ttlSecondsAfterFinished",
        ]),
        value in prop_oneof![
            Just(json!(null)), Just(json!(-1)), Just(json!(1e300)), Just(json!("x")),
            Just(json!([1, "a"])), Just(json!({"a": 1})), Just(json!(true)),
            Just(json!(18_446_744_073_709_551_615u64)),
        ],
    ) {
        let w = chain();
        let mut json = serde_json::to_value(&w.run).unwrap();
        json["spec"][field] = value;
        match Decoded::<TestLayerRun>::from_json(&json.to_string()) {
            Decoded::Valid(run) => {
                // A valid run is stepped like any other.
                let mut w = chain();
                w.run = Arc::unwrap_or_clone(run);
                w.reconcile();
            }
            Decoded::Invalid(u) => {
                prop_assert!(u.problem.starts_with(&format!("spec.{field}")), "{}", u.problem);
                prop_assert_eq!(u.metadata.name.as_deref(), Some("r"));
            }
        }
    }
}
