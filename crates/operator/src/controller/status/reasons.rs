//! The reasons of the conditions the controller sets on objects it cannot
//! use or that wait for something (a category's reasons are the core's
//! `Reason`): one list, each word spelled once.

/// Why an object is stalled or waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StallReason {
    /// A value the controller cannot use (a spec that does not decode or
    /// is out of range).
    InvalidSpec,
    /// One of the run's CategoryRuns is invalid.
    InvalidCategoryRun,
    /// The reconcile of the object failed (a defect of the controller).
    ControllerError,
    /// The layer config does not check.
    InvalidConfig,
    /// The layer config cannot be found (yet).
    ConfigNotFound,
    /// The run's objects disagree with its frozen plan.
    Inconsistent,
    /// The frozen plan is gone, with CategoryRuns missing.
    PlanLost,
    /// The run a rerun names does not exist or has no failures to rerun.
    RerunSourceNotFound,
    /// The run a rerun names has not finished yet.
    WaitingForRerunSource,
    /// A TestLayerSchedule that cannot tick.
    InvalidSchedule,
    /// A TestLayerTrigger that cannot work.
    InvalidTrigger,
}

impl StallReason {
    /// The CamelCase word of the condition's `reason`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StallReason::InvalidSpec => "InvalidSpec",
            StallReason::InvalidCategoryRun => "InvalidCategoryRun",
            StallReason::ControllerError => "ControllerError",
            StallReason::InvalidConfig => "InvalidConfig",
            StallReason::ConfigNotFound => "ConfigNotFound",
            StallReason::Inconsistent => "Inconsistent",
            StallReason::PlanLost => "PlanLost",
            StallReason::RerunSourceNotFound => "RerunSourceNotFound",
            StallReason::WaitingForRerunSource => "WaitingForRerunSource",
            StallReason::InvalidSchedule => "InvalidSchedule",
            StallReason::InvalidTrigger => "InvalidTrigger",
        }
    }
}

impl std::fmt::Display for StallReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_one_camel_case_word_of_its_own() {
        let all = [
            StallReason::InvalidSpec,
            StallReason::InvalidCategoryRun,
            StallReason::ControllerError,
            StallReason::InvalidConfig,
            StallReason::ConfigNotFound,
            StallReason::Inconsistent,
            StallReason::PlanLost,
            StallReason::RerunSourceNotFound,
            StallReason::WaitingForRerunSource,
            StallReason::InvalidSchedule,
            StallReason::InvalidTrigger,
        ];
        let words: std::collections::BTreeSet<_> = all.iter().map(|r| r.as_str()).collect();
        assert_eq!(words.len(), all.len());
        for w in words {
            assert!(w.starts_with(|c: char| c.is_ascii_uppercase()), "{w}");
            assert!(w.chars().all(|c| c.is_ascii_alphanumeric()), "{w}");
            // Not a word of the categories' vocabulary: one meaning each.
            let category: crate::words::Reason = w.parse().unwrap_or(crate::words::Reason::Pending);
            assert!(
                matches!(category, crate::words::Reason::Other(_)),
                "{w} is also a category reason"
            );
        }
    }
}
