//! Resolving each category of a layer: names, timeouts, dependencies,
//! command, image, environment, retries and estimates.

use std::collections::BTreeMap;
use std::time::Duration;

use super::bounds::{
    DEFAULT_BACKOFF_SECS, DEFAULT_INFRA_RETRIES, MAX_QUARANTINE, MAX_RETRIES, MAX_TIMEOUT_SECS,
};
use super::checks::check_env_name;
use super::overrides::Resolver;
use crate::config::error::Collector;
use crate::config::names;
use crate::config::raw::{RawCategory, RawResources};
use crate::layer::{CategoryPlan, EstimateSource, Quantities, substitute_command};
use crate::results::IdPattern;

impl Resolver<'_> {
    pub(super) fn categories(
        &self,
        c: &mut Collector,
        d: &CategoryDefaults<'_>,
    ) -> Vec<CategoryPlan> {
        let lp = &self.lp;
        let raw_cats = &self.raw.categories;
        if raw_cats.is_empty() {
            c.push(format!("{lp}.categories"), "the layer has no categories");
            return Vec::new();
        }
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, rc) in raw_cats.iter().enumerate() {
            if let Some(first) = index.get(rc.name.as_str()) {
                c.push(
                    format!("{lp}.categories[{i}].name"),
                    format!(
                        "duplicate category name {:?} (also categories[{first}])",
                        rc.name
                    ),
                );
            } else {
                index.insert(rc.name.as_str(), i);
            }
        }
        let k8s = match names::k8s_names(index.keys().copied()) {
            Ok(m) => m,
            Err((name, e)) => {
                let i = index.get(name.as_str()).copied().unwrap_or(0);
                c.push(format!("{lp}.categories[{i}].name"), e.to_string());
                BTreeMap::new()
            }
        };
        raw_cats
            .iter()
            .enumerate()
            .map(|(i, rc)| self.category(c, d, i, rc, &index, &k8s))
            .collect()
    }

    fn category(
        &self,
        c: &mut Collector,
        d: &CategoryDefaults<'_>,
        i: usize,
        rc: &RawCategory,
        index: &BTreeMap<&str, usize>,
        k8s: &BTreeMap<String, String>,
    ) -> CategoryPlan {
        let cp = format!("{}.categories[{i}]", self.lp);
        let secs = |v: f64, field: &str, max: f64, c: &mut Collector| -> Option<f64> {
            if v.is_finite() && v > 0.0 && v <= max {
                Some(v)
            } else {
                c.push(
                    format!("{cp}.{field}"),
                    format!("must be more than 0 and at most {max} seconds, got {v}"),
                );
                None
            }
        };
        let timeout_secs = match rc.timeout_seconds {
            Some(t) => secs(t, "timeout_seconds", MAX_TIMEOUT_SECS, c).unwrap_or(1.0),
            None => {
                c.push(
                    format!("{cp}.timeout_seconds"),
                    format!("category {:?} needs a timeout_seconds", rc.name),
                );
                1.0
            }
        };
        let timeout = Duration::from_secs_f64(timeout_secs * d.multiplier);
        let mut dependencies = Vec::new();
        for (j, dep) in rc.dependencies.iter().enumerate() {
            match index.get(dep.as_str()) {
                Some(&k) if !dependencies.contains(&k) => dependencies.push(k),
                Some(_) => {}
                None => c.push(
                    format!("{cp}.dependencies[{j}]"),
                    format!(
                        "unknown category {dep:?}; categories of layer {}: {}",
                        self.key,
                        index.keys().copied().collect::<Vec<_>>().join(", ")
                    ),
                ),
            }
        }
        let command = match (&rc.command, d.command) {
            (Some(cmd), _) if cmd.trim().is_empty() => {
                c.push(format!("{cp}.command"), "must not be empty");
                None
            }
            (Some(cmd), _) => Some(substitute_command(cmd, self.key, &rc.name)),
            (None, Some(t)) => Some(substitute_command(t, self.key, &rc.name)),
            (None, None) => None,
        };
        let image = match &rc.image {
            Some(im) if im.trim().is_empty() => {
                c.push(format!("{cp}.image"), "must not be empty");
                None
            }
            Some(im) => Some(im.clone()),
            None => d.image.clone(),
        };
        let mut env = d.env.clone();
        for (k, v) in &rc.env {
            if let Err(p) = check_env_name(k) {
                c.push(format!("{cp}.env.{k}"), p);
            }
            env.insert(k.clone(), v.clone());
        }
        let resources = self.resources(c, &cp, rc.resources.as_ref(), d);
        let count = |v: Option<i64>, field: &str, default: i64, c: &mut Collector| -> u32 {
            match v {
                None => default as u32,
                Some(n) if (0..=MAX_RETRIES).contains(&n) => n as u32,
                Some(n) => {
                    c.push(
                        format!("{cp}.{field}"),
                        format!("must be between 0 and {MAX_RETRIES}, got {n}"),
                    );
                    0
                }
            }
        };
        let own_retries = if self.ov.retries.is_some() {
            None
        } else {
            rc.retries
        };
        let retries = count(own_retries, "retries", i64::from(d.retries), c);
        let infra_retries = count(rc.infra_retries, "infra_retries", DEFAULT_INFRA_RETRIES, c);
        let backoff = match rc.retry_backoff_seconds {
            None => DEFAULT_BACKOFF_SECS,
            Some(b) if b.is_finite() && (0.0..=3600.0).contains(&b) => b,
            Some(b) => {
                c.push(
                    format!("{cp}.retry_backoff_seconds"),
                    format!("must be between 0 and 3600 seconds, got {b}"),
                );
                DEFAULT_BACKOFF_SECS
            }
        };
        let estimate_source = if rc.expected_duration_seconds.is_some() {
            EstimateSource::Config
        } else {
            EstimateSource::Timeout
        };
        let estimate = rc
            .expected_duration_seconds
            .and_then(|e| secs(e, "expected_duration_seconds", MAX_TIMEOUT_SECS, c))
            .map(|e| Duration::from_secs_f64(e * d.multiplier).min(timeout))
            .unwrap_or(timeout);
        for (field, v) in [
            ("junit_report", &rc.junit_report),
            ("working_dir", &rc.working_dir),
        ] {
            if v.as_ref().is_some_and(|s| s.trim().is_empty()) {
                c.push(format!("{cp}.{field}"), "must not be empty");
            } else if v.as_ref().is_some_and(|s| s.chars().any(char::is_control)) {
                c.push(format!("{cp}.{field}"), "must not hold control characters");
            }
        }
        let quarantine = self.quarantine(c, &cp, d.quarantine, &rc.quarantine);
        let uses = self.uses(c, &format!("{cp}.uses"), &rc.uses, d.capacities);
        for (j, u) in rc.uses.iter().enumerate() {
            let k = super::shared::resource_k8s_name(&u.name);
            if d.layer_uses.contains_key(&k) {
                c.push(
                    format!("{cp}.uses[{j}]"),
                    format!(
                        "the layer holds {:?} for its whole run; its categories cannot wait for more of it",
                        u.name
                    ),
                );
            }
        }
        CategoryPlan {
            name: rc.name.clone(),
            k8s_name: k8s.get(&rc.name).cloned().unwrap_or_default(),
            timeout,
            priority_order: rc.priority_order.unwrap_or(i as i64 + 1),
            dependencies,
            command,
            image,
            env,
            resources,
            retries,
            infra_retries,
            retry_backoff: Duration::from_secs_f64(backoff),
            estimate,
            estimate_source,
            junit_report: rc.junit_report.clone(),
            working_dir: rc.working_dir.clone(),
            quarantine,
            allow_failure: rc.allow_failure.unwrap_or(false),
            uses,
        }
    }

    /// The quarantine of a category at `cp`: the layer's patterns, then its
    /// own, each one checked (ids need not exist; patterns must be good).
    fn quarantine(
        &self,
        c: &mut Collector,
        cp: &str,
        layer: &[String],
        own: &[String],
    ) -> Vec<String> {
        let lp = &self.lp;
        for (at, list) in [(lp.as_str(), layer), (cp, own)] {
            for (j, p) in list.iter().enumerate() {
                if let Err(e) = IdPattern::parse(p) {
                    c.push(
                        format!("{at}.quarantine[{j}]"),
                        format!("test id pattern {p:?} {e}"),
                    );
                }
            }
        }
        let mut all: Vec<String> = Vec::with_capacity(layer.len() + own.len());
        for p in layer.iter().chain(own) {
            if !all.contains(p) {
                all.push(p.clone());
            }
        }
        if all.len() > MAX_QUARANTINE {
            c.push(
                format!("{cp}.quarantine"),
                format!(
                    "{} quarantined test patterns with the layer's; at most {MAX_QUARANTINE} are taken",
                    all.len()
                ),
            );
        }
        all
    }
}

pub(super) struct CategoryDefaults<'a> {
    pub(super) multiplier: f64,
    pub(super) env: &'a BTreeMap<String, String>,
    pub(super) image: Option<String>,
    pub(super) command: Option<&'a str>,
    pub(super) retries: u32,
    pub(super) resources: Option<&'a RawResources>,
    pub(super) budget: Quantities,
    pub(super) quarantine: &'a [String],
    /// Declared capacities of shared resources.
    pub(super) capacities: &'a BTreeMap<String, u32>,
    /// Shared resources the layer holds for its whole run.
    pub(super) layer_uses: &'a BTreeMap<String, u32>,
}
