//! The Pod creates the apiserver refused, as this controller remembers
//! them: the facts a step decides a refused Pod's backoff from (see
//! `step::refusals`). Each refusal is recorded as it is answered and
//! forgotten once a create of that Pod goes through, or when its run starts
//! over; after a restart this is empty, and the first step tries each
//! refused Pod again at once. No decisions are made here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::step::Refusal;

/// A refusal not repeated for this long is forgotten (far longer than the
/// longest backoff: nothing tries that Pod any more).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Refused Pod creates, by namespace and Pod name, with the run they are of.
#[derive(Default)]
pub struct RefusedCreates {
    refused: Mutex<HashMap<(String, String), (String, Refusal)>>,
}

impl RefusedCreates {
    /// Records that the apiserver refused Pod `pod` of run `run` at `at`.
    pub fn record(&self, namespace: &str, run: &str, pod: &str, message: &str, at: Timestamp) {
        let Ok(mut m) = self.refused.lock() else {
            return;
        };
        let horizon = at
            .checked_sub(SignedDuration::try_from(FORGET_AFTER).unwrap_or(SignedDuration::MAX))
            .unwrap_or(Timestamp::MIN);
        m.retain(|_, (_, r)| r.last > horizon);
        let key = (namespace.to_string(), pod.to_string());
        let next = Refusal::after(m.get(&key).map(|(_, r)| r), message, at);
        m.insert(key, (run.to_string(), next));
    }

    /// Forgets the refusals of Pod `pod` (it was created, or exists).
    pub fn created(&self, namespace: &str, pod: &str) {
        if let Ok(mut m) = self.refused.lock() {
            m.remove(&(namespace.to_string(), pod.to_string()));
        }
    }

    /// Forgets the refusals of run `run` (it starts over).
    pub fn forget_run(&self, namespace: &str, run: &str) {
        if let Ok(mut m) = self.refused.lock() {
            m.retain(|(ns, _), (r, _)| ns != namespace || r != run);
        }
    }

    /// The refusals of run `run`, by Pod name.
    pub fn of_run(&self, namespace: &str, run: &str) -> BTreeMap<String, Refusal> {
        let Ok(m) = self.refused.lock() else {
            return BTreeMap::new();
        };
        m.iter()
            .filter(|((ns, _), (r, _))| ns == namespace && r == run)
            .map(|((_, pod), (_, refusal))| (pod.clone(), refusal.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_count_up_until_the_pod_is_created() {
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        let m = RefusedCreates::default();
        m.record("ns", "r", "r-a-1", "quota", t(100));
        m.record("ns", "r", "r-a-1", "quota!", t(102));
        m.record("ns", "other", "other-a-1", "quota", t(102));
        let of_r = m.of_run("ns", "r");
        assert_eq!(of_r.len(), 1);
        let r = &of_r["r-a-1"];
        assert_eq!(
            (r.message.as_str(), r.first, r.last, r.count),
            ("quota!", t(100), t(102), 2)
        );
        m.created("ns", "r-a-1");
        assert!(m.of_run("ns", "r").is_empty());
        m.forget_run("ns", "other");
        assert!(m.of_run("ns", "other").is_empty());
        // Old refusals are forgotten.
        m.record("ns", "r", "r-a-1", "quota", t(100));
        m.record("ns", "r", "r-b-1", "quota", t(2000));
        assert_eq!(m.of_run("ns", "r").keys().collect::<Vec<_>>(), ["r-b-1"]);
    }
}
