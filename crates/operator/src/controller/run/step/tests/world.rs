//! An in-memory cluster for [`step`]: it answers questions and applies
//! writes the way the apiserver and a kubelet would, on a virtual clock, and
//! keeps a record of every write and of every Pod's life. No apiserver, no
//! time passing: a scenario of minutes runs in microseconds.
//!
//! Longer than most files: one cluster whose parts share its private state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use serde_json::json;

use super::super::{
    Answers, AttemptLog, ConfigAnswer, FrozenPlanAnswer, Next, NodeDown, Observed, PodOwner,
    Question, Refusal, RerunAnswer, RerunSource, Step, Write, step,
};
use crate::api::names::{LABEL_CATEGORY, LABEL_RUN};
use crate::api::{CategoryRun, LayerPhase, TestLayerRun, Undecodable};
use crate::controller::run::frozen_plan;
use crate::controller::shared::claims::{Grant, RecordedClaim, SharedView};
use crate::controller::status::note::Note;
use crate::plan::Phase;
use k8s_openapi::api::core::v1::ConfigMap;

/// How a scripted container behaves.
#[derive(Debug, Clone)]
pub enum End {
    /// Exits with this code.
    Exit(#[allow(dead_code)] i32),
    /// Killed for memory (137).
    Oom,
    /// Evicted by the node.
    Evicted,
    /// Never ends by itself.
    Forever,
}

/// One attempt's script.
#[derive(Debug, Clone)]
pub struct Script {
    /// How long it runs.
    pub run_for: Duration,
    /// How it ends.
    pub end: End,
    /// What it prints.
    pub log: String,
}

impl Script {
    pub fn pass(secs: f64, log: &str) -> Script {
        Script {
            run_for: Duration::from_secs_f64(secs),
            end: End::Exit(0),
            log: log.into(),
        }
    }
    pub fn fail(secs: f64, code: i32, log: &str) -> Script {
        Script {
            run_for: Duration::from_secs_f64(secs),
            end: End::Exit(code),
            log: log.into(),
        }
    }
    pub fn forever() -> Script {
        Script {
            run_for: Duration::MAX,
            end: End::Forever,
            log: String::new(),
        }
    }
    pub fn with(end: End, secs: f64) -> Script {
        Script {
            run_for: Duration::from_secs_f64(secs),
            end,
            log: String::new(),
        }
    }
}

type ScriptFn = Box<dyn Fn(&str, u32) -> Script>;

/// What happened to a Pod, for assertions.
#[derive(Debug, Clone, PartialEq)]
pub enum PodEvent {
    Created,
    Ended(i32),
    Deleted,
}

/// The in-memory cluster.
pub struct World {
    pub run: TestLayerRun,
    pub crs: BTreeMap<String, CategoryRun>,
    /// CategoryRuns that do not decode, by name.
    pub invalid: BTreeMap<String, Undecodable>,
    pub pods: BTreeMap<String, Pod>,
    /// ConfigMaps of test cases, by name.
    pub test_cases: BTreeMap<String, ConfigMap>,
    pub others: Vec<TestLayerRun>,
    pub config_maps: BTreeMap<String, String>,
    /// ConfigMaps the controller created (frozen plans), by name.
    pub plans: BTreeMap<String, ConfigMap>,
    pub unready: Vec<String>,
    pub now: Timestamp,
    pub run_deleted: bool,
    /// Every write, as `kind name` strings, in order.
    pub writes: Vec<String>,
    pub events: Vec<Note>,
    /// Pod life: (seconds since start, pod, event).
    pub pod_log: Vec<(f64, String, PodEvent)>,
    /// Questions asked, in order.
    pub questions: Vec<Question>,
    /// Seconds a deleted Pod takes to go away.
    pub grace: Duration,
    /// Its kubelet does not answer: a Pod stopped and kept never ends.
    pub kubelet_silent: bool,
    /// Pods that exist but that the controller's cache does not show yet
    /// (made a moment ago, perhaps by another controller).
    pub unseen: std::collections::BTreeSet<String>,
    /// Categories (Kubernetes names) whose Pods the apiserver refuses to
    /// create, with its words.
    pub refuse: BTreeMap<String, String>,
    /// The refusals the controller remembers (cleared: a controller restart).
    pub refused: BTreeMap<String, Refusal>,
    /// Creates that met a Pod of their name (cleared: a controller restart).
    pub existing: std::collections::BTreeSet<String>,
    /// Every refused create: (seconds since start, pod).
    pub refusal_log: Vec<(f64, String)>,
    /// What the applied writes made happen, as the metrics count it.
    pub happened: Vec<crate::controller::kit::outcome_metrics::Happened>,
    /// The answer about the earlier run of a rerun.
    pub rerun_source: Option<RerunAnswer>,
    /// Durations (ms by category) of each other run, by name.
    pub histories: BTreeMap<String, BTreeMap<String, u64>>,
    /// Capacities of the namespace's TestLayerResources.
    pub capacities: BTreeMap<String, u32>,
    /// Grants of shared resources (Leases), by name.
    pub grants: BTreeMap<String, Lease>,
    /// Claims recorded by other runs' holders.
    pub foreign_claims: Vec<RecordedClaim>,
    /// Nodes that are not Ready, as the controller would see them.
    pub nodes_down: BTreeMap<String, NodeDown>,
    scripts: ScriptFn,
    /// Names of every CategoryRun ever created.
    crs_made: std::collections::BTreeSet<String>,
    start: Timestamp,
    next_rv: u64,
    /// Pods' scheduled ends (container end, or removal after deletion).
    ends: BTreeMap<String, Timestamp>,
}

/// A status as the apiserver stores and returns it: through JSON, with
/// `metav1.Time` cut to whole seconds.
fn stored<T: serde::Serialize + serde::de::DeserializeOwned>(st: &T) -> T {
    let mut v = serde_json::to_value(st).unwrap();
    cut_times(&mut v);
    serde_json::from_value(v).unwrap()
}

fn cut_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Ok(t) = s.parse::<Timestamp>() {
                *s = Timestamp::from_second(t.as_second()).unwrap().to_string();
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(cut_times),
        serde_json::Value::Object(o) => o.values_mut().for_each(cut_times),
        _ => {}
    }
}

pub fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

impl World {
    /// A run of `layer` from the inline `config`, with `extra` spec fields.
    pub fn new(layer: &str, config: &str, extra: serde_json::Value) -> World {
        let mut spec = json!({"layer": layer, "config": {"inline": config}, "image": "busybox"});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        let run: TestLayerRun = serde_json::from_value(json!({
            "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun",
            "metadata": {"name": "r", "namespace": "ns", "uid": "run-uid", "generation": 1,
                         "resourceVersion": "1", "creationTimestamp": t0().to_string()},
            "spec": spec,
        }))
        .unwrap();
        World {
            run,
            crs: BTreeMap::new(),
            invalid: BTreeMap::new(),
            pods: BTreeMap::new(),
            crs_made: Default::default(),
            test_cases: BTreeMap::new(),
            others: Vec::new(),
            config_maps: BTreeMap::new(),
            plans: BTreeMap::new(),
            unready: Vec::new(),
            now: t0(),
            run_deleted: false,
            writes: Vec::new(),
            events: Vec::new(),
            pod_log: Vec::new(),
            questions: Vec::new(),
            grace: Duration::ZERO,
            kubelet_silent: false,
            unseen: Default::default(),
            refuse: BTreeMap::new(),
            refused: BTreeMap::new(),
            existing: Default::default(),
            refusal_log: Vec::new(),
            happened: Vec::new(),
            rerun_source: None,
            histories: BTreeMap::new(),
            capacities: BTreeMap::new(),
            grants: BTreeMap::new(),
            foreign_claims: Vec::new(),
            nodes_down: BTreeMap::new(),
            scripts: Box::new(|_, _| Script::pass(1.0, "1 passed in 0.1s")),
            start: t0(),
            next_rv: 2,
            ends: BTreeMap::new(),
        }
    }

    /// Scripts each attempt by category name and attempt number.
    pub fn scripts(mut self, f: impl Fn(&str, u32) -> Script + 'static) -> World {
        self.scripts = Box::new(f);
        self
    }

    fn secs(&self) -> f64 {
        self.now.duration_since(self.start).as_secs_f64()
    }

    fn rv(&mut self) -> String {
        self.next_rv += 1;
        self.next_rv.to_string()
    }

    /// What the controller would observe now.
    pub fn observed(&self, answers: Answers) -> Observed {
        Observed {
            run: Arc::new(self.run.clone()),
            category_runs: self.crs.values().cloned().map(Arc::new).collect(),
            invalid: self.invalid.values().cloned().map(Arc::new).collect(),
            pods: (self.pods.values())
                .filter(|p| !self.unseen.contains(&p.name_any()))
                .cloned()
                .map(Arc::new)
                .collect(),
            runs: self
                .others
                .iter()
                .chain(std::iter::once(&self.run))
                .cloned()
                .map(Arc::new)
                .collect(),
            refused: self.refused.clone(),
            existing: self.existing.clone(),
            shared: self.shared_view(),
            nodes_down: self.nodes_down.clone(),
            answers,
        }
    }

    /// The shared resources as the controller would see them.
    pub fn shared_view(&self) -> SharedView {
        let mut claims = self.foreign_claims.clone();
        let holders = self
            .crs
            .values()
            .map(|cr| (cr.name_any(), cr.metadata.uid.clone(), cr.status.as_ref()))
            .chain(std::iter::once((
                self.run.name_any(),
                self.run.metadata.uid.clone(),
                None,
            )));
        for (holder, uid, st) in holders {
            let claim = match st {
                Some(st) => st.resource_claim.clone(),
                None => self
                    .run
                    .status
                    .as_ref()
                    .and_then(|s| s.resource_claim.clone()),
            };
            if let Some(claim) = claim {
                claims.push(RecordedClaim {
                    holder,
                    holder_uid: uid.unwrap_or_default(),
                    run: self.run.name_any(),
                    run_namespace: "ns".into(),
                    claim,
                });
            }
        }
        SharedView {
            namespace: "ns".into(),
            capacities: self.capacities.clone(),
            grants: self.grants.values().filter_map(Grant::from_lease).collect(),
            claims,
        }
    }

    /// One reconcile, as the real loop does it: step, ask, apply, again.
    pub fn reconcile(&mut self) -> Next {
        let mut answers = Answers::default();
        for _ in 0..8 {
            let s = step(&self.observed(answers.clone()), self.now);
            if !s.questions.is_empty() {
                assert!(
                    !s.questions.iter().all(|q| answers.has(q)),
                    "asked again: {:?}",
                    s.questions
                );
                for q in s.questions {
                    self.answer(q, &mut answers);
                }
                continue;
            }
            let observed = self.observed(answers.clone());
            let happened =
                crate::controller::run::happened::happened(&observed, &s.writes, self.now);
            self.happened.extend(happened);
            let refused = self.apply(s.writes);
            if !refused && s.next != Next::Again {
                return s.next;
            }
            answers = Answers::default();
        }
        panic!("no end to the passes of one reconcile");
    }

    /// The step for the current state, without applying it.
    pub fn peek(&self, answers: Answers) -> Step {
        step(&self.observed(answers), self.now)
    }

    fn answer(&mut self, q: Question, answers: &mut Answers) {
        self.questions.push(q.clone());
        match q {
            Question::Config => {
                let src = &self.run.spec.config;
                answers.config = Some(match (&src.inline, &src.config_map_ref) {
                    (Some(t), _) => ConfigAnswer::Found {
                        text: t.clone(),
                        origin: "inline".into(),
                    },
                    (None, Some(r)) => match self.config_maps.get(&r.name) {
                        Some(t) => ConfigAnswer::Found {
                            text: t.clone(),
                            origin: format!("ConfigMap {}", r.name),
                        },
                        None => ConfigAnswer::Missing(format!("ConfigMap {} not found", r.name)),
                    },
                    (None, None) => ConfigAnswer::Found {
                        text: String::new(),
                        origin: "spec.config".into(),
                    },
                });
            }
            Question::FrozenPlan => {
                let reference = self
                    .run
                    .status
                    .as_ref()
                    .and_then(|s| s.plan.as_ref())
                    .and_then(|p| p.frozen.clone());
                answers.frozen_plan = Some(match reference {
                    None => FrozenPlanAnswer::Missing("no frozen plan recorded".into()),
                    Some(r) => match self.plans.get(&r.config_map) {
                        None => FrozenPlanAnswer::Missing(format!(
                            "ConfigMap {} not found",
                            r.config_map
                        )),
                        Some(cm) => match frozen_plan::decode(cm, &self.run, &r) {
                            Ok(p) => FrozenPlanAnswer::Found(Arc::new(p)),
                            Err(e) => FrozenPlanAnswer::Missing(e.to_string()),
                        },
                    },
                });
            }
            Question::PodExists(p) => {
                let exists = self.pods.contains_key(&p);
                answers.pod_exists.insert(p, exists);
            }
            Question::PodOwner(p) => {
                let owner = match self.pods.get(&p) {
                    None => PodOwner::Gone,
                    Some(pod) => {
                        let r = &pod.metadata.owner_references.as_ref().unwrap()[0];
                        PodOwner::Of {
                            uid: r.uid.clone(),
                            described: format!("{} {} with uid {}", r.kind, r.name, r.uid),
                        }
                    }
                };
                answers.pod_owners.insert(p, owner);
            }
            Question::Logs(p, report) => {
                let log = match self.pods.get(&p) {
                    Some(pod) => {
                        let text = pod.annotations().get("log").cloned().unwrap_or_default();
                        match report {
                            None => Ok(AttemptLog::plain(text)),
                            Some(r) => {
                                crate::controller::run::read_logs::attempt_log(text.as_bytes(), &r)
                            }
                        }
                    }
                    None => Err(format!("pods \"{p}\" not found")),
                };
                answers.logs.insert(p, log);
            }
            Question::UnreadyServices(s) => {
                answers.unready_services =
                    Some(s.into_iter().filter(|x| self.unready.contains(x)).collect());
            }
            Question::History(name) => {
                answers.history = Some(self.histories.get(&name).cloned().unwrap_or_default());
            }
            Question::RerunSource(name) => {
                answers.rerun = Some(self.rerun_source.clone().unwrap_or_else(|| {
                    RerunAnswer::Missing(format!("run {name} not found in namespace ns"))
                }));
            }
        }
    }

    /// This run renamed (`name`, a uid of its own): a second run in the
    /// same namespace.
    pub fn named(mut self, name: &str) -> World {
        self.run.metadata.name = Some(name.into());
        self.run.metadata.uid = Some(format!("{name}-uid"));
        self
    }

    /// This world's run as the earlier run of a rerun: its frozen plan and
    /// CategoryRuns as they are now.
    pub fn as_rerun_source(&self) -> RerunAnswer {
        let reference = self
            .run
            .status
            .as_ref()
            .and_then(|s| s.plan.as_ref())
            .and_then(|p| p.frozen.clone())
            .expect("a frozen plan");
        let plan = frozen_plan::decode(&self.plans[&reference.config_map], &self.run, &reference)
            .expect("the plan decodes");
        RerunAnswer::Found(Arc::new(RerunSource {
            run: self.run.clone(),
            plan,
            category_runs: self.crs.values().cloned().collect(),
        }))
    }

    /// Applies writes in order, as the apiserver would; `true` when it
    /// refused a Pod (the writes after it are not made).
    pub fn apply(&mut self, writes: Vec<Write>) -> bool {
        let wall = Time(self.now);
        for w in writes {
            match w {
                Write::RunStatus(st) => {
                    self.writes.push("run status".into());
                    self.run.status = Some(stored(&*st));
                    self.run.metadata.resource_version = Some(self.rv());
                }
                Write::RecordNotifications { status, read_at } => {
                    // Written only on the run as it was read, as the
                    // apiserver checks a resourceVersion.
                    if read_at != self.run.metadata.resource_version {
                        self.writes.push("notifications conflict".into());
                        return false;
                    }
                    self.writes.push("record notifications".into());
                    self.run.status = Some(stored(&*status));
                    self.run.metadata.resource_version = Some(self.rv());
                }
                Write::CreatePlan(cm) => {
                    let name = cm.name_any();
                    self.writes.push(format!("create plan {name}"));
                    self.plans.entry(name).or_insert(*cm);
                }
                Write::CreateTestCases(cms) => {
                    for cm in cms {
                        let name = cm.name_any();
                        self.writes.push(format!("create test cases {name}"));
                        self.test_cases.entry(name).or_insert(cm);
                    }
                }
                Write::CreateCategoryRuns(crs) => {
                    for mut cr in crs {
                        let name = cr.name_any();
                        self.writes.push(format!("create cr {name}"));
                        if self.crs.contains_key(&name) {
                            continue;
                        }
                        // A CategoryRun made again under its name is a new
                        // object: a new uid.
                        let uid = if self.crs_made.insert(name.clone()) {
                            format!("uid-{name}")
                        } else {
                            format!("uid-{name}-{}", self.next_rv)
                        };
                        cr.metadata.uid = Some(uid);
                        cr.metadata.generation = Some(1);
                        cr.metadata.resource_version = Some(self.rv());
                        cr.metadata.creation_timestamp = Some(wall.clone());
                        self.crs.insert(name, cr);
                    }
                }
                Write::CreatePods(pods) => {
                    let mut refused = false;
                    for mut p in pods {
                        let name = p.name_any();
                        let category = p.labels().get(LABEL_CATEGORY).cloned().unwrap_or_default();
                        if let Some(message) = self.refuse.get(&category) {
                            self.writes.push(format!("refused pod {name}"));
                            let r = Refusal::after(self.refused.get(&name), message, self.now);
                            self.refused.insert(name.clone(), r);
                            self.refusal_log.push((self.secs(), name));
                            refused = true;
                            continue;
                        }
                        self.writes.push(format!("create pod {name}"));
                        if self.pods.contains_key(&name) {
                            // 409, as the apiserver answers: remembered,
                            // the step's later writes left to the next.
                            self.existing.insert(name.clone());
                            refused = true;
                            continue;
                        }
                        self.refused.remove(&name);
                        self.existing.remove(&name);
                        let attempt: u32 = name
                            .rsplit('-')
                            .next()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        let script = (self.scripts)(&category, attempt);
                        p.metadata.uid = Some(format!("uid-{name}"));
                        p.metadata.resource_version = Some(self.rv());
                        p.metadata.creation_timestamp =
                            Some(Time(Timestamp::from_second(self.now.as_second()).unwrap()));
                        p.metadata
                            .annotations
                            .get_or_insert_with(Default::default)
                            .insert("log".into(), script.log.clone());
                        p.metadata
                            .annotations
                            .get_or_insert_with(Default::default)
                            .insert("end".into(), format!("{:?}", script.end));
                        let started = Timestamp::from_second(self.now.as_second())
                            .unwrap()
                            .to_string();
                        p.status =
                            Some(serde_json::from_value(json!({"phase": "Running", "startTime": started, "containerStatuses": [{"name": "test", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0,
                            "state": {"running": {"startedAt": started}}}]})).unwrap());
                        // On a node, as its kubelet has it.
                        if let Some(spec) = p.spec.as_mut() {
                            spec.node_name = Some("n1".into());
                        }
                        if !matches!(script.end, End::Forever) {
                            self.ends
                                .insert(name.clone(), later(self.now, script.run_for));
                        }
                        self.pod_log
                            .push((self.secs(), name.clone(), PodEvent::Created));
                        self.pods.insert(name, p);
                    }
                    if refused {
                        return true;
                    }
                }
                Write::CategoryRunStatuses(sts) => {
                    for (name, st) in sts {
                        self.writes.push(format!("cr status {name}"));
                        let rv = self.rv();
                        if let Some(cr) = self.crs.get_mut(&name) {
                            cr.status = Some(stored(&st));
                            cr.metadata.resource_version = Some(rv);
                        }
                    }
                }
                Write::CreateGrants(leases) => {
                    for l in leases {
                        let name = l.name_any();
                        if self.grants.contains_key(&name) {
                            // A create conflict fails the reconcile here.
                            self.writes.push(format!("grant conflict {name}"));
                            return false;
                        }
                        self.writes.push(format!("grant {name}"));
                        let mut l = l;
                        // Each grant made is a new Lease, of a uid of its own.
                        l.metadata.uid = Some(format!("uid-grant-{}", self.rv()));
                        self.grants.insert(name, l);
                    }
                }
                Write::DeleteGrants(ns, grants) => {
                    assert_eq!(ns, "ns", "grants live with the resources");
                    for g in grants {
                        self.writes.push(format!("release {}", g.name));
                        if self.grants.get(&g.name).is_some_and(|l| g.is(l)) {
                            self.grants.remove(&g.name);
                        }
                    }
                }
                Write::StopPods(stops) => {
                    for s in stops {
                        self.writes.push(format!("stop pod {}", s.name));
                        self.stop_pod(&s);
                    }
                }
                Write::DeletePods(names) => {
                    for name in names {
                        self.writes.push(format!("delete pod {name}"));
                        self.delete_pod(&name);
                    }
                }
                Write::DeleteCategoryRuns(names) => {
                    for name in names {
                        self.writes.push(format!("delete cr {name}"));
                        self.crs.remove(&name);
                        let owned: Vec<String> = self
                            .pods
                            .values()
                            .filter(|p| p.name_any().starts_with(&format!("{name}-")))
                            .map(|p| p.name_any())
                            .collect();
                        for p in owned {
                            self.pods.remove(&p);
                            self.ends.remove(&p);
                        }
                    }
                }
                Write::DeleteRun => {
                    self.writes.push("delete run".into());
                    self.run_deleted = true;
                }
                Write::RunConditions(conditions) => {
                    self.writes.push("run conditions".into());
                    self.run
                        .status
                        .get_or_insert_with(Default::default)
                        .conditions = stored(&conditions);
                    self.run.metadata.resource_version = Some(self.rv());
                }
                Write::CategoryRunConditions(marks) => {
                    for (name, conditions) in marks {
                        self.writes.push(format!("cr conditions {name}"));
                        let conditions = stored(&conditions);
                        if let Some(cr) = self.crs.get_mut(&name) {
                            cr.status.get_or_insert_with(Default::default).conditions = conditions;
                        } else if let Some(u) = self.invalid.get_mut(&name) {
                            u.conditions = conditions;
                        }
                    }
                }
                Write::Event(n) => self.events.push(n),
            }
        }
        false
    }

    /// A Pod stopped and kept: its kubelet ends it `DeadlineExceeded`
    /// within its grace period (here, the world's grace), and it stays.
    fn stop_pod(&mut self, s: &super::super::PodStop) {
        let Some(p) = self.pods.get_mut(&s.name) else {
            return;
        };
        let deadline = p.spec.as_ref().and_then(|sp| sp.active_deadline_seconds);
        assert!(
            deadline.is_none_or(|d| s.deadline_seconds <= d) && s.deadline_seconds >= 1,
            "the apiserver refuses a longer or non-positive activeDeadlineSeconds: {s:?}, had {deadline:?}"
        );
        p.annotations_mut().insert(
            crate::api::names::ANNOTATION_STOPPED_AT.into(),
            s.at.clone(),
        );
        p.annotations_mut().insert("end".into(), "Deadline".into());
        if let Some(spec) = p.spec.as_mut() {
            spec.active_deadline_seconds = Some(s.deadline_seconds);
        }
        p.metadata.resource_version = Some((self.next_rv + 1).to_string());
        self.next_rv += 1;
        let running = p.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Running");
        if running && !self.kubelet_silent {
            self.ends
                .insert(s.name.clone(), later(self.now, self.grace));
            if self.grace.is_zero() {
                self.advance_to(self.now);
            }
        }
    }

    fn delete_pod(&mut self, name: &str) {
        let Some(p) = self.pods.get_mut(name) else {
            return;
        };
        if p.metadata.deletion_timestamp.is_some() {
            return;
        }
        if self.grace.is_zero() {
            self.pods.remove(name);
            self.ends.remove(name);
            self.pod_log
                .push((self.secs(), name.to_string(), PodEvent::Deleted));
        } else {
            p.metadata.deletion_timestamp = Some(Time(self.now));
            self.ends
                .insert(name.to_string(), later(self.now, self.grace));
        }
    }

    /// Lets time pass to `until`, ending containers and finishing deletions
    /// on the way, as a kubelet would.
    pub fn advance_to(&mut self, until: Timestamp) {
        loop {
            let due = self
                .ends
                .iter()
                .filter(|(_, t)| **t <= until)
                .min_by_key(|(_, t)| **t)
                .map(|(n, t)| (n.clone(), *t));
            let Some((name, at)) = due else { break };
            self.now = self.now.max(at);
            self.ends.remove(&name);
            let rv = self.rv();
            let Some(p) = self.pods.get_mut(&name) else {
                continue;
            };
            if p.metadata.deletion_timestamp.is_some() {
                self.pods.remove(&name);
                self.pod_log.push((self.secs(), name, PodEvent::Deleted));
                continue;
            }
            let end = p.annotations().get("end").cloned().unwrap_or_default();
            let finished = Time(Timestamp::from_second(self.now.as_second()).unwrap())
                .0
                .to_string();
            let (phase, code, reason, pod_reason) = match end.as_str() {
                "Oom" => ("Failed", 137, "OOMKilled", None),
                "Evicted" => ("Failed", 137, "Error", Some("Evicted")),
                "Deadline" => ("Failed", 143, "Error", Some("DeadlineExceeded")),
                e => {
                    let code: i32 = e
                        .trim_start_matches("Exit(")
                        .trim_end_matches(')')
                        .parse()
                        .unwrap_or(0);
                    (
                        if code == 0 { "Succeeded" } else { "Failed" },
                        code,
                        if code == 0 { "Completed" } else { "Error" },
                        None,
                    )
                }
            };
            let mut status = json!({"phase": phase, "containerStatuses": [{"name": "test", "image": "busybox", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": reason, "finishedAt": finished}}}]});
            match pod_reason {
                Some("DeadlineExceeded") => {
                    status["reason"] = json!("DeadlineExceeded");
                    status["message"] =
                        json!("Pod was active on the node longer than the specified deadline");
                }
                Some(r) => {
                    status = json!({"phase": "Failed", "reason": r, "message": "the node was low on memory"});
                }
                None => {}
            }
            p.status = Some(serde_json::from_value(status).unwrap());
            p.metadata.resource_version = Some(rv);
            self.pod_log
                .push((self.secs(), name, PodEvent::Ended(code)));
        }
        self.now = self.now.max(until);
    }

    /// One reconcile, and again at once while it wrote anything (as the
    /// watch events of its own writes would wake the controller); a write
    /// loop that never settles is a bug (a status rewritten on every pass).
    fn settle(&mut self) -> Next {
        for _ in 0..20 {
            let before = self.writes.len();
            let next = self.reconcile();
            if self.writes.len() == before || self.run_deleted {
                return next;
            }
        }
        panic!(
            "the writes never settle: {:?}",
            &self.writes[self.writes.len().saturating_sub(20)..]
        );
    }

    /// Runs reconciles, letting time pass to each wake-up (and each Pod's
    /// end in between), until `pred` holds; panics after `limit` of virtual
    /// time.
    pub fn run_until(&mut self, limit: Duration, pred: impl Fn(&World) -> bool) {
        let deadline = later(self.now, limit);
        loop {
            let next = self.settle();
            if pred(self) {
                return;
            }
            assert!(
                self.now < deadline,
                "condition not reached: {:#?}",
                self.run.status
            );
            let wake = match next {
                Next::After(d) => later(self.now, d),
                _ => deadline,
            };
            let first_end = self.ends.values().min().copied();
            let to = first_end.map_or(wake, |e| e.min(wake)).max(self.now);
            self.advance_to(to);
        }
    }

    /// Runs reconciles for `span` of virtual time, whatever happens.
    pub fn run_for(&mut self, span: Duration) {
        let until = later(self.now, span);
        while self.now < until {
            let next = self.settle();
            let wake = match next {
                Next::After(d) => later(self.now, d),
                _ => until,
            };
            let first_end = self.ends.values().min().copied();
            let to = first_end
                .map_or(wake, |e| e.min(wake))
                .min(until)
                .max(self.now);
            if to == self.now {
                break;
            }
            self.advance_to(to);
        }
    }

    /// Runs until the run ends.
    pub fn run_to_end(&mut self, limit: Duration) {
        self.run_until(limit, |w| w.phase().is_some_and(LayerPhase::is_terminal));
    }

    pub fn phase(&self) -> Option<LayerPhase> {
        self.run.status.as_ref().and_then(|s| s.phase)
    }

    pub fn category(&self, name: &str) -> &CategoryRun {
        self.crs
            .values()
            .find(|c| c.spec.category == name)
            .unwrap_or_else(|| panic!("no category {name}"))
    }

    pub fn cat_phase(&self, name: &str) -> Option<Phase> {
        self.category(name).status.as_ref().and_then(|s| s.phase)
    }

    /// The phase of each category in the run's summary.
    pub fn summary(&self) -> BTreeMap<String, Phase> {
        self.run
            .status
            .as_ref()
            .map(|s| {
                s.categories
                    .iter()
                    .map(|c| (c.name.clone(), c.phase))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes whose description starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.writes.iter().filter(|w| w.starts_with(prefix)).count()
    }

    /// The most Pods alive (created, not ended or deleted) at once.
    pub fn peak_running(&self) -> usize {
        let (mut now, mut peak) = (0i64, 0i64);
        let mut ended = std::collections::BTreeSet::new();
        for (_, p, e) in &self.pod_log {
            match e {
                PodEvent::Created => now += 1,
                PodEvent::Ended(_) => {
                    ended.insert(p.clone());
                    now -= 1;
                }
                PodEvent::Deleted => {
                    if ended.insert(p.clone()) {
                        now -= 1;
                    }
                }
            }
            peak = peak.max(now);
        }
        peak as usize
    }

    /// When a Pod whose name starts with `prefix` first had `event`.
    pub fn first(&self, prefix: &str, event: &PodEvent) -> f64 {
        self.pod_log
            .iter()
            .find(|(_, p, e)| p.starts_with(prefix) && e == event)
            .map(|(t, ..)| *t)
            .unwrap_or_else(|| panic!("no {event:?} of {prefix}"))
    }

    /// Pods of the run whose container still runs.
    pub fn live_pods(&self) -> usize {
        self.pods
            .values()
            .filter(|p| p.labels().get(LABEL_RUN).is_some())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count()
    }
}
