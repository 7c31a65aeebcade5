//! The controllers of schedules and triggers, each with its own narrow
//! cache of the runs it created.

use std::sync::Arc;
use tokio_util::task::AbortOnDropHandle;

use futures::StreamExt;
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self};
use kube::runtime::watcher;

use super::caches::{api, cached, controller_of};
use crate::api::names::{LABEL_SCHEDULE, LABEL_TRIGGER};
use crate::api::{Decoded, TestLayerRun, TestLayerSchedule, TestLayerTrigger};
use crate::controller::kit::metrics::Metrics;
use crate::controller::schedule::reconcile::{
    ScheduleContext, error_policy as schedule_error_policy, reconcile as reconcile_schedule,
};
use crate::controller::trigger::reconcile::{
    TriggerContext, error_policy as trigger_error_policy, reconcile as reconcile_trigger,
};
use crate::controller::trigger::watches::follow as follow_watched;

/// The runs schedules created (a narrow watch of runs: only those labelled
/// by a schedule) and the schedule controller, running until a signal.
pub(super) fn schedules(
    client: &Client,
    ns: Option<&str>,
    wc: &watcher::Config,
    recorder: &Recorder,
    metrics: &Arc<Metrics>,
) -> (
    reflector::Store<Decoded<TestLayerRun>>,
    impl std::future::Future<Output = ()> + use<>,
) {
    // Schedules, with the runs they created (a second, narrow watch of
    // runs: only those labelled by a schedule).
    let (sched_runs, sched_runs_stream) = cached(
        api::<Decoded<TestLayerRun>>(client, ns),
        wc.clone().labels(LABEL_SCHEDULE),
        None,
    );
    let schedule_ctx = Arc::new(ScheduleContext {
        client: client.clone(),
        runs: sched_runs.clone(),
        recorder: recorder.clone(),
        metrics: metrics.clone(),
    });
    let schedules = controller_of(api::<Decoded<TestLayerSchedule>>(client, ns), wc.clone())
        .owns_stream(sched_runs_stream)
        .shutdown_on_signal()
        .run(reconcile_schedule, schedule_error_policy, schedule_ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "schedule reconcile error");
            }
        });
    (sched_runs, schedules)
}

/// The runs triggers created, the task that watches the kinds triggers
/// watch (waking their triggers), and the trigger controller, running
/// until a signal.
pub(super) fn triggers(
    client: &Client,
    ns: Option<&str>,
    wc: &watcher::Config,
    recorder: &Recorder,
    metrics: &Arc<Metrics>,
) -> (
    reflector::Store<Decoded<TestLayerRun>>,
    AbortOnDropHandle<()>,
    impl std::future::Future<Output = ()> + use<>,
) {
    // Triggers, with the runs they created, woken also by the watches of
    // the kinds they watch.
    let (trig_runs, trig_runs_stream) = cached(
        api::<Decoded<TestLayerRun>>(client, ns),
        wc.clone().labels(LABEL_TRIGGER),
        None,
    );
    let (wake, woken) = futures::channel::mpsc::unbounded();
    let trigger_controller =
        controller_of(api::<Decoded<TestLayerTrigger>>(client, ns), wc.clone())
            .owns_stream(trig_runs_stream)
            .reconcile_on(woken);
    let trigger_ctx = Arc::new(TriggerContext {
        client: client.clone(),
        runs: trig_runs.clone(),
        triggers: trigger_controller.store(),
        recorder: recorder.clone(),
        metrics: metrics.clone(),
        kinds: Default::default(),
    });
    let watches = AbortOnDropHandle::new(tokio::spawn(follow_watched(
        trigger_ctx.clone(),
        ns.map(String::from),
        wake,
    )));
    let triggers = trigger_controller
        .shutdown_on_signal()
        .run(reconcile_trigger, trigger_error_policy, trigger_ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "trigger reconcile error");
            }
        });
    (trig_runs, watches, triggers)
}
