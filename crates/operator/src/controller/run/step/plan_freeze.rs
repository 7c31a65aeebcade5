//! The frozen plan of a run: resolved from the layer config once, when the
//! run is accepted (its layer-wide settings and category count into the
//! run's status, every category's CategoryRun spec into an immutable
//! ConfigMap the run owns, see [`frozen_plan`], and into the CategoryRuns),
//! and rebuilt from those objects on every later step. The config is never
//! read again: a CategoryRun deleted mid-run is recreated from the frozen
//! plan.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::observed::{ConfigAnswer, FrozenPlanAnswer, Observed, Question};
use super::rerun;
use super::run_status;
use super::writes::note;
use super::writes::{Next, Step, Write};
use crate::api::{CategoryRun, LISTED_FAILURES, TestLayerRunStatus};
use crate::controller::run::build;
use crate::controller::run::frozen_plan::{self, FrozenPlan};
use crate::controller::run::step::accepted::accepted_status;
use crate::controller::run::step::accepted::accepted_writes;
use crate::controller::run::step::spec::resolve;
use crate::controller::run::step::spec::resolve_learning;
use crate::controller::status::reasons::StallReason;
use crate::layer::{EstimateSource, LayerPlan};

/// The frozen plan, or the step that gets it.
pub enum Frozen {
    /// The plan, and the run's status to go on from.
    Ready(Box<(LayerPlan, TestLayerRunStatus)>),
    /// What to do first.
    Step(Step),
}

/// The frozen plan of the run of `o`: resolved from the config when the run
/// has no plan yet (the only time the config is read), else rebuilt from
/// the run's objects, a missing CategoryRun recreated from the frozen plan.
pub fn frozen(o: &Observed, status: TestLayerRunStatus, hash: &str, now: Timestamp) -> Frozen {
    let Some(snap) = status.plan.clone() else {
        return accept(o, status, hash, now);
    };
    if o.category_runs.len() < snap.count() {
        return Frozen::Step(match snap.frozen {
            Some(_) => recreate(o, status, snap.count(), now),
            None => legacy_recreate(o, status, now),
        });
    }
    let run = o.run.as_ref();
    let refs: Vec<&CategoryRun> = o.category_runs.iter().map(|c| c.as_ref()).collect();
    let layer = match build::layer_from_objects(
        &run.spec.layer,
        run.spec.environment.as_deref(),
        &snap,
        &refs,
    ) {
        Ok(layer) => layer,
        Err(e) => {
            return Frozen::Step(run_status::invalid(
                o,
                status,
                StallReason::Inconsistent.as_str(),
                &e.to_string(),
                now,
            ));
        }
    };
    if snap.frozen.is_none() {
        // Accepted by an older controller: its plan is frozen now, from
        // its CategoryRuns, so that it never needs the config again.
        if let Ok((cm, reference)) = frozen_plan::encode(run, &FrozenPlan::of(refs)) {
            let mut status = status;
            if let Some(p) = status.plan.as_mut() {
                p.category_count = p.count() as u32;
                p.categories = Vec::new();
                p.frozen = Some(reference);
            }
            return Frozen::Step(Step::write(
                vec![
                    Write::CreatePlan(Box::new(cm)),
                    Write::RunStatus(Box::new(status)),
                ],
                Next::Again,
            ));
        }
    }
    Frozen::Ready(Box::new((layer, status)))
}

/// The config text as answered, or the step that gets it.
fn config_text<'a>(
    o: &'a Observed,
    status: &TestLayerRunStatus,
    now: Timestamp,
) -> Result<(&'a str, &'a str), Step> {
    let Some(answer) = &o.answers.config else {
        return Err(Step::ask(vec![Question::Config]));
    };
    match answer {
        ConfigAnswer::Found { text, origin } => Ok((text, origin)),
        ConfigAnswer::Missing(m) => Err(run_status::waiting_for_config(o, status.clone(), m, now)),
    }
}

/// Accepts a run: resolves its config, freezes the plan (its ConfigMap
/// first, then the run's status naming it, then the CategoryRuns).
fn accept(o: &Observed, mut status: TestLayerRunStatus, hash: &str, now: Timestamp) -> Frozen {
    let run = o.run.as_ref();
    // Mistakes in `spec.notify` are found before anything starts.
    if let Err(problem) = crate::controller::notify::check::check(&run.spec.notify) {
        return Frozen::Step(run_status::invalid(
            o,
            status,
            StallReason::InvalidSpec.as_str(),
            &problem,
            now,
        ));
    }
    if let Some(of) = &run.spec.rerun_of {
        return Frozen::Step(rerun::accept(o, status, hash, of, now));
    }
    // Durations measured by the latest finished run of the layer.
    let source = history_source(o);
    if let Some(name) = &source
        && o.answers.history.is_none()
    {
        let mut questions = vec![Question::History(name.clone())];
        if o.answers.config.is_none() {
            questions.push(Question::Config);
        }
        return Frozen::Step(Step::ask(questions));
    }
    let history: BTreeMap<String, f64> = o
        .answers
        .history
        .iter()
        .flatten()
        .map(|(name, ms)| (name.clone(), *ms as f64 / 1000.0))
        .collect();
    let (text, origin) = match config_text(o, &status, now) {
        Ok(t) => t,
        Err(step) => return Frozen::Step(step),
    };
    let resolved = resolve_learning(run, text, origin, &history).and_then(|(layer, crs)| {
        let (cm, reference) =
            frozen_plan::encode(run, &FrozenPlan::of(&crs)).map_err(|e| e.to_string())?;
        Ok((layer, crs, cm, reference))
    });
    let (layer, crs, cm, reference) = match resolved {
        Ok(r) => r,
        Err(problem) => {
            return Frozen::Step(run_status::invalid(
                o,
                status,
                StallReason::InvalidConfig.as_str(),
                &problem,
                now,
            ));
        }
    };
    let mut snap = build::snapshot(&layer);
    snap.background |= run.spec.background;
    snap.frozen = Some(reference);
    accepted_status(&mut status, &layer, snap, hash);
    let learned = layer
        .categories
        .iter()
        .filter(|c| c.estimate_source == EstimateSource::History)
        .count();
    let mut text = format!(
        "layer {} ({}), {} categories, {}",
        layer.settings.key,
        layer.settings.display_name,
        layer.categories.len(),
        layer.settings.strategy
    );
    if let (Some(name), true) = (&source, learned > 0) {
        text.push_str(&format!(
            "; {learned} expected durations learned from run {name}"
        ));
    }
    let writes = accepted_writes(o, cm, status, crs, Vec::new(), &text);
    Frozen::Step(Step::write(writes, Next::Again))
}

/// The latest finished run of the same layer in the run's namespace, whose
/// measured durations the plan learns from.
fn history_source(o: &Observed) -> Option<String> {
    let run = o.run.as_ref();
    o.runs
        .iter()
        .filter(|r| r.metadata.uid != run.metadata.uid && r.spec.layer == run.spec.layer)
        .filter_map(|r| {
            let st = r.status.as_ref()?;
            st.phase.filter(|p| p.is_terminal())?;
            Some((st.completion_time.clone()?.0, r.name_any()))
        })
        .max()
        .map(|(_, name)| name)
}

/// CategoryRuns are missing (deleted by hand): recreated from the frozen
/// plan, never from the config; a run whose frozen plan is gone too fails,
/// since nothing says what the missing categories were.
fn recreate(o: &Observed, status: TestLayerRunStatus, count: usize, now: Timestamp) -> Step {
    let run = o.run.as_ref();
    let Some(answer) = &o.answers.frozen_plan else {
        return Step::ask(vec![Question::FrozenPlan]);
    };
    let present: BTreeSet<u32> = o.category_runs.iter().map(|c| c.spec.index).collect();
    let missing: Vec<usize> = (0..count)
        .filter(|i| !present.contains(&(*i as u32)))
        .collect();
    let plan = match answer {
        FrozenPlanAnswer::Found(plan) if plan.categories.len() == count => plan,
        FrozenPlanAnswer::Found(plan) => {
            let problem = format!(
                "the frozen plan has {} categories and the run {count}",
                plan.categories.len()
            );
            return run_status::invalid(
                o,
                status,
                StallReason::Inconsistent.as_str(),
                &problem,
                now,
            );
        }
        FrozenPlanAnswer::Missing(why) => {
            let problem = format!(
                "{} of its {count} CategoryRuns were deleted (category {} first) and cannot be recreated: {why}",
                missing.len(),
                missing.first().copied().unwrap_or_default()
            );
            return run_status::invalid(o, status, StallReason::PlanLost.as_str(), &problem, now);
        }
    };
    let crs: Vec<CategoryRun> = missing
        .iter()
        .filter_map(|&i| plan.category_run(run, i))
        .collect();
    let names: Vec<String> = crs.iter().map(|c| c.spec.category.clone()).collect();
    let shown = names
        .iter()
        .take(LISTED_FAILURES)
        .cloned()
        .collect::<Vec<_>>();
    let more = names.len().saturating_sub(shown.len());
    let text = format!(
        "recreated {} deleted CategoryRun(s) from the frozen plan: {}{}",
        names.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    Step::write(
        vec![
            Write::CreateCategoryRuns(crs),
            Write::Event(note(run, true, "Recreated", &text)),
        ],
        Next::Again,
    )
}

/// A run accepted by an older controller that misses CategoryRuns before
/// its plan was frozen: the config is the only record of them left.
fn legacy_recreate(o: &Observed, status: TestLayerRunStatus, now: Timestamp) -> Step {
    let run = o.run.as_ref();
    let (text, origin) = match config_text(o, &status, now) {
        Ok(t) => t,
        Err(step) => return step,
    };
    let crs = match resolve(run, text, origin) {
        Ok((_, crs)) => crs,
        Err(problem) => {
            return run_status::invalid(
                o,
                status,
                StallReason::InvalidConfig.as_str(),
                &problem,
                now,
            );
        }
    };
    let existing: BTreeSet<String> = o.category_runs.iter().map(|c| c.name_any()).collect();
    let missing: Vec<CategoryRun> = crs
        .into_iter()
        .filter(|cr| !existing.contains(&cr.name_any()))
        .collect();
    if missing.is_empty() {
        return run_status::invalid(
            o,
            status,
            StallReason::Inconsistent.as_str(),
            "its CategoryRuns do not match its plan",
            now,
        );
    }
    Step::write(vec![Write::CreateCategoryRuns(missing)], Next::Again)
}
