//! The TestLayerRun reconciler: read → [`step`] → ask or apply, until the
//! step has nothing more to do in this pass. Every decision is the pure
//! step's; this loop only reads (caches, and the facts a step asks for) and
//! writes what the step said, in its order.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action as Requeue;

use super::context::{Context, ControllerError};
use super::step::{Answers, Next, step};
use super::{apply, read};
use crate::api::TestLayerRun;
use crate::plan::Phase;

/// Passes of one reconcile at most (a step that asks, then one that writes,
/// then one that goes on with what the writes made, ...).
const MAX_PASSES: usize = 6;
/// When a reconcile used its passes up.
const AGAIN_SOON: Duration = Duration::from_millis(200);

/// Reconciles one TestLayerRun.
pub async fn reconcile(
    run: Arc<TestLayerRun>,
    ctx: Arc<Context>,
) -> Result<Requeue, ControllerError> {
    let _timer = ctx.metrics.reconcile();
    let began = std::time::Instant::now();
    if run.metadata.namespace.is_none() {
        return Err(ControllerError::Incomplete("namespace"));
    }
    let mut answers = Answers::default();
    let mut result = Requeue::requeue(AGAIN_SOON);
    for _ in 0..MAX_PASSES {
        let observed = read::observe(&ctx, &run, answers.clone());
        let s = step(&observed, Timestamp::now());
        if !s.questions.is_empty() {
            if s.questions.iter().all(|q| answers.has(q)) {
                // A step must not ask what it was told; look again later.
                tracing::warn!(questions = ?s.questions, "a step asked again what it was answered");
                break;
            }
            read::ask(&ctx, &observed.run, s.questions, &mut answers).await?;
            continue;
        }
        for _ in 0..s.pods_created() {
            ctx.metrics.pod_started(began.elapsed());
        }
        apply::apply(&ctx, &observed.run, s.writes).await?;
        match s.next {
            Next::Again => {
                answers = Answers::default();
                continue;
            }
            Next::After(d) => result = Requeue::requeue(d),
            Next::AwaitChange => result = Requeue::await_change(),
        }
        break;
    }
    ctx.metrics
        .set_categories(ctx.category_runs.state().iter().map(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or(Phase::Pending)
                .as_str()
        }));
    Ok(result)
}
