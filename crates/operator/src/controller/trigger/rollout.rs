//! Whether a watched resource has finished rolling out, and which revision,
//! read per kind from the object as stored. Pure.
//!
//! - Deployment: the `deployment.kubernetes.io/revision` annotation;
//!   finished when the controller observed the generation and every
//!   replica is updated and available, with no old one left (kstatus).
//! - StatefulSet: `status.updateRevision`; finished when observed, every
//!   replica updated and ready, and `currentRevision` caught up.
//! - DaemonSet: a digest of `spec.template` (a DaemonSet has no revision
//!   number in its status); finished when observed and every scheduled
//!   Pod updated and available.
//! - Flux Kustomization: `status.lastAppliedRevision`; Flux HelmRelease:
//!   `status.lastReleaseRevision` (the Helm release number); finished by
//!   kstatus (generation observed, `Ready=True`, not reconciling).
//! - Argo CD Application: `status.sync.revision`, finished once
//!   `status.sync.status` is Synced and `status.health.status` Healthy.
//! - Argo Rollout: `status.currentPodHash`, finished when its controller
//!   observed the generation, the new ReplicaSet is the stable one, and
//!   `status.phase` is Healthy.
//! - Any other kind: the configured `revisionPath`, finished by kstatus.
//!
//! A generation change alone (scaling a Deployment) changes no revision.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A resource's rollout as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// Its revision (none: none yet).
    pub revision: Option<String>,
    /// Whether the rollout of that revision has finished.
    pub finished: bool,
    /// Why not, when not finished.
    pub waiting: String,
    /// Its first container image, where it has Pods.
    pub image: Option<String>,
}

/// A kind without a known revision and no `revisionPath`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kind {0} has no known revision: name its field in spec.watch.revisionPath")]
pub struct NoRevision(pub String);

/// Whether `kind` of `api_version` has a revision of its own.
pub fn known_kind(api_version: &str, kind: &str) -> bool {
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    matches!(
        (group, kind),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
            | ("kustomize.toolkit.fluxcd.io", "Kustomization")
            | ("helm.toolkit.fluxcd.io", "HelmRelease")
            | ("argoproj.io", "Application" | "Rollout")
    )
}

/// The rollout of `obj`, of `kind` in `api_version`; `revision_path`, when
/// set, is where its revision is instead.
pub fn rollout(
    obj: &Value,
    api_version: &str,
    kind: &str,
    revision_path: Option<&Path>,
) -> Result<Rollout, NoRevision> {
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let (revision, (finished, waiting)) = match (group, kind) {
        ("apps", "Deployment") => (
            text(&obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"]),
            deployment(obj),
        ),
        ("apps", "StatefulSet") => (text(&obj["status"]["updateRevision"]), stateful_set(obj)),
        ("apps", "DaemonSet") => (template_digest(obj), daemon_set(obj)),
        ("kustomize.toolkit.fluxcd.io", "Kustomization") => {
            (text(&obj["status"]["lastAppliedRevision"]), kstatus(obj))
        }
        ("helm.toolkit.fluxcd.io", "HelmRelease") => {
            (text(&obj["status"]["lastReleaseRevision"]), kstatus(obj))
        }
        ("argoproj.io", "Application") => {
            (text(&obj["status"]["sync"]["revision"]), application(obj))
        }
        ("argoproj.io", "Rollout") => (text(&obj["status"]["currentPodHash"]), argo_rollout(obj)),
        _ => {
            let Some(p) = revision_path else {
                return Err(NoRevision(kind.into()));
            };
            (text(p.get(obj)), kstatus(obj))
        }
    };
    let revision = match revision_path {
        Some(p) => text(p.get(obj)),
        None => revision,
    };
    let image = text(&obj["spec"]["template"]["spec"]["containers"][0]["image"]);
    Ok(Rollout {
        revision,
        finished,
        waiting,
        image,
    })
}

/// A string or number as text; none when absent or empty.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Whether the resource's controller has seen its latest spec.
fn observed(obj: &Value) -> Result<(), String> {
    let generation = &obj["metadata"]["generation"];
    let seen = &obj["status"]["observedGeneration"];
    match (generation.as_i64(), seen.as_i64()) {
        (Some(g), Some(s)) if s < g => Err(format!(
            "its controller has not observed generation {g} yet (observed {s})"
        )),
        (Some(g), None) if !seen.is_null() || obj["status"].is_null() => Err(format!(
            "its controller has not observed generation {g} yet"
        )),
        _ => Ok(()),
    }
}

fn done(r: Result<(), String>) -> (bool, String) {
    match r {
        Ok(()) => (true, String::new()),
        Err(why) => (false, why),
    }
}

fn deployment(obj: &Value) -> (bool, String) {
    done((|| {
        observed(obj)?;
        let s = &obj["status"];
        let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
        let (updated, replicas, available) = (
            int(&s["updatedReplicas"]),
            int(&s["replicas"]),
            int(&s["availableReplicas"]),
        );
        if let Some(c) = condition(obj, "Progressing")
            && c["reason"] == "ProgressDeadlineExceeded"
        {
            return Err("its rollout exceeded its progress deadline".into());
        }
        if updated < want {
            return Err(format!("{updated} of {want} replicas updated"));
        }
        if replicas > updated {
            return Err(format!("{} old replicas still there", replicas - updated));
        }
        if available < updated {
            return Err(format!(
                "{available} of {updated} updated replicas available"
            ));
        }
        Ok(())
    })())
}

fn stateful_set(obj: &Value) -> (bool, String) {
    done((|| {
        observed(obj)?;
        let s = &obj["status"];
        let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
        let (ready, updated) = (int(&s["readyReplicas"]), int(&s["updatedReplicas"]));
        if updated < want {
            return Err(format!("{updated} of {want} replicas updated"));
        }
        if ready < want {
            return Err(format!("{ready} of {want} replicas ready"));
        }
        if s["currentRevision"] != s["updateRevision"] {
            return Err("its current revision is not the update revision yet".into());
        }
        Ok(())
    })())
}

fn daemon_set(obj: &Value) -> (bool, String) {
    done((|| {
        observed(obj)?;
        let s = &obj["status"];
        let want = int(&s["desiredNumberScheduled"]);
        let (updated, available) = (
            int(&s["updatedNumberScheduled"]),
            int(&s["numberAvailable"]),
        );
        if updated < want {
            return Err(format!("{updated} of {want} Pods updated"));
        }
        if available < want {
            return Err(format!("{available} of {want} Pods available"));
        }
        Ok(())
    })())
}

fn application(obj: &Value) -> (bool, String) {
    let sync = obj["status"]["sync"]["status"]
        .as_str()
        .unwrap_or("Unknown");
    let health = obj["status"]["health"]["status"]
        .as_str()
        .unwrap_or("Unknown");
    if sync == "Synced" && health == "Healthy" {
        (true, String::new())
    } else {
        (false, format!("sync {sync}, health {health}"))
    }
}

fn argo_rollout(obj: &Value) -> (bool, String) {
    let s = &obj["status"];
    // Argo Rollouts writes the generation it observed as a string.
    let generation = obj["metadata"]["generation"]
        .as_i64()
        .map(|g| g.to_string());
    if let (Some(g), Some(seen)) = (&generation, s["observedGeneration"].as_str())
        && g != seen
    {
        return (
            false,
            format!("its controller has not observed generation {g} yet"),
        );
    }
    if !s["stableRS"].is_null() && s["stableRS"] != s["currentPodHash"] {
        return (
            false,
            "the new ReplicaSet is not promoted to stable yet".into(),
        );
    }
    match s["phase"].as_str() {
        Some("Healthy") => (true, String::new()),
        other => (false, format!("phase {}", other.unwrap_or("unknown"))),
    }
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// kstatus's reading of a resource with conditions: Current once its
/// generation is observed, it is not reconciling or stalled, and its
/// `Ready` condition (where it has one) is True.
pub fn kstatus(obj: &Value) -> (bool, String) {
    done((|| {
        observed(obj)?;
        for bad in ["Reconciling", "Stalled"] {
            if let Some(c) = condition(obj, bad)
                && c["status"] == "True"
            {
                return Err(format!("{bad}: {}", c["message"].as_str().unwrap_or("")));
            }
        }
        if let Some(c) = condition(obj, "Ready")
            && c["status"] != "True"
        {
            return Err(format!(
                "Ready is {}: {}",
                c["status"].as_str().unwrap_or("Unknown"),
                c["message"].as_str().unwrap_or("")
            ));
        }
        Ok(())
    })())
}

fn template_digest(obj: &Value) -> Option<String> {
    let t = &obj["spec"]["template"];
    if t.is_null() {
        return None;
    }
    let digest = Sha256::digest(t.to_string().as_bytes());
    Some(digest.iter().take(5).map(|b| format!("{b:02x}")).collect())
}

/// A field path: `.status.lastAppliedRevision`, `status.history[0].digest`,
/// `.metadata.annotations["example.com/revision"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A path that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field path {path:?} does not parse at character {at}: {why}")]
pub struct PathError {
    /// As written.
    pub path: String,
    /// Where it went wrong (0-based).
    pub at: usize,
    /// Why.
    pub why: &'static str,
}

impl Path {
    /// Parses a path.
    pub fn parse(path: &str) -> Result<Path, PathError> {
        let err = |at, why| PathError {
            path: path.into(),
            at,
            why,
        };
        let chars: Vec<char> = path.chars().collect();
        let mut i = usize::from(chars.first() == Some(&'.'));
        let mut out = Vec::new();
        let mut key = String::new();
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    if key.is_empty() {
                        return Err(err(i, "an empty field name"));
                    }
                    out.push(Segment::Key(std::mem::take(&mut key)));
                    i += 1;
                }
                '[' => {
                    if !key.is_empty() {
                        out.push(Segment::Key(std::mem::take(&mut key)));
                    }
                    let close = chars[i..]
                        .iter()
                        .position(|c| *c == ']')
                        .map(|p| p + i)
                        .ok_or_else(|| err(i, "a [ without ]"))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    let quoted = inner.len() >= 2
                        && ((inner.starts_with('"') && inner.ends_with('"'))
                            || (inner.starts_with('\'') && inner.ends_with('\'')));
                    if quoted {
                        out.push(Segment::Key(inner[1..inner.len() - 1].to_string()));
                    } else {
                        let n = inner.parse().map_err(|_| {
                            err(i + 1, "an index that is not a number or a quoted key")
                        })?;
                        out.push(Segment::Index(n));
                    }
                    i = close + 1;
                    if i < chars.len() && chars[i] == '.' {
                        i += 1;
                        if i == chars.len() {
                            return Err(err(i, "a path ending in ."));
                        }
                    }
                }
                c => {
                    key.push(c);
                    i += 1;
                }
            }
        }
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        if out.is_empty() {
            return Err(err(0, "an empty path"));
        }
        Ok(Path(out))
    }

    /// The value at this path in `v` (null when absent).
    pub fn get<'a>(&self, v: &'a Value) -> &'a Value {
        let mut cur = v;
        for s in &self.0 {
            cur = match s {
                Segment::Key(k) => &cur[k.as_str()],
                Segment::Index(n) => &cur[*n],
            };
        }
        cur
    }
}
