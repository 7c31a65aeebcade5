//! The names of each run's objects (its CategoryRuns, its Pods), kept
//! beside a cache from the same watch events, so that a reconcile reads
//! its own run's objects without walking every object of the cluster.
//!
//! The index may name an object its cache does not hold (yet, or any
//! more): a reader looks each name up in the cache and skips what is not
//! there. It never lacks an object the cache holds: a name is added before
//! the cache takes its object, and removed after the cache lets it go.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use kube::ResourceExt;
use kube::runtime::watcher::Event;

/// Namespace and name of a run.
pub type RunKey = (String, String);

/// The names of the objects of each run, from the watch events of one kind
/// of object.
pub struct ByRun<K> {
    /// The run an object belongs to, if any.
    key: fn(&K) -> Option<RunKey>,
    sets: Arc<RwLock<Sets>>,
}

impl<K> Clone for ByRun<K> {
    fn clone(&self) -> Self {
        ByRun {
            key: self.key,
            sets: self.sets.clone(),
        }
    }
}

/// What the index holds: the names readers see, and those of a relist
/// under way (which replace them once it is done, as the cache's do).
#[derive(Default)]
struct Sets {
    live: HashMap<RunKey, HashSet<String>>,
    relist: Option<HashMap<RunKey, HashSet<String>>>,
}

fn add(sets: &mut HashMap<RunKey, HashSet<String>>, run: RunKey, name: String) {
    sets.entry(run).or_default().insert(name);
}

impl<K: kube::Resource> ByRun<K> {
    /// An empty index whose objects belong to the run `key` names.
    pub fn new(key: fn(&K) -> Option<RunKey>) -> Self {
        ByRun {
            key,
            sets: Arc::default(),
        }
    }

    /// Takes in `event` before the cache does: the names it adds.
    pub fn before_cache(&self, event: &Event<K>) {
        let mut sets = self.sets.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Apply(obj) => {
                if let Some(run) = (self.key)(obj) {
                    add(&mut sets.live, run, obj.name_any());
                }
            }
            Event::Init => sets.relist = Some(HashMap::new()),
            Event::InitApply(obj) => {
                if let (Some(run), Some(relist)) = ((self.key)(obj), sets.relist.as_mut()) {
                    add(relist, run, obj.name_any());
                }
            }
            Event::Delete(_) | Event::InitDone => {}
        }
    }

    /// Takes in `event` after the cache has: the names it removes.
    pub fn after_cache(&self, event: &Event<K>) {
        let mut sets = self.sets.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Delete(obj) => {
                if let Some(run) = (self.key)(obj)
                    && let Some(names) = sets.live.get_mut(&run)
                {
                    names.remove(&obj.name_any());
                    if names.is_empty() {
                        sets.live.remove(&run);
                    }
                }
            }
            Event::InitDone => {
                if let Some(relist) = sets.relist.take() {
                    sets.live = relist;
                }
            }
            Event::Apply(_) | Event::Init | Event::InitApply(_) => {}
        }
    }

    /// The names of the objects of run `name` in namespace `ns`.
    pub fn names(&self, ns: &str, name: &str) -> Vec<String> {
        let sets = self.sets.read().unwrap_or_else(PoisonError::into_inner);
        sets.live
            .get(&(ns.to_string(), name.to_string()))
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, run: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"run": run}},
        }))
        .expect("pod")
    }

    fn index() -> ByRun<Pod> {
        ByRun::new(|p: &Pod| Some((p.namespace()?, p.labels().get("run")?.clone())))
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn objects_are_found_by_their_run_until_deleted() {
        let ix = index();
        for e in [Event::Apply(pod("a-1", "a")), Event::Apply(pod("b-1", "b"))] {
            ix.before_cache(&e);
            ix.after_cache(&e);
        }
        ix.before_cache(&Event::Apply(pod("a-2", "a")));
        assert_eq!(sorted(ix.names("ns", "a")), ["a-1", "a-2"]);
        assert!(ix.names("other", "a").is_empty());
        // Named until the cache has let it go.
        let gone = Event::Delete(pod("a-1", "a"));
        ix.before_cache(&gone);
        assert_eq!(sorted(ix.names("ns", "a")), ["a-1", "a-2"]);
        ix.after_cache(&gone);
        assert_eq!(ix.names("ns", "a"), ["a-2"]);
    }

    #[test]
    fn a_relist_replaces_the_names_once_done() {
        let ix = index();
        ix.before_cache(&Event::Apply(pod("a-1", "a")));
        ix.before_cache(&Event::Init);
        ix.before_cache(&Event::InitApply(pod("a-2", "a")));
        // The cache still holds what it held before the relist.
        assert_eq!(ix.names("ns", "a"), ["a-1"]);
        ix.before_cache(&Event::InitDone);
        assert_eq!(ix.names("ns", "a"), ["a-1"]);
        ix.after_cache(&Event::InitDone);
        assert_eq!(ix.names("ns", "a"), ["a-2"]);
    }

    #[test]
    fn objects_of_no_run_are_not_named() {
        let ix = index();
        let mut p = pod("x", "a");
        p.metadata.labels = None;
        ix.before_cache(&Event::Apply(p));
        assert!(ix.names("ns", "a").is_empty());
    }
}
