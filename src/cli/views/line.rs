//! A waiting category's place in the line of each shared resource it
//! waits for, read from the TestLayerResources' statuses when `get` asks
//! (a status records no place: every grant would rewrite each waiting
//! one).

use std::collections::BTreeMap;

use crate::api::{MAX_LISTED_HOLDERS, ResourceClaim, TestLayerResourceStatus};

/// The lines of a namespace's shared resources, by resource name, as their
/// statuses last said.
#[derive(Debug, Clone, Default)]
pub struct Lines(pub BTreeMap<String, TestLayerResourceStatus>);

impl Lines {
    /// Where `holder` (a CategoryRun or run of namespace `ns`) stands in
    /// each line `claim` waits in: `staging-db: 3rd in line`, or beyond the
    /// listed first when it is not among them. Resources without a status
    /// are left out.
    pub fn places(&self, holder: &str, ns: &str, claim: &ResourceClaim) -> Vec<String> {
        claim
            .wants
            .iter()
            .filter_map(|w| {
                let st = self.0.get(&w.resource)?;
                let at = st.next.iter().position(|h| {
                    h.holder == holder && h.namespace.as_deref().is_none_or(|n| n == ns)
                });
                Some(match at {
                    Some(i) => format!("{}: {} in line", w.resource, ordinal(i + 1)),
                    None if st.next.len() >= MAX_LISTED_HOLDERS => format!(
                        "{}: behind the first {MAX_LISTED_HOLDERS} of {} waiting",
                        w.resource, st.waiting
                    ),
                    // Not listed yet: the status is written once a second.
                    None => format!("{}: {} waiting", w.resource, st.waiting),
                })
            })
            .collect()
    }
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ResourceHolder, ResourceUnits};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn claim(resources: &[&str]) -> ResourceClaim {
        ResourceClaim {
            attempt: 1,
            since: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            priority: 0,
            wants: resources
                .iter()
                .map(|r| ResourceUnits {
                    resource: r.to_string(),
                    units: 1,
                })
                .collect(),
        }
    }

    fn waiting(holders: &[&str], waiting: u32) -> TestLayerResourceStatus {
        TestLayerResourceStatus {
            waiting,
            next: holders
                .iter()
                .map(|h| ResourceHolder {
                    holder: h.to_string(),
                    run: "r".into(),
                    units: 1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_place_is_read_from_the_line_of_each_resource() {
        let mut lines = Lines::default();
        lines
            .0
            .insert("db".into(), waiting(&["r-a", "r-b", "r-c"], 3));
        let many: Vec<String> = (0..MAX_LISTED_HOLDERS).map(|i| format!("o-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        lines.0.insert("pool".into(), waiting(&many, 57));
        lines.0.insert("fresh".into(), waiting(&[], 0));
        assert_eq!(
            lines.places("r-c", "ci", &claim(&["db", "pool", "gone", "fresh"])),
            [
                "db: 3rd in line",
                "pool: behind the first 20 of 57 waiting",
                "fresh: 0 waiting"
            ]
        );
        // Another namespace's holder of that name is not this one.
        let mut other = waiting(&["r-c"], 1);
        other.next[0].namespace = Some("elsewhere".into());
        lines.0.insert("db".into(), other);
        assert_eq!(
            lines.places("r-c", "ci", &claim(&["db"])),
            ["db: 1 waiting"]
        );
        assert_eq!(ordinal(11), "11th");
        assert_eq!(ordinal(22), "22nd");
    }
}
