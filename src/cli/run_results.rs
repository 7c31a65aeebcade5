//! A run's results read back from the cluster: its CategoryRuns, a page at
//! a time, and the test cases their ConfigMaps keep.

use crate::api::CategoryRun;
use crate::api::names::CASES_KEY;
use crate::report::RunReport;
use crate::results::read_case_list;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

/// CategoryRuns listed per request.
const LIST_PAGE: u32 = 500;

/// The test cases of each category's last attempt, from the ConfigMaps
/// that keep them, into `report` (for the JUnit file). A ConfigMap that
/// cannot be read is said; that category keeps one test case of its own.
pub(super) async fn add_test_cases(
    cms: &Api<ConfigMap>,
    list: &[CategoryRun],
    report: &mut RunReport,
) {
    for cr in list {
        let Some(name) = cr
            .status
            .as_ref()
            .and_then(|s| s.attempts.last())
            .and_then(|a| a.test_cases.clone())
        else {
            continue;
        };
        let cases = match cms.get_opt(&name).await {
            Ok(Some(cm)) => cm
                .binary_data
                .as_ref()
                .and_then(|d| d.get(CASES_KEY))
                .map(|b| read_case_list(&b.0))
                .unwrap_or_default(),
            Ok(None) => {
                eprintln!(
                    "warning: ConfigMap {name} (test cases of {}) is gone",
                    cr.spec.category
                );
                continue;
            }
            Err(e) => {
                eprintln!(
                    "warning: cannot read ConfigMap {name} (test cases of {}): {e}",
                    cr.spec.category
                );
                continue;
            }
        };
        if let Some(c) = report
            .categories
            .iter_mut()
            .find(|c| c.name == cr.spec.category)
        {
            c.cases = cases;
        }
    }
}

/// Every CategoryRun of the run `name`, a page at a time (a large run has
/// thousands).
pub(super) async fn category_runs(
    crs: &Api<CategoryRun>,
    name: &str,
) -> Result<Vec<CategoryRun>, kube::Error> {
    category_runs_where(crs, &format!("testlayer.dev/run={name}")).await
}

/// Every CategoryRun that the label `selector` selects, a page at a time.
pub(super) async fn category_runs_where(
    crs: &Api<CategoryRun>,
    selector: &str,
) -> Result<Vec<CategoryRun>, kube::Error> {
    let mut lp = ListParams::default().labels(selector).limit(LIST_PAGE);
    let mut all = Vec::new();
    loop {
        let page = crs.list(&lp).await?;
        all.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(all),
        }
    }
}
