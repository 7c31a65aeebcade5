//! Shared resources: their declared capacities, every `uses` list, and the
//! whole-config check that no two layers can deadlock each other through
//! them.
//!
//! Resource names are normalised the way Kubernetes names them (lower
//! case, `_` as `-`): `staging_db` and `staging-db` are one resource, the
//! one a cluster's `TestLayerResource` object `staging-db` declares.

use std::collections::BTreeMap;

use super::overrides::Resolver;
use crate::config::Config;
use crate::config::error::Collector;
use crate::config::names;
use crate::config::raw::RawUse;
use crate::layer::find_cycle;

/// Most units one shared resource may have.
pub const MAX_CAPACITY: i64 = 1000;
/// Longest resource name: grants are named `NAME-<unit>-<digest>`.
pub const MAX_RESOURCE_NAME: usize = 40;

/// The name a shared resource has everywhere (lock files, cluster objects):
/// lower case, `_` as `-`.
pub fn resource_k8s_name(s: &str) -> String {
    s.to_ascii_lowercase().replace('_', "-")
}

fn check_resource_name(s: &str) -> Result<String, String> {
    let k = resource_k8s_name(s);
    if k.len() > MAX_RESOURCE_NAME {
        return Err(format!(
            "resource name {s:?} is longer than {MAX_RESOURCE_NAME} characters"
        ));
    }
    if names::is_dns_label(&k) && k.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(k)
    } else {
        Err(format!(
            "{s:?} cannot name a shared resource (letters, digits, - and _, starting with a letter)"
        ))
    }
}

impl Config {
    /// The capacities the config declares, by resource name; every problem
    /// with a declaration goes to `c`.
    pub(super) fn declared_capacities(&self, c: &mut Collector) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        let mut written: BTreeMap<String, &str> = BTreeMap::new();
        for (name, r) in &self.raw.resources {
            let path = format!("resources.{name}");
            let k = match check_resource_name(name) {
                Ok(k) => k,
                Err(p) => {
                    c.push(path, p);
                    continue;
                }
            };
            if let Some(other) = written.insert(k.clone(), name) {
                c.push(
                    path,
                    format!("{name:?} and {other:?} name the same resource {k:?}"),
                );
                continue;
            }
            let capacity = match r.capacity {
                None => 1,
                Some(n) if (1..=MAX_CAPACITY).contains(&n) => n as u32,
                Some(n) => {
                    c.push(
                        format!("{path}.capacity"),
                        format!("must be between 1 and {MAX_CAPACITY}, got {n}"),
                    );
                    continue;
                }
            };
            out.insert(k, capacity);
        }
        out
    }
}

impl Resolver<'_> {
    /// The units a `uses` list at `path` wants, by resource name, checked
    /// against the declared `capacities`.
    pub(super) fn uses(
        &self,
        c: &mut Collector,
        path: &str,
        list: &[RawUse],
        capacities: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for (i, u) in list.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let k = match check_resource_name(&u.name) {
                Ok(k) => k,
                Err(p) => {
                    c.push(at, p);
                    continue;
                }
            };
            let Some(&capacity) = capacities.get(&k) else {
                let known: Vec<&str> = self
                    .config
                    .raw
                    .resources
                    .keys()
                    .map(String::as_str)
                    .collect();
                c.push(
                    at,
                    format!(
                        "resource {:?} is not declared; declare it under `resources:` (declared: {})",
                        u.name,
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ),
                );
                continue;
            };
            if u.units < 1 || u.units > i64::from(capacity) {
                c.push(
                    format!("{at}.units"),
                    format!(
                        "must be between 1 and the capacity of {:?} ({capacity}), got {}",
                        u.name, u.units
                    ),
                );
                continue;
            }
            if out.insert(k, u.units as u32).is_some() {
                c.push(at, format!("resource {:?} is listed twice", u.name));
            }
        }
        out
    }
}

/// Holding one resource while waiting for another: a layer that holds
/// `held` for its whole run and has a category that waits for `wanted`.
struct HoldWait<'a> {
    layer: &'a str,
    category: &'a str,
}

impl Config {
    /// Two layers (or more) that can deadlock each other: each holds a
    /// resource for its whole run while one of its categories waits for a
    /// resource another one holds. Checked over the whole config, since
    /// any two of its layers may run at once.
    pub(super) fn check_resource_deadlocks(&self, c: &mut Collector) {
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut names: Vec<String> = Vec::new();
        let mut id = |n: String, names: &mut Vec<String>| -> usize {
            *index.entry(n.clone()).or_insert_with(|| {
                names.push(n);
                names.len() - 1
            })
        };
        let mut edges: BTreeMap<(usize, usize), HoldWait<'_>> = BTreeMap::new();
        for (key, l) in &self.raw.layers {
            for h in &l.uses {
                let held = id(resource_k8s_name(&h.name), &mut names);
                for cat in &l.categories {
                    for w in &cat.uses {
                        let wanted = id(resource_k8s_name(&w.name), &mut names);
                        edges.entry((held, wanted)).or_insert(HoldWait {
                            layer: key,
                            category: &cat.name,
                        });
                    }
                }
            }
        }
        let mut deps = vec![Vec::new(); names.len()];
        for &(h, w) in edges.keys() {
            if h != w {
                deps[h].push(w);
            }
        }
        let Some(cycle) = find_cycle(&deps) else {
            return;
        };
        let steps: Vec<String> = cycle
            .windows(2)
            .filter_map(|p| {
                edges.get(&(p[0], p[1])).map(|e| {
                    format!(
                        "layer {} holds {} while its category {:?} waits for {}",
                        e.layer, names[p[0]], e.category, names[p[1]]
                    )
                })
            })
            .collect();
        let first = edges
            .get(&(cycle[0], cycle[1]))
            .map(|e| e.layer)
            .unwrap_or_default();
        c.push(
            format!("layers.{first}.uses"),
            format!(
                "runs of these layers can wait for each other for ever: {}",
                steps.join("; ")
            ),
        );
    }
}
