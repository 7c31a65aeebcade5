//! The runs a TestLayerTrigger made, as the trigger tests read them.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::ListParams;
use testlayer::api::TestLayerRun;

use super::{Fixture, eventually};

/// The runs trigger `trigger` made, oldest first.
pub async fn runs_of(fx: &Fixture, trigger: &str) -> Vec<TestLayerRun> {
    let mut runs = fx
        .runs()
        .list(&ListParams::default().labels(&format!("testlayer.dev/trigger={trigger}")))
        .await
        .expect("runs")
        .items;
    runs.sort_by_key(|r| r.metadata.creation_timestamp.clone().map(|t| t.0));
    runs
}

/// Waits up to `timeout` until trigger `trigger` made at least `n` runs,
/// and returns them, oldest first.
pub async fn wait_runs(
    fx: &Fixture,
    trigger: &str,
    n: usize,
    timeout: Duration,
) -> Vec<TestLayerRun> {
    eventually(timeout, format!("{n} run(s) of {trigger}"), async || {
        let runs = runs_of(fx, trigger).await;
        if runs.len() >= n {
            Ok(runs)
        } else {
            Err(format!("{} runs", runs.len()))
        }
    })
    .await
}

/// The revision a run was made for (its `testlayer.dev/revision`).
pub fn revision_of(r: &TestLayerRun) -> String {
    r.annotations()
        .get("testlayer.dev/revision")
        .cloned()
        .unwrap_or_default()
}
