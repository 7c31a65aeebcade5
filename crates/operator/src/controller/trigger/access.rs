//! Which resource a trigger reads, as the chart's admission policy names it
//! when it asks whether the trigger's author may read it. Pure.
//!
//! The policy sees only `spec.watch.apiVersion` and `spec.watch.kind`, and
//! CEL cannot ask discovery for a kind's resource, so it derives the
//! resource from the kind ([`resource_of`], the same rule in
//! `charts/testlayer/templates/admission-policy.yaml`). The controller
//! reads the resource discovery gives, and refuses a kind the cluster serves
//! under another resource ([`served_as_checked`]): whatever it reads is what
//! the policy checked.

use crate::controller::launch::ticks::Problem;

/// Kinds whose resource the rule does not give, lower case: (kind,
/// resource). The policy has the same table.
pub const RESOURCE_EXCEPTIONS: &[(&str, &str)] = &[("endpoints", "endpoints")];

/// The resource (plural, lower case) the admission policy derives from
/// `kind`: the kind in lower case, then `es` after `s`, `x`, `z`, `ch` or
/// `sh`; `ies` in place of a `y` after a consonant; `s` otherwise; or the
/// resource [`RESOURCE_EXCEPTIONS`] gives. The rule of Kubernetes' own
/// kinds and of the CRDs kubebuilder writes (`Deployment` → `deployments`,
/// `Ingress` → `ingresses`, `NetworkPolicy` → `networkpolicies`, `Gateway`
/// → `gateways`).
pub fn resource_of(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if let Some((_, r)) = RESOURCE_EXCEPTIONS.iter().find(|(e, _)| *e == k) {
        return (*r).to_string();
    }
    if ["s", "x", "z", "ch", "sh"].iter().any(|e| k.ends_with(e)) {
        return format!("{k}es");
    }
    let mut chars = k.chars().rev();
    if let (Some('y'), Some(before)) = (chars.next(), chars.next())
        && !"aeiou".contains(before)
    {
        return format!("{}ies", &k[..k.len() - 1]);
    }
    format!("{k}s")
}

/// `resource` of `group` as messages name it: `secrets`,
/// `deployments.apps`.
pub fn resource_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// The group of `api_version` (`apps/v1` → `apps`, `v1` → the core group,
/// empty).
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// Whether the cluster serves `kind` of `group` as `served` (its plural, by
/// discovery), the resource the admission policy checked the trigger's
/// author may read; if not, the problem of the trigger (the controller
/// reads nothing).
pub fn served_as_checked(group: &str, kind: &str, served: &str) -> Result<(), Problem> {
    let checked = resource_of(kind);
    if served == checked {
        return Ok(());
    }
    Err(Problem::new(
        "spec.watch.kind",
        format!(
            "this cluster serves kind {kind} as resource {}, not {} as the admission policy \
             derives from the kind when it checks that the trigger's author may read it; \
             a trigger cannot watch this kind",
            resource_name(group, served),
            resource_name(group, &checked),
        ),
    ))
}
