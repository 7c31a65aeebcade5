//! Objects the controller cannot use as they are: a TestLayerRun or
//! CategoryRun that did not decode (stored under an older, looser CRD, or
//! edited by hand), a CategoryRun whose values are out of range or do not
//! fit the run's plan, and an object whose reconcile failed. Each is marked
//! `Stalled=True` with the field named (and a Warning Event when that
//! changes); nothing else of it is touched until it is fixed, and every
//! other object goes on.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::observed::Observed;
use super::writes::{Next, Step, Write};
use super::writes::{note, wall_clock};
use crate::api::{TestLayerRun, TestLayerRunStatus};
use crate::controller::status::conditions::Stall;

use crate::controller::status::invalid::with_stall;
use crate::controller::status::reasons::StallReason;

/// How often a stalled run looks again if nothing wakes it.
const STALLED_POLL: Duration = Duration::from_secs(60);
/// Invalid CategoryRuns named in a run's message at most.
const NAMED: usize = 3;

/// One CategoryRun of the run that the controller cannot use.
#[derive(Debug, Clone, PartialEq)]
pub struct Unusable {
    /// Its name.
    pub name: String,
    /// The field and what is wrong with it.
    pub problem: String,
    /// Its conditions as stored.
    pub conditions: Vec<Condition>,
    /// Its generation.
    pub generation: Option<i64>,
}

/// The CategoryRuns of the run of `o` that the controller cannot use: those
/// that did not decode, and those whose values are out of range or do not
/// fit a plan of `categories` categories.
pub fn unusable(o: &Observed, categories: Option<usize>) -> Vec<Unusable> {
    let mut out: Vec<Unusable> = o
        .invalid
        .iter()
        .map(|u| Unusable {
            name: u.metadata.name.clone().unwrap_or_default(),
            problem: u.problem.clone(),
            conditions: u.conditions.clone(),
            generation: u.metadata.generation,
        })
        .collect();
    for cr in &o.category_runs {
        if let Err(e) = cr.spec.check(categories) {
            out.push(Unusable {
                name: cr.name_any(),
                problem: e.to_string(),
                conditions: cr
                    .status
                    .as_ref()
                    .map(|s| s.conditions.clone())
                    .unwrap_or_default(),
                generation: cr.metadata.generation,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The step of a run with unusable CategoryRuns: each of them and the run
/// are marked `Stalled`, and nothing else happens until they are fixed
/// (or deleted, to be made again from the run's plan).
pub fn stalled_run(
    o: &Observed,
    mut status: TestLayerRunStatus,
    bad: &[Unusable],
    now: Timestamp,
) -> Step {
    let run: &TestLayerRun = o.run.as_ref();
    let wall = wall_clock(now);
    let mut writes = Vec::new();
    let mut events = Vec::new();
    let mut marks = Vec::new();
    for b in bad {
        let stall = Stall {
            reason: StallReason::InvalidSpec.as_str().into(),
            message: format!(
                "{}; fix it, or delete it to have it made again from the run's plan",
                b.problem
            ),
        };
        let conditions = with_stall(&b.conditions, Some(&stall), b.generation, &wall);
        if conditions != b.conditions {
            events.push(Write::Event(note(
                run,
                true,
                StallReason::InvalidCategoryRun.as_str(),
                &format!("CategoryRun {}: {}", b.name, b.problem),
            )));
            marks.push((b.name.clone(), conditions));
        }
    }
    if !marks.is_empty() {
        writes.push(Write::CategoryRunConditions(marks));
    }
    let mut named: Vec<String> = bad
        .iter()
        .take(NAMED)
        .map(|b| format!("CategoryRun {}: {}", b.name, b.problem))
        .collect();
    if bad.len() > NAMED {
        named.push(format!("and {} more", bad.len() - NAMED));
    }
    let stall = Stall {
        reason: StallReason::InvalidCategoryRun.as_str().into(),
        message: format!(
            "{}; the run waits until they are fixed or deleted",
            named.join("; ")
        ),
    };
    status.conditions = with_stall(
        &status.conditions,
        Some(&stall),
        run.metadata.generation,
        &wall,
    );
    if run.status.as_ref() != Some(&status) {
        writes.push(Write::RunStatus(Box::new(status)));
    }
    writes.extend(events);
    Step::write(writes, Next::After(STALLED_POLL))
}
