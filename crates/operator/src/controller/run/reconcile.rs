//! The TestLayerRun reconciler: read → [`step`] → ask or apply, until the
//! step has nothing more to do in this pass. Every decision is the pure
//! step's; this loop only reads (caches, and the facts a step asks for) and
//! writes what the step said, in its order.
//!
//! Inside the controller's one guard ([`guarded`]): a run that does not
//! decode is marked Stalled with the field named, and a reconcile that
//! panics is caught and reported on its run; neither stops the controller
//! for the other runs.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action as Requeue;

use crate::api::{Decoded, TestLayerRun};
use crate::controller::kit::context::Context;
use crate::controller::kit::error::ControllerError;
use crate::controller::kit::guard::guarded;
use crate::controller::run::happened::happened;
use crate::controller::run::step::{Answers, Next, step};
use crate::controller::run::{apply, read};

/// Passes of one reconcile at most (a step that asks, then one that writes,
/// then one that goes on with what the writes made, ...).
const MAX_PASSES: usize = 6;
/// When a reconcile used its passes up.
const AGAIN_SOON: Duration = Duration::from_millis(200);

/// Longest wait before a run is looked at again: a far wake-up (a long TTL)
/// is reached by looking again, never by one timer past what a clock holds.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// Reconciles one TestLayerRun as stored, inside the controller's one
/// guard (a run that does not decode is marked Stalled; a panic is caught
/// and reported on the run).
pub async fn reconcile(
    obj: Arc<Decoded<TestLayerRun>>,
    ctx: Arc<Context>,
) -> Result<Requeue, ControllerError> {
    // Decide only on caches that hold everything. After a restart the first
    // runs arrive before the CategoryRuns and Pods are all listed; a Pod the
    // cache does not hold yet, whose attempt its crashed predecessor had not
    // recorded, would look like a free slot.
    crate::controller::kit::cache::synced(&ctx.category_runs).await;
    crate::controller::kit::cache::synced(&ctx.pods).await;
    crate::controller::kit::cache::synced(&ctx.resources).await;
    crate::controller::kit::cache::synced(&ctx.grants).await;
    let _timer = ctx.metrics.reconcile();
    let conditions = |r: &TestLayerRun| r.status.clone().unwrap_or_default().conditions;
    guarded(
        &obj,
        (&ctx.client, &ctx.recorder),
        "run",
        conditions,
        |run, ns| {
            let ctx = ctx.clone();
            async move {
                let name = run.name_any();
                reconcile_run(&run, &ctx, &ns, &name).await
            }
        },
    )
    .await
}

async fn reconcile_run(
    run: &Arc<TestLayerRun>,
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Requeue, ControllerError> {
    let began = std::time::Instant::now();
    let mut answers = Answers::default();
    let mut result = Requeue::requeue(AGAIN_SOON);
    for pass in 0..MAX_PASSES {
        let observed = read::gather(ctx, run, answers.clone());
        let now = Timestamp::now();
        let s = step(&observed, now);
        tracing::debug!(
            run = name,
            namespace = ns,
            pass,
            questions = s.questions.len(),
            writes = ?s.writes.iter().map(|w| w.summary()).collect::<Vec<_>>(),
            since_us = began.elapsed().as_micros() as u64,
            "step"
        );
        if !s.questions.is_empty() {
            if s.questions.iter().all(|q| answers.has(q)) {
                // A step must not ask what it was told; look again later.
                tracing::warn!(questions = ?s.questions, "a step asked again what it was answered");
                break;
            }
            read::ask(ctx, &observed.run, s.questions, &mut answers).await?;
            continue;
        }
        for _ in 0..s.pods_created() {
            ctx.metrics.pod_started(began.elapsed());
        }
        // Counted for the writes made (a refused Pod create leaves the
        // writes after it to the next step, which counts them then).
        let happened: Vec<_> = (s.writes.iter())
            .map(|w| happened(&observed, std::slice::from_ref(w), now))
            .collect();
        let applied = apply::apply(ctx, ns, name, s.writes).await?;
        let made = match applied {
            apply::Applied::All => happened.len(),
            apply::Applied::PodRefused { at } => at,
        };
        for h in happened.iter().take(made).flatten() {
            ctx.metrics.outcomes.record(h);
        }
        if applied != apply::Applied::All {
            // The next step decides, knowing of the refusal.
            answers = Answers::default();
            continue;
        }
        match s.next {
            Next::Again => {
                answers = Answers::default();
                continue;
            }
            Next::After(d) => result = Requeue::requeue(d.min(LONGEST_WAIT)),
            Next::AwaitChange => result = Requeue::await_change(),
        }
        break;
    }
    Ok(result)
}
