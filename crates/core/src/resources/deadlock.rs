//! Runs that can never go on for want of shared resources, pure.
//!
//! A category's grant is given back when its attempt ends, so it cannot
//! keep anyone waiting for ever; a layer's own `uses` are kept until the
//! whole run ends, while the run's categories may wait for more. Two such
//! runs (run A keeps `db` and waits for `sandbox`, run B keeps `sandbox` and
//! waits for `db`) wait for each other for ever, and so does every claim in
//! line behind theirs. [`deadlock`] plays the future out: every run that
//! waits for nothing ends and gives back what it keeps, every claim that
//! can be served is (in the line's order), and what is left can never go
//! on.

use std::collections::{BTreeMap, BTreeSet};

use super::allocate::{Allocation, Claim, allocate, impossible, in_line};

/// A waiting claim and the run it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter<R, K> {
    /// The run.
    pub run: R,
    /// Whether its grant is kept until the run ends (a layer's own `uses`)
    /// rather than given back when one attempt ends.
    pub whole_run: bool,
    /// The claim.
    pub claim: Claim<K>,
}

/// A run that can never go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckRun<R> {
    /// The run.
    pub run: R,
    /// Units it keeps until it ends, by resource.
    pub holds: BTreeMap<String, u32>,
    /// The resources its waiting claims want.
    pub waits_for: BTreeSet<String>,
}

/// How waiting claims are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// In line, as [`allocate`] serves them (the cluster): a claim waits
    /// behind an earlier one that wants the same resource.
    InLine,
    /// Whoever finds the units free takes them (file locks on one
    /// machine).
    AnyFree,
}

/// The runs that can never go on, given the `capacities`, the units each
/// run keeps until it ends (`run_holds`) and every `waiting` claim, served
/// as `serving` says. Units held for one attempt are not given: they come
/// back when it ends. Claims that can never be granted (more than the
/// capacity) are not counted: they are named by [`allocate`].
///
/// Without a unit kept for a whole run, or claimed to be, nothing can be
/// stuck (each grant comes back when its attempt ends): that answer is
/// given at once, without playing the future out, which costs a round per
/// claim served (a mutex with hundreds waiting is checked on every step).
pub fn deadlock<R: Ord + Clone, K: Ord + Clone>(
    capacities: &BTreeMap<String, u32>,
    run_holds: &BTreeMap<R, BTreeMap<String, u32>>,
    waiting: &[Waiter<R, K>],
    serving: Serving,
) -> Vec<StuckRun<R>> {
    let keeps = run_holds.values().any(|u| u.values().any(|n| *n > 0));
    if !keeps && !waiting.iter().any(|w| w.whole_run) {
        return Vec::new();
    }
    play_out(capacities, run_holds, waiting, serving)
}

/// [`deadlock`], found by playing the future out.
fn play_out<R: Ord + Clone, K: Ord + Clone>(
    capacities: &BTreeMap<String, u32>,
    run_holds: &BTreeMap<R, BTreeMap<String, u32>>,
    waiting: &[Waiter<R, K>],
    serving: Serving,
) -> Vec<StuckRun<R>> {
    let mut holds = run_holds.clone();
    let mut pending: Vec<&Waiter<R, K>> = waiting.iter().collect();
    loop {
        // What runs that still wait keep; the others end and give it back.
        let live: BTreeSet<&R> = pending.iter().map(|w| &w.run).collect();
        let mut held: BTreeMap<String, u32> = BTreeMap::new();
        for (run, units) in &holds {
            if live.contains(run) {
                for (r, n) in units {
                    *held.entry(r.clone()).or_insert(0) += n;
                }
            }
        }
        let claims: Vec<Claim<(K, usize)>> = pending
            .iter()
            .enumerate()
            .map(|(i, w)| Claim {
                key: (w.claim.key.clone(), i),
                priority: w.claim.priority,
                since: w.claim.since,
                wants: w.claim.wants.clone(),
            })
            .collect();
        let a = match serving {
            Serving::InLine => allocate(capacities, &held, &claims),
            Serving::AnyFree => any_free(capacities, &held, &claims),
        };
        if a.granted.is_empty() && a.impossible.is_empty() {
            break;
        }
        for (_, i) in &a.granted {
            let w = pending[*i];
            if w.whole_run {
                let kept = holds.entry(w.run.clone()).or_default();
                for (r, n) in &w.claim.wants {
                    *kept.entry(r.clone()).or_insert(0) += n;
                }
            }
        }
        let gone: BTreeSet<usize> = a
            .granted
            .iter()
            .chain(a.impossible.iter().map(|(k, _)| k))
            .map(|k| k.1)
            .collect();
        pending = pending
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, w)| w)
            .collect();
    }
    let mut stuck: BTreeMap<R, StuckRun<R>> = BTreeMap::new();
    for w in pending {
        let s = stuck.entry(w.run.clone()).or_insert_with(|| StuckRun {
            run: w.run.clone(),
            holds: holds.get(&w.run).cloned().unwrap_or_default(),
            waits_for: BTreeSet::new(),
        });
        s.waits_for.extend(w.claim.wants.keys().cloned());
    }
    stuck.into_values().collect()
}

/// Grants, in order, every claim whose units are free, with no line.
fn any_free<K: Clone + Ord>(
    capacities: &BTreeMap<String, u32>,
    held: &BTreeMap<String, u32>,
    claims: &[Claim<K>],
) -> Allocation<K> {
    let mut out = allocate(capacities, held, &[]);
    let mut free: BTreeMap<&str, u32> = capacities
        .iter()
        .map(|(r, c)| {
            (
                r.as_str(),
                c.saturating_sub(held.get(r).copied().unwrap_or(0)),
            )
        })
        .collect();
    for c in in_line(claims) {
        match impossible(capacities, c) {
            Some(why) => out.impossible.push((c.key.clone(), why)),
            None if c
                .wants
                .iter()
                .all(|(r, n)| free.get(r.as_str()).is_some_and(|f| f >= n)) =>
            {
                for (r, n) in &c.wants {
                    if let Some(f) = free.get_mut(r.as_str()) {
                        *f -= n;
                    }
                }
                out.granted.push(c.key.clone());
            }
            None => out.waiting.push((c.key.clone(), Vec::new())),
        }
    }
    out
}

/// Runs named in a deadlock's description at most.
const MAX_NAMED: usize = 6;

/// The runs of a deadlock in words: `deadlock over shared resources: runs
/// "a" and "b" wait for each other; "a" keeps staging-db and waits for
/// sandbox; "b" keeps sandbox and waits for staging-db; "c" in line behind
/// them`.
pub fn describe_deadlock(stuck: &[StuckRun<String>]) -> String {
    let (keepers, behind): (Vec<_>, Vec<_>) = stuck.iter().partition(|s| !s.holds.is_empty());
    let list = |names: &[&StuckRun<String>]| {
        let mut s: Vec<String> = names
            .iter()
            .take(MAX_NAMED)
            .map(|s| format!("{:?}", s.run))
            .collect();
        if names.len() > MAX_NAMED {
            s.push(format!("{} more", names.len() - MAX_NAMED));
        }
        match s.len() {
            0 | 1 => s.join(""),
            n => format!("{} and {}", s[..n - 1].join(", "), s[n - 1]),
        }
    };
    let joined = |set: &mut dyn Iterator<Item = String>| set.collect::<Vec<_>>().join(", ");
    let mut parts = vec![match keepers.len() {
        1 => format!(
            "deadlock over shared resources: run {} waits, through the line, for what it keeps",
            list(&keepers)
        ),
        _ => format!(
            "deadlock over shared resources: runs {} wait for each other",
            list(&keepers)
        ),
    }];
    for s in keepers.iter().take(MAX_NAMED) {
        let holds = joined(&mut s.holds.iter().map(|(r, n)| match n {
            1 => r.clone(),
            n => format!("{n} units of {r}"),
        }));
        let waits = joined(&mut s.waits_for.iter().cloned());
        parts.push(format!("{:?} keeps {holds} and waits for {waits}", s.run));
    }
    if !behind.is_empty() {
        parts.push(format!("{} in line behind them", list(&behind)));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn units(u: &[(&str, u32)]) -> BTreeMap<String, u32> {
        u.iter().map(|(r, n)| (r.to_string(), *n)).collect()
    }

    fn waiter(
        run: &str,
        since: i64,
        whole_run: bool,
        wants: &[(&str, u32)],
    ) -> Waiter<String, String> {
        Waiter {
            run: run.into(),
            whole_run,
            claim: Claim {
                key: format!("{run}-{since}"),
                priority: 0,
                since,
                wants: units(wants),
            },
        }
    }

    fn holds(h: &[(&str, &[(&str, u32)])]) -> BTreeMap<String, BTreeMap<String, u32>> {
        h.iter()
            .map(|(run, u)| (run.to_string(), units(u)))
            .collect()
    }

    fn runs(s: &[StuckRun<String>]) -> Vec<&str> {
        s.iter().map(|s| s.run.as_str()).collect()
    }

    #[test]
    fn two_runs_keeping_what_the_other_waits_for_are_stuck_and_so_is_the_line_behind() {
        let caps = units(&[("db", 1), ("sandbox", 1)]);
        let kept = holds(&[("a", &[("db", 1)]), ("b", &[("sandbox", 1)])]);
        let w = [
            waiter("a", 1, false, &[("sandbox", 1)]),
            waiter("b", 2, false, &[("db", 1)]),
            waiter("c", 3, false, &[("db", 1)]),
        ];
        let s = deadlock(&caps, &kept, &w, Serving::InLine);
        assert_eq!(runs(&s), ["a", "b", "c"]);
        assert_eq!(s[0].holds, units(&[("db", 1)]));
        assert_eq!(s[0].waits_for, BTreeSet::from(["sandbox".to_string()]));
        assert!(s[2].holds.is_empty());
    }

    #[test]
    fn a_run_that_waits_for_nothing_ends_and_lets_the_others_go_on() {
        let caps = units(&[("db", 1), ("sandbox", 1)]);
        // b keeps sandbox but waits for nothing: it ends, a gets sandbox,
        // ends, and c gets db.
        let kept = holds(&[("a", &[("db", 1)]), ("b", &[("sandbox", 1)])]);
        let w = [
            waiter("a", 1, false, &[("sandbox", 1)]),
            waiter("c", 3, false, &[("db", 1)]),
        ];
        assert!(deadlock(&caps, &kept, &w, Serving::InLine).is_empty());
    }

    #[test]
    fn a_pool_deadlocks_when_every_unit_is_kept_by_runs_that_want_more() {
        let kept = holds(&[("a", &[("pool", 1)]), ("b", &[("pool", 1)])]);
        let w = [
            waiter("a", 1, false, &[("pool", 1)]),
            waiter("b", 2, false, &[("pool", 1)]),
        ];
        assert_eq!(
            runs(&deadlock(
                &units(&[("pool", 2)]),
                &kept,
                &w,
                Serving::InLine
            )),
            ["a", "b"]
        );
        assert!(deadlock(&units(&[("pool", 3)]), &kept, &w, Serving::InLine).is_empty());
    }

    #[test]
    fn a_whole_run_claim_granted_on_the_way_is_kept_until_its_run_ends() {
        let caps = units(&[("db", 1), ("sandbox", 1)]);
        let kept = holds(&[("b", &[("sandbox", 1)])]);
        // a is granted db for the whole run first, then its category waits
        // for sandbox, which b keeps while waiting for db.
        let w = [
            waiter("a", 1, true, &[("db", 1)]),
            waiter("a", 1, false, &[("sandbox", 1)]),
            waiter("b", 2, false, &[("db", 1)]),
        ];
        let s = deadlock(&caps, &kept, &w, Serving::InLine);
        assert_eq!(runs(&s), ["a", "b"]);
        assert_eq!(s[0].holds, units(&[("db", 1)]));
        // Granted per attempt instead, db comes back: no deadlock.
        let w = [
            waiter("a", 1, false, &[("db", 1)]),
            waiter("a", 1, false, &[("sandbox", 1)]),
            waiter("b", 2, false, &[("db", 1)]),
        ];
        assert!(deadlock(&caps, &kept, &w, Serving::InLine).is_empty());
    }

    #[test]
    fn the_description_names_the_cycle_and_the_line_behind_it() {
        let stuck = |run: &str, holds: &[(&str, u32)], waits: &[&str]| StuckRun {
            run: run.to_string(),
            holds: units(holds),
            waits_for: waits.iter().map(|r| r.to_string()).collect(),
        };
        let m = describe_deadlock(&[
            stuck("a", &[("staging-db", 1)], &["sandbox"]),
            stuck("b", &[("sandbox", 2)], &["staging-db"]),
            stuck("c", &[], &["staging-db"]),
        ]);
        assert_eq!(
            m,
            "deadlock over shared resources: runs \"a\" and \"b\" wait for each other; \
             \"a\" keeps staging-db and waits for sandbox; \
             \"b\" keeps 2 units of sandbox and waits for staging-db; \
             \"c\" in line behind them"
        );
    }

    #[test]
    fn a_wait_behind_the_line_is_a_deadlock_in_line_and_none_without_one() {
        let caps = units(&[("db", 1), ("sandbox", 1)]);
        // a keeps db and waits for sandbox; c, earlier, wants both: in
        // line, c is ahead of a on sandbox and waits for db, which a keeps.
        let kept = holds(&[("a", &[("db", 1)])]);
        let w = [
            waiter("c", 1, false, &[("db", 1), ("sandbox", 1)]),
            waiter("a", 2, false, &[("sandbox", 1)]),
        ];
        let s = deadlock(&caps, &kept, &w, Serving::InLine);
        assert_eq!(runs(&s), ["a", "c"]);
        assert_eq!(
            describe_deadlock(&s),
            "deadlock over shared resources: run \"a\" waits, through the line, for what it keeps; \
             \"a\" keeps db and waits for sandbox; \"c\" in line behind them"
        );
        // Whoever finds sandbox free takes it: a ends, then c goes.
        assert!(deadlock(&caps, &kept, &w, Serving::AnyFree).is_empty());
    }

    #[test]
    fn claims_above_the_capacity_are_left_to_allocate() {
        let caps = units(&[("db", 1)]);
        let w = [waiter("a", 1, false, &[("db", 2)])];
        assert!(deadlock(&caps, &BTreeMap::new(), &w, Serving::InLine).is_empty());
    }

    proptest! {
        #[test]
        fn without_units_kept_for_a_whole_run_nothing_is_ever_stuck(
            w in prop::collection::vec(
                (0usize..4, 0i64..10, prop::collection::btree_map(
                    prop::sample::select(vec!["a", "b", "c"]), 1u32..3, 1..3)),
                0..10),
            ca in 1u32..4, cb in 1u32..4, cc in 1u32..4,
            kept in prop::collection::btree_map(0usize..4, (prop::sample::select(vec!["a", "b", "c"]), 1u32..3), 0..4),
        ) {
            let caps = units(&[("a", ca), ("b", cb), ("c", cc)]);
            let waiting: Vec<Waiter<usize, usize>> = w.iter().enumerate().map(|(i, (run, since, wants))| Waiter {
                run: *run,
                whole_run: false,
                claim: Claim { key: i, priority: 0, since: *since, wants: wants.iter().map(|(r, n)| (r.to_string(), *n)).collect() },
            }).collect();
            for serving in [Serving::InLine, Serving::AnyFree] {
                // Played out, as the answer given at once says.
                prop_assert!(play_out(&caps, &BTreeMap::new(), &waiting, serving).is_empty());
                prop_assert!(deadlock(&caps, &BTreeMap::new(), &waiting, serving).is_empty());
            }
            // Stuck runs each keep something or wait behind one that does,
            // and only waiting runs are stuck.
            let run_holds: BTreeMap<usize, BTreeMap<String, u32>> = kept.iter()
                .map(|(run, (r, n))| (*run, BTreeMap::from([(r.to_string(), *n)])))
                .collect();
            let s = deadlock(&caps, &run_holds, &waiting, Serving::InLine);
            if !s.is_empty() {
                prop_assert!(s.iter().any(|s| !s.holds.is_empty()));
            }
            for stuck in &s {
                prop_assert!(waiting.iter().any(|w| w.run == stuck.run));
            }
            // The order of the input does not matter.
            let mut rev = waiting.clone();
            rev.reverse();
            prop_assert_eq!(deadlock(&caps, &run_holds, &rev, Serving::InLine), s);
        }
    }
}
