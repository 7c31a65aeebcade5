//! Shared resources in one step, pure: which units this run's holders (the
//! run for its layer's `uses`, each CategoryRun for its attempts') hold,
//! which waiting claims of the whole namespace are served now and in what
//! order, the grants to create and give back, and the claims to record.
//!
//! A grant is a `coordination.k8s.io` Lease per unit, named
//! `testlayer-grant-RESOURCE-UNIT`: no two holders can ever hold one unit,
//! because the apiserver refuses a second object of one name, whatever
//! this or another controller believed. A step gives it back when the
//! attempt (or the run) it was for has ended, with one delete; the grant
//! of a holder that was deleted is given back by the controller's sweep
//! once the holder's Pods have stopped (see `sweep`). A grant has no
//! owner: the garbage collector would give it back with its holder, while
//! the holder's Pods may still run through their grace period.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;

use crate::api::names::{
    GRANT_FINALIZER, LABEL_GRANT_ATTEMPT, LABEL_HOLDER, LABEL_HOLDER_NAMESPACE, LABEL_HOLDER_UID,
    LABEL_RESOURCE,
};
use crate::api::names::{LABEL_MANAGED_BY, LABEL_RUN, MANAGER};
use crate::api::{
    MAX_LISTED_HOLDERS, ResourceClaim, ResourceHolder, ResourceUnits, TestLayerResourceStatus,
};
use crate::resources::{Claim, allocate};

/// The name of the grant of `unit` of `resource`.
pub fn grant_name(resource: &str, unit: u32) -> String {
    format!("testlayer-grant-{resource}-{unit}")
}

/// One unit held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The Lease's name.
    pub name: String,
    /// The Lease's uid: a unit given back and granted again is a new Lease
    /// of the same name, which a give-back decided on the old must not
    /// touch.
    pub uid: String,
    /// The resource.
    pub resource: String,
    /// The unit.
    pub unit: u32,
    /// The uid of its holder.
    pub holder_uid: String,
    /// The attempt it is for (0: the whole run).
    pub attempt: u32,
    /// The run of its holder.
    pub run: String,
    /// The namespace of its holder and run.
    pub run_namespace: String,
    /// The name of its holder.
    pub holder: String,
}

/// One grant to give back: its name, and its uid as a precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRef {
    /// The Lease's name.
    pub name: String,
    /// The Lease's uid (empty: a Lease the view holds without one, which
    /// only tests make).
    pub uid: String,
}

impl GrantRef {
    /// The grant `l` is.
    pub fn of(l: &Lease) -> GrantRef {
        GrantRef {
            name: l.name_any(),
            uid: l.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// Whether `l` is this grant.
    pub fn is(&self, l: &Lease) -> bool {
        l.metadata.name.as_deref() == Some(self.name.as_str())
            && l.metadata.uid.as_deref().unwrap_or_default() == self.uid
    }
}

impl Grant {
    /// This grant, to give back.
    pub fn to_ref(&self) -> GrantRef {
        GrantRef {
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    /// The grant a Lease records, if it is one.
    pub fn from_lease(l: &Lease) -> Option<Grant> {
        let labels = l.metadata.labels.as_ref()?;
        let resource = labels.get(LABEL_RESOURCE)?.clone();
        let name = l.name_any();
        let unit = name
            .strip_prefix(&format!("testlayer-grant-{resource}-"))?
            .parse()
            .ok()?;
        let holder_uid = match l.metadata.owner_references.as_ref().and_then(|o| o.first()) {
            Some(o) => o.uid.clone(),
            None => labels.get(LABEL_HOLDER_UID)?.clone(),
        };
        let run_namespace = labels
            .get(LABEL_HOLDER_NAMESPACE)
            .cloned()
            .or_else(|| l.namespace())
            .unwrap_or_default();
        let attempt = labels.get(LABEL_GRANT_ATTEMPT)?.parse().ok()?;
        let run = labels
            .get(LABEL_RUN)
            .or_else(|| labels.get(LABEL_HOLDER))?
            .clone();
        let holder = labels.get(LABEL_HOLDER).cloned().unwrap_or_default();
        Some(Grant {
            name,
            uid: l.metadata.uid.clone().unwrap_or_default(),
            resource,
            unit,
            holder_uid,
            attempt,
            run,
            run_namespace,
            holder,
        })
    }
}

/// A claim recorded by some holder of the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedClaim {
    /// The holder's name.
    pub holder: String,
    /// The holder's uid.
    pub holder_uid: String,
    /// The run it belongs to (the holder itself for a run's claim).
    pub run: String,
    /// The namespace of the holder and its run.
    pub run_namespace: String,
    /// What it records.
    pub claim: ResourceClaim,
}

/// The shared resources a run takes part in, as the caches show them: those
/// of its namespace, or of the one namespace the controller serves every
/// namespace's runs from.
#[derive(Debug, Clone, Default)]
pub struct SharedView {
    /// Where the TestLayerResources and their grants are.
    pub namespace: String,
    /// Capacity of each TestLayerResource.
    pub capacities: BTreeMap<String, u32>,
    /// Every grant.
    pub grants: Vec<Grant>,
    /// Every claim recorded by a waiting holder.
    pub claims: Vec<RecordedClaim>,
}

impl RecordedClaim {
    /// The units it wants, by resource.
    pub fn wants(&self) -> BTreeMap<String, u32> {
        self.claim
            .wants
            .iter()
            .map(|w| (w.resource.clone(), w.units))
            .collect()
    }
}

impl SharedView {
    /// Whether `c` still waits (its grant is not made yet).
    pub fn waits(&self, c: &RecordedClaim) -> bool {
        !self.holds(&c.holder_uid, c.claim.attempt, &c.wants())
    }

    /// Whether the holder `uid` holds every unit of `wants` for `attempt`.
    pub fn holds(&self, uid: &str, attempt: u32, wants: &BTreeMap<String, u32>) -> bool {
        wants.iter().all(|(r, &n)| {
            self.grants
                .iter()
                .filter(|g| g.holder_uid == uid && g.attempt == attempt && &g.resource == r)
                .count() as u32
                >= n
        })
    }

    /// Why the layer cannot take part: a resource it uses has no
    /// TestLayerResource, or fewer units than it wants.
    pub fn missing(&self, layer: &crate::layer::LayerPlan) -> Option<String> {
        let namespace = &self.namespace;
        let wanted = layer
            .settings
            .uses
            .iter()
            .map(|(r, n)| (r, *n, None))
            .chain(layer.categories.iter().flat_map(|c| {
                c.uses
                    .iter()
                    .map(move |(r, n)| (r, *n, Some(c.name.as_str())))
            }));
        let mut problems = BTreeSet::new();
        for (r, n, who) in wanted {
            match self.capacities.get(r) {
                None => {
                    problems.insert(format!(
                        "shared resource {r:?} has no TestLayerResource in namespace {namespace}; create one (capacity 1 is a mutex)"
                    ));
                }
                Some(&c) if n > c => {
                    let who = who.map_or("the layer".to_string(), |w| format!("category {w:?}"));
                    problems.insert(format!(
                        "{who} wants {n} units of shared resource {r:?}, whose TestLayerResource has a capacity of {c}"
                    ));
                }
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            None
        } else {
            Some(problems.into_iter().collect::<Vec<_>>().join("; "))
        }
    }
}

/// The status of the TestLayerResource `resource`: units held, by whom,
/// and who waits first, in the order the line serves them.
pub fn resource_status(view: &SharedView, resource: &str) -> TestLayerResourceStatus {
    let ns = |n: &str| (n != view.namespace).then(|| n.to_string());
    let mut held: BTreeMap<(&str, &str, &str), u32> = BTreeMap::new();
    for g in view.grants.iter().filter(|g| g.resource == resource) {
        *held
            .entry((g.run_namespace.as_str(), g.holder.as_str(), g.run.as_str()))
            .or_insert(0) += 1;
    }
    let mut waiting: Vec<(&RecordedClaim, u32)> = view
        .claims
        .iter()
        .filter_map(|c| {
            let units = c.claim.wants.iter().find(|w| w.resource == resource)?.units;
            view.waits(c).then_some((c, units))
        })
        .collect();
    waiting.sort_by(|(a, _), (b, _)| {
        b.claim
            .priority
            .cmp(&a.claim.priority)
            .then(a.claim.since.0.cmp(&b.claim.since.0))
            .then_with(|| {
                line_key(
                    &a.run_namespace,
                    &a.run,
                    &a.holder,
                    a.claim.attempt,
                    &a.holder_uid,
                )
                .cmp(&line_key(
                    &b.run_namespace,
                    &b.run,
                    &b.holder,
                    b.claim.attempt,
                    &b.holder_uid,
                ))
            })
    });
    TestLayerResourceStatus {
        in_use: held.values().sum(),
        waiting: u32::try_from(waiting.len()).unwrap_or(u32::MAX),
        holders: held
            .iter()
            .take(MAX_LISTED_HOLDERS)
            .map(|((namespace, holder, run), units)| ResourceHolder {
                holder: holder.to_string(),
                run: run.to_string(),
                namespace: ns(namespace),
                units: *units,
            })
            .collect(),
        next: waiting
            .iter()
            .take(MAX_LISTED_HOLDERS)
            .map(|(c, units)| ResourceHolder {
                holder: c.holder.clone(),
                run: c.run.clone(),
                namespace: ns(&c.run_namespace),
                units: *units,
            })
            .collect(),
    }
}

/// One holder of this run that claims now.
#[derive(Debug, Clone)]
pub struct MyClaim {
    /// The holder's name.
    pub holder: String,
    /// The holder's uid.
    pub holder_uid: String,
    /// The run it belongs to (its grants are labelled with it, so that
    /// their changes wake the run).
    pub run: String,
    /// The namespace of the holder and its run.
    pub namespace: String,
    /// The attempt (0: the run).
    pub attempt: u32,
    /// Units wanted.
    pub wants: BTreeMap<String, u32>,
}

/// What serving this run's claims came to.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// Holders (by name) granted now.
    pub granted: BTreeSet<String>,
    /// The grants to create for them.
    pub leases: Vec<Lease>,
    /// The claims still waiting, by holder name, with their places.
    pub waiting: BTreeMap<String, ResourceClaim>,
}

/// How claims of one priority and one creation second are ordered in the
/// line: by their run's namespace and name, then the holder's name (a
/// run's own claim, named as the run, before its categories', named
/// `RUN-CATEGORY`) and attempt; the holder's uid last tells apart a holder
/// deleted and made again. So the claims of two runs created in the same
/// second are served run by run, the same way every time.
type LineKey = (String, String, String, u32, String);

fn line_key(namespace: &str, run: &str, holder: &str, attempt: u32, uid: &str) -> LineKey {
    (
        namespace.to_string(),
        run.to_string(),
        holder.to_string(),
        attempt,
        uid.to_string(),
    )
}

/// Units held of each resource.
fn held(view: &SharedView) -> BTreeMap<String, u32> {
    view.grants.iter().fold(BTreeMap::new(), |mut m, g| {
        *m.entry(g.resource.clone()).or_insert(0) += 1;
        m
    })
}

/// The recorded claims of `view` that still wait (a claim whose grant was
/// made waits no more) and that `keep` keeps, as claims of the line.
fn recorded_line(view: &SharedView, keep: &dyn Fn(&RecordedClaim) -> bool) -> Vec<Claim<LineKey>> {
    view.claims
        .iter()
        .filter(|c| keep(c) && view.waits(c))
        .map(|c| Claim {
            key: line_key(
                &c.run_namespace,
                &c.run,
                &c.holder,
                c.claim.attempt,
                &c.holder_uid,
            ),
            priority: c.claim.priority,
            since: c.claim.since.0.as_second(),
            wants: c.wants(),
        })
        .collect()
}

/// The runs (namespace, name) whose recorded claims the line grants now:
/// the ones to wake when a grant or a resource changed. Every other
/// waiting run would only find that it still waits.
pub fn served_now(view: &SharedView) -> BTreeSet<(String, String)> {
    let waiting = recorded_line(view, &|_| true);
    allocate(&view.capacities, &held(view), &waiting)
        .granted
        .into_iter()
        .map(|(ns, run, ..)| (ns, run))
        .collect()
}

/// The runs (namespace, name) with a claim that waits, when some run keeps
/// units for the whole run (its layer's `uses`): only then can runs wait
/// for each other for ever, and each of them must step to see the cycle
/// its last claim closed. Empty otherwise.
pub fn may_be_stalled(view: &SharedView) -> BTreeSet<(String, String)> {
    if !view.grants.iter().any(|g| g.attempt == 0) {
        return BTreeSet::new();
    }
    view.claims
        .iter()
        .filter(|c| view.waits(c))
        .map(|c| (c.run_namespace.clone(), c.run.clone()))
        .collect()
}

/// Serves `mine` (this run's claims, made when `since` with `priority`)
/// in the order of every claim of the namespace: a claim is granted when
/// the allocation of the whole line grants it, with the lowest free units.
pub fn serve(view: &SharedView, mine: &[MyClaim], since: &Time, priority: i32) -> Served {
    let my_uids: BTreeSet<&str> = mine.iter().map(|m| m.holder_uid.as_str()).collect();
    let held = held(view);
    // This run's claims are the fresh ones below.
    let mut waiting = recorded_line(view, &|c| !my_uids.contains(c.holder_uid.as_str()));
    for m in mine {
        waiting.push(Claim {
            key: line_key(&m.namespace, &m.run, &m.holder, m.attempt, &m.holder_uid),
            priority,
            since: since.0.as_second(),
            wants: m.wants.clone(),
        });
    }
    let a = allocate(&view.capacities, &held, &waiting);
    let mut out = Served::default();
    let mut taken: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for g in &view.grants {
        taken.entry(g.resource.as_str()).or_default().insert(g.unit);
    }
    for key in &a.granted {
        let Some(m) = mine.iter().find(|m| m.holder_uid == key.4) else {
            continue;
        };
        let mut leases = Vec::new();
        let mut ok = true;
        for (r, &n) in &m.wants {
            let capacity = view.capacities.get(r).copied().unwrap_or(0);
            let used = taken.entry(r.as_str()).or_default();
            for _ in 0..n {
                match (0..capacity).find(|u| !used.contains(u)) {
                    Some(u) => {
                        used.insert(u);
                        leases.push(grant_lease(r, u, m, &view.namespace));
                    }
                    None => ok = false,
                }
            }
        }
        if ok {
            out.granted.insert(m.holder.clone());
            out.leases.extend(leases);
        }
    }
    for m in mine {
        if out.granted.contains(&m.holder) {
            continue;
        }
        let wants = m
            .wants
            .iter()
            .map(|(r, &units)| ResourceUnits {
                resource: r.clone(),
                units,
            })
            .collect();
        out.waiting.insert(
            m.holder.clone(),
            ResourceClaim {
                attempt: m.attempt,
                since: since.clone(),
                priority,
                wants,
            },
        );
    }
    out
}

fn grant_lease(resource: &str, unit: u32, m: &MyClaim, namespace: &str) -> Lease {
    let labels = [
        (LABEL_RESOURCE, resource.to_string()),
        (LABEL_HOLDER, m.holder.clone()),
        (LABEL_HOLDER_UID, m.holder_uid.clone()),
        (LABEL_HOLDER_NAMESPACE, m.namespace.clone()),
        (LABEL_GRANT_ATTEMPT, m.attempt.to_string()),
        (LABEL_RUN, m.run.clone()),
        (LABEL_MANAGED_BY, MANAGER.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Lease {
        metadata: ObjectMeta {
            name: Some(grant_name(resource, unit)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(m.holder.clone()),
            ..Default::default()
        }),
    }
}

/// Whether a grant that is being deleted may go now: it has the finalizer
/// (a grant made by an earlier version, which the garbage collector
/// deleted with its holder), and no Pod of its holder may still run
/// (`pods`: the Pods of the grant's run, as the cache shows them).
pub fn release_when_stopped(grant: &Lease, pods: &[&k8s_openapi::api::core::v1::Pod]) -> bool {
    if grant.metadata.deletion_timestamp.is_none()
        || !grant.finalizers().iter().any(|f| f == GRANT_FINALIZER)
    {
        return false;
    }
    Grant::from_lease(grant).is_none_or(|g| !g.kept_by(pods))
}

impl Grant {
    /// Whether a Pod that may still run keeps this grant (`pods`: the
    /// Pods of the grant's run). A category's grant is kept by the Pods of
    /// its holder and attempt, a run's (attempt 0) by all the run's Pods.
    /// A Pod being deleted keeps it until it has stopped: its container
    /// may run through its grace period.
    pub fn kept_by(&self, pods: &[&k8s_openapi::api::core::v1::Pod]) -> bool {
        let attempt = self.attempt.to_string();
        pods.iter().any(|p| {
            let mine = self.attempt == 0
                || (p
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|o| o.uid == self.holder_uid))
                    && p.labels()
                        .get(crate::api::names::LABEL_ATTEMPT)
                        .is_none_or(|a| *a == attempt));
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            mine && !matches!(phase, Some("Succeeded" | "Failed"))
        })
    }
}

/// A sentence on a waiting claim: `waiting for shared resources:
/// staging-db, 2 units of pool`. It names no place in line: every grant
/// moves the whole line up one, and a place recorded in each waiting
/// status would rewrite every one of them on every grant. The line is in
/// each TestLayerResource's status (`next`), and `testlayer get` shows a
/// waiting category's place from it.
pub fn describe_claim(c: &ResourceClaim) -> String {
    let parts: Vec<String> = c
        .wants
        .iter()
        .map(|w| {
            if w.units == 1 {
                w.resource.clone()
            } else {
                format!("{} units of {}", w.units, w.resource)
            }
        })
        .collect();
    format!("waiting for shared resources: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn mine(holder: &str, wants: &[(&str, u32)]) -> MyClaim {
        MyClaim {
            holder: holder.into(),
            holder_uid: format!("uid-{holder}"),
            run: "r".into(),
            namespace: "ns".into(),
            attempt: 1,
            wants: wants.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        }
    }

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    /// A view of namespace "ns" with resources of these capacities.
    fn view(capacities: &[(&str, u32)]) -> SharedView {
        SharedView {
            namespace: "ns".into(),
            capacities: capacities
                .iter()
                .map(|(r, c)| (r.to_string(), *c))
                .collect(),
            ..SharedView::default()
        }
    }

    /// A grant of `unit` of `resource` to `holder` (of the run of its name)
    /// for `attempt`.
    fn held(holder: &str, resource: &str, unit: u32, attempt: u32) -> Grant {
        Grant {
            uid: String::new(),
            name: grant_name(resource, unit),
            resource: resource.into(),
            unit,
            holder_uid: format!("uid-{holder}"),
            attempt,
            run: holder.into(),
            run_namespace: "ns".into(),
            holder: holder.into(),
        }
    }

    fn recorded(holder: &str, since: i64, wants: &[(&str, u32)]) -> RecordedClaim {
        RecordedClaim {
            holder: holder.into(),
            holder_uid: format!("uid-{holder}"),
            run: holder.into(),
            run_namespace: "ns".into(),
            claim: ResourceClaim {
                attempt: 1,
                since: at(since),
                priority: 0,
                wants: wants
                    .iter()
                    .map(|(r, n)| ResourceUnits {
                        resource: r.to_string(),
                        units: *n,
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn an_earlier_claim_of_another_run_goes_first_and_units_are_the_free_ones() {
        let mut view = view(&[("db", 1), ("pool", 3)]);
        view.claims.push(recorded("other", 10, &[("db", 1)]));
        view.grants.push(held("x", "pool", 0, 1));
        let s = serve(
            &view,
            &[mine("a", &[("db", 1)]), mine("b", &[("pool", 2)])],
            &at(20),
            0,
        );
        assert_eq!(s.granted, BTreeSet::from(["b".to_string()]));
        let names: Vec<_> = s.leases.iter().map(|l| l.name_any()).collect();
        assert_eq!(names, ["testlayer-grant-pool-1", "testlayer-grant-pool-2"]);
        // The other run's earlier claim is served (by its own run's
        // reconcile); "a" is next.
        let waiting = &s.waiting["a"];
        assert_eq!(describe_claim(waiting), "waiting for shared resources: db");
        // The other run's claim is granted once made: "a" is next.
        view.grants.push(held("other", "db", 0, 1));
        let s = serve(&view, &[mine("a", &[("db", 1)])], &at(20), 0);
        assert!(s.granted.is_empty());
        assert!(s.waiting.contains_key("a"));
    }

    /// A category claim of `run` (holder `RUN-CATEGORY`) with a uid that
    /// sorts against the run's name.
    fn category_claim(run: &str, category: &str, uid: &str, since: i64) -> RecordedClaim {
        RecordedClaim {
            holder: format!("{run}-{category}"),
            holder_uid: uid.into(),
            run: run.into(),
            ..recorded("x", since, &[("db", 1)])
        }
    }

    #[test]
    fn runs_created_in_the_same_second_are_served_run_by_run_in_name_order() {
        let mut view = view(&[("db", 1)]);
        // Uids that would interleave the two runs (b, a, b, a) if they
        // broke the tie.
        view.claims.push(category_claim("b", "one", "uid-1", 10));
        view.claims.push(category_claim("a", "one", "uid-2", 10));
        view.claims.push(category_claim("b", "two", "uid-3", 10));
        view.claims.push(category_claim("a", "two", "uid-4", 10));
        let next: Vec<String> = resource_status(&view, "db")
            .next
            .into_iter()
            .map(|h| h.holder)
            .collect();
        assert_eq!(next, ["a-one", "a-two", "b-one", "b-two"]);
        // Serving agrees: run b's claim waits behind a's, and a's first
        // claim is granted by its own run's reconcile.
        let mut b = mine("b-one", &[("db", 1)]);
        b.run = "b".into();
        b.holder_uid = "uid-1".into();
        let s = serve(&view, &[b], &at(10), 0);
        assert!(s.granted.is_empty());
        assert!(s.waiting.contains_key("b-one"));
        let mut a = mine("a-one", &[("db", 1)]);
        a.run = "a".into();
        a.holder_uid = "uid-2".into();
        let s = serve(&view, &[a], &at(10), 0);
        assert_eq!(s.granted, BTreeSet::from(["a-one".to_string()]));
    }

    #[test]
    fn a_resource_status_names_its_holders_and_who_is_next() {
        let mut view = view(&[("pool", 3)]);
        for unit in 0..2 {
            view.grants.push(Grant {
                uid: String::new(),
                name: grant_name("pool", unit),
                resource: "pool".into(),
                unit,
                holder_uid: "uid-x".into(),
                attempt: 1,
                run: "rx".into(),
                run_namespace: "ns".into(),
                holder: "x".into(),
            });
        }
        view.claims.push(recorded("late", 20, &[("pool", 2)]));
        view.claims.push(recorded("early", 10, &[("pool", 3)]));
        view.claims.push(recorded("other", 5, &[("db", 1)]));
        let s = resource_status(&view, "pool");
        assert_eq!((s.in_use, s.waiting), (2, 2));
        assert_eq!(
            s.holders,
            [ResourceHolder {
                holder: "x".into(),
                run: "rx".into(),
                namespace: None,
                units: 2
            }]
        );
        let next: Vec<_> = s
            .next
            .iter()
            .map(|h| (h.holder.as_str(), h.units))
            .collect();
        assert_eq!(next, [("early", 3), ("late", 2)]);
        assert_eq!(resource_status(&view, "db").waiting, 1);
    }

    #[test]
    fn a_waiting_claim_names_its_resources_and_units_and_no_place_that_each_grant_would_change() {
        let claim = ResourceClaim {
            attempt: 1,
            since: at(0),
            priority: 0,
            wants: vec![
                ResourceUnits {
                    resource: "db".into(),
                    units: 1,
                },
                ResourceUnits {
                    resource: "pool".into(),
                    units: 2,
                },
            ],
        };
        assert_eq!(
            describe_claim(&claim),
            "waiting for shared resources: db, 2 units of pool"
        );
    }

    #[test]
    fn a_higher_priority_goes_first_and_grants_read_back_from_leases() {
        let mut view = view(&[("db", 1)]);
        view.claims.push(recorded("early", 10, &[("db", 1)]));
        let s = serve(&view, &[mine("late", &[("db", 1)])], &at(20), 5);
        assert_eq!(s.granted, BTreeSet::from(["late".to_string()]));
        let g = Grant::from_lease(&s.leases[0]).unwrap();
        assert_eq!(
            g,
            Grant {
                uid: String::new(),
                name: "testlayer-grant-db-0".into(),
                resource: "db".into(),
                unit: 0,
                holder_uid: "uid-late".into(),
                attempt: 1,
                run: "r".into(),
                run_namespace: "ns".into(),
                holder: "late".into(),
            }
        );
    }

    #[test]
    fn only_the_runs_the_line_serves_now_are_woken() {
        let mut view = view(&[("db", 1), ("pool", 3)]);
        for (holder, since, wants) in [
            ("a", 10, &[("db", 1)][..]),
            ("b", 11, &[("db", 1)][..]),
            ("c", 12, &[("pool", 2)][..]),
            ("d", 13, &[("pool", 2)][..]),
        ] {
            view.claims.push(recorded(holder, since, wants));
        }
        let runs =
            |v: &SharedView| -> Vec<String> { served_now(v).into_iter().map(|(_, r)| r).collect() };
        // The first on the mutex and the pool claim that fits.
        assert_eq!(runs(&view), ["a", "c"]);
        // Granted, they wait no more: nobody else fits now.
        for (holder, resource, unit) in [("a", "db", 0), ("c", "pool", 0), ("c", "pool", 1)] {
            view.grants.push(held(holder, resource, unit, 1));
        }
        assert!(runs(&view).is_empty());
        // "a" gives its unit back: "b" is next, and only "b".
        view.grants.retain(|g| g.holder != "a");
        view.claims.retain(|c| c.holder != "a");
        assert_eq!(runs(&view), ["b"]);
    }

    #[test]
    fn waiting_runs_may_be_stalled_only_while_a_run_keeps_units_for_its_whole_run() {
        let mut view = view(&[("db", 1)]);
        view.claims.push(recorded("a", 10, &[("db", 1)]));
        view.grants.push(held("x", "db", 0, 1));
        assert!(may_be_stalled(&view).is_empty());
        view.grants[0] = held("x", "db", 0, 0);
        assert_eq!(
            may_be_stalled(&view),
            BTreeSet::from([("ns".to_string(), "a".to_string())])
        );
    }
}
