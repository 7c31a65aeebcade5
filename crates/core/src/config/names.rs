//! Mapping of layer and category names (`fast_feedback`, `E2E Critical`) to
//! Kubernetes object names: valid DNS-1123 labels, unique among siblings, and
//! stable (the same config always gives the same names).

use std::collections::BTreeMap;

/// Longest name part a category or layer contributes to an object name, so that
/// `<run>-<category>-<attempt>` stays within the 63 characters of a label.
pub const MAX_NAME_PART: usize = 40;

/// Why a name cannot become a Kubernetes name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty or only whitespace.
    #[error("name is empty")]
    Empty,
    /// Longer than anyone can read in `kubectl get`.
    #[error("name is {0} characters long; at most 100 are allowed")]
    TooLong(usize),
    /// Control characters cannot appear in names.
    #[error("name contains a control character")]
    ControlCharacter,
    /// Nothing of the name survives as a Kubernetes name.
    #[error("name {0:?} has no ASCII letters or digits to form a Kubernetes name from")]
    NoUsableCharacters(String),
}

/// The readable part of the mapping: lower-case ASCII letters and digits, every
/// other run of characters turned into one `-`, trimmed of `-` at both ends.
pub fn slug(name: &str) -> Result<String, NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty);
    }
    let chars = name.chars().count();
    if chars > 100 {
        return Err(NameError::TooLong(chars));
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
    }
    if out.is_empty() {
        return Err(NameError::NoUsableCharacters(name.to_string()));
    }
    Ok(out)
}

/// A short stable hash of the original name (FNV-1a, 32 bits, as 8 hex digits).
pub fn short_hash(name: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// Maps sibling names to Kubernetes names. Names whose slugs collide, or whose
/// slug is longer than [`MAX_NAME_PART`], get a hash of the original name appended,
/// so every name maps to a distinct, stable result.
pub fn k8s_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, String>, (String, NameError)> {
    let mut slugs: Vec<(String, String)> = Vec::new();
    for n in names {
        let s = slug(n).map_err(|e| (n.to_string(), e))?;
        slugs.push((n.to_string(), s));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, s) in &slugs {
        *seen.entry(s.as_str()).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    for (orig, s) in &slugs {
        let collides = seen.get(s.as_str()).copied().unwrap_or(0) > 1;
        let name = if collides || s.len() > MAX_NAME_PART {
            let keep = MAX_NAME_PART - 9;
            let head: String = s.chars().take(keep).collect();
            format!("{}-{}", head.trim_end_matches('-'), short_hash(orig))
        } else {
            s.clone()
        };
        out.insert(orig.clone(), name);
    }
    Ok(out)
}

/// True when `s` is a DNS-1123 label (what most object names must be).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn readable_names() {
        let m = k8s_names(["fast_feedback", "E2E Critical", "unit"]).unwrap();
        assert_eq!(m["fast_feedback"], "fast-feedback");
        assert_eq!(m["E2E Critical"], "e2e-critical");
        assert_eq!(m["unit"], "unit");
    }

    #[test]
    fn collisions_get_distinct_stable_suffixes() {
        let m = k8s_names(["e2e_critical", "E2E Critical"]).unwrap();
        assert_ne!(m["e2e_critical"], m["E2E Critical"]);
        assert!(m["e2e_critical"].starts_with("e2e-critical-"));
        let again = k8s_names(["E2E Critical", "e2e_critical"]).unwrap();
        assert_eq!(m, again);
    }

    #[test]
    fn long_names_are_cut_with_hash() {
        let long = "a very long category name that goes on and on and on";
        let m = k8s_names([long]).unwrap();
        assert!(m[long].len() <= MAX_NAME_PART, "{}", m[long]);
        assert!(is_dns_label(&m[long]));
    }

    #[test]
    fn unusable_names() {
        assert_eq!(slug(""), Err(NameError::Empty));
        assert_eq!(slug("   "), Err(NameError::Empty));
        assert!(matches!(slug("!!!"), Err(NameError::NoUsableCharacters(_))));
        assert_eq!(slug("ünït"), Ok("n-t".to_string()));
        assert_eq!(slug("a\tb"), Err(NameError::ControlCharacter));
        assert!(matches!(
            slug(&"x".repeat(101)),
            Err(NameError::TooLong(101))
        ));
    }

    proptest! {
        #[test]
        fn any_usable_names_map_to_distinct_labels(names in proptest::collection::btree_set("[ -~]{1,60}", 1..20)) {
            let usable: Vec<&str> = names.iter().map(String::as_str).filter(|n| slug(n).is_ok()).collect();
            let m = k8s_names(usable.iter().copied()).unwrap();
            let mut values: Vec<&String> = m.values().collect();
            for v in &values {
                prop_assert!(is_dns_label(v) && v.len() <= MAX_NAME_PART, "{v}");
            }
            values.sort();
            values.dedup();
            prop_assert_eq!(values.len(), usable.len());
        }
    }
}
