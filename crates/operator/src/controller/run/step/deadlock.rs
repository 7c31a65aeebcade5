//! Whether this run waits for shared resources that can never come: runs
//! that keep units until they end (a layer's own `uses`) while their
//! categories wait for units the others keep. Such a run is `Stalled` with
//! a condition that names every run of the cycle, what each keeps and what
//! each waits for; it goes on by itself once one of them is cancelled or
//! deleted.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::{ResourceClaim, TestLayerRun};
use crate::controller::shared::claims::{Served, SharedView};
use crate::controller::status::conditions::Stall;
use crate::resources::{Claim, Serving, Waiter, deadlock, describe_deadlock};
use crate::words::Reason;

/// The `Stalled` condition of `run` when it is part of a deadlock, or in
/// line behind one: the namespace's claims as `view` records them, this
/// run's own as `served` has just made them.
pub(super) fn stall(view: &SharedView, run: &TestLayerRun, served: &Served) -> Option<Stall> {
    if served.waiting.is_empty() {
        return None;
    }
    // Only units kept for a whole run, held or claimed, can keep anyone
    // waiting for ever.
    let whole_run = view.grants.iter().any(|g| g.attempt == 0)
        || view.claims.iter().any(|c| c.claim.attempt == 0)
        || served.waiting.values().any(|c| c.attempt == 0);
    if !whole_run {
        return None;
    }
    let me = run.name_any();
    let my_ns = run.namespace().unwrap_or_default();
    // Runs of other namespaces (one line serves them all) by `ns/name`.
    let key = |ns: &str, name: &str| {
        if ns == my_ns {
            name.to_string()
        } else {
            format!("{ns}/{name}")
        }
    };
    let since = run
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second());
    let priority = run.spec.priority.unwrap_or(0);
    let waiter =
        |run: &str, holder: &str, claim: &ResourceClaim, since: i64, priority: i32| Waiter {
            run: run.to_string(),
            whole_run: claim.attempt == 0,
            claim: Claim {
                key: (holder.to_string(), claim.attempt),
                priority,
                since,
                wants: claim
                    .wants
                    .iter()
                    .map(|w| (w.resource.clone(), w.units))
                    .collect(),
            },
        };
    let mut waiting: Vec<Waiter<String, (String, u32)>> = view
        .claims
        .iter()
        .filter(|c| key(&c.run_namespace, &c.run) != me)
        .filter(|c| view.waits(c))
        .map(|c| {
            waiter(
                &key(&c.run_namespace, &c.run),
                &c.holder_uid,
                &c.claim,
                c.claim.since.0.as_second(),
                c.claim.priority,
            )
        })
        .collect();
    waiting.extend(
        served
            .waiting
            .iter()
            .map(|(holder, c)| waiter(&me, holder, c, since, priority)),
    );
    let mut kept: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for g in view.grants.iter().filter(|g| g.attempt == 0) {
        *kept
            .entry(key(&g.run_namespace, &g.run))
            .or_default()
            .entry(g.resource.clone())
            .or_insert(0) += 1;
    }
    let stuck = deadlock(&view.capacities, &kept, &waiting, Serving::InLine);
    if !stuck.iter().any(|s| s.run == me) {
        return None;
    }
    Some(Stall {
        reason: Reason::ResourceDeadlock.to_string(),
        message: format!(
            "{}; cancel or delete one of them",
            describe_deadlock(&stuck)
        ),
    })
}
