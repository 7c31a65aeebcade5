//! Every reconcile scenario of `tests/operator.rs`, against the pure step in
//! an in-memory cluster ([`world::World`]): fast, deterministic, and able to
//! look at the order of writes, which the end-to-end tests cannot.

mod frozen;
mod gates;
mod invalid;
mod metrics;
mod notifications;
mod refused;
mod reports;
mod reruns;
mod resources;
mod runs;
mod stops;
mod world;
mod writes;

use std::time::Duration;

use serde_json::json;

use super::RerunAnswer;
use super::{Answers, Next, Question, Write};
use crate::api::LayerPhase;
use crate::plan::Phase;
use crate::words::{AttemptReason, Reason};
use world::{End, PodEvent, Script, World};

const LONG: Duration = Duration::from_secs(3600);

const CHAIN: &str = r#"
layers:
  chain:
    name: "Chain"
    execution_mode: "parallel"
    categories:
      - name: "smoke"
        timeout_seconds: 30
      - name: "unit"
        timeout_seconds: 30
        dependencies: ["smoke"]
      - name: "API Tests"
        timeout_seconds: 30
        dependencies: ["smoke"]
      - name: "e2e"
        timeout_seconds: 30
        dependencies: ["unit", "API Tests"]
"#;

pub(super) fn chain() -> World {
    World::new("chain", CHAIN, json!({"command": "run {category}"})).scripts(|c, _| match c {
        "smoke" => Script::pass(0.5, "2 passed in 0.1s"),
        "unit" => Script::pass(0.3, "5 passed, 1 skipped in 0.3s"),
        "api-tests" => Script::pass(
            0.0,
            "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        ),
        _ => Script::pass(2.0, "1 passed in 1.0s"),
    })
}

pub(super) fn wide(n: usize, layer_extra: &str, cat_extra: &str) -> String {
    let mut c =
        format!("layers:\n  wide:\n    execution_mode: parallel\n{layer_extra}    categories:\n");
    for i in 0..n {
        c.push_str(&format!(
            "      - name: c{i}\n        timeout_seconds: 60\n{cat_extra}"
        ));
    }
    c
}
