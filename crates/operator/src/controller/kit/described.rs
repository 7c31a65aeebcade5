//! A registry that describes every metric family from the start: the text
//! encoder leaves out a family that has no sample yet (a labelled counter
//! before its first increment), but dashboards and alert rules name them
//! before any run has ended, so their `# HELP` and `# TYPE` lines are
//! written anyway.

use prometheus_client::registry::{Metric, Registry};

/// The prefix of every metric name.
pub const PREFIX: &str = "testlayer";

/// A registry and the description of each family registered in it.
pub struct Described {
    registry: Registry,
    /// (full family name, help, type) of each family.
    families: Vec<(String, String, &'static str)>,
}

impl Default for Described {
    fn default() -> Self {
        Described {
            registry: Registry::with_prefix(PREFIX),
            families: Vec::new(),
        }
    }
}

impl Described {
    /// Registers `metric` as `name` (without the prefix) of type `kind`
    /// (`counter`, `gauge` or `histogram`).
    pub fn add(&mut self, name: &str, help: &str, kind: &'static str, metric: impl Metric) {
        self.registry.register(name, help, metric);
        self.families
            .push((format!("{PREFIX}_{name}"), format!("{help}."), kind));
    }

    /// The text exposition, every family described.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        let body_end = out.rfind("# EOF").unwrap_or(out.len());
        let mut missing = String::new();
        for (name, help, kind) in &self.families {
            if !out.contains(&format!("# TYPE {name} {kind}\n")) {
                missing.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            }
        }
        out.insert_str(body_end, &missing);
        out
    }
}
