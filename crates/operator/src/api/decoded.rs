//! Objects as the apiserver stores them, decoded without failing.
//!
//! The apiserver may hold what the controller's types cannot: an object
//! stored under an older, looser version of a CRD, or a value the schema
//! allows but a Rust type does not. A watch of plain types fails on such an
//! object and stops seeing every other object of its kind (the whole list
//! fails to decode). The controller therefore watches [`Decoded`] objects: a
//! valid object, or the metadata of an invalid one with the field that did
//! not decode, so that one bad object is reported on its own and the rest
//! keep running.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// An object of kind `K` as stored: valid, or why it is not.
#[derive(Debug, Clone)]
pub enum Decoded<K> {
    /// The object decoded.
    Valid(Arc<K>),
    /// It did not.
    Invalid(Arc<Undecodable>),
}

/// What is known of an object that did not decode.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    /// Its metadata (validated by the apiserver, so it decodes).
    pub metadata: ObjectMeta,
    /// The field that did not decode and why, e.g.
    /// `spec.timeoutSeconds: expected a number of seconds, found the text "x"`.
    pub problem: String,
    /// Its status conditions, where they decode (kept beside a new one).
    pub conditions: Vec<Condition>,
}

impl<K> Decoded<K> {
    /// The object, if it decoded.
    pub fn valid(&self) -> Option<&Arc<K>> {
        match self {
            Decoded::Valid(k) => Some(k),
            Decoded::Invalid(_) => None,
        }
    }
}

impl<K: DeserializeOwned> Decoded<K> {
    /// Decodes the JSON of one object. Never fails on an object that has
    /// valid metadata; text that is not a JSON object gives an
    /// [`Undecodable`] with empty metadata.
    pub fn from_json(text: &str) -> Self {
        let mut de = serde_json::Deserializer::from_str(text);
        let err = match serde_path_to_error::deserialize::<_, K>(&mut de) {
            Ok(k) => return Decoded::Valid(Arc::new(k)),
            Err(e) => e,
        };
        let path = err.path().to_string();
        let why = err.into_inner().to_string();
        // serde_json places the error in the text (" at line 1 column 752"),
        // which says nothing to a reader of the object.
        let why = match why.rfind(" at line ") {
            Some(i) => why[..i].to_string(),
            None => why,
        };
        let why = testlayer_core::parse_words::plain(&path, &why);
        let problem = if path.is_empty() || path == "." {
            why
        } else {
            match why.split_once(": ") {
                // A field read on its own (a template's spec) names its
                // place inside: the two paths make one.
                Some((inner, rest)) if is_path(inner) => format!("{path}.{inner}: {rest}"),
                _ => format!("{path}: {why}"),
            }
        };
        let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let metadata = value
            .get("metadata")
            .and_then(|m| ObjectMeta::deserialize(m).ok())
            .unwrap_or_default();
        let conditions = value
            .pointer("/status/conditions")
            .and_then(|c| Vec::<Condition>::deserialize(c).ok())
            .unwrap_or_default();
        Decoded::Invalid(Arc::new(Undecodable {
            metadata,
            problem,
            conditions,
        }))
    }
}

/// Whether `s` is a field path as serde_path_to_error writes one
/// (`pod.env[0].name`), not words.
fn is_path(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The client decodes responses with serde_json, which hands over the
        // object's text as it is; it is then decoded on its own, so an error
        // in it stays in it.
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Decoded::from_json(raw.get()))
    }
}

impl<K> Resource for Decoded<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Decoded::Valid(k) => k.meta(),
            Decoded::Invalid(u) => &u.metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Decoded::Valid(k) => Arc::make_mut(k).meta_mut(),
            Decoded::Invalid(u) => &mut Arc::make_mut(u).metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt;
    use kube::core::{ObjectList, WatchEvent};

    use super::*;
    use crate::api::CategoryRun;

    fn category_run(spec: serde_json::Value) -> String {
        serde_json::json!({
            "apiVersion": "testlayer.dev/v1alpha1",
            "kind": "CategoryRun",
            "metadata": {"name": "r-unit", "namespace": "ns", "resourceVersion": "7"},
            "spec": spec,
            "status": {"conditions": [{
                "type": "Ready", "status": "False", "reason": "Working", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"
            }]}
        })
        .to_string()
    }

    fn good_spec() -> serde_json::Value {
        serde_json::json!({
            "runName": "r", "layer": "unit", "category": "unit", "index": 0,
            "image": "busybox", "command": "true", "timeoutSeconds": 60.0
        })
    }

    #[test]
    fn a_valid_object_decodes() {
        let d: Decoded<CategoryRun> = Decoded::from_json(&category_run(good_spec()));
        let cr = d.valid().expect("valid");
        assert_eq!(cr.spec.timeout_seconds, 60.0);
        assert_eq!(d.name_any(), "r-unit");
    }

    #[test]
    fn an_invalid_field_is_named_and_the_metadata_kept() {
        let mut spec = good_spec();
        spec["timeoutSeconds"] = "soon".into();
        let d: Decoded<CategoryRun> = Decoded::from_json(&category_run(spec));
        let Decoded::Invalid(u) = &d else {
            panic!("decoded {d:?}")
        };
        assert!(
            u.problem
                == "spec.timeoutSeconds: expected a number of seconds, found the text \"soon\"",
            "{}",
            u.problem
        );
        assert_eq!(d.name_any(), "r-unit");
        assert_eq!(d.namespace().as_deref(), Some("ns"));
        assert_eq!(u.conditions.len(), 1);
    }

    #[test]
    fn a_number_too_big_for_its_type_is_named() {
        let mut spec = good_spec();
        spec["index"] = serde_json::json!(5_000_000_000u64);
        let d: Decoded<CategoryRun> = Decoded::from_json(&category_run(spec));
        let Decoded::Invalid(u) = d else {
            panic!("decoded")
        };
        assert!(u.problem.starts_with("spec.index: "), "{}", u.problem);
    }

    #[test]
    fn a_list_with_one_bad_item_keeps_the_others() {
        let mut bad = good_spec();
        bad["retries"] = serde_json::json!(-1);
        let text = format!(
            r#"{{"apiVersion":"v1","kind":"List","metadata":{{"resourceVersion":"9"}},"items":[{},{}]}}"#,
            category_run(good_spec()),
            category_run(bad)
        );
        let list: ObjectList<Decoded<CategoryRun>> = serde_json::from_str(&text).expect("list");
        assert!(list.items[0].valid().is_some());
        assert!(list.items[1].valid().is_none());
    }

    #[test]
    fn a_watch_event_with_a_bad_object_decodes() {
        let mut bad = good_spec();
        bad["retries"] = "many".into();
        let text = format!(r#"{{"type":"ADDED","object":{}}}"#, category_run(bad));
        let ev: WatchEvent<Decoded<CategoryRun>> = serde_json::from_str(&text).expect("event");
        let WatchEvent::Added(Decoded::Invalid(u)) = ev else {
            panic!("event {ev:?}")
        };
        assert!(u.problem.starts_with("spec.retries"), "{}", u.problem);
    }

    #[test]
    fn managed_fields_can_be_cleared_in_place() {
        let mut d: Decoded<CategoryRun> = Decoded::from_json(&category_run(good_spec()));
        d.meta_mut().managed_fields = Some(vec![]);
        d.managed_fields_mut().clear();
        assert!(d.meta().managed_fields.as_ref().is_some_and(Vec::is_empty));
    }
}
