//! The report of a TestLayerRun read back from the cluster (its status and
//! its CategoryRuns), in the shape both executors print.

use testlayer_core::plan::{LayerOutcome, Phase};
use testlayer_core::report::{AttemptReport, CategoryReport, RunReport};
use testlayer_core::words::{AttemptReason, Reason};

/// The report of a finished (or still running) TestLayerRun from its status
/// and its CategoryRuns, as `testlayer submit` prints it.
pub fn run_report(
    run: &crate::api::TestLayerRun,
    categories: &[crate::api::CategoryRun],
) -> RunReport {
    use crate::api::LayerPhase;
    let st = run.status.clone().unwrap_or_default();
    let outcome = match st.phase {
        Some(LayerPhase::Succeeded) => LayerOutcome::Succeeded,
        Some(LayerPhase::TimedOut) => LayerOutcome::TimedOut,
        Some(LayerPhase::Cancelled) => LayerOutcome::Cancelled,
        _ => LayerOutcome::Failed,
    };
    let secs =
        |s: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
         e: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| match (s, e) {
            (Some(s), Some(e)) => crate::controller::run::step::offset(&s.0, &e.0).as_secs_f64(),
            _ => 0.0,
        };
    // Every category's detail is in its CategoryRun (a large run's status
    // lists none), in config order.
    let mut crs: Vec<&crate::api::CategoryRun> = categories.iter().collect();
    crs.sort_by_key(|c| c.spec.index);
    crs.dedup_by_key(|c| c.spec.index);
    let cats = crs
        .into_iter()
        .map(|cr| {
            let cs = cr.status.clone().unwrap_or_default();
            CategoryReport {
                name: cr.spec.category.clone(),
                phase: cs.phase.unwrap_or(Phase::Pending),
                message: cs.message.clone().unwrap_or_default(),
                reason: cs.reason.clone().unwrap_or(Reason::Pending),
                attempts: cs
                    .attempts
                    .iter()
                    .map(|a| AttemptReport {
                        number: a.number,
                        exit_code: a.exit_code,
                        reason: a.reason.clone().unwrap_or(if a.stop.is_some() {
                            AttemptReason::Stopped
                        } else {
                            AttemptReason::Other("Running".into())
                        }),
                        duration_secs: secs(&a.start_time, &a.completion_time),
                        start_secs: a
                            .start_time
                            .as_ref()
                            .filter(|_| cr.spec.passed_in.is_none())
                            .map(|t| secs(&st.start_time, &Some(t.clone()))),
                        infrastructure: a.infrastructure,
                        report_problem: a.report_problem.clone(),
                        passed_by_quarantine: a.passed_by_quarantine,
                    })
                    .collect(),
                duration_secs: secs(&cs.start_time, &cs.completion_time),
                counts: cs.counts,
                failed_tests: cs.failed_tests.clone(),
                flaky: cs.flaky,
                flaky_tests: cs.flaky_tests.clone(),
                quarantined_tests: cs.quarantined_tests.clone(),
                allowed_failure: cs.allowed_failure,
                quarantine: cr.spec.quarantine.clone(),
                dependencies: cr.spec.dependencies.clone(),
                cases: Vec::new(),
                log_tail: cs.log_tail.clone().unwrap_or_default(),
                log_file: None,
            }
        })
        .collect();
    RunReport {
        layer: run.spec.layer.clone(),
        display_name: st
            .plan
            .as_ref()
            .map_or_else(|| run.spec.layer.clone(), |p| p.display_name.clone()),
        environment: run.spec.environment.clone(),
        strategy: st
            .strategy
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        outcome,
        duration_secs: secs(&st.start_time, &st.completion_time),
        counts: st.counts.unwrap_or_default(),
        plan: None,
        rerun_of: run.spec.rerun_of.clone(),
        categories: cats,
    }
}
