//! Command-line interface: one binary, one subcommand per job.

#[cfg(feature = "cluster")]
mod cancel;
#[cfg(feature = "cluster")]
mod cluster_args;
mod common;
#[cfg(feature = "cluster")]
mod controller;
#[cfg(feature = "cluster")]
mod follow;
#[cfg(feature = "cluster")]
mod get;
mod history;
#[cfg(feature = "cluster")]
mod history_cluster;
#[cfg(feature = "cluster")]
mod list;
#[cfg(feature = "cluster")]
mod logs;
mod report;
#[cfg(feature = "cluster")]
mod rerun;
mod run;
mod run_options;
#[cfg(feature = "cluster")]
mod run_results;
#[cfg(feature = "cluster")]
mod submit;
#[cfg(feature = "cluster")]
mod submit_args;
#[cfg(feature = "cluster")]
mod submit_suite;
mod suite;
mod trend_view;
mod validate;
#[cfg(feature = "cluster")]
mod views;
#[cfg(feature = "cluster")]
mod wait;

use clap::{Parser, Subcommand};

pub use common::{EXIT_BAD_INPUT, LayerArgs, OutputFormat};

/// The log filter when none is given.
const DEFAULT_LOG: &str = "warn";

/// testlayer runs a test suite as layers of categories, in Kubernetes or on this machine.
#[derive(Debug, Parser)]
#[command(name = "testlayer", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (e.g. `info`, `testlayer=debug`); also RUST_LOG.
    #[arg(long, global = true, env = "TESTLAYER_LOG", default_value = DEFAULT_LOG)]
    pub log: String,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a layer config: every layer, in every environment.
    Validate(validate::ValidateArgs),
    /// Show the plan of one layer in one environment, as resolved.
    Plan(validate::PlanArgs),
    /// Run one layer on this machine as child processes.
    Run(run_options::RunArgs),
    #[cfg(feature = "cluster")]
    /// Print the CustomResourceDefinitions (TestLayerRun, CategoryRun,
    /// TestLayerSchedule, TestLayerTrigger, TestLayerResource) as YAML.
    Crds {
        /// Print the reference of the resources as markdown instead (what
        /// docs/reference/resources.md holds).
        #[arg(long)]
        markdown: bool,
    },
    #[cfg(feature = "cluster")]
    /// Run the Kubernetes operator.
    Controller(controller::ControllerArgs),
    #[cfg(feature = "cluster")]
    /// Create a TestLayerRun in the cluster and, with --wait, follow it to its end.
    Submit(submit_args::SubmitArgs),
    /// Write one self-contained HTML picture of a run (timeline, tests, logs).
    Report(report::ReportArgs),
    #[cfg(feature = "cluster")]
    /// List the runs in the cluster (phase, progress, counts, age, suite).
    List(list::ListArgs),
    #[cfg(feature = "cluster")]
    /// Show one run as a tree of its categories and attempts.
    Get(get::GetArgs),
    #[cfg(feature = "cluster")]
    /// Print (or follow, -f) the logs of a run's attempts.
    Logs(logs::LogsArgs),
    #[cfg(feature = "cluster")]
    /// Follow a submitted run to its end, as `submit --wait` does.
    Wait(wait::WaitArgs),
    #[cfg(feature = "cluster")]
    /// Cancel runs (or every run of a suite).
    Cancel(cancel::CancelArgs),
    #[cfg(feature = "cluster")]
    /// Run again what did not pass in a run (or suite) in the cluster.
    Rerun(rerun::RerunArgs),
    /// Show a layer's last outcomes and durations, and the tests that
    /// failed or flaked most (from the runs the cluster keeps, or the local
    /// history file with --local).
    History(history::HistoryArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs the CLI and returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    // The verbs that talk to a cluster say in their own words when it does
    // not answer; the client library's own retries are not shown unless a
    // log filter was asked for.
    let filter = match &cli.command {
        #[cfg(feature = "cluster")]
        Command::Controller(_) => cli.log.clone(),
        _ if cli.log == DEFAULT_LOG => format!("{DEFAULT_LOG},kube_client=off,kube_runtime=off"),
        _ => cli.log.clone(),
    };
    init_logging(&filter, cli.log_json);
    match cli.command {
        Command::Validate(a) => validate::validate(&a),
        Command::Plan(a) => validate::plan(&a),
        Command::Run(a) => run::run(&a),
        #[cfg(feature = "cluster")]
        Command::Controller(a) => controller::controller(&a),
        #[cfg(feature = "cluster")]
        Command::Submit(a) => submit::submit(&a),
        Command::Report(a) => report::report(&a),
        #[cfg(feature = "cluster")]
        Command::List(a) => list::list(&a),
        #[cfg(feature = "cluster")]
        Command::Get(a) => get::get(&a),
        #[cfg(feature = "cluster")]
        Command::Logs(a) => logs::logs(&a),
        #[cfg(feature = "cluster")]
        Command::Wait(a) => wait::wait(&a),
        #[cfg(feature = "cluster")]
        Command::Cancel(a) => cancel::cancel(&a),
        #[cfg(feature = "cluster")]
        Command::Rerun(a) => rerun::rerun(&a),
        Command::History(a) => history::history(&a),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "testlayer",
                &mut std::io::stdout(),
            );
            0
        }
        #[cfg(feature = "cluster")]
        Command::Crds { markdown: true } => {
            print!("{}", crate::api::reference::resources_markdown());
            0
        }
        #[cfg(feature = "cluster")]
        Command::Crds { markdown: false } => match crate::api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                0
            }
            Err(e) => {
                eprintln!("error: cannot render the CRDs: {e}");
                1
            }
        },
    }
}

fn init_logging(filter: &str, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The command-line reference, which the command table and the
    /// `testlayer run` options are read from.
    const COMMAND_LINE: &str = include_str!("../../docs/reference/command-line.md");

    /// The flags (`-l`, `--all`) that `text` names.
    fn flags(text: &str) -> Vec<String> {
        text.split(|c: char| c.is_whitespace() || "`()[],;|/".contains(c))
            .filter(|w| w.starts_with('-') && w.chars().nth(1).is_some_and(|c| c != ' '))
            .map(|w| {
                w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                    .split('=')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .filter(|w| {
                let name = w.trim_start_matches('-');
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            })
            .collect()
    }

    /// Whether `verb` (or the top level's global options) takes `flag`.
    fn takes(verb: &str, flag: &str) -> bool {
        let cli = super::Cli::command();
        let sub = cli.find_subcommand(verb).expect("a subcommand");
        sub.get_arguments()
            .chain(cli.get_arguments())
            .any(|a| match flag.strip_prefix("--") {
                Some(long) => {
                    a.get_long() == Some(long)
                        || a.get_all_aliases().is_some_and(|al| al.contains(&long))
                }
                None => flag
                    .strip_prefix('-')
                    .and_then(|s| s.chars().next())
                    .is_some_and(|c| a.get_short() == Some(c)),
            })
    }

    #[test]
    fn every_verb_and_flag_in_the_command_line_reference_exists() {
        let section = COMMAND_LINE;
        let mut rows = 0;
        for row in section.lines() {
            let Some(rest) = row.strip_prefix("| `testlayer ") else {
                continue;
            };
            let verb = rest.split([' ', '`']).next().unwrap_or_default();
            assert!(
                super::Cli::command().find_subcommand(verb).is_some(),
                "docs/reference/command-line.md lists `testlayer {verb}`, which is no command"
            );
            for flag in flags(row) {
                assert!(
                    takes(verb, &flag),
                    "docs/reference/command-line.md gives `testlayer {verb} {flag}`, which it does not take"
                );
            }
            rows += 1;
        }
        assert!(rows >= 7, "{rows} rows read");
        let run = section
            .split("`testlayer run` options:")
            .nth(1)
            .and_then(|t| t.split("\n\n").next())
            .expect("the paragraph of `testlayer run` options");
        let listed = flags(run);
        assert!(listed.len() >= 15, "{listed:?}");
        for flag in listed {
            assert!(
                takes("run", &flag),
                "docs/reference/command-line.md gives `testlayer run {flag}`, which it does not take"
            );
        }
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn the_help_of_crds_names_every_kind_it_prints() {
        let mut cli = super::Cli::command();
        let crds = cli.find_subcommand_mut("crds").expect("a crds subcommand");
        let help = crds.render_help().to_string();
        for crd in crate::api::all_crds() {
            let kind = crd.spec.names.kind;
            assert!(
                help.contains(&kind),
                "`testlayer crds --help` does not name {kind}:\n{help}"
            );
        }
    }
}
