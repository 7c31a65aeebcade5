//! The gauges of CategoryRuns by phase and of flaky tests: a pass over the
//! whole cache once a second, not one per reconcile.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::Store;

use crate::api::{CategoryRun, Decoded};
use crate::controller::kit::metrics::Metrics;

/// Keeps the gauges of `crs` in `metrics`, for ever.
pub(super) async fn keep(crs: Store<Decoded<CategoryRun>>, metrics: Arc<Metrics>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let all = crs.state();
        metrics.set_categories(all.iter().filter_map(|c| {
            c.valid().map(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .unwrap_or(crate::plan::Phase::Pending)
                    .as_str()
            })
        }));
        let (mut categories, mut tests) = (0i64, 0i64);
        for s in all.iter().filter_map(|c| c.valid()?.status.as_ref()) {
            categories += i64::from(s.flaky);
            tests = tests.saturating_add(i64::try_from(s.flaky_tests.total()).unwrap_or(i64::MAX));
        }
        metrics.flaky_categories.set(categories);
        metrics.flaky_tests.set(tests);
    }
}
