//! The first stage of a step: a run that was deleted, whose spec changed,
//! that has finished, or some of whose CategoryRuns the controller cannot
//! use is settled here; a working run goes on to the next stages.

use k8s_openapi::jiff::Timestamp;

use super::observed::Observed;
use super::spec::spec_changed;
use super::writes::{Next, Step, Write};
use super::{claims, invalid, notifications, run_status};
use crate::api::TestLayerRunStatus;

/// The step of a run that does not work on (deleted, changed, finished or
/// stalled by unusable CategoryRuns), or `None` for a working run.
/// `status`: the run's as stored; `hash`: its spec's digest now.
pub fn settle(
    o: &Observed,
    status: &TestLayerRunStatus,
    hash: &str,
    now: Timestamp,
) -> Option<Step> {
    let run = o.run.as_ref();
    if run.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the rest.
        return Some(Step::idle(Next::AwaitChange));
    }

    // A changed definition starts the run over (GitOps: a new spec is a new run).
    if spec_changed(status.spec_hash.as_deref(), hash) {
        return Some(run_status::restart(o));
    }
    if let Some(phase) = status.phase.filter(|p| p.is_terminal()) {
        let s = run_status::finished(o, phase, status, now);
        let mut s = notifications::with_notifications(o, status, s, now);
        if s.writes
            .iter()
            .any(|w| matches!(w, Write::RecordNotifications { .. }))
        {
            // Recorded first; what the run held goes back on the next pass.
            return Some(s);
        }
        // What the run and its categories held goes back.
        let crs: Vec<String> = o
            .category_runs
            .iter()
            .filter_map(|c| c.metadata.uid.clone())
            .collect();
        let held = claims::all_of(&o.shared, &o.pods, run, &crs);
        // A holder's Pod this controller's cache does not show yet (made a
        // moment ago, perhaps by another controller) may run: asked first,
        // and one that exists keeps its grant.
        let (held, asked) = claims::unseen_holders(o, held);
        if !asked.is_empty() {
            return Some(Step::ask(asked));
        }
        if !held.is_empty() && s.questions.is_empty() {
            s.writes
                .insert(0, Write::DeleteGrants(o.shared.namespace.clone(), held));
        }
        return Some(s);
    }

    // CategoryRuns the controller cannot use (edited by hand, or stored
    // under an older CRD) stall the run until they are fixed.
    let planned = status.plan.as_ref().map(|p| p.count());
    let bad = invalid::unusable(o, planned);
    if !bad.is_empty() {
        return Some(invalid::stalled_run(o, status.clone(), &bad, now));
    }
    None
}
