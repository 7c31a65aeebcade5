//! The planner: one pure function from a layer and what was observed to what to
//! do next. No I/O and no clock: time comes in as [`LayerObs::now`].

use std::cmp::Reverse;
use std::time::Duration;

use super::state::{
    Action, AttemptOutcome, CategoryObs, Cause, Decision, LayerObs, LayerOutcome, Phase, Stop,
    Terminal, WaitReason,
};
use crate::layer::{CategoryPlan, LayerPlan, Strategy};

/// Where one category stands while planning.
#[derive(Debug, Clone, Copy, PartialEq)]
enum St {
    /// Ended (recorded before, or decided now).
    Done(Terminal),
    /// An attempt runs; `stop` is set once it must be stopped.
    Running {
        started: Duration,
        stop: Option<Stop>,
    },
    /// Not running; the next attempt may start at `not_before`.
    Idle {
        next_attempt: u32,
        not_before: Duration,
    },
}

/// Decides what to do next for `layer`, given each category's observations
/// (`cats[i]` belongs to `layer.categories[i]`; missing entries count as never
/// started) and the layer-wide inputs.
pub fn plan(layer: &LayerPlan, cats: &[CategoryObs], obs: &LayerObs) -> Decision {
    let n = layer.categories.len();
    let empty = CategoryObs::default();
    let cat_obs = |i: usize| cats.get(i).unwrap_or(&empty);
    let now = obs.now;
    let mut actions = Vec::new();

    // 1. Where each category stands, finishing those whose last attempt decides it.
    let mut st: Vec<St> = (0..n)
        .map(|i| {
            let (s, finish) = derive(layer, i, cat_obs(i));
            if finish && let St::Done(terminal) = s {
                actions.push(Action::Finish {
                    category: i,
                    terminal,
                });
            }
            s
        })
        .collect();

    // 2. Attempts past their own timeout.
    for (i, s) in st.iter_mut().enumerate() {
        if let St::Running {
            started,
            stop: stop @ None,
        } = s
            && now >= *started + layer.categories[i].timeout
        {
            *stop = Some(Stop::End(Terminal {
                phase: Phase::TimedOut,
                cause: Cause::Timeout,
            }));
        }
    }

    // 3. Layer-wide ends: cancel, deadline, fail-fast.
    let deadline_at = layer.settings.deadline.map(|d| obs.started_at + d);
    let layer_stop = if obs.cancel {
        Some((
            Terminal {
                phase: Phase::Cancelled,
                cause: Cause::CancelRequested,
            },
            Terminal {
                phase: Phase::Cancelled,
                cause: Cause::CancelRequested,
            },
        ))
    } else if deadline_at.is_some_and(|d| now >= d) {
        Some((
            Terminal {
                phase: Phase::TimedOut,
                cause: Cause::LayerDeadline,
            },
            Terminal {
                phase: Phase::Cancelled,
                cause: Cause::LayerDeadline,
            },
        ))
    } else if layer.settings.fail_fast {
        first_failure(layer, &st).map(|f| {
            let t = Terminal {
                phase: Phase::Cancelled,
                cause: Cause::FailFast(f),
            };
            (t, t)
        })
    } else {
        None
    };
    if let Some((running_end, _)) = layer_stop {
        for s in st.iter_mut() {
            if let St::Running {
                stop: stop @ None, ..
            } = s
            {
                *stop = Some(Stop::End(running_end));
            }
        }
    }

    // 4. Dependents of anything that did not or will not succeed are skipped.
    // A dependency stopped or ended by the layer's own end (cancel, deadline,
    // fail-fast) is not the reason: its dependents end with the layer in
    // step 5, however often the executor asks (even with a stale view of what
    // it recorded).
    for &i in layer.topo_order() {
        if !matches!(st[i], St::Idle { .. }) {
            continue;
        }
        let failed_dep = layer.categories[i]
            .dependencies
            .iter()
            .copied()
            .find(|&d| match st[d] {
                St::Done(t) => {
                    !satisfies(layer, d, t)
                        && !matches!(
                            t.cause,
                            Cause::CancelRequested | Cause::LayerDeadline | Cause::FailFast(_)
                        )
                }
                St::Running { stop, .. } => {
                    matches!(stop, Some(Stop::End(t)) if !allowed(layer, d, &t))
                        && layer_stop.is_none()
                }
                St::Idle { .. } => false,
            });
        if let Some(d) = failed_dep {
            let terminal = Terminal {
                phase: Phase::Skipped,
                cause: Cause::DependencyFailed(d),
            };
            st[i] = St::Done(terminal);
            actions.push(Action::Finish {
                category: i,
                terminal,
            });
        }
    }

    // 5. Whatever still waits ends with the layer, if the layer ends.
    if let Some((_, idle_end)) = layer_stop {
        for (i, s) in st.iter_mut().enumerate() {
            if matches!(s, St::Idle { .. }) {
                *s = St::Done(idle_end);
                actions.push(Action::Finish {
                    category: i,
                    terminal: idle_end,
                });
            }
        }
    }

    // 6. Stops and interruptions of running attempts.
    for (i, s) in st.iter_mut().enumerate() {
        if let St::Running { stop, .. } = s {
            if stop.is_none() && obs.suspend {
                *stop = Some(Stop::Interrupt);
            }
            if let Some(stop) = *stop {
                actions.push(Action::Stop { category: i, stop });
            }
        }
    }

    // 7. Admission.
    let mut waiting: Vec<Option<WaitReason>> = vec![None; n];
    let mut started = vec![false; n];
    let granted: Vec<bool> = (0..n).map(|i| cat_obs(i).granted).collect();
    let claims = admit(
        layer,
        &st,
        obs,
        &granted,
        &mut actions,
        &mut waiting,
        &mut started,
    );

    // 8. Phases, next wake-up, outcome.
    let mut wake_at: Option<Duration> = None;
    let mut wake = |t: Duration| {
        if t > now {
            wake_at = Some(wake_at.map_or(t, |w: Duration| w.min(t)));
        }
    };
    let mut phases = Vec::with_capacity(n);
    let mut all_done = true;
    for (i, s) in st.iter().enumerate() {
        phases.push(match s {
            St::Done(t) => t.phase,
            St::Running { started, stop } => {
                all_done = false;
                if stop.is_none() {
                    wake(*started + layer.categories[i].timeout);
                }
                Phase::Running
            }
            St::Idle { not_before, .. } => {
                all_done = false;
                if started[i] {
                    wake(now + layer.categories[i].timeout);
                    Phase::Running
                } else {
                    wake(*not_before);
                    Phase::Waiting
                }
            }
        });
    }
    let outcome = if all_done {
        Some(outcome_of(layer, &st))
    } else {
        None
    };
    if outcome.is_none()
        && let Some(d) = deadline_at
    {
        wake(d);
    }
    let blocked_on_resources = !claims.is_empty() && !phases.contains(&Phase::Running);
    Decision {
        actions,
        phases,
        waiting,
        wake_at,
        outcome,
        claims,
        blocked_on_resources,
    }
}

/// A category's standing from its observations; `true` when the standing was
/// decided now (so a `Finish` must be recorded).
fn derive(layer: &LayerPlan, i: usize, o: &CategoryObs) -> (St, bool) {
    if let Some(t) = o.terminal {
        return (St::Done(t), false);
    }
    let Some(last) = o.attempts.last() else {
        return (
            St::Idle {
                next_attempt: 1,
                not_before: Duration::ZERO,
            },
            false,
        );
    };
    let next_attempt = o.attempts.len() as u32 + 1;
    let Some((ended_at, outcome)) = last.ended else {
        return (
            St::Running {
                started: last.started_at,
                stop: last.stop,
            },
            false,
        );
    };
    let done = |phase, cause| (St::Done(Terminal { phase, cause }), true);
    let c = &layer.categories[i];
    // A timeout decided on a stale view (the executor learned of the end
    // late: a watch that was away): the attempt had ended on its own before
    // it was due, and that end stands.
    let ended_in_time =
        outcome != AttemptOutcome::Stopped && ended_at < last.started_at + c.timeout;
    // A stopped attempt ends its category as its stop said, however it ended.
    match last.stop {
        Some(Stop::End(t)) if t.cause == Cause::Timeout && ended_in_time => {}
        Some(Stop::End(t)) => return (St::Done(t), true),
        // Interrupted, not failed: start again, no backoff, no retry used.
        Some(Stop::Interrupt) => {
            return (
                St::Idle {
                    next_attempt,
                    not_before: ended_at,
                },
                false,
            );
        }
        None => {}
    }
    match outcome {
        AttemptOutcome::Succeeded => done(Phase::Succeeded, Cause::Passed),
        AttemptOutcome::TimedOut => done(Phase::TimedOut, Cause::Timeout),
        // Stopped without a recorded stop: the executor lost the record;
        // start again, as after an interruption.
        AttemptOutcome::Stopped => (
            St::Idle {
                next_attempt,
                not_before: ended_at,
            },
            false,
        ),
        AttemptOutcome::Failed { infra } => {
            let (mut tests, mut infras) = (0u32, 0u32);
            for a in o.attempts.iter().filter(|a| a.stop.is_none()) {
                match a.ended {
                    Some((_, AttemptOutcome::Failed { infra: true })) => infras += 1,
                    Some((_, AttemptOutcome::Failed { infra: false })) => tests += 1,
                    _ => {}
                }
            }
            let retry_left = if infra {
                infras <= c.infra_retries
            } else {
                tests <= c.retries
            };
            if retry_left {
                let not_before = ended_at + c.backoff_before(tests + infras);
                (
                    St::Idle {
                        next_attempt,
                        not_before,
                    },
                    false,
                )
            } else if infra {
                done(Phase::Failed, Cause::InfraFailed)
            } else {
                done(Phase::Failed, Cause::TestsFailed)
            }
        }
    }
}

/// Whether a category that ended as `t` failed on its own (its tests, its
/// infrastructure, its timeout) and `allow_failure` lets it: the layer and
/// its dependents go on as if it had passed.
pub fn failure_allowed(c: &CategoryPlan, t: &Terminal) -> bool {
    c.allow_failure
        && t.phase.is_failure()
        && matches!(
            t.cause,
            Cause::TestsFailed | Cause::InfraFailed | Cause::Timeout
        )
}

fn allowed(layer: &LayerPlan, i: usize, t: &Terminal) -> bool {
    failure_allowed(&layer.categories[i], t)
}

/// Whether category `i`, ended as `t`, lets its dependents run and the
/// layer pass: it succeeded, or its failure is allowed.
fn satisfies(layer: &LayerPlan, i: usize, t: Terminal) -> bool {
    t.phase == Phase::Succeeded || allowed(layer, i, &t)
}

/// The lowest-index category that failed or is being stopped at its
/// timeout, of those not allowed to fail.
fn first_failure(layer: &LayerPlan, st: &[St]) -> Option<usize> {
    st.iter().enumerate().position(|(i, s)| match s {
        St::Done(t)
        | St::Running {
            stop: Some(Stop::End(t)),
            ..
        } => t.phase.is_failure() && !allowed(layer, i, t),
        _ => false,
    })
}

/// Starts what may start; returns the categories that may start but for
/// their shared resources (they keep their slot and budget meanwhile, so a
/// grant never waits for either).
fn admit(
    layer: &LayerPlan,
    st: &[St],
    obs: &LayerObs,
    granted: &[bool],
    actions: &mut Vec<Action>,
    waiting: &mut [Option<WaitReason>],
    started: &mut [bool],
) -> Vec<usize> {
    let mut claims = Vec::new();
    let mut running = 0u32;
    let (mut cpu, mut mem) = (0u64, 0u64);
    for (i, s) in st.iter().enumerate() {
        if matches!(s, St::Running { .. }) {
            running += 1;
            let size = layer.categories[i].resources.budget_size();
            cpu += size.cpu_millis.unwrap_or(0);
            mem += size.memory_bytes.unwrap_or(0);
        }
    }
    let mut ready: Vec<(usize, u32)> = Vec::new();
    for (i, s) in st.iter().enumerate() {
        let St::Idle {
            next_attempt,
            not_before,
        } = *s
        else {
            continue;
        };
        let pending_dep = layer.categories[i]
            .dependencies
            .iter()
            .copied()
            .find(|&d| !matches!(st[d], St::Done(t) if satisfies(layer, d, t)));
        waiting[i] = if let Some(d) = pending_dep {
            Some(WaitReason::Dependency(d))
        } else if obs.hold || obs.suspend {
            Some(WaitReason::Hold)
        } else if not_before > obs.now {
            Some(WaitReason::Backoff(not_before))
        } else {
            ready.push((i, next_attempt));
            None
        };
    }
    match layer.settings.strategy {
        Strategy::HybridSmart => ready.sort_by_key(|&(i, _)| {
            (
                Reverse(layer.remaining_path(i)),
                layer.categories[i].priority_order,
                i,
            )
        }),
        _ => ready.sort_by_key(|&(i, _)| (layer.categories[i].priority_order, i)),
    }
    let limit = layer.effective_parallelism().unwrap_or(u32::MAX);
    for (i, attempt) in ready {
        if running >= limit {
            waiting[i] = Some(WaitReason::Slot);
            continue;
        }
        let size = layer.categories[i].resources.budget_size();
        let fits = |used: u64, need: Option<u64>, have: Option<u64>| match (need, have) {
            (Some(need), Some(have)) => used + need <= have,
            _ => true,
        };
        if !fits(cpu, size.cpu_millis, layer.settings.budget.cpu_millis)
            || !fits(mem, size.memory_bytes, layer.settings.budget.memory_bytes)
        {
            waiting[i] = Some(WaitReason::Budget);
            continue;
        }
        running += 1;
        cpu += size.cpu_millis.unwrap_or(0);
        mem += size.memory_bytes.unwrap_or(0);
        if !layer.categories[i].uses.is_empty() && !granted[i] {
            waiting[i] = Some(WaitReason::Resource);
            claims.push(i);
            continue;
        }
        started[i] = true;
        actions.push(Action::Start {
            category: i,
            attempt,
        });
    }
    claims
}

fn outcome_of(layer: &LayerPlan, st: &[St]) -> LayerOutcome {
    let causes = || {
        st.iter().enumerate().filter_map(|(i, s)| match s {
            St::Done(t) => Some((i, *t)),
            _ => None,
        })
    };
    if causes().any(|(_, t)| t.cause == Cause::LayerDeadline) {
        LayerOutcome::TimedOut
    } else if causes().any(|(_, t)| t.cause == Cause::CancelRequested) {
        LayerOutcome::Cancelled
    } else if causes().all(|(i, t)| satisfies(layer, i, t)) {
        LayerOutcome::Succeeded
    } else {
        LayerOutcome::Failed
    }
}
