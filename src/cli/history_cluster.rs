//! The runs of a layer that a cluster keeps, as the trend reads them: its
//! finished TestLayerRuns of a namespace and their CategoryRuns (the
//! failing and flaky tests are theirs), in two lists.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::run_results::category_runs_where;
use crate::api::{CategoryRun, TestLayerRun};
use crate::trend::PastRun;

/// The `last` newest finished runs of `layer` in `ns` (leaving out the run
/// named `but`), oldest first, each with the tests that failed and flaked
/// in it.
pub(super) async fn past_runs(
    client: &Client,
    ns: &str,
    layer: &str,
    last: usize,
    but: Option<&str>,
) -> Result<Vec<PastRun>, kube::Error> {
    let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), ns);
    let mut ended: Vec<TestLayerRun> = (runs.list(&ListParams::default()).await?.items)
        .into_iter()
        .filter(|r| r.spec.layer == layer && Some(r.name_any().as_str()) != but)
        .filter(|r| {
            let st = r.status.as_ref();
            st.and_then(|s| s.phase).is_some_and(|p| p.is_terminal())
                && st.and_then(|s| s.completion_time.as_ref()).is_some()
        })
        .collect();
    // Newest first: status times are whole seconds, so runs that ended in
    // the same second are ordered by creation, then name.
    ended.sort_by_key(|r| {
        std::cmp::Reverse((
            (r.status.as_ref())
                .and_then(|s| s.completion_time.as_ref())
                .map(|t| t.0),
            r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            r.name_any(),
        ))
    });
    ended.truncate(last);
    // Oldest first, as the trend takes them.
    ended.reverse();
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = ended.iter().map(|r| r.name_any()).collect();
    let crs: Api<CategoryRun> = Api::namespaced(client.clone(), ns);
    let selector = format!("testlayer.dev/run in ({})", names.join(","));
    let all = category_runs_where(&crs, &selector).await?;
    Ok(ended
        .iter()
        .map(|r| {
            let name = r.name_any();
            let own: Vec<CategoryRun> = (all.iter())
                .filter(|c| c.spec.run_name == name)
                .cloned()
                .collect();
            past_run(r, &own)
        })
        .collect())
}

/// A finished run and its CategoryRuns, as the trend remembers it.
pub(super) fn past_run(run: &TestLayerRun, crs: &[CategoryRun]) -> PastRun {
    let report = testlayer_operator::report::run_report(run, crs);
    let ended = (run.status.as_ref())
        .and_then(|s| s.completion_time.as_ref())
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    let mut p = PastRun::from_report(&report, ended.to_string());
    p.name = Some(run.name_any());
    p
}
