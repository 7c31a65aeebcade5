//! The reading side of a reconcile: what a run owns, from the caches with
//! this controller's own recent writes laid over them, the Pod creates the
//! apiserver refused, and the answers to a step's questions (a ConfigMap, a
//! Pod missing from the cache, a log, the endpoints of services). No
//! decisions are made here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::names::DEFAULT_CONFIG_KEY;
use crate::api::names::LABEL_RUN;
use crate::api::{CategoryRun, Decoded, ResourceClaim, TestLayerRun};
use crate::config::service_k8s_name;
use crate::controller::kit::by_run::ByRun;
use crate::controller::kit::context::Context;
use crate::controller::kit::error::ControllerError;
use crate::controller::kit::own_writes::{OwnWrites, version};
use crate::controller::run::build::owned_by;
use crate::controller::run::frozen_plan::{self, FrozenPlan};
use crate::controller::run::read_logs::log_read_again_once;
use crate::controller::run::step::{
    Answers, ConfigAnswer, FrozenPlanAnswer, LogAnswer, Observed, PodOwner, Question, RerunAnswer,
    RerunSource,
};
use crate::controller::shared::claims::{Grant, RecordedClaim, SharedView};
use crate::history::measured;
use crate::words::AttemptReason;

/// Questions asked at once.
const CONCURRENT_READS: usize = 16;

/// What `run` owns, as the caches and this controller's own writes show it.
pub fn gather(ctx: &Context, run: &Arc<TestLayerRun>, answers: Answers) -> Observed {
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    // The run as the reconcile began may be older than the cache by now (a
    // reconcile makes several passes): the newer of the two, then this
    // controller's own write over it.
    let cached =
        (ctx.runs.get(&ObjectRef::new(&name).within(&ns))).and_then(|r| r.valid().cloned());
    let run = ctx.own.runs.fresher(newer(run, cached));

    let mut category_runs = Vec::new();
    let mut invalid = Vec::new();
    for cr in of_run(&ctx.category_runs, &ctx.by_run.category_runs, &ns, &name) {
        if !owned_by(cr.as_ref(), run.as_ref()) {
            continue;
        }
        match cr.as_ref() {
            Decoded::Valid(cr) if cr.spec.run_name == name => {
                category_runs.push(ctx.own.category_runs.fresher(cr.clone()));
            }
            Decoded::Valid(_) => {}
            Decoded::Invalid(u) => invalid.push(u.clone()),
        }
    }
    // An object that no longer decodes is not replaced by this
    // controller's older, valid copy of it.
    let seen: BTreeSet<String> = category_runs
        .iter()
        .map(|c| c.name_any())
        .chain(invalid.iter().filter_map(|u| u.metadata.name.clone()))
        .collect();
    category_runs.extend(
        ctx.own
            .category_runs
            .unseen(&ns, &|n| seen.contains(n), &|cr| {
                cr.spec.run_name == name && owned_by(cr, run.as_ref())
            }),
    );

    let mut pods: Vec<_> = of_run(&ctx.pods, &ctx.by_run.pods, &ns, &name)
        .into_iter()
        .filter(|p| p.labels().get(LABEL_RUN) == Some(&name))
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
        .filter_map(|r| r.valid().cloned())
        .map(|r| ctx.own.runs.fresher(r))
        .collect();
    let owners: BTreeSet<&str> = category_runs
        .iter()
        .filter_map(|c| c.metadata.uid.as_deref())
        .collect();
    let refused = ctx.own.refused.owned_by(&ns, &owners);
    let existing = ctx.own.refused.existing_owned_by(&ns, &owners);
    let shared = shared_view(ctx, &ns);
    let nodes_down = crate::controller::run::node_health::nodes_down(
        &ctx.nodes,
        pods.iter()
            .filter_map(|p| p.spec.as_ref()?.node_name.as_deref()),
    );
    Observed {
        run,
        category_runs,
        invalid,
        pods,
        runs,
        refused,
        existing,
        shared,
        nodes_down,
        answers,
    }
}

/// The newer of `run` and `cached`, the same object as the cache holds it
/// now: a cached copy of another object of that name (deleted and made
/// again) is not it.
fn newer(run: &Arc<TestLayerRun>, cached: Option<Arc<TestLayerRun>>) -> Arc<TestLayerRun> {
    match cached {
        Some(c)
            if c.metadata.uid == run.metadata.uid
                && matches!((version(c.as_ref()), version(run.as_ref())), (Some(a), Some(b)) if a > b) =>
        {
            c
        }
        _ => run.clone(),
    }
}

/// The objects of run `name` in namespace `ns` that `cache` holds, as
/// `index` names them.
fn of_run<K>(cache: &Store<K>, index: &ByRun<K>, ns: &str, name: &str) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    index
        .names(ns, name)
        .iter()
        .filter_map(|n| cache.get(&ObjectRef::new(n).within(ns)))
        .collect()
}

/// The shared resources of namespace `ns`: the capacities its
/// TestLayerResources declare, every grant, and every claim its runs and
/// CategoryRuns record (this controller's own newest writes laid over the
/// caches).
pub fn shared_view(ctx: &Context, ns: &str) -> SharedView {
    // One line for every namespace, or one per namespace.
    let across = ctx.resources_namespace.is_some();
    let home = ctx.resources_namespace.as_deref().unwrap_or(ns);
    let served = |of: Option<String>| across || of.as_deref() == Some(ns);
    let capacities: BTreeMap<String, u32> = ctx
        .resources
        .state()
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(home))
        .filter_map(|r| r.valid().map(|v| (v.name_any(), v.spec.capacity)))
        .collect();
    let leases = grants_held(ctx.grants.state(), &ctx.own.grants, home);
    let grants: Vec<Grant> = leases.iter().filter_map(|l| Grant::from_lease(l)).collect();
    if capacities.is_empty() && grants.is_empty() {
        // No shared resource here: no claim can be served, and the runs'
        // and CategoryRuns' claims are not looked for (a run that uses one
        // is held until it is declared).
        return SharedView {
            namespace: home.to_string(),
            capacities,
            grants,
            claims: Vec::new(),
        };
    }
    let recorded = |meta: &kube::api::ObjectMeta, run: &str, claim: Option<&ResourceClaim>| {
        claim.map(|c| RecordedClaim {
            holder: meta.name.clone().unwrap_or_default(),
            holder_uid: meta.uid.clone().unwrap_or_default(),
            run: run.to_string(),
            run_namespace: meta.namespace.clone().unwrap_or_default(),
            claim: c.clone(),
        })
    };
    // Only runs that still work wait: a claim an ended (or deleted) run
    // left behind is served to no one.
    let mut working = BTreeSet::new();
    let mut claims = Vec::new();
    for r in ctx.runs.state() {
        if let Some(r) = r.valid().filter(|r| served(r.namespace())) {
            let r = ctx.own.runs.fresher(r.clone());
            let phase = r.status.as_ref().and_then(|s| s.phase);
            if r.metadata.deletion_timestamp.is_some() || phase.is_some_and(|p| p.is_terminal()) {
                continue;
            }
            working.insert((r.namespace(), r.name_any()));
            let claim = r.status.as_ref().and_then(|s| s.resource_claim.as_ref());
            claims.extend(recorded(&r.metadata, &r.name_any(), claim));
        }
    }
    // Only the CategoryRuns of runs that still work, as the index names
    // them.
    let of_working = working.iter().flat_map(|(ns, name)| {
        let ns = ns.as_deref().unwrap_or_default();
        of_run(&ctx.category_runs, &ctx.by_run.category_runs, ns, name)
    });
    for cr in of_working.collect::<Vec<_>>() {
        if let Some(cr) = cr.valid().filter(|c| served(c.namespace())) {
            let cr = ctx.own.category_runs.fresher(cr.clone());
            if !working.contains(&(cr.namespace(), cr.spec.run_name.clone())) {
                continue;
            }
            let claim = cr.status.as_ref().and_then(|s| s.resource_claim.as_ref());
            claims.extend(recorded(&cr.metadata, &cr.spec.run_name, claim));
        }
    }
    SharedView {
        namespace: home.to_string(),
        capacities,
        grants,
        claims,
    }
}

/// The grants of namespace `home` as this controller knows them: the
/// cache's (`cached`), less those it gave back a moment ago, each at its
/// newest write, and those it made that the cache does not show yet.
fn grants_held(cached: Vec<Arc<Lease>>, own: &OwnWrites<Lease>, home: &str) -> Vec<Arc<Lease>> {
    let mut leases: Vec<Arc<Lease>> = cached
        .into_iter()
        .filter(|l| l.namespace().as_deref() == Some(home) && !own.deleted(l))
        .map(|l| own.fresher(l))
        .collect();
    let seen: BTreeSet<String> = leases.iter().map(|l| l.name_any()).collect();
    leases.extend(own.unseen(home, &|n| seen.contains(n), &|_| true));
    leases
}

/// One answer.
enum Answer {
    Config(ConfigAnswer),
    FrozenPlan(FrozenPlanAnswer),
    PodExists(String, bool),
    PodOwner(String, PodOwner),
    Logs(String, LogAnswer),
    Unready(Vec<String>),
    Rerun(RerunAnswer),
    History(BTreeMap<String, u64>),
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
                Question::PodOwner(p) => {
                    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                    let found = pods
                        .get_opt(&p)
                        .await
                        .map_err(ControllerError::kube(format!("reading pod {p}")))?;
                    Answer::PodOwner(p, found.as_ref().map_or(PodOwner::Gone, owner_of))
                }
                Question::Logs(p, report) => {
                    let log = log_read_again_once(ctx, &ns, &p, report.as_deref()).await;
                    Answer::Logs(p, log)
                }
                Question::UnreadyServices(s) => {
                    Answer::Unready(unready_services(ctx, &ns, &s).await?)
                }
                Question::RerunSource(name) => Answer::Rerun(rerun_source(ctx, &ns, &name).await?),
                Question::History(name) => Answer::History(history(ctx, &ns, &name)),
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
            Answer::PodOwner(p, o) => {
                answers.pod_owners.insert(p, o);
            }
            Answer::Logs(p, l) => {
                answers.logs.insert(p, l);
            }
            Answer::Unready(u) => answers.unready_services = Some(u),
            Answer::Rerun(r) => answers.rerun = Some(r),
            Answer::History(h) => answers.history = Some(h),
        }
    }
    Ok(())
}

/// Whose `pod` is: its controller's uid and, in words, which object.
fn owner_of(pod: &Pod) -> PodOwner {
    match pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
    {
        Some(o) => PodOwner::Of {
            uid: o.uid.clone(),
            described: format!("{} {} with uid {}", o.kind, o.name, o.uid),
        },
        None => PodOwner::Of {
            uid: String::new(),
            described: "no owner".to_string(),
        },
    }
}

async fn config_text(
    ctx: &Context,
    run: &TestLayerRun,
    ns: &str,
) -> Result<ConfigAnswer, ControllerError> {
    let owner = format!("TestLayerRun {}/{} spec.config", ns, run.name_any());
    source_text(&ctx.client, &run.spec.config, ns, &owner).await
}

/// The layer config text `src` names (a ConfigMap key in `ns`, or inline in
/// the object `owner` names, e.g. `TestLayerRun ci/r1 spec.config`), or
/// what is missing.
pub(crate) async fn source_text(
    client: &kube::Client,
    src: &crate::api::ConfigSource,
    ns: &str,
    owner: &str,
) -> Result<ConfigAnswer, ControllerError> {
    if let Some(text) = &src.inline {
        return Ok(ConfigAnswer::Found {
            text: text.clone(),
            origin: format!("{owner}.inline"),
        });
    }
    let Some(r) = &src.config_map_ref else {
        return Ok(ConfigAnswer::Found {
            text: String::new(),
            origin: owner.into(),
        });
    };
    let key = r.key.clone().unwrap_or_else(|| DEFAULT_CONFIG_KEY.into());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
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

/// How long each category of run `name` took (milliseconds by category
/// name), from the CategoryRuns in the cache: the last attempt of each that
/// ran its course.
fn history(ctx: &Context, ns: &str, name: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for cr in ctx.category_runs.state() {
        let Some(cr) = cr.valid() else { continue };
        if cr.namespace().as_deref() != Some(ns)
            || cr.labels().get(LABEL_RUN).map(String::as_str) != Some(name)
        {
            continue;
        }
        let Some(st) = &cr.status else { continue };
        let attempts: Vec<(AttemptReason, f64)> = st
            .attempts
            .iter()
            .filter_map(|a| {
                let (start, end) = (a.start_time.as_ref()?, a.completion_time.as_ref()?);
                let secs = end.0.duration_since(start.0).as_secs_f64();
                Some((a.reason.clone()?, secs))
            })
            .collect();
        if let Some(secs) = measured(attempts.iter().map(|(r, s)| (r, *s))) {
            out.insert(cr.spec.category.clone(), (secs * 1000.0).round() as u64);
        }
    }
    out
}

/// The earlier run `name` of a rerun: finished, with its frozen plan (or,
/// for a run accepted before plans were frozen, its CategoryRuns' specs)
/// and its CategoryRuns.
async fn rerun_source(ctx: &Context, ns: &str, name: &str) -> Result<RerunAnswer, ControllerError> {
    let runs: Api<Decoded<TestLayerRun>> = Api::namespaced(ctx.client.clone(), ns);
    let found = runs
        .get_opt(name)
        .await
        .map_err(ControllerError::kube(format!(
            "reading TestLayerRun {name}"
        )))?;
    let Some(found) = found else {
        return Ok(RerunAnswer::Missing(format!(
            "run {name} not found in namespace {ns} (deleted, perhaps by its ttlSecondsAfterFinished): nothing to rerun"
        )));
    };
    let Some(old) = found.valid().map(|r| r.as_ref().clone()) else {
        return Ok(RerunAnswer::Missing(format!(
            "run {name} cannot be read by this controller"
        )));
    };
    let phase = old.status.as_ref().and_then(|s| s.phase);
    if !phase.is_some_and(|p| p.is_terminal()) {
        return Ok(RerunAnswer::Unfinished(phase.map_or_else(
            || "Pending".to_string(),
            |p| p.as_str().to_string(),
        )));
    }
    let crs: Api<Decoded<CategoryRun>> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{LABEL_RUN}={name}"));
    let category_runs: Vec<CategoryRun> = crs
        .list(&lp)
        .await
        .map_err(ControllerError::kube(format!(
            "listing the CategoryRuns of {name}"
        )))?
        .items
        .into_iter()
        .filter_map(|c| c.valid().map(|c| c.as_ref().clone()))
        .filter(|c| owned_by(c, &old))
        .collect();
    let plan = match frozen(ctx, &old, ns).await? {
        FrozenPlanAnswer::Found(p) => (*p).clone(),
        FrozenPlanAnswer::Missing(why) => {
            let count = old
                .status
                .as_ref()
                .and_then(|s| s.plan.as_ref())
                .map_or(0, |p| p.count());
            if count == 0 || category_runs.len() != count {
                return Ok(RerunAnswer::Missing(format!(
                    "the plan of run {name} is lost ({why}) and it has {} of its {count} CategoryRuns",
                    category_runs.len()
                )));
            }
            FrozenPlan::of(&category_runs)
        }
    };
    Ok(RerunAnswer::Found(Arc::new(RerunSource {
        run: old,
        plan,
        category_runs,
    })))
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_grant_given_back_or_taken_back_is_not_held_though_the_cache_still_shows_it() {
        use super::{Lease, OwnWrites, ResourceExt, grants_held};
        use crate::controller::shared::claims::GrantRef;
        use crate::controller::shared::writes::given_back;
        let lease = |name: &str, uid: &str| -> std::sync::Arc<Lease> {
            std::sync::Arc::new(
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": "5"}
                }))
                .expect("lease"),
            )
        };
        let names = |v: Vec<std::sync::Arc<Lease>>| -> Vec<String> {
            v.iter()
                .map(|l| {
                    format!(
                        "{}/{}",
                        l.name_any(),
                        l.metadata.uid.clone().unwrap_or_default()
                    )
                })
                .collect()
        };
        let own = OwnWrites::<Lease>::default();
        // Made here, not in the cache yet: held.
        own.remember(lease("mine", "m1").as_ref().clone(), true);
        let cache = vec![lease("db-0", "u1"), lease("pool-0", "p1")];
        assert_eq!(
            names(grants_held(cache.clone(), &own, "ns")),
            ["db-0/u1", "pool-0/p1", "mine/m1"]
        );
        // Given back (or taken back after a refused batch): gone from what
        // is held, though the cache still shows both.
        given_back(
            &own,
            "ns",
            &[
                GrantRef {
                    name: "db-0".into(),
                    uid: "u1".into(),
                },
                GrantRef {
                    name: "mine".into(),
                    uid: "m1".into(),
                },
            ],
        );
        assert_eq!(names(grants_held(cache.clone(), &own, "ns")), ["pool-0/p1"]);
        // The unit granted again is another Lease of the same name: held.
        let again = vec![lease("db-0", "u2"), lease("pool-0", "p1")];
        assert_eq!(
            names(grants_held(again, &own, "ns")),
            ["db-0/u2", "pool-0/p1"]
        );
    }

    use super::{Arc, TestLayerRun, newer};

    fn run_at(uid: &str, version: &str) -> Arc<TestLayerRun> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
                "metadata": {"name": "r", "namespace": "ns", "uid": uid, "resourceVersion": version},
                "spec": {"layer": "l", "config": {"inline": ""}},
            }))
            .expect("run"),
        )
    }

    #[test]
    fn a_pass_reads_the_run_as_the_cache_has_it_when_that_is_newer() {
        let began = run_at("u", "10");
        let version = |r: Arc<TestLayerRun>| r.metadata.resource_version.clone();
        // The cache caught up while the reconcile wrote.
        assert_eq!(
            version(newer(&began, Some(run_at("u", "12")))).as_deref(),
            Some("12")
        );
        // An older cached copy, none, or another run of that name: the one
        // the reconcile began with.
        assert_eq!(
            version(newer(&began, Some(run_at("u", "9")))).as_deref(),
            Some("10")
        );
        assert_eq!(version(newer(&began, None)).as_deref(), Some("10"));
        assert_eq!(
            version(newer(&began, Some(run_at("v", "20")))).as_deref(),
            Some("10")
        );
    }
}
