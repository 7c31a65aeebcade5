//! This run's part in the shared resources of its namespace, in one step:
//! which of its holders hold their grants before planning, the claims the
//! planner's decision makes, and the grants to give back after it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::categories::Categories;
use super::observed::{Observed, Question};
use crate::api::TestLayerRun;
use crate::controller::shared::claims::{Grant, GrantRef, MyClaim, Served, SharedView, serve};
use crate::layer::LayerPlan;
use crate::plan::{Action, CategoryObs, Decision};

/// The attempt a category's next grant is for.
fn next_attempt(obs: &CategoryObs) -> u32 {
    match obs.running() {
        Some(_) => obs.attempts.len() as u32,
        None => obs.attempts.len() as u32 + 1,
    }
}

/// Marks the categories whose next attempt holds its grant.
pub(super) fn mark_granted(
    view: &SharedView,
    layer: &LayerPlan,
    cats: &Categories,
    obs: &mut [CategoryObs],
) {
    for (i, c) in cats.items.iter().enumerate() {
        let wants = &layer.categories[i].uses;
        if wants.is_empty() {
            continue;
        }
        if let Some(o) = obs.get_mut(i) {
            let uid = c.cr.metadata.uid.as_deref().unwrap_or_default();
            o.granted = view.holds(uid, next_attempt(o), wants);
        }
    }
}

/// Whether the run holds the grant of its layer's `uses`.
pub(super) fn run_holds(view: &SharedView, run: &TestLayerRun, layer: &LayerPlan) -> bool {
    layer.settings.uses.is_empty()
        || view.holds(
            run.metadata.uid.as_deref().unwrap_or_default(),
            0,
            &layer.settings.uses,
        )
}

/// The claims of this step: the run's (when `layer_claim`) and those of
/// the categories the decision says claim.
pub(super) fn mine(
    run: &TestLayerRun,
    layer: &LayerPlan,
    cats: &Categories,
    obs: &[CategoryObs],
    d: &Decision,
    layer_claim: bool,
) -> Vec<MyClaim> {
    let mut out = Vec::new();
    if layer_claim {
        out.push(MyClaim {
            holder: run.name_any(),
            holder_uid: run.metadata.uid.clone().unwrap_or_default(),
            run: run.name_any(),
            namespace: run.namespace().unwrap_or_default(),
            attempt: 0,
            wants: layer.settings.uses.clone(),
        });
    }
    for &i in &d.claims {
        let (Some(c), Some(o)) = (cats.items.get(i), obs.get(i)) else {
            continue;
        };
        out.push(MyClaim {
            holder: c.cr.name_any(),
            holder_uid: c.cr.metadata.uid.clone().unwrap_or_default(),
            run: run.name_any(),
            namespace: run.namespace().unwrap_or_default(),
            attempt: next_attempt(o),
            wants: layer.categories[i].uses.clone(),
        });
    }
    out
}

/// Serves the claims of this step, in the order of the namespace's line.
pub(super) fn serve_mine(view: &SharedView, run: &TestLayerRun, mine: &[MyClaim]) -> Served {
    if mine.is_empty() {
        return Served::default();
    }
    let since = run
        .metadata
        .creation_timestamp
        .clone()
        .unwrap_or(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    serve(view, mine, &since, run.spec.priority.unwrap_or(0))
}

/// The grants of this run to give back: a category's for an attempt that
/// is neither running nor started by `d`; the run's own once `run_done`.
/// None while a Pod it lets run may still run (`pods`: the run's).
pub(super) fn releases(
    view: &SharedView,
    pods: &[Arc<Pod>],
    run: &TestLayerRun,
    cats: &Categories,
    obs: &[CategoryObs],
    d: &Decision,
    run_done: bool,
) -> Vec<GrantRef> {
    // The attempts each category starts now, looked up once (a run of
    // thousands starts thousands in one step).
    let mut starts: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for a in &d.actions {
        if let Action::Start { category, attempt } = *a {
            starts.entry(category).or_default().push(attempt);
        }
    }
    let mut live: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (i, c) in cats.items.iter().enumerate() {
        let uid = c.cr.metadata.uid.as_deref().unwrap_or_default();
        let entry = live.entry(uid).or_default();
        if let Some(o) = obs.get(i)
            && o.running().is_some()
        {
            entry.push(o.attempts.len() as u32);
        }
        entry.extend(starts.get(&i).into_iter().flatten());
    }
    let run_uid = run.metadata.uid.as_deref().unwrap_or_default();
    let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
    view.grants
        .iter()
        .filter(|g| {
            let done = if g.holder_uid == run_uid {
                run_done
            } else {
                match live.get(g.holder_uid.as_str()) {
                    Some(attempts) => !attempts.contains(&g.attempt),
                    // Not a holder of this run.
                    None => false,
                }
            };
            done && !g.kept_by(&pods)
        })
        .map(Grant::to_ref)
        .collect()
}

/// Every grant of this run and its categories (to give back once the run
/// has ended), but those a Pod that may still run keeps (`pods`: the
/// run's; a cancelled run's Pods stop through their grace period).
pub(super) fn all_of(
    view: &SharedView,
    pods: &[Arc<Pod>],
    run: &TestLayerRun,
    cats: &[String],
) -> Vec<GrantRef> {
    let run_uid = run.metadata.uid.as_deref().unwrap_or_default();
    let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
    view.grants
        .iter()
        .filter(|g| g.holder_uid == run_uid || cats.contains(&g.holder_uid))
        .filter(|g| !g.kept_by(&pods))
        .map(Grant::to_ref)
        .collect()
}

/// Of the grants `held` (to give back), those whose holder's Pod is known
/// not to run. A category's grant is for one attempt, whose Pod's name it
/// gives; when that attempt is not recorded ended and its Pod is missing
/// from the cache (made a moment ago, perhaps by another controller, and
/// perhaps before its CategoryRun's status recorded it), the grant is kept
/// while the Pod exists, and asked about (a [`Question::PodExists`]) when
/// that is not known yet.
pub(super) fn unseen_holders(o: &Observed, held: Vec<GrantRef>) -> (Vec<GrantRef>, Vec<Question>) {
    let mut asked = Vec::new();
    let mut out = Vec::new();
    for g in held {
        let pod = (o.shared.grants.iter())
            .find(|x| x.uid == g.uid && x.attempt > 0)
            .and_then(|gr| {
                let cr = (o.category_runs.iter())
                    .find(|c| c.metadata.uid.as_deref() == Some(gr.holder_uid.as_str()))?;
                let ended = (cr.status.as_ref()).is_some_and(|s| {
                    s.attempts
                        .iter()
                        .any(|a| a.number == gr.attempt && a.completion_time.is_some())
                });
                let name = crate::controller::run::build::pod_name(&cr.name_any(), gr.attempt);
                let seen =
                    (o.pods.iter()).any(|p| p.metadata.name.as_deref() == Some(name.as_str()));
                (!ended && !seen).then_some(name)
            });
        match pod.map(|p| (o.answers.pod_exists.get(&p).copied(), p)) {
            None | Some((Some(false), _)) => out.push(g),
            Some((Some(true), _)) => {}
            Some((None, p)) => asked.push(Question::PodExists(p)),
        }
    }
    (out, asked)
}
