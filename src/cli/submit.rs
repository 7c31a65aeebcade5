//! `testlayer submit`: creates a TestLayerRun in the current kubeconfig
//! context and, with `--wait`, follows it to the end: progress lines, a
//! summary, reports, and an exit code that says whether it passed. Also a
//! kubectl plugin when installed as `kubectl-testlayer`.

use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::common::EXIT_BAD_INPUT;
use crate::api::TestLayerRun;
use crate::api::names::LABEL_SUITE;
use crate::cli::submit_args::SubmitArgs;
use crate::config::Config;

/// Runs `submit`; returns the exit code.
pub fn submit(a: &SubmitArgs) -> i32 {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    rt.block_on(submit_async(a))
}

fn spec(a: &SubmitArgs, layer: &str) -> Result<serde_json::Value, String> {
    let config = match &a.config_map {
        Some(cm) => json!({"configMapRef": {"name": cm}}),
        None => {
            let text = std::fs::read_to_string(&a.config)
                .map_err(|e| format!("{}: {e}", a.config.display()))?;
            // Refuse bad config here, with the file's own name in the errors.
            let origin = a.config.display().to_string();
            Config::parse(&text, &origin)
                .and_then(|c| c.resolve_with(layer, a.env.as_deref(), &a.overrides.to_overrides()))
                .map_err(|e| {
                    e.0.iter()
                        .map(|l| format!("error: {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                })?;
            json!({"inline": text})
        }
    };
    let mut spec = json!({"layer": layer, "config": config});
    for (k, v) in [
        ("environment", &a.env),
        ("image", &a.image),
        ("command", &a.command),
    ] {
        if let Some(v) = v {
            spec[k] = json!(v);
        }
    }
    if let Some(ttl) = a.ttl {
        spec["ttlSecondsAfterFinished"] = json!(ttl);
    }
    if let Some(o) = a.overrides.to_spec() {
        spec["overrides"] = o;
    }
    Ok(spec)
}

/// The spec of a rerun of `old` (read from namespace `ns`).
async fn rerun_spec(
    a: &SubmitArgs,
    runs: &Api<TestLayerRun>,
    ns: &str,
    old: &str,
) -> Result<serde_json::Value, String> {
    let found = runs
        .get_opt(old)
        .await
        .map_err(|e| format!("cannot read TestLayerRun {old} in namespace {ns}: {e}"))?
        .ok_or_else(|| {
            format!("--rerun-failed: run {old} not found in namespace {ns} (deleted, perhaps by its TTL)")
        })?;
    let mut spec = json!({"layer": found.spec.layer, "rerunOf": old});
    if let Some(env) = &found.spec.environment {
        spec["environment"] = json!(env);
    }
    if let Some(ttl) = a.ttl {
        spec["ttlSecondsAfterFinished"] = json!(ttl);
    }
    Ok(spec)
}

async fn submit_async(a: &SubmitArgs) -> i32 {
    if a.all || a.layer.as_deref().is_some_and(|l| l.contains(',')) {
        return super::submit_suite::submit_suite(a).await;
    }
    let layer = a.layer.clone().unwrap_or_default();
    let spec = match &a.rerun_failed {
        // Read below, once there is a client.
        Some(_) => Ok(serde_json::Value::Null),
        None => spec(a, &layer),
    };
    let spec = match spec {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "{}",
                if e.starts_with("error:") {
                    e
                } else {
                    format!("error: {e}")
                }
            );
            return EXIT_BAD_INPUT;
        }
    };
    let (client, ns) =
        match super::controller::client_in(a.kubeconfig.as_ref(), a.namespace.as_deref()).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        };
    let runs: Api<TestLayerRun> = Api::namespaced(client.clone(), &ns);
    // A suite's name: rerun the suite.
    if let Some(old) = &a.rerun_failed
        && let Ok(None) = runs.get_opt(old).await
    {
        let lp = ListParams::default().labels(&format!("{LABEL_SUITE}={old}"));
        if let Ok(list) = runs.list(&lp).await
            && !list.items.is_empty()
        {
            return super::submit_suite::rerun_suite(a, client, &ns, old, list.items).await;
        }
    }
    let spec = match &a.rerun_failed {
        None => spec,
        Some(old) => match rerun_spec(a, &runs, &ns, old).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_BAD_INPUT;
            }
        },
    };
    let mut meta = json!({"labels": a.label_map()});
    match (&a.name, &a.rerun_failed) {
        (Some(n), _) => meta["name"] = json!(n),
        (None, Some(old)) => {
            // At most 63 characters in all, with the apiserver's 5.
            let stem: String = old.chars().take(50).collect();
            meta["generateName"] = json!(format!("{}-rerun-", stem.trim_end_matches('-')))
        }
        (None, None) => {
            meta["generateName"] = json!(format!(
                "{}-",
                crate::config::names::slug(&layer).unwrap_or_else(|_| "run".into())
            ))
        }
    }
    let obj = json!({"apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerRun", "metadata": meta, "spec": spec});
    let run: TestLayerRun = match serde_json::from_value(obj) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let created = match runs.create(&PostParams::default(), &run).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot create the TestLayerRun in namespace {ns}: {e}");
            return 1;
        }
    };
    let name = created.name_any();
    eprintln!("testlayerrun.testlayer.dev/{name} created in namespace {ns}");
    if !a.wait {
        println!("{name}");
        return 0;
    }
    follow(a, client, &ns, &name).await
}

async fn follow(a: &SubmitArgs, client: Client, ns: &str, name: &str) -> i32 {
    super::follow::follow(client, ns, name, &a.follow).await
}
