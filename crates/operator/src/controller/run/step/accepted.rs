//! Accepting a run: its status and the writes that make it, in the order
//! crash safety needs. Shared by a new run and a rerun.

use super::observed::Observed;
use super::writes::Write;
use super::writes::note;
use crate::api::{
    CategoryRun, CategoryRunStatus, CategorySummary, LayerPhase, MAX_LISTED_CATEGORIES,
    PhaseCounts, PlanSnapshot, TestLayerRunStatus,
};
use crate::layer::LayerPlan;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use std::collections::BTreeSet;

/// The status of a run just accepted with `layer`, frozen as `snap`.
pub fn accepted_status(
    status: &mut TestLayerRunStatus,
    layer: &LayerPlan,
    snap: PlanSnapshot,
    hash: &str,
) {
    let n = layer.categories.len();
    status.plan = Some(snap);
    status.spec_hash = Some(hash.to_string());
    status.strategy = Some(layer.settings.strategy.into());
    status.phases = Some(PhaseCounts {
        pending: n as u32,
        ..PhaseCounts::default()
    });
    status.progress = Some(format!("0/{n}"));
    status.categories = if n <= MAX_LISTED_CATEGORIES {
        layer
            .categories
            .iter()
            .map(|c| CategorySummary::pending(&c.name))
            .collect()
    } else {
        Vec::new()
    };
    status.phase = Some(LayerPhase::Pending);
    status.message = Some("created its categories".into());
}

/// The writes that accept a run, in the order crash safety needs: its
/// frozen plan, its status naming it, its CategoryRuns (those not made
/// yet), the statuses of CategoryRuns carried over from an earlier run,
/// and an Event saying `text`.
pub fn accepted_writes(
    o: &Observed,
    plan: ConfigMap,
    status: TestLayerRunStatus,
    crs: Vec<CategoryRun>,
    carried: Vec<(String, CategoryRunStatus)>,
    text: &str,
) -> Vec<Write> {
    let existing: BTreeSet<String> = o.category_runs.iter().map(|c| c.name_any()).collect();
    let missing: Vec<CategoryRun> = crs
        .into_iter()
        .filter(|cr| !existing.contains(&cr.name_any()))
        .collect();
    let mut writes = vec![
        Write::CreatePlan(Box::new(plan)),
        Write::RunStatus(Box::new(status)),
    ];
    if !missing.is_empty() {
        writes.push(Write::CreateCategoryRuns(missing));
    }
    if !carried.is_empty() {
        writes.push(Write::CategoryRunStatuses(carried));
    }
    writes.push(Write::Event(note(o.run.as_ref(), false, "Accepted", text)));
    writes
}
