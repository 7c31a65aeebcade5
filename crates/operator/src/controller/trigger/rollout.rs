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
//!
//! What is read goes where a trigger's readers see it (its status, its runs'
//! annotations, their Pods' environment), so only two values leave this
//! module: the revision, bounded and printable ([`shown_revision`]), and the
//! first container image, only when it reads as an image reference
//! ([`shown_image`]). A Secret's revision may only come from its metadata
//! ([`Path::is_metadata_revision`]).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A resource's rollout as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// Its revision (none: none yet).
    pub revision: Option<String>,
    /// Whether the rollout of that revision has finished.
    pub finished: bool,
    /// Why not, when not finished (condition messages of the object: never
    /// written anywhere a trigger's readers see).
    pub waiting: String,
    /// Its first container image, where it has Pods and it reads as an image
    /// reference ([`shown_image`]).
    pub image: Option<String>,
}

/// A kind without a known revision and no `revisionPath`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kind {0} has no known revision: name its field in spec.watch.revisionPath")]
pub struct NoRevision(pub String);

/// Longest revision shown as read, in characters: a Flux revision of an
/// OCI artifact (`latest@sha256:` and 64 hex digits) fits.
pub const MAX_REVISION: usize = 128;

/// Longest image reference shown, in characters.
pub const MAX_IMAGE: usize = 255;

/// The annotation where `kubectl apply` keeps a whole object as applied (a
/// Secret's data with it): never a Secret's revision.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A revision as a trigger shows it (status, annotations, environment,
/// Events, and the digest in run names): as read when it is at most
/// [`MAX_REVISION`] printable ASCII characters with no space; otherwise
/// `sha256-` and the first 16 hex digits of its SHA-256, so that a long or
/// odd value is never copied and two revisions stay two.
pub fn shown_revision(raw: &str) -> String {
    if raw.chars().count() <= MAX_REVISION && raw.chars().all(|c| c.is_ascii_graphic()) {
        return raw.to_string();
    }
    let digest = Sha256::digest(raw.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256-{hex}")
}

/// An image as a trigger shows it: `raw` when it reads as an image
/// reference (at most [`MAX_IMAGE`] characters of letters, digits and
/// `. _ - / : @`), otherwise none.
pub fn shown_image(raw: &str) -> Option<String> {
    let reference = !raw.is_empty()
        && raw.chars().count() <= MAX_IMAGE
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'));
    reference.then(|| raw.to_string())
}

/// Whether `kind` of `api_version` is the core Secret.
pub fn is_secret(api_version: &str, kind: &str) -> bool {
    !api_version.contains('/') && kind == "Secret"
}

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
    let revision = revision.map(|r| shown_revision(&r));
    let image = text(&obj["spec"]["template"]["spec"]["containers"][0]["image"])
        .and_then(|i| shown_image(&i));
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

    /// Whether this path is one a Secret's revision may come from: its
    /// `metadata.resourceVersion`, `metadata.generation`, or one of its
    /// `metadata.annotations` other than [`LAST_APPLIED`] (however the path
    /// is spelt: `.metadata.annotations["a"]`, `metadata.annotations.a`).
    pub fn is_metadata_revision(&self) -> bool {
        let keys: Vec<&str> = self
            .0
            .iter()
            .map(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) => None,
            })
            .collect::<Option<_>>()
            .unwrap_or_default();
        match keys[..] {
            ["metadata", "resourceVersion" | "generation"] => true,
            ["metadata", "annotations", a] => a != LAST_APPLIED,
            _ => false,
        }
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
