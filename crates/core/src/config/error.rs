//! Errors found while loading or checking a layer config.

use std::fmt;

/// One problem in a layer config, located as precisely as the config allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the config came from (or a label such as `<inline>`).
    pub file: String,
    /// Line and column (1-based) when the YAML parser knows them.
    pub position: Option<(usize, usize)>,
    /// Dotted path of the field, e.g. `layers.fast_feedback.categories[0].timeout_seconds`.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.problem)
        } else {
            write!(f, ": {}: {}", self.path, self.problem)
        }
    }
}

/// Every problem found in a config; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// The problems, one per line, without the file name (for status conditions,
    /// where the source is already known).
    pub fn problems(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|e| {
                if e.path.is_empty() {
                    e.problem.clone()
                } else {
                    format!("{}: {}", e.path, e.problem)
                }
            })
            .collect()
    }
}

/// Collects problems while walking a config.
#[derive(Debug)]
pub(crate) struct Collector {
    file: String,
    errors: Vec<ConfigError>,
}

impl Collector {
    pub(crate) fn new(file: &str) -> Self {
        Self {
            file: file.to_string(),
            errors: Vec::new(),
        }
    }

    /// Records a problem at `path`.
    /// Adds a problem at `path`; the same problem at the same path (a
    /// layer-wide field checked for each category) is kept once.
    pub(crate) fn push(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        let (path, problem) = (path.into(), problem.into());
        if self
            .errors
            .iter()
            .any(|e| e.path == path && e.problem == problem)
        {
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.clone(),
            position: None,
            path,
            problem,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Everything recorded.
    pub(crate) fn into_errors(self) -> ConfigErrors {
        ConfigErrors(self.errors)
    }

    /// `Ok(value)` when nothing was recorded, else every recorded problem.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}
