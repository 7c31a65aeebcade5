//! A rerun of what did not pass in an earlier run (`spec.rerunOf`): that
//! run's frozen plan, not the config, with the categories that passed
//! there carried over as passed (they satisfy dependencies and count in the
//! outcome) and the others run again. Pure, like the rest of the step.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::accepted::{accepted_status, accepted_writes};
use super::observed::{Observed, Question, RerunAnswer};
use super::run_status;
use super::writes::{Next, Step};
use crate::api::{CategoryRun, CategoryRunStatus, RerunStatus, TestLayerRunStatus};
use crate::controller::run::build;
use crate::controller::run::frozen_plan::{self, FrozenPlan};
use crate::controller::run::step::categories::carried_message;
use crate::controller::status::reasons::StallReason;
use crate::plan::Phase;

/// Accepts the rerun of `o` of the earlier run `of`: asks for that run,
/// waits while it runs, fails (Stalled) when it is gone or is not of the
/// same layer, and else freezes its plan for this run.
pub fn accept(
    o: &Observed,
    mut status: TestLayerRunStatus,
    hash: &str,
    of: &str,
    now: Timestamp,
) -> Step {
    let run = o.run.as_ref();
    let Some(answer) = &o.answers.rerun else {
        return Step::ask(vec![Question::RerunSource(of.to_string())]);
    };
    let src = match answer {
        RerunAnswer::Found(src) => src,
        RerunAnswer::Unfinished(phase) => {
            let problem =
                format!("run {of} has not finished ({phase}); this rerun starts when it has");
            return run_status::waiting(
                o,
                status,
                StallReason::WaitingForRerunSource.as_str(),
                &problem,
                false,
                now,
            );
        }
        RerunAnswer::Missing(why) => {
            let problem = format!("spec.rerunOf: {why}");
            return run_status::invalid(
                o,
                status,
                StallReason::RerunSourceNotFound.as_str(),
                &problem,
                now,
            );
        }
    };
    if src.run.spec.layer != run.spec.layer {
        let problem = format!(
            "spec.layer: {:?}, but run {of} ran layer {:?}; a rerun runs the same layer",
            run.spec.layer, src.run.spec.layer
        );
        return run_status::invalid(
            o,
            status,
            StallReason::RerunSourceNotFound.as_str(),
            &problem,
            now,
        );
    }
    let Some(mut snap) = src.run.status.as_ref().and_then(|s| s.plan.clone()) else {
        let problem = format!("spec.rerunOf: run {of} records no plan");
        return run_status::invalid(
            o,
            status,
            StallReason::RerunSourceNotFound.as_str(),
            &problem,
            now,
        );
    };

    // Its categories as they ended there, by index.
    let ended: BTreeMap<u32, &CategoryRun> = src
        .category_runs
        .iter()
        .map(|c| (c.spec.index, c))
        .collect();
    let name = run.name_any();
    let mut crs = Vec::with_capacity(src.plan.categories.len());
    let mut carried = Vec::new();
    for i in 0..src.plan.categories.len() {
        let Some(mut cr) = src.plan.category_run(run, i) else {
            continue;
        };
        cr.spec.run_name = name.clone();
        cr.spec.passed_in = None;
        let passed = ended
            .get(&(i as u32))
            .and_then(|c| c.status.as_ref())
            .filter(|s| s.phase == Some(Phase::Succeeded));
        if let Some(old) = passed {
            cr.spec.passed_in = Some(of.to_string());
            carried.push((cr.name_any(), carried_status(old, of)));
        }
        crs.push(cr);
    }
    let refs: Vec<&CategoryRun> = crs.iter().collect();
    let layer = match build::layer_from_objects(
        &run.spec.layer,
        run.spec.environment.as_deref(),
        &snap,
        &refs,
    ) {
        Ok(l) => l,
        Err(e) => {
            let problem = format!("spec.rerunOf: the plan of run {of} cannot be used: {e}");
            return run_status::invalid(
                o,
                status,
                StallReason::RerunSourceNotFound.as_str(),
                &problem,
                now,
            );
        }
    };
    let (cm, reference) = match frozen_plan::encode(run, &FrozenPlan::of(&crs)) {
        Ok(r) => r,
        Err(e) => {
            return run_status::invalid(
                o,
                status,
                StallReason::InvalidConfig.as_str(),
                &e.to_string(),
                now,
            );
        }
    };
    snap.background = run.spec.background;
    snap.frozen = Some(reference);
    accepted_status(&mut status, &layer, snap, hash);
    let n = crs.len() as u32;
    let kept = carried.len() as u32;
    status.rerun = Some(RerunStatus {
        of: of.to_string(),
        carried: kept,
        rerun: n - kept,
    });
    let text = format!(
        "rerun of {of}: {kept} of its {n} categories passed there and are carried over, {} run again",
        n - kept
    );
    let writes = accepted_writes(o, cm, status, crs, carried, &text);
    Step::write(writes, Next::Again)
}

/// The status of a category carried over from run `of`, where it ended as
/// `old`: its results kept, its conditions left for this run to set.
fn carried_status(old: &CategoryRunStatus, of: &str) -> CategoryRunStatus {
    CategoryRunStatus {
        conditions: Vec::new(),
        observed_generation: None,
        message: Some(carried_message(of)),
        ..old.clone()
    }
}
