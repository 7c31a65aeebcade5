//! The Pod creates the apiserver refused, as this controller remembers
//! them: the facts a step decides a refused Pod's backoff from (see
//! `step::refusals`). Each refusal is recorded as it is answered, with the
//! uid of the CategoryRun that owns the Pod (so a run that starts over, or
//! is deleted and created again under its name, starts with none), and
//! forgotten once a create of that Pod goes through or it is old. After a
//! restart this is empty, and the first step tries each refused Pod again
//! at once. No decisions are made here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// A refusal not repeated for this long is forgotten (far longer than the
/// longest backoff: nothing tries that Pod any more).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Refused Pod creates, by namespace and Pod name, with the uid of the
/// Pod's owner.
#[derive(Default)]
pub struct RefusedCreates {
    refused: Mutex<HashMap<(String, String), (String, Refusal)>>,
    /// Creates answered 409: a Pod of that name exists (this controller's,
    /// whose create's answer was lost, or another owner's), with the uid of
    /// the owner the create was for and when.
    existing: Mutex<HashMap<(String, String), (String, Timestamp)>>,
}

impl RefusedCreates {
    /// Records that the apiserver refused Pod `pod`, owned by the object
    /// with uid `owner`, at `at`.
    pub fn record(&self, namespace: &str, owner: &str, pod: &str, message: &str, at: Timestamp) {
        let Ok(mut m) = self.refused.lock() else {
            return;
        };
        let horizon = at
            .checked_sub(SignedDuration::try_from(FORGET_AFTER).unwrap_or(SignedDuration::MAX))
            .unwrap_or(Timestamp::MIN);
        m.retain(|_, (_, r)| r.last > horizon);
        let key = (namespace.to_string(), pod.to_string());
        let previous = m.get(&key).filter(|(o, _)| o == owner).map(|(_, r)| r);
        let next = Refusal::after(previous, message, at);
        m.insert(key, (owner.to_string(), next));
    }

    /// Records that a create of Pod `pod` (for the object with uid `owner`)
    /// was answered "it exists" at `at`: whose it is, the step asks.
    pub fn met_existing(&self, namespace: &str, owner: &str, pod: &str, at: Timestamp) {
        let Ok(mut m) = self.existing.lock() else {
            return;
        };
        let horizon = at
            .checked_sub(SignedDuration::try_from(FORGET_AFTER).unwrap_or(SignedDuration::MAX))
            .unwrap_or(Timestamp::MIN);
        m.retain(|_, (_, t)| *t > horizon);
        m.insert(
            (namespace.to_string(), pod.to_string()),
            (owner.to_string(), at),
        );
    }

    /// The Pods (owned by one of `owners`, uids) whose create met a Pod of
    /// their name.
    pub fn existing_owned_by(&self, namespace: &str, owners: &BTreeSet<&str>) -> BTreeSet<String> {
        let Ok(m) = self.existing.lock() else {
            return BTreeSet::new();
        };
        m.iter()
            .filter(|((ns, _), (owner, _))| ns == namespace && owners.contains(owner.as_str()))
            .map(|((_, pod), _)| pod.clone())
            .collect()
    }

    /// Forgets the refusals of Pod `pod`, and that its create met one of
    /// its name (it was created).
    pub fn created(&self, namespace: &str, pod: &str) {
        let key = (namespace.to_string(), pod.to_string());
        if let Ok(mut m) = self.refused.lock() {
            m.remove(&key);
        }
        if let Ok(mut m) = self.existing.lock() {
            m.remove(&key);
        }
    }

    /// The refusals of Pods owned by one of `owners` (uids), by Pod name.
    pub fn owned_by(&self, namespace: &str, owners: &BTreeSet<&str>) -> BTreeMap<String, Refusal> {
        let Ok(m) = self.refused.lock() else {
            return BTreeMap::new();
        };
        m.iter()
            .filter(|((ns, _), (owner, _))| ns == namespace && owners.contains(owner.as_str()))
            .map(|((_, pod), (_, refusal))| (pod.clone(), refusal.clone()))
            .collect()
    }
}

/// A Pod the apiserver refused to create (a 4xx answer other than "it
/// exists": admission such as Pod Security, a quota, validation, a missing
/// ServiceAccount), each time since the last create that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The apiserver's words, last time.
    pub message: String,
    /// When it was first refused.
    pub first: Timestamp,
    /// When it was last refused.
    pub last: Timestamp,
    /// Refusals in a row.
    pub count: u32,
}

impl Refusal {
    /// The record after one more refusal at `at` (`previous`: the one before,
    /// if the Pod was refused before).
    pub fn after(previous: Option<&Refusal>, message: &str, at: Timestamp) -> Refusal {
        Refusal {
            message: message.to_string(),
            first: previous.map_or(at, |p| p.first),
            last: at,
            count: previous.map_or(1, |p| p.count.saturating_add(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_count_up_until_the_pod_is_created() {
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        let m = RefusedCreates::default();
        let a = BTreeSet::from(["uid-a"]);
        m.record("ns", "uid-a", "r-a-1", "quota", t(100));
        m.record("ns", "uid-a", "r-a-1", "quota!", t(102));
        m.record("ns", "uid-b", "r-b-1", "quota", t(102));
        m.record("other", "uid-a", "r-a-1", "quota", t(102));
        let of_a = m.owned_by("ns", &a);
        assert_eq!(of_a.len(), 1);
        let r = &of_a["r-a-1"];
        assert_eq!(
            (r.message.as_str(), r.first, r.last, r.count),
            ("quota!", t(100), t(102), 2)
        );
        m.created("ns", "r-a-1");
        assert!(m.owned_by("ns", &a).is_empty());

        // A Pod of the same name with another owner (the run started over)
        // starts with no refusals before it.
        m.record("ns", "uid-a", "r-b-1", "quota", t(103));
        let r = &m.owned_by("ns", &a)["r-b-1"];
        assert_eq!((r.first, r.count), (t(103), 1));
        assert!(m.owned_by("ns", &BTreeSet::from(["uid-b"])).is_empty());

        // A create that met a Pod of its name is remembered apart, for its
        // owner, until a create goes through.
        m.met_existing("ns", "uid-a", "r-d-1", t(104));
        assert_eq!(
            m.existing_owned_by("ns", &a),
            BTreeSet::from(["r-d-1".to_string()])
        );
        assert!(
            m.existing_owned_by("ns", &BTreeSet::from(["uid-b"]))
                .is_empty()
        );
        m.created("ns", "r-d-1");
        assert!(m.existing_owned_by("ns", &a).is_empty());

        // Old refusals are forgotten.
        m.record("ns", "uid-a", "r-c-1", "quota", t(2000));
        assert_eq!(m.owned_by("ns", &a).keys().collect::<Vec<_>>(), ["r-c-1"]);
    }
}
