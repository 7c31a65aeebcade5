//! Naming and validation helpers: environment variable names, required
//! service names, and service addresses.

use crate::config::names;

pub(super) fn check_env_name(k: &str) -> Result<(), String> {
    let mut chars = k.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{k:?} is not a valid environment variable name (letters, digits and _, not starting with a digit)"
        ))
    }
}

/// The Kubernetes Service name a required service refers to: lower case, `_` as `-`.
pub fn service_k8s_name(s: &str) -> String {
    s.to_ascii_lowercase().replace('_', "-")
}

pub(super) fn check_service_name(s: &str) -> Result<(), String> {
    let k = service_k8s_name(s);
    let ok = names::is_dns_label(&k) && k.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} cannot name a Kubernetes Service (letters, digits, - and _, starting with a letter)"
        ))
    }
}

pub(super) fn check_address(a: &str) -> Result<(), String> {
    match a.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(format!("{a:?} is not a host:port address")),
    }
}
