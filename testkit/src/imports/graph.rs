//! Circles in an import graph: its strongly connected components of more
//! than one file.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Files (relative to the workspace root) and, for each, the files it
/// imports with one example path per edge.
pub type ImportGraph = BTreeMap<PathBuf, BTreeMap<PathBuf, String>>;

/// A set of files each reachable from the others, with the edges among
/// them (importer, imported, an example path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circle {
    /// The files, sorted.
    pub files: Vec<PathBuf>,
    /// The imports among them.
    pub edges: Vec<(PathBuf, PathBuf, String)>,
}

impl std::fmt::Display for Circle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "a circle of {} files:", self.files.len())?;
        for (from, to, example) in &self.edges {
            writeln!(f, "  {} -> {} ({example})", from.display(), to.display())?;
        }
        Ok(())
    }
}

/// Every circle in `graph` (Tarjan's algorithm, iterative).
pub fn circles(graph: &ImportGraph) -> Vec<Circle> {
    let nodes: Vec<&PathBuf> = graph.keys().collect();
    let index_of: BTreeMap<&PathBuf, usize> =
        nodes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            graph[*n]
                .keys()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    let n = nodes.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut components = Vec::new();
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        // (node, position in its adjacency list)
        let mut work = vec![(start, 0usize)];
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if *i < adj[v].len() {
                let w = adj[v][*i];
                *i += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(u, _)) = work.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        components.push(component);
                    }
                }
            }
        }
    }
    let mut out: Vec<Circle> = components
        .into_iter()
        .map(|c| {
            let mut files: Vec<PathBuf> = c.iter().map(|&i| nodes[i].clone()).collect();
            files.sort();
            let mut edges = Vec::new();
            for from in &files {
                for (to, example) in &graph[from] {
                    if files.contains(to) {
                        edges.push((from.clone(), to.clone(), example.clone()));
                    }
                }
            }
            Circle { files, edges }
        })
        .collect();
    out.sort_by(|a, b| a.files.cmp(&b.files));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> ImportGraph {
        let mut g = ImportGraph::new();
        for (a, b) in edges {
            g.entry(PathBuf::from(a))
                .or_default()
                .insert(PathBuf::from(b), format!("{a}->{b}"));
            g.entry(PathBuf::from(b)).or_default();
        }
        g
    }

    #[test]
    fn a_chain_has_no_circle_a_loop_has_one() {
        assert!(circles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
        let c = circles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].files, ["a", "b", "c"].map(PathBuf::from));
        assert_eq!(c[0].edges.len(), 3);
    }

    #[test]
    fn two_separate_circles_are_two() {
        let c = circles(&graph(&[
            ("a", "b"),
            ("b", "a"),
            ("x", "y"),
            ("y", "x"),
            ("b", "x"),
        ]));
        assert_eq!(c.len(), 2);
    }
}
