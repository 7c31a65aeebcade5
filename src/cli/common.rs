//! What the verbs share: exit codes, output formats, the layer arguments,
//! suite keys and printing a report.

use clap::ValueEnum;
use std::path::PathBuf;

/// Exit code for bad input (config, flags).
pub const EXIT_BAD_INPUT: i32 = 2;

/// Report formats on standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A summary table.
    Text,
    /// The full report as JSON.
    Json,
}

/// Where the layer config comes from and which layer and environment.
#[derive(Debug, Clone, clap::Args)]
pub struct LayerArgs {
    /// Layer config file.
    #[arg(long, short = 'c', default_value = "config/test_layers.yaml")]
    pub config: PathBuf,
    /// Layer key, e.g. `fast_feedback`.
    #[arg(long, short = 'l')]
    pub layer: String,
    /// Environment whose overrides apply (test, development, staging, production, ...).
    #[arg(long, short = 'e')]
    pub env: Option<String>,
}

/// Eight hex digits, random per call (a suffix no other process has).
#[cfg(feature = "cluster")]
pub(super) fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// The layers of a suite: every layer of `config` (`--all`), or those of
/// `-l a,b,c`.
pub(super) fn suite_keys(
    all: bool,
    layer: Option<&str>,
    config: &crate::config::Config,
) -> Vec<String> {
    if all {
        return config.layer_keys().into_iter().map(String::from).collect();
    }
    layer
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect()
}

/// Says which layers of `suite` depend on a layer it does not run.
pub(super) fn note_outside(suite: &crate::plan::suite::Suite) {
    for (layer, dep) in &suite.outside {
        eprintln!(
            "note: layer {layer} depends on layer {dep}, which this suite does not run: not waited for"
        );
    }
}

/// Writes the JUnit report if asked, prints the summary or JSON on standard
/// output, and returns the run's exit code.
pub(super) fn print_reports(
    report: &crate::report::RunReport,
    output: OutputFormat,
    junit: Option<&std::path::Path>,
) -> i32 {
    use std::io::IsTerminal;
    if let Some(path) = junit {
        match report.to_junit() {
            Ok(xml) => {
                if let Err(e) = std::fs::write(path, xml) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("error: cannot make the JUnit report: {e}"),
        }
    }
    match output {
        OutputFormat::Json => println!("{}", report.to_json()),
        OutputFormat::Text => print!("{}", report.summary(std::io::stdout().is_terminal())),
    }
    report.exit_code()
}
