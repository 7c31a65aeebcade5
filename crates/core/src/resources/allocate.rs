//! Which waiting claims on shared resources are granted now (the rules are
//! in the module's documentation).

use std::collections::BTreeMap;

/// A claim on units of shared resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<K> {
    /// Who claims (a category of a run).
    pub key: K,
    /// Served before claims of a lower priority.
    pub priority: i32,
    /// When its run was created (any clock; the earlier first).
    pub since: i64,
    /// Units wanted, by resource.
    pub wants: BTreeMap<String, u32>,
}

/// What to do with the waiting claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation<K> {
    /// Claims granted now, in order.
    pub granted: Vec<K>,
    /// Claims still waiting: for each, the resources it waits for and its
    /// position in that resource's line (1: next).
    pub waiting: Vec<(K, Vec<(String, usize)>)>,
    /// Claims that can never be granted, and why.
    pub impossible: Vec<(K, String)>,
}

/// Which of `waiting` to grant, given the `capacities` of the resources and
/// the units already `held` by earlier grants (by resource).
pub fn allocate<K: Clone + Ord>(
    capacities: &BTreeMap<String, u32>,
    held: &BTreeMap<String, u32>,
    waiting: &[Claim<K>],
) -> Allocation<K> {
    let order = in_line(waiting);
    let mut free: BTreeMap<&str, u32> = capacities
        .iter()
        .map(|(r, c)| {
            let used = held.get(r).copied().unwrap_or(0);
            (r.as_str(), c.saturating_sub(used))
        })
        .collect();
    // Resources some earlier claim still waits for, and how many wait.
    let mut queued: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Allocation {
        granted: Vec::new(),
        waiting: Vec::new(),
        impossible: Vec::new(),
    };
    for claim in order {
        if let Some(why) = impossible(capacities, claim) {
            out.impossible.push((claim.key.clone(), why));
            continue;
        }
        let fits = claim.wants.iter().all(|(r, n)| {
            !queued.contains_key(r.as_str()) && free.get(r.as_str()).is_some_and(|f| f >= n)
        });
        if fits {
            for (r, n) in &claim.wants {
                if let Some(f) = free.get_mut(r.as_str()) {
                    *f -= n;
                }
            }
            out.granted.push(claim.key.clone());
            continue;
        }
        let mut lines = Vec::new();
        for r in claim.wants.keys() {
            let ahead = queued.entry(r.as_str()).or_insert(0);
            *ahead += 1;
            lines.push((r.clone(), *ahead));
        }
        out.waiting.push((claim.key.clone(), lines));
    }
    out
}

/// `claims` in the order they are served: higher priority first, then the
/// earlier, then by key.
pub(crate) fn in_line<K: Ord>(claims: &[Claim<K>]) -> Vec<&Claim<K>> {
    let mut order: Vec<&Claim<K>> = claims.iter().collect();
    order.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.since.cmp(&b.since))
            .then_with(|| a.key.cmp(&b.key))
    });
    order
}

pub(crate) fn impossible<K>(
    capacities: &BTreeMap<String, u32>,
    claim: &Claim<K>,
) -> Option<String> {
    for (r, n) in &claim.wants {
        match capacities.get(r) {
            None => return Some(format!("resource {r:?} is not declared")),
            Some(c) if n > c => {
                return Some(format!(
                    "wants {n} units of {r:?}, which has a capacity of {c}"
                ));
            }
            Some(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim(key: u32, priority: i32, since: i64, wants: &[(&str, u32)]) -> Claim<u32> {
        Claim {
            key,
            priority,
            since,
            wants: wants.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        }
    }

    fn caps(c: &[(&str, u32)]) -> BTreeMap<String, u32> {
        c.iter().map(|(r, n)| (r.to_string(), *n)).collect()
    }

    #[test]
    fn a_mutex_goes_to_the_earliest_and_the_line_is_shown() {
        let caps = caps(&[("db", 1)]);
        let w = [
            claim(3, 0, 30, &[("db", 1)]),
            claim(1, 0, 10, &[("db", 1)]),
            claim(2, 0, 20, &[("db", 1)]),
        ];
        let a = allocate(&caps, &BTreeMap::new(), &w);
        assert_eq!(a.granted, [1]);
        assert_eq!(
            a.waiting,
            [(2, vec![("db".into(), 1)]), (3, vec![("db".into(), 2)])]
        );
        // Held: nobody gets it.
        let a = allocate(&caps, &caps, &w);
        assert!(a.granted.is_empty());
    }

    #[test]
    fn priority_first_and_a_large_claim_is_not_overtaken() {
        let caps = caps(&[("pool", 3)]);
        let held = BTreeMap::from([("pool".to_string(), 2)]);
        let w = [
            claim(1, 0, 10, &[("pool", 2)]),
            claim(2, 0, 20, &[("pool", 1)]),
            claim(3, 5, 30, &[("pool", 1)]),
        ];
        let a = allocate(&caps, &held, &w);
        // The urgent one takes the free unit; the large one waits, and the
        // small later one does not pass it.
        assert_eq!(a.granted, [3]);
        assert_eq!(a.waiting.len(), 2);
        assert_eq!(a.waiting[0].0, 1);
    }

    #[test]
    fn claims_that_can_never_be_granted_are_named() {
        let caps = caps(&[("pool", 3)]);
        let w = [
            claim(1, 0, 1, &[("pool", 4)]),
            claim(2, 0, 2, &[("sandbox", 1)]),
        ];
        let a = allocate(&caps, &BTreeMap::new(), &w);
        assert!(a.granted.is_empty() && a.waiting.is_empty());
        assert_eq!(
            a.impossible[0].1,
            "wants 4 units of \"pool\", which has a capacity of 3"
        );
        assert_eq!(a.impossible[1].1, "resource \"sandbox\" is not declared");
    }

    #[test]
    fn all_or_nothing_over_several_resources() {
        let caps = caps(&[("a", 1), ("b", 1)]);
        let held = BTreeMap::from([("b".to_string(), 1)]);
        let w = [
            claim(1, 0, 1, &[("a", 1), ("b", 1)]),
            claim(2, 0, 2, &[("a", 1)]),
        ];
        let a = allocate(&caps, &held, &w);
        // 1 gets nothing (b is held), and keeps its place on a.
        assert!(a.granted.is_empty(), "{a:?}");
        assert_eq!(a.waiting[1], (2, vec![("a".into(), 2)]));
    }

    fn claims() -> impl Strategy<Value = Vec<Claim<u32>>> {
        prop::collection::vec(
            (
                -2i32..3,
                0i64..50,
                prop::collection::btree_map(
                    prop::sample::select(vec!["a", "b", "c"]),
                    1u32..4,
                    1..3,
                ),
            ),
            0..12,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (priority, since, wants))| Claim {
                    key: u32::try_from(i).unwrap(),
                    priority,
                    since,
                    wants: wants.into_iter().map(|(r, n)| (r.to_string(), n)).collect(),
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn grants_never_exceed_capacity_keep_the_order_and_make_progress(
            w in claims(),
            ca in 1u32..5, cb in 1u32..5, cc in 1u32..5,
            ha in 0u32..5, hb in 0u32..5,
        ) {
            let caps = caps(&[("a", ca), ("b", cb), ("c", cc)]);
            let held = BTreeMap::from([("a".to_string(), ha.min(ca)), ("b".to_string(), hb.min(cb))]);
            let a = allocate(&caps, &held, &w);
            // Every claim is in exactly one outcome.
            prop_assert_eq!(a.granted.len() + a.waiting.len() + a.impossible.len(), w.len());
            // Never over capacity.
            for (r, c) in &caps {
                let granted: u32 = w.iter()
                    .filter(|c| a.granted.contains(&c.key))
                    .map(|c| c.wants.get(r).copied().unwrap_or(0))
                    .sum();
                prop_assert!(held.get(r).copied().unwrap_or(0) + granted <= *c);
            }
            // No granted claim passed a waiting one before it on a shared resource.
            let rank = |c: &Claim<u32>| (-c.priority, c.since, c.key);
            for g in w.iter().filter(|c| a.granted.contains(&c.key)) {
                for (k, _) in &a.waiting {
                    let wc = &w[*k as usize];
                    if rank(wc) < rank(g) {
                        prop_assert!(wc.wants.keys().all(|r| !g.wants.contains_key(r)));
                    }
                }
            }
            // Progress: with nothing held, the first possible claim is granted.
            let free = allocate(&caps, &BTreeMap::new(), &w);
            let first = w.iter()
                .filter(|c| !free.impossible.iter().any(|(k, _)| *k == c.key))
                .min_by_key(|c| rank(c));
            if let Some(f) = first {
                prop_assert!(free.granted.contains(&f.key));
            }
            // The input's order does not matter.
            let mut rev = w.clone();
            rev.reverse();
            prop_assert_eq!(allocate(&caps, &held, &rev), a);
        }
    }
}
