//! The order of a working run's writes: the one place the rules crash
//! safety rests on are kept. A reconcile applies writes in order and stops
//! at the first that fails, so each rule below holds whenever the
//! controller dies between two writes:
//! - grants of shared resources exist before anything they let start;
//! - the run's clock (its first status with a start time) is recorded
//!   before its first Pod exists, so a restart never starts it again;
//! - an attempt's test cases exist before the status that names them;
//! - a stop is recorded in its CategoryRun's status before its Pod is
//!   deleted, so a deleted Pod is never read as a lost one;
//! - grants are given back first: only those that no Pod that may still
//!   run keeps are given back at all (decided before, from the Pods), and a
//!   unit back sooner is a next holder started sooner; a crash after it
//!   leaves an ended attempt to be recorded, which needs no grant;
//! - the run's status otherwise comes after what it summarises, and Events
//!   last (an Event is never worth a retry).

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};

use super::writes::{PodStop, Write};
use crate::api::{CategoryRunStatus, TestLayerRunStatus};
use crate::controller::shared::claims::GrantRef;
use crate::controller::status::note::Note;

/// What one step of a working run writes, before it is put in order.
#[derive(Debug, Default)]
pub struct Pending {
    /// Grants of shared resources to create.
    pub grants: Vec<Lease>,
    /// The run's new status, when it changed.
    pub run_status: Option<TestLayerRunStatus>,
    /// Whether this step starts the run's clock (its first Pods).
    pub starting: bool,
    /// Pods of attempts that start.
    pub create_pods: Vec<Pod>,
    /// ConfigMaps keeping attempts' test cases.
    pub test_cases: Vec<ConfigMap>,
    /// CategoryRun statuses, by name (stops among them).
    pub category_run_statuses: Vec<(String, CategoryRunStatus)>,
    /// Pods of stopped attempts to stop and keep.
    pub stop_pods: Vec<PodStop>,
    /// Pods of stopped or ended attempts to delete.
    pub delete_pods: Vec<String>,
    /// Grants to give back, of this namespace.
    pub release: (String, Vec<GrantRef>),
    /// Events, in the order they happened.
    pub events: Vec<Note>,
}

/// `p`'s writes in the order crash safety needs (see the module's rules).
pub fn order(p: Pending) -> Vec<Write> {
    let mut writes = Vec::new();
    let (ns, released) = p.release;
    if !released.is_empty() {
        writes.push(Write::DeleteGrants(ns, released));
    }
    if !p.grants.is_empty() {
        writes.push(Write::CreateGrants(p.grants));
    }
    let (early, late) = match p.run_status {
        Some(s) if p.starting => (Some(s), None),
        s => (None, s),
    };
    if let Some(s) = early {
        writes.push(Write::RunStatus(Box::new(s)));
    }
    if !p.create_pods.is_empty() {
        writes.push(Write::CreatePods(p.create_pods));
    }
    if !p.test_cases.is_empty() {
        writes.push(Write::CreateTestCases(p.test_cases));
    }
    if !p.category_run_statuses.is_empty() {
        writes.push(Write::CategoryRunStatuses(p.category_run_statuses));
    }
    if !p.stop_pods.is_empty() {
        writes.push(Write::StopPods(p.stop_pods));
    }
    if !p.delete_pods.is_empty() {
        writes.push(Write::DeletePods(p.delete_pods));
    }
    if let Some(s) = late {
        writes.push(Write::RunStatus(Box::new(s)));
    }
    writes.extend(p.events.into_iter().map(Write::Event));
    writes
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    /// Every kind of write at once.
    fn everything(starting: bool) -> Pending {
        let named = |n: &str| ObjectMeta {
            name: Some(n.into()),
            ..ObjectMeta::default()
        };
        Pending {
            grants: vec![Lease {
                metadata: named("grant"),
                ..Lease::default()
            }],
            run_status: Some(TestLayerRunStatus::default()),
            starting,
            create_pods: vec![Pod {
                metadata: named("pod-1"),
                ..Pod::default()
            }],
            test_cases: vec![ConfigMap {
                metadata: named("cases-1"),
                ..ConfigMap::default()
            }],
            category_run_statuses: vec![("cat".into(), CategoryRunStatus::default())],
            stop_pods: vec![PodStop {
                name: "pod-2".into(),
                deadline_seconds: 5,
                at: "2026-12-01T10:00:00Z".into(),
            }],
            delete_pods: vec!["pod-0".into()],
            release: (
                "ns".into(),
                vec![GrantRef {
                    name: "old-grant".into(),
                    uid: "u".into(),
                }],
            ),
            events: vec![Note {
                regarding: ObjectReference::default(),
                warning: false,
                reason: "Started".into(),
                note: "started".into(),
            }],
        }
    }

    /// The kinds of `writes`, in order.
    fn kinds(writes: &[Write]) -> Vec<&'static str> {
        writes
            .iter()
            .map(|w| match w {
                Write::CreateGrants(_) => "grants",
                Write::RunStatus(_) => "run status",
                Write::CreatePods(_) => "create pods",
                Write::CreateTestCases(_) => "test cases",
                Write::CategoryRunStatuses(_) => "category statuses",
                Write::StopPods(_) => "stop pods",
                Write::DeletePods(_) => "delete pods",
                Write::DeleteGrants(..) => "release grants",
                Write::Event(_) => "event",
                _ => "other",
            })
            .collect()
    }

    fn position(writes: &[&str], kind: &str) -> usize {
        writes
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {writes:?}"))
    }

    #[test]
    fn a_starting_run_records_its_clock_after_its_grants_and_before_its_first_pod() {
        let w = order(everything(true));
        let k = kinds(&w);
        assert_eq!(
            k,
            [
                "release grants",
                "grants",
                "run status",
                "create pods",
                "test cases",
                "category statuses",
                "stop pods",
                "delete pods",
                "event"
            ]
        );
    }

    #[test]
    fn a_running_run_records_its_status_after_what_it_summarises() {
        let w = order(everything(false));
        let k = kinds(&w);
        assert_eq!(
            k,
            [
                "release grants",
                "grants",
                "create pods",
                "test cases",
                "category statuses",
                "stop pods",
                "delete pods",
                "run status",
                "event"
            ]
        );
    }

    #[test]
    fn the_rules_hold_for_any_subset_of_writes() {
        // Leave out each combination of parts: the order of what remains
        // keeps every rule.
        for mask in 0u32..(1 << 9) {
            for starting in [false, true] {
                let mut p = everything(starting);
                let on = |i: u32| mask & (1 << i) != 0;
                if !on(0) {
                    p.grants.clear();
                }
                if !on(1) {
                    p.run_status = None;
                }
                if !on(2) {
                    p.create_pods.clear();
                }
                if !on(3) {
                    p.test_cases.clear();
                }
                if !on(4) {
                    p.category_run_statuses.clear();
                }
                if !on(5) {
                    p.delete_pods.clear();
                }
                if !on(6) {
                    p.release.1.clear();
                }
                if !on(7) {
                    p.events.clear();
                }
                if !on(8) {
                    p.stop_pods.clear();
                }
                let w = order(p);
                let k = kinds(&w);
                let before = |a: &str, b: &str| {
                    if k.contains(&a) && k.contains(&b) {
                        assert!(position(&k, a) < position(&k, b), "{a} before {b}: {k:?}");
                    }
                };
                before("grants", "create pods");
                before("test cases", "category statuses");
                before("category statuses", "delete pods");
                before("category statuses", "stop pods");
                // A unit goes back before anything else is written: only
                // grants no Pod that may run keeps are given back at all.
                before("release grants", "category statuses");
                before("release grants", "stop pods");
                before("release grants", "delete pods");
                if starting {
                    before("run status", "create pods");
                } else {
                    before("create pods", "run status");
                    before("category statuses", "run status");
                    before("release grants", "run status");
                }
                if let Some(&last) = k.last()
                    && k.contains(&"event")
                {
                    assert_eq!(last, "event", "{k:?}");
                }
                assert_eq!(k.len(), mask.count_ones() as usize, "{k:?}");
            }
        }
    }
}
