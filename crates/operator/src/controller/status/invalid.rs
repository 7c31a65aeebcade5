//! The words of an object the controller cannot use: the reasons of its
//! `Stalled` condition, the conditions it gets, and the reference an Event
//! about it names.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::Resource;

use crate::api::ConditionType;
use crate::controller::status::conditions::{Stall, condition};

/// `previous` with `Stalled` set as `stall` says (and `Reconciling` False
/// while stalled); the other conditions are kept as they are.
pub fn with_stall(
    previous: &[Condition],
    stall: Option<&Stall>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let (reason, message) = stall.map_or(("NotStalled", ""), |s| {
        (s.reason.as_str(), s.message.as_str())
    });
    let mut set = vec![condition(
        previous,
        ConditionType::Stalled,
        Some(stall.is_some()),
        reason,
        message,
        generation,
        now,
    )];
    if stall.is_some() {
        set.push(condition(
            previous,
            ConditionType::Reconciling,
            Some(false),
            reason,
            message,
            generation,
            now,
        ));
    }
    let mut out: Vec<Condition> = previous
        .iter()
        .filter(|c| !set.iter().any(|s| s.type_ == c.type_))
        .cloned()
        .collect();
    out.extend(set);
    out
}

/// A reference to an object known only by its metadata.
pub fn reference<K: Resource<DynamicType = ()>>(meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The message of a panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The conditions of an object marked stalled as `stall` says, at `now`
/// (whole seconds, as a status keeps them), or `None` when `previous`
/// says so already: an object is marked, and its Event sent, once.
pub fn marked_stalled(
    previous: &[Condition],
    stall: &Stall,
    generation: Option<i64>,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<Vec<Condition>> {
    let whole = k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
    let conditions = with_stall(previous, Some(stall), generation, &Time(whole));
    (conditions != previous).then_some(conditions)
}
