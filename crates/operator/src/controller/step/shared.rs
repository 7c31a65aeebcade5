//! Shared resources in one step, pure: which units this run's holders (the
//! run for its layer's `uses`, each CategoryRun for its attempts') hold,
//! which waiting claims of the whole namespace are served now and in what
//! order, the grants to create and give back, and the claims to record.
//!
//! A grant is a `coordination.k8s.io` Lease per unit, named
//! `testlayer-grant-RESOURCE-UNIT`: no two holders can ever hold one unit,
//! because the apiserver refuses a second object of one name, whatever
//! this or another controller believed. It is owned by its holder, so the
//! garbage collector gives it back when the holder is deleted; a step gives
//! it back when the attempt (or the run) it was for has ended.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::{Resource, ResourceExt};

use crate::api::{ResourceClaim, ResourceUnits};
use crate::controller::build::{LABEL_MANAGED_BY, LABEL_RUN, MANAGER};
use crate::resources::{Claim, allocate};

/// Label of a grant: the resource.
pub const LABEL_RESOURCE: &str = "testlayer.dev/resource";
/// Label of a grant: the name of its holder.
pub const LABEL_HOLDER: &str = "testlayer.dev/holder";
/// Label of a grant: the attempt it is for (0: the whole run).
pub const LABEL_GRANT_ATTEMPT: &str = "testlayer.dev/grant-attempt";

/// The finalizer of every grant: a grant the garbage collector deletes
/// (its holder was deleted) keeps its unit until the holder's Pods have
/// stopped running, and only then goes (see [`release_when_stopped`]).
pub const GRANT_FINALIZER: &str = "testlayer.dev/holder-stopped";

/// The name of the grant of `unit` of `resource`.
pub fn grant_name(resource: &str, unit: u32) -> String {
    format!("testlayer-grant-{resource}-{unit}")
}

/// One unit held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The Lease's name.
    pub name: String,
    /// The resource.
    pub resource: String,
    /// The unit.
    pub unit: u32,
    /// The uid of its holder.
    pub holder_uid: String,
    /// The attempt it is for (0: the whole run).
    pub attempt: u32,
}

impl Grant {
    /// The grant a Lease records, if it is one.
    pub fn from_lease(l: &Lease) -> Option<Grant> {
        let labels = l.metadata.labels.as_ref()?;
        let resource = labels.get(LABEL_RESOURCE)?.clone();
        let name = l.name_any();
        let unit = name
            .strip_prefix(&format!("testlayer-grant-{resource}-"))?
            .parse()
            .ok()?;
        let holder_uid = l.metadata.owner_references.as_ref()?.first()?.uid.clone();
        let attempt = labels.get(LABEL_GRANT_ATTEMPT)?.parse().ok()?;
        Some(Grant {
            name,
            resource,
            unit,
            holder_uid,
            attempt,
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
    /// What it records.
    pub claim: ResourceClaim,
}

/// The shared resources of the run's namespace, as the caches show them.
#[derive(Debug, Clone, Default)]
pub struct SharedView {
    /// Capacity of each TestLayerResource.
    pub capacities: BTreeMap<String, u32>,
    /// Every grant.
    pub grants: Vec<Grant>,
    /// Every claim recorded by a waiting holder.
    pub claims: Vec<RecordedClaim>,
}

impl SharedView {
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
    pub fn missing(&self, layer: &crate::layer::LayerPlan, namespace: &str) -> Option<String> {
        let wanted =
            layer
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

/// One holder of this run that claims now.
#[derive(Debug, Clone)]
pub struct MyClaim {
    /// The holder's name.
    pub holder: String,
    /// The holder's uid.
    pub holder_uid: String,
    /// The holder as an owner of its grants.
    pub owner: OwnerReference,
    /// The run it belongs to (its grants are labelled with it, so that
    /// their changes wake the run).
    pub run: String,
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

/// Serves `mine` (this run's claims, made when `since` with `priority`)
/// in the order of every claim of the namespace: a claim is granted when
/// the allocation of the whole line grants it, with the lowest free units.
pub fn serve(
    view: &SharedView,
    mine: &[MyClaim],
    since: &Time,
    priority: i32,
    namespace: &str,
) -> Served {
    let my_uids: BTreeSet<&str> = mine.iter().map(|m| m.holder_uid.as_str()).collect();
    let held: BTreeMap<String, u32> = view.grants.iter().fold(BTreeMap::new(), |mut m, g| {
        *m.entry(g.resource.clone()).or_insert(0) += 1;
        m
    });
    let mut waiting: Vec<Claim<(String, u32)>> = Vec::new();
    for c in &view.claims {
        let wants: BTreeMap<String, u32> = c
            .claim
            .wants
            .iter()
            .map(|w| (w.resource.clone(), w.units))
            .collect();
        // This run's claims are the fresh ones below; a claim whose grant
        // was made already waits no more.
        if my_uids.contains(c.holder_uid.as_str())
            || view.holds(&c.holder_uid, c.claim.attempt, &wants)
        {
            continue;
        }
        waiting.push(Claim {
            key: (c.holder.clone(), c.claim.attempt),
            priority: c.claim.priority,
            since: c.claim.since.0.as_second(),
            wants,
        });
    }
    for m in mine {
        waiting.push(Claim {
            key: (m.holder.clone(), m.attempt),
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
        let Some(m) = mine.iter().find(|m| m.holder == key.0) else {
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
                        leases.push(grant_lease(r, u, m, namespace));
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
    let positions: BTreeMap<&(String, u32), &Vec<(String, usize)>> =
        a.waiting.iter().map(|(k, lines)| (k, lines)).collect();
    for m in mine {
        if out.granted.contains(&m.holder) {
            continue;
        }
        let lines = positions.get(&(m.holder.clone(), m.attempt));
        let wants = m
            .wants
            .iter()
            .map(|(r, &units)| ResourceUnits {
                resource: r.clone(),
                units,
                position: lines
                    .and_then(|l| l.iter().find(|(lr, _)| lr == r))
                    .map(|(_, p)| *p as u32),
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
            owner_references: Some(vec![m.owner.clone()]),
            finalizers: Some(vec![GRANT_FINALIZER.to_string()]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(m.holder.clone()),
            ..Default::default()
        }),
    }
}

/// Whether a grant that is being deleted may go now: it has the
/// finalizer, and no Pod of its holder may still run (`pods`: the Pods of
/// the grant's run, as the cache shows them). A category's grant waits for
/// its holder's Pods; a run's grant (attempt 0) for all the run's Pods.
pub fn release_when_stopped(grant: &Lease, pods: &[&k8s_openapi::api::core::v1::Pod]) -> bool {
    if grant.metadata.deletion_timestamp.is_none()
        || !grant.finalizers().iter().any(|f| f == GRANT_FINALIZER)
    {
        return false;
    }
    let holder = grant
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .map(|o| o.uid.as_str());
    let whole_run = grant.labels().get(LABEL_GRANT_ATTEMPT).map(String::as_str) == Some("0");
    !pods.iter().any(|p| {
        let mine = whole_run
            || p.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|o| Some(o.uid.as_str()) == holder));
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        mine && !matches!(phase, Some("Succeeded" | "Failed"))
    })
}

/// An owner reference to `obj` for its grants (not a controller, so that
/// nothing else is implied; the garbage collector deletes the grant with
/// its holder).
pub fn owner_of<K: Resource<DynamicType = ()>>(obj: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: obj.meta().name.clone().unwrap_or_default(),
        uid: obj.meta().uid.clone().unwrap_or_default(),
        controller: None,
        block_owner_deletion: None,
    }
}

/// A sentence on a waiting claim: `waiting for staging-db (2nd in line)`.
pub fn describe_claim(c: &ResourceClaim) -> String {
    let parts: Vec<String> = c
        .wants
        .iter()
        .map(|w| {
            let units = if w.units == 1 {
                String::new()
            } else {
                format!("{} units of ", w.units)
            };
            match w.position {
                Some(p) => format!("{units}{} ({} in line)", w.resource, ordinal(p)),
                None => format!("{units}{}", w.resource),
            }
        })
        .collect();
    format!("waiting for shared resources: {}", parts.join(", "))
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn mine(holder: &str, wants: &[(&str, u32)]) -> MyClaim {
        MyClaim {
            holder: holder.into(),
            holder_uid: format!("uid-{holder}"),
            owner: OwnerReference {
                uid: format!("uid-{holder}"),
                name: holder.into(),
                ..Default::default()
            },
            run: "r".into(),
            attempt: 1,
            wants: wants.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        }
    }

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn recorded(holder: &str, since: i64, wants: &[(&str, u32)]) -> RecordedClaim {
        RecordedClaim {
            holder: holder.into(),
            holder_uid: format!("uid-{holder}"),
            claim: ResourceClaim {
                attempt: 1,
                since: at(since),
                priority: 0,
                wants: wants
                    .iter()
                    .map(|(r, n)| ResourceUnits {
                        resource: r.to_string(),
                        units: *n,
                        position: None,
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn an_earlier_claim_of_another_run_goes_first_and_units_are_the_free_ones() {
        let mut view = SharedView::default();
        view.capacities.insert("db".into(), 1);
        view.capacities.insert("pool".into(), 3);
        view.claims.push(recorded("other", 10, &[("db", 1)]));
        view.grants.push(Grant {
            name: grant_name("pool", 0),
            resource: "pool".into(),
            unit: 0,
            holder_uid: "uid-x".into(),
            attempt: 1,
        });
        let s = serve(
            &view,
            &[mine("a", &[("db", 1)]), mine("b", &[("pool", 2)])],
            &at(20),
            0,
            "ns",
        );
        assert_eq!(s.granted, BTreeSet::from(["b".to_string()]));
        let names: Vec<_> = s.leases.iter().map(|l| l.name_any()).collect();
        assert_eq!(names, ["testlayer-grant-pool-1", "testlayer-grant-pool-2"]);
        // The other run's earlier claim is served (by its own run's
        // reconcile); "a" is next.
        let waiting = &s.waiting["a"];
        assert_eq!(waiting.wants[0].position, Some(1));
        assert_eq!(
            describe_claim(waiting),
            "waiting for shared resources: db (1st in line)"
        );
        // The other run's claim is granted once made: "a" is next.
        view.grants.push(Grant {
            name: grant_name("db", 0),
            resource: "db".into(),
            unit: 0,
            holder_uid: "uid-other".into(),
            attempt: 1,
        });
        let s = serve(&view, &[mine("a", &[("db", 1)])], &at(20), 0, "ns");
        assert!(s.granted.is_empty());
        assert_eq!(s.waiting["a"].wants[0].position, Some(1));
    }

    #[test]
    fn a_higher_priority_goes_first_and_grants_read_back_from_leases() {
        let mut view = SharedView::default();
        view.capacities.insert("db".into(), 1);
        view.claims.push(recorded("early", 10, &[("db", 1)]));
        let s = serve(&view, &[mine("late", &[("db", 1)])], &at(20), 5, "ns");
        assert_eq!(s.granted, BTreeSet::from(["late".to_string()]));
        let g = Grant::from_lease(&s.leases[0]).unwrap();
        assert_eq!(
            g,
            Grant {
                name: "testlayer-grant-db-0".into(),
                resource: "db".into(),
                unit: 0,
                holder_uid: "uid-late".into(),
                attempt: 1,
            }
        );
    }
}
