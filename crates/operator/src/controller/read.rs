//! The reading side of a reconcile: what a run owns, from the caches with
//! this controller's own recent writes laid over them, and the answers to a
//! step's questions (a ConfigMap, a Pod missing from the cache, a log, the
//! endpoints of services). No decisions are made here.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};

use super::build::{CONTAINER, LABEL_RUN, owned_by};
use super::context::{Context, ControllerError};
use super::frozen_plan;
use super::step::{
    Answers, ConfigAnswer, DEFAULT_CONFIG_KEY, FrozenPlanAnswer, Observed, Question,
};
use crate::api::TestLayerRun;
use crate::config::service_k8s_name;

/// Log bytes read from a finished attempt for test counts and the tail.
const LOG_READ_BYTES: i64 = 1 << 20;
/// Questions asked at once.
const CONCURRENT_READS: usize = 16;
/// Longest a log read may take.
const LOG_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What `run` owns, as the caches and this controller's own writes show it.
pub fn observe(ctx: &Context, run: &Arc<TestLayerRun>, answers: Answers) -> Observed {
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let run = ctx.own.runs.fresher(run.clone());

    let mut category_runs: Vec<_> = ctx
        .category_runs
        .state()
        .into_iter()
        .filter(|cr| {
            cr.namespace().as_deref() == Some(&ns)
                && cr.spec.run_name == name
                && owned_by(cr.as_ref(), run.as_ref())
        })
        .map(|cr| ctx.own.category_runs.fresher(cr))
        .collect();
    let seen: BTreeSet<String> = category_runs.iter().map(|c| c.name_any()).collect();
    category_runs.extend(
        ctx.own
            .category_runs
            .unseen(&ns, &|n| seen.contains(n), &|cr| {
                cr.spec.run_name == name && owned_by(cr, run.as_ref())
            }),
    );

    let mut pods: Vec<_> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(&ns) && p.labels().get(LABEL_RUN) == Some(&name)
        })
        .map(|p| ctx.own.pods.fresher(p))
        .collect();
    let seen: BTreeSet<String> = pods.iter().map(|p| p.name_any()).collect();
    pods.extend(ctx.own.pods.unseen(&ns, &|n| seen.contains(n), &|p| {
        p.labels().get(LABEL_RUN) == Some(&name)
    }));

    let runs = ctx
        .runs
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(&ns))
        .map(|r| ctx.own.runs.fresher(r))
        .collect();
    Observed {
        run,
        category_runs,
        pods,
        runs,
        answers,
    }
}

/// One answer.
enum Answer {
    Config(ConfigAnswer),
    FrozenPlan(FrozenPlanAnswer),
    PodExists(String, bool),
    Logs(String, Result<String, String>),
    Unready(Vec<String>),
}

/// Answers `questions` about `run` into `answers`.
pub async fn ask(
    ctx: &Context,
    run: &TestLayerRun,
    questions: Vec<Question>,
    answers: &mut Answers,
) -> Result<(), ControllerError> {
    let ns = run.namespace().unwrap_or_default();
    let futs = questions.into_iter().map(|q| {
        let ns = ns.clone();
        async move {
            Ok::<_, ControllerError>(match q {
                Question::Config => Answer::Config(config_text(ctx, run, &ns).await?),
                Question::FrozenPlan => Answer::FrozenPlan(frozen(ctx, run, &ns).await?),
                Question::PodExists(p) => {
                    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                    let exists = pods
                        .get_opt(&p)
                        .await
                        .map_err(ControllerError::kube(format!("reading pod {p}")))?
                        .is_some();
                    Answer::PodExists(p, exists)
                }
                Question::Logs(p) => {
                    let log = logs(ctx, &ns, &p).await;
                    Answer::Logs(p, log)
                }
                Question::UnreadyServices(s) => {
                    Answer::Unready(unready_services(ctx, &ns, &s).await?)
                }
            })
        }
    });
    let results: Vec<Result<Answer, ControllerError>> = futures::stream::iter(futs)
        .buffer_unordered(CONCURRENT_READS)
        .collect()
        .await;
    for r in results {
        match r? {
            Answer::Config(c) => answers.config = Some(c),
            Answer::FrozenPlan(p) => answers.frozen_plan = Some(p),
            Answer::PodExists(p, e) => {
                answers.pod_exists.insert(p, e);
            }
            Answer::Logs(p, l) => {
                answers.logs.insert(p, l);
            }
            Answer::Unready(u) => answers.unready_services = Some(u),
        }
    }
    Ok(())
}

async fn logs(ctx: &Context, ns: &str, pod: &str) -> Result<String, String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let lp = LogParams {
        container: Some(CONTAINER.into()),
        limit_bytes: Some(LOG_READ_BYTES),
        ..LogParams::default()
    };
    match tokio::time::timeout(LOG_READ_TIMEOUT, pods.logs(pod, &lp)).await {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer in {}s", LOG_READ_TIMEOUT.as_secs())),
    }
}

async fn config_text(
    ctx: &Context,
    run: &TestLayerRun,
    ns: &str,
) -> Result<ConfigAnswer, ControllerError> {
    let src = &run.spec.config;
    if let Some(text) = &src.inline {
        return Ok(ConfigAnswer::Found {
            text: text.clone(),
            origin: format!("TestLayerRun {}/{} spec.config.inline", ns, run.name_any()),
        });
    }
    let Some(r) = &src.config_map_ref else {
        return Ok(ConfigAnswer::Found {
            text: String::new(),
            origin: "spec.config".into(),
        });
    };
    let key = r.key.clone().unwrap_or_else(|| DEFAULT_CONFIG_KEY.into());
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = cms
        .get_opt(&r.name)
        .await
        .map_err(ControllerError::kube(format!(
            "reading ConfigMap {}",
            r.name
        )))?;
    let Some(cm) = cm else {
        return Ok(ConfigAnswer::Missing(format!(
            "ConfigMap {} not found",
            r.name
        )));
    };
    Ok(match cm.data.as_ref().and_then(|d| d.get(&key)) {
        Some(text) => ConfigAnswer::Found {
            text: text.clone(),
            origin: format!("ConfigMap {}/{} key {key}", ns, r.name),
        },
        None => ConfigAnswer::Missing(format!("ConfigMap {} has no key {key:?}", r.name)),
    })
}

/// The run's frozen plan, from the ConfigMap its status names.
async fn frozen(
    ctx: &Context,
    run: &TestLayerRun,
    ns: &str,
) -> Result<FrozenPlanAnswer, ControllerError> {
    let Some(reference) = run
        .status
        .as_ref()
        .and_then(|s| s.plan.as_ref())
        .and_then(|p| p.frozen.as_ref())
    else {
        return Ok(FrozenPlanAnswer::Missing(
            "the run records no frozen plan".into(),
        ));
    };
    let name = &reference.config_map;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = cms
        .get_opt(name)
        .await
        .map_err(ControllerError::kube(format!("reading ConfigMap {name}")))?;
    Ok(match cm {
        None => FrozenPlanAnswer::Missing(format!("ConfigMap {name} not found")),
        Some(cm) => match frozen_plan::decode(&cm, run, reference) {
            Ok(plan) => FrozenPlanAnswer::Found(Arc::new(plan)),
            Err(e) => FrozenPlanAnswer::Missing(e.to_string()),
        },
    })
}

/// Services (by config name) without a ready endpoint in `namespace`.
async fn unready_services(
    ctx: &Context,
    namespace: &str,
    services: &[String],
) -> Result<Vec<String>, ControllerError> {
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), namespace);
    let mut unready = Vec::new();
    for s in services {
        let name = service_k8s_name(s);
        let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
        let list = slices
            .list(&lp)
            .await
            .map_err(ControllerError::kube(format!(
                "listing endpoint slices of service {name}"
            )))?;
        let ready = list.items.iter().any(|sl| {
            sl.endpoints
                .iter()
                .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        });
        if !ready {
            unready.push(s.clone());
        }
    }
    Ok(unready)
}
