//! `testlayer validate` and `testlayer plan`.

use std::path::PathBuf;

use super::common::{EXIT_BAD_INPUT, LayerArgs, OutputFormat};
use crate::config::{Config, ConfigErrors};
use crate::layer::LayerPlan;
use crate::plan::describe::human_duration;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Layer config file.
    #[arg(default_value = "config/test_layers.yaml")]
    pub file: PathBuf,
}

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Layer, config and environment.
    #[command(flatten)]
    pub layer: LayerArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

fn print_errors(e: &ConfigErrors) -> i32 {
    for line in &e.0 {
        eprintln!("error: {line}");
    }
    eprintln!("{} problem(s) found", e.0.len());
    EXIT_BAD_INPUT
}

/// Checks the whole file.
pub fn validate(a: &ValidateArgs) -> i32 {
    let config = match Config::load(&a.file) {
        Ok(c) => c,
        Err(e) => return print_errors(&e),
    };
    if let Err(e) = config.validate() {
        return print_errors(&e);
    }
    for key in config.layer_keys() {
        if let Ok(p) = config.resolve(key, None) {
            println!(
                "{key}: {} categories, {}{}{}",
                p.categories.len(),
                p.settings.strategy.as_str(),
                p.effective_parallelism()
                    .map(|n| format!(" (at most {n} at once)"))
                    .unwrap_or_default(),
                p.settings
                    .deadline
                    .map(|d| format!(", deadline {}", human_duration(d)))
                    .unwrap_or_default(),
            );
        }
    }
    let envs = config.environments();
    println!(
        "{}: OK ({} layers; environments: {})",
        config.file,
        config.layer_keys().len(),
        if envs.is_empty() {
            "none".to_string()
        } else {
            envs.join(", ")
        }
    );
    0
}

/// Prints one resolved layer.
pub fn plan(a: &PlanArgs) -> i32 {
    let l = &a.layer;
    let plan = match Config::load(&l.config).and_then(|c| c.resolve(&l.layer, l.env.as_deref())) {
        Ok(p) => p,
        Err(e) => return print_errors(&e),
    };
    match a.output {
        OutputFormat::Json => println!("{}", plan_json(&plan)),
        OutputFormat::Text => print!("{}", plan_text(&plan)),
    }
    0
}

fn plan_json(p: &LayerPlan) -> String {
    let cats: Vec<serde_json::Value> = p
        .categories
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "k8s_name": c.k8s_name,
                "timeout_seconds": c.timeout.as_secs_f64(),
                "priority_order": c.priority_order,
                "dependencies": c.dependencies.iter().map(|&d| p.categories[d].name.clone()).collect::<Vec<_>>(),
                "command": c.command,
                "image": c.image,
                "env": c.env,
                "resources": c.resources,
                "retries": c.retries,
                "infra_retries": c.infra_retries,
                "retry_backoff_seconds": c.retry_backoff.as_secs_f64(),
                "estimate_seconds": c.estimate.as_secs_f64(),
                "remaining_path_seconds": p.remaining_path(p.index_of(&c.name).unwrap_or(0)).as_secs_f64(),
            })
        })
        .collect();
    let v = serde_json::json!({
        "layer": p.settings.key,
        "name": p.settings.display_name,
        "k8s_name": p.settings.k8s_name,
        "environment": p.settings.environment,
        "strategy": p.settings.strategy.as_str(),
        "background": p.settings.background(),
        "max_parallel": p.settings.max_parallel,
        "budget": p.settings.budget,
        "fail_fast": p.settings.fail_fast,
        "deadline_seconds": p.settings.deadline.map(|d| d.as_secs_f64()),
        "timeout_multiplier": p.settings.timeout_multiplier,
        "dependencies": p.settings.dependencies,
        "required_services": p.settings.required_services,
        "llm_mode": p.settings.llm_mode.as_str(),
        "critical_path_seconds": p.critical_path().as_secs_f64(),
        "categories": cats,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn plan_text(p: &LayerPlan) -> String {
    let mut out = format!(
        "{} ({}){}\n  strategy {}{}, fail-fast {}, deadline {}, LLM {}\n",
        p.settings.display_name,
        p.settings.key,
        p.settings
            .environment
            .as_ref()
            .map(|e| format!(" in {e}"))
            .unwrap_or_default(),
        p.settings.strategy.as_str(),
        p.effective_parallelism()
            .map(|n| format!(" (at most {n} at once)"))
            .unwrap_or_default(),
        if p.settings.fail_fast { "on" } else { "off" },
        p.settings
            .deadline
            .map(human_duration)
            .unwrap_or_else(|| "none".into()),
        p.settings.llm_mode.as_str(),
    );
    if !p.settings.dependencies.is_empty() {
        out += &format!("  after layers: {}\n", p.settings.dependencies.join(", "));
    }
    if !p.settings.required_services.is_empty() {
        out += &format!(
            "  needs services: {}\n",
            p.settings.required_services.join(", ")
        );
    }
    out += &format!("  critical path {}\n", human_duration(p.critical_path()));
    for &i in p.topo_order() {
        let c = &p.categories[i];
        let deps: Vec<&str> = c
            .dependencies
            .iter()
            .map(|&d| p.categories[d].name.as_str())
            .collect();
        out += &format!(
            "  - {} [{}] timeout {}, retries {}{}: {}\n",
            c.name,
            c.k8s_name,
            human_duration(c.timeout),
            c.retries,
            if deps.is_empty() {
                String::new()
            } else {
                format!(", after {}", deps.join(", "))
            },
            c.command.as_deref().unwrap_or("(no command)"),
        );
    }
    out
}
