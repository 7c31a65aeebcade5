//! Reading and parsing a layer config.

use std::path::Path;

use super::error::{Collector, ConfigError, ConfigErrors};
use super::raw::RawConfig;

/// A parsed layer config and the file it came from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (a path, or a label such as `configmap ns/name`).
    pub file: String,
    /// The config as written.
    pub raw: RawConfig,
}

impl Config {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, &file),
            Err(e) => {
                let mut c = Collector::new(&file);
                c.push("", format!("cannot read the file: {e}"));
                c.finish(Config {
                    file,
                    raw: RawConfig {
                        layers: Default::default(),
                        environment_overrides: Default::default(),
                        services: Default::default(),
                        resources: Default::default(),
                    },
                })
            }
        }
    }

    /// Parses config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
        if text.trim().is_empty() {
            return Err(ConfigErrors(vec![ConfigError {
                file: file.to_string(),
                position: None,
                path: String::new(),
                problem: "the file is empty; expected a mapping with a `layers:` key".into(),
            }]));
        }
        let de = serde_yaml::Deserializer::from_str(text);
        match serde_path_to_error::deserialize::<_, RawConfig>(de) {
            Ok(raw) => Ok(Config {
                file: file.to_string(),
                raw,
            }),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let position = inner.location().map(|l| (l.line(), l.column()));
                let mut problem = inner.to_string();
                // serde_yaml repeats the path (its own, which may stop
                // short of the field) and the position in its message; keep
                // the problem.
                if let Some((head, rest)) = problem.split_once(": ")
                    && !head.contains(' ')
                    && path.starts_with(head)
                {
                    problem = rest.to_string();
                }
                if let Some(i) = problem.rfind(" at line ") {
                    problem.truncate(i);
                }
                let problem = crate::parse_words::plain(&path, &problem);
                Err(ConfigErrors(vec![ConfigError {
                    file: file.to_string(),
                    position,
                    path: if path == "." { String::new() } else { path },
                    problem,
                }]))
            }
        }
    }

    /// Layer keys, sorted.
    pub fn layer_keys(&self) -> Vec<&str> {
        self.raw.layers.keys().map(String::as_str).collect()
    }

    /// Environments with overrides, sorted.
    pub fn environments(&self) -> Vec<&str> {
        self.raw
            .environment_overrides
            .keys()
            .map(String::as_str)
            .collect()
    }
}
