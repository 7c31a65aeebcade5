//! The category dependency graph of a layer: finding cycles, and the facts
//! computed once per plan (dependents, topological order, remaining paths).

use std::time::Duration;

use super::category::CategoryPlan;

/// Graph facts computed once per plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Derived {
    pub(super) dependents: Vec<Vec<usize>>,
    pub(super) topo_order: Vec<usize>,
    pub(super) remaining_path: Vec<Duration>,
    /// Index of each category by name (the first, if two share one).
    pub(super) by_name: std::collections::HashMap<String, usize>,
}

/// A dependency graph that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A dependency index past the end.
    #[error("category {category} depends on unknown index {index}")]
    UnknownIndex {
        /// The depending category.
        category: usize,
        /// The bad index.
        index: usize,
    },
    /// A cycle, as category indices in order (first repeated at the end).
    #[error("dependency cycle through categories {0:?}")]
    Cycle(Vec<usize>),
}

/// Finds a dependency cycle, if any, as indices with the first repeated at the end.
pub fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    // Iterative DFS with colours: 0 unvisited, 1 on stack, 2 done.
    let n = deps.len();
    let mut colour = vec![0u8; n];
    let mut parent = vec![usize::MAX; n];
    for root in 0..n {
        if colour[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&d) = deps[node].get(*next) {
                *next += 1;
                if d >= n {
                    continue;
                }
                match colour[d] {
                    0 => {
                        colour[d] = 1;
                        parent[d] = node;
                        stack.push((d, 0));
                    }
                    1 => {
                        // node depends on d, which is on the stack: d -> ... -> node -> d.
                        let mut cycle = vec![node];
                        let mut cur = node;
                        while cur != d {
                            cur = parent[cur];
                            cycle.push(cur);
                        }
                        // cycle is node, ..., d; reversed, each depends on the next,
                        // and node closes the loop on d.
                        cycle.reverse();
                        cycle.push(d);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                colour[node] = 2;
                stack.pop();
            }
        }
    }
    None
}

pub(super) fn derive(categories: &[CategoryPlan]) -> Result<Derived, GraphError> {
    let n = categories.len();
    let mut dependents = vec![Vec::new(); n];
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(n);
    for (i, c) in categories.iter().enumerate() {
        for &d in &c.dependencies {
            if d >= n {
                return Err(GraphError::UnknownIndex {
                    category: i,
                    index: d,
                });
            }
            dependents[d].push(i);
        }
        deps.push(c.dependencies.clone());
    }
    if let Some(cycle) = find_cycle(&deps) {
        return Err(GraphError::Cycle(cycle));
    }
    // Kahn's algorithm, ties broken by index so the order is stable.
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut topo_order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        topo_order.push(i);
        for &j in &dependents[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.insert(j);
            }
        }
    }
    let mut remaining_path = vec![Duration::ZERO; n];
    for &i in topo_order.iter().rev() {
        let tail = dependents[i]
            .iter()
            .map(|&j| remaining_path[j])
            .max()
            .unwrap_or_default();
        remaining_path[i] = categories[i].estimate + tail;
    }
    let mut by_name = std::collections::HashMap::with_capacity(categories.len());
    for (i, c) in categories.iter().enumerate() {
        by_name.entry(c.name.clone()).or_insert(i);
    }
    Ok(Derived {
        dependents,
        topo_order,
        remaining_path,
        by_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_named_in_order() {
        // 0 -> 1 -> 2 -> 0 (each depends on the next)
        let deps = vec![vec![1], vec![2], vec![0], vec![]];
        let c = find_cycle(&deps).unwrap();
        assert_eq!(c.first(), c.last());
        assert_eq!(c.len(), 4);
        for w in c.windows(2) {
            assert!(deps[w[0]].contains(&w[1]), "{c:?}");
        }
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0, 0]));
        assert_eq!(find_cycle(&[vec![], vec![0]]), None);
    }
}
