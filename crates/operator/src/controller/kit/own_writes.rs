//! What this controller wrote a moment ago and its caches may not show yet.
//!
//! A reconcile is often woken by the events of its own earlier writes before
//! the caches have all of them; deciding on such a stale view would start an
//! attempt twice or record a start time again. Each write's answer (the
//! object as the apiserver stored it) is kept here until the cache shows
//! that version or a newer one, or for [`KEEP`] at most, and the reader
//! overlays it on the cache. The controller is the only writer of these
//! objects' statuses and of the Pods it creates, so its own last write is
//! the newest state it can know of them. After a restart this is empty and
//! the caches start from a consistent list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};

/// How long a write is kept at most.
pub const KEEP: Duration = Duration::from_secs(60);

/// Objects of one kind this controller wrote, by namespace and name.
pub struct OwnWrites<K> {
    written: Mutex<HashMap<(String, String), Entry<K>>>,
    /// Objects it deleted, by namespace and name: their uid and when.
    deleted: Mutex<HashMap<(String, String), (String, Instant)>>,
}

/// One remembered write.
struct Entry<K> {
    obj: Arc<K>,
    at: Instant,
    /// It was created by this write (so the cache may not hold it at all).
    created: bool,
}

impl<K> Default for OwnWrites<K> {
    fn default() -> Self {
        OwnWrites {
            written: Mutex::new(HashMap::new()),
            deleted: Mutex::new(HashMap::new()),
        }
    }
}

/// The resourceVersion of an object as a number (etcd revisions are); `None`
/// when it is not one, and then the cache is trusted.
pub(crate) fn version<K: Resource>(o: &K) -> Option<u64> {
    o.meta().resource_version.as_deref()?.parse().ok()
}

impl<K: Resource + Clone> OwnWrites<K> {
    /// Remembers `obj` as this controller just wrote it (`created`: by a
    /// create, so the cache may not hold it at all yet). Its managedFields
    /// are dropped, as the caches drop them: large, and never read. A write
    /// after the create of the same object keeps it created: the cache may
    /// still not hold it (a status written before the cache saw the object
    /// must not make it look missing, to be created again).
    pub fn remember(&self, mut obj: K, created: bool) {
        obj.meta_mut().managed_fields = None;
        let key = (obj.namespace().unwrap_or_default(), obj.name_any());
        if let Ok(mut w) = self.written.lock() {
            let created = created
                || w.get(&key).is_some_and(|e| {
                    e.created && e.at.elapsed() < KEEP && e.obj.meta().uid == obj.meta().uid
                });
            w.insert(
                key,
                Entry {
                    obj: Arc::new(obj),
                    at: Instant::now(),
                    created,
                },
            );
        }
    }

    /// The newer of the cached object and this controller's own write of it.
    pub fn fresher(&self, cached: Arc<K>) -> Arc<K> {
        let key = (cached.namespace().unwrap_or_default(), cached.name_any());
        let Ok(mut w) = self.written.lock() else {
            return cached;
        };
        match w.get(&key) {
            Some(e)
                if e.at.elapsed() < KEEP
                    && e.obj.meta().uid == cached.meta().uid
                    && matches!((version(e.obj.as_ref()), version(cached.as_ref())), (Some(o), Some(c)) if o > c) =>
            {
                e.obj.clone()
            }
            Some(_) => {
                w.remove(&key);
                cached
            }
            None => cached,
        }
    }

    /// Own writes in `namespace` that the cache does not hold at all yet
    /// (objects just created), for which `keep` holds.
    pub fn unseen(
        &self,
        namespace: &str,
        seen: &dyn Fn(&str) -> bool,
        keep: &dyn Fn(&K) -> bool,
    ) -> Vec<Arc<K>> {
        let Ok(mut w) = self.written.lock() else {
            return Vec::new();
        };
        w.retain(|_, e| e.at.elapsed() < KEEP);
        w.iter()
            .filter(|((ns, name), e)| e.created && ns == namespace && !seen(name) && keep(&e.obj))
            .map(|(_, e)| e.obj.clone())
            .collect()
    }

    /// Forgets everything of `namespace` that `drop` says (a run that restarts).
    pub fn forget(&self, namespace: &str, drop: &dyn Fn(&K) -> bool) {
        if let Ok(mut w) = self.written.lock() {
            w.retain(|(ns, _), e| ns != namespace || !drop(&e.obj));
        }
    }

    /// Remembers that this controller deleted the object `name` of
    /// `namespace` with `uid` (it is gone, or was already): a cache that
    /// still shows it is behind.
    pub fn remember_deleted(&self, namespace: &str, name: &str, uid: &str) {
        if let Ok(mut d) = self.deleted.lock() {
            d.retain(|_, (_, at)| at.elapsed() < KEEP);
            d.insert(
                (namespace.to_string(), name.to_string()),
                (uid.to_string(), Instant::now()),
            );
        }
    }

    /// Whether `cached` is an object this controller deleted a moment ago
    /// (the same uid: one made again under its name is another object).
    pub fn deleted(&self, cached: &K) -> bool {
        let key = (cached.namespace().unwrap_or_default(), cached.name_any());
        let Ok(d) = self.deleted.lock() else {
            return false;
        };
        d.get(&key).is_some_and(|(uid, at)| {
            at.elapsed() < KEEP && cached.meta().uid.as_deref() == Some(uid.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn obj(uid: &str, version: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "namespace": "ns", "uid": uid, "resourceVersion": version},
        }))
        .expect("object")
    }

    fn unseen(w: &OwnWrites<ConfigMap>) -> Vec<String> {
        w.unseen("ns", &|_| false, &|_| true)
            .iter()
            .map(|o| o.meta().resource_version.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn an_object_deleted_here_is_gone_from_the_view_and_one_made_again_is_not() {
        let w = OwnWrites::default();
        let mut a = obj("u1", "1");
        a.metadata.namespace = Some("ns".into());
        a.metadata.name = Some("cm".into());
        assert!(!w.deleted(&a));
        w.remember_deleted("ns", "cm", "u1");
        assert!(w.deleted(&a));
        let mut again = a.clone();
        again.metadata.uid = Some("u2".into());
        assert!(!w.deleted(&again), "made again under the same name");
        let mut elsewhere = a.clone();
        elsewhere.metadata.namespace = Some("other".into());
        assert!(!w.deleted(&elsewhere));
    }

    #[test]
    fn an_object_created_then_written_stays_unseen_until_the_cache_has_it() {
        let w = OwnWrites::default();
        w.remember(obj("u1", "1"), true);
        w.remember(obj("u1", "2"), false);
        // The newest write, still an object the cache may lack.
        assert_eq!(unseen(&w), ["2"]);
        // Once the cache has it (as new), the write is let go.
        let cached = w.fresher(Arc::new(obj("u1", "2")));
        assert_eq!(cached.meta().resource_version.as_deref(), Some("2"));
        assert!(unseen(&w).is_empty());
    }

    #[test]
    fn a_write_of_another_object_of_that_name_is_not_a_create() {
        let w = OwnWrites::default();
        w.remember(obj("u1", "1"), true);
        w.remember(obj("u2", "5"), false);
        assert!(unseen(&w).is_empty());
    }
}
