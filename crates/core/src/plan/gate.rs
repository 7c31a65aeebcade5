//! Gates a layer passes before its first category starts: one verdict for
//! both executors over what each of them probed (ready endpoints in a
//! cluster, TCP connects on a laptop).

use std::time::Duration;

use super::describe::human_duration;
use crate::words::Reason;

/// Where a gate stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Everything is ready.
    Open,
    /// Still waiting (a sentence saying for what).
    Waiting(String),
    /// Cannot open any more.
    Failed {
        /// Why, as a reason code (`ServicesNotReady`, `DependencyFailed`).
        reason: Reason,
        /// What happened.
        message: String,
    },
}

/// The required-services gate: `unready` are the services not ready yet,
/// `waited` how long the layer has waited for them, `bound` how long it may.
pub fn services_gate(unready: &[String], waited: Duration, bound: Duration) -> Gate {
    if unready.is_empty() {
        Gate::Open
    } else if waited >= bound {
        Gate::Failed {
            reason: Reason::ServicesNotReady,
            message: format!(
                "required services not ready after {}: {}",
                human_duration(bound),
                unready.join(", ")
            ),
        }
    } else {
        Gate::Waiting(format!("waiting for services: {}", unready.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_gate_opens_waits_and_fails_at_its_bound() {
        let s = Duration::from_secs;
        assert_eq!(services_gate(&[], s(100), s(10)), Gate::Open);
        let db = vec!["postgresql".to_string()];
        assert_eq!(
            services_gate(&db, s(3), s(10)),
            Gate::Waiting("waiting for services: postgresql".into())
        );
        assert_eq!(
            services_gate(&db, s(10), s(10)),
            Gate::Failed {
                reason: Reason::ServicesNotReady,
                message: "required services not ready after 10.0s: postgresql".into()
            }
        );
    }
}
