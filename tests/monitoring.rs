//! The chart's monitoring (docs/operations/monitoring.md): a ServiceMonitor,
//! a PrometheusRule and a Grafana dashboard, each off by default.
//!
//! - rendered with a real `helm`, each piece only when enabled, every option
//!   where it belongs, bad values refused;
//! - the ServiceMonitor selects the chart's metrics Service (asked of the
//!   apiserver) on the port the controller listens on;
//! - the three objects pass the apiserver's strict validation with the
//!   Prometheus Operator's own CRDs installed;
//! - the rules pass `promtool check rules`, and `promtool test rules`
//!   (tests/prometheus/*.test.yaml) shows each alert firing when it should
//!   and not otherwise;
//! - the dashboard's PromQL parses (as recording rules for promtool), its
//!   panel ids are unique and it uses only the variables it declares;
//! - every metric the rules and the dashboard use is served on `/metrics`
//!   by a real controller.
//!
//! promtool and the CRDs come from `tests/prometheus/build.sh` (built from
//! the Go module proxy): TESTLAYER_PROMTOOL and TESTLAYER_PROMETHEUS_CRDS
//! name them, else the script is asked where they are.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use testlayer_testkit::ControlPlane;

use common::{Fixture, helm_refused, helm_template, http_get, wait_ready};

const ALL_ON: [&str; 3] = [
    "metrics.serviceMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "metrics.dashboard.enabled=true",
];

/// The alerts the PrometheusRule holds, in order.
const ALERTS: [&str; 4] = [
    "TestlayerControllerDown",
    "TestlayerReconcileErrors",
    "TestlayerLayerFailing",
    "TestlayerRunsStuckWaiting",
];

/// Series the rules and the dashboard may use that no controller serves:
/// `up`, which Prometheus records for every target it scrapes.
const PROMETHEUS_OWN: [&str; 1] = ["up"];

/// Every monitoring value set to something other than its default; the
/// dashboard's ConfigMap goes to `dashboards`.
fn every_monitoring_option(dashboards: &str) -> String {
    format!(
        r#"
metrics:
  port: 9100
  serviceMonitor:
    enabled: true
    interval: 15s
    scrapeTimeout: 5s
    labels: {{release: kube-prometheus-stack}}
  prometheusRule:
    enabled: true
    labels: {{release: kube-prometheus-stack, role: alert-rules}}
    job: ci-controller
    alertLabels: {{team: ci}}
    alerts:
      controllerDown: {{enabled: true, for: 2m, severity: page}}
      reconcileErrors: {{enabled: true, perSecond: 0.5, window: 5m, for: 15m, severity: info}}
      layerFailing: {{enabled: true, streak: 5, for: 0s, severity: critical}}
      runsStuckWaiting: {{enabled: true, seconds: 600, for: 10m, severity: info}}
  dashboard:
    enabled: true
    namespace: {dashboards}
    labelKey: example.com/dashboard
    labelValue: "yes"
    labels: {{team: ci}}
    folder: Testing
    folderAnnotation: k8s-sidecar-target-directory
    annotations: {{example.com/owner: ci}}
"#
    )
}

/// The values `tests/prometheus/rules-custom.test.yaml` tests the rules with.
const CUSTOM_RULES: [&str; 10] = [
    "metrics.prometheusRule.enabled=true",
    "metrics.prometheusRule.job=ci-controller",
    "metrics.prometheusRule.alertLabels.team=ci",
    "metrics.prometheusRule.alerts.controllerDown.enabled=false",
    "metrics.prometheusRule.alerts.reconcileErrors.perSecond=1",
    "metrics.prometheusRule.alerts.reconcileErrors.window=5m",
    "metrics.prometheusRule.alerts.layerFailing.streak=5",
    "metrics.prometheusRule.alerts.layerFailing.severity=page",
    "metrics.prometheusRule.alerts.runsStuckWaiting.seconds=600",
    "metrics.prometheusRule.alerts.runsStuckWaiting.for=1m",
];

// ---------------------------------------------------------------------------
// Rendering

/// The documents of a rendered chart.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|d| {
            let v: Value = serde::Deserialize::deserialize(d).ok()?;
            (!v.is_null()).then_some(v)
        })
        .collect()
}

/// The chart rendered as release `tl` into `testlayer-system` with `sets`.
fn render(sets: &[&str]) -> Vec<Value> {
    documents(&helm_template("tl", "testlayer-system", None, sets))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered chart"))
}

/// The kinds of the monitoring objects in `docs`: ServiceMonitor,
/// PrometheusRule, and ConfigMap for the dashboard's.
fn monitoring_kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("monitoring.coreos.com/"))
                || d["kind"] == "ConfigMap"
        })
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The rules of the PrometheusRule in `docs`, by alert name.
fn rules(docs: &[Value]) -> BTreeMap<String, Value> {
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("no PrometheusRule rendered");
    let groups = rule["spec"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    groups[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["alert"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// The dashboard JSON of the ConfigMap in `docs`.
fn dashboard(docs: &[Value]) -> Value {
    let map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["testlayer.json"].is_string())
        .expect("no dashboard ConfigMap rendered");
    serde_json::from_str(map["data"]["testlayer.json"].as_str().unwrap())
        .expect("the dashboard is JSON")
}

// ---------------------------------------------------------------------------
// What tests/prometheus/build.sh made

/// What `tests/prometheus/build.sh` made: `var` if set, else what the
/// script prints with `flag`.
fn built(var: &str, flag: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/prometheus/build.sh");
    let out = Command::new("bash")
        .args([script, flag])
        .output()
        .unwrap_or_else(|e| panic!("bash {script} {flag}: {e}"));
    assert!(out.status.success(), "{script} {flag} failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// promtool, or a failure saying how to build it.
fn promtool() -> PathBuf {
    let p = built("TESTLAYER_PROMTOOL", "--print-path");
    assert!(
        p.is_file(),
        "promtool is not built ({} is missing): run `bash tests/prometheus/build.sh` (it needs Go and the Go module proxy or cache)",
        p.display()
    );
    p
}

/// Installs the ServiceMonitor and PrometheusRule CRDs into `cp`; once per
/// process.
fn install_monitoring_crds(cp: &ControlPlane) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = built("TESTLAYER_PROMETHEUS_CRDS", "--print-crds");
        assert!(
            dir.join(".complete").is_file(),
            "the prometheus-operator CRDs are not downloaded ({} is incomplete): run `bash tests/prometheus/build.sh`",
            dir.display()
        );
        cp.install_crds(
            &dir,
            &[
                "servicemonitors.monitoring.coreos.com",
                "prometheusrules.monitoring.coreos.com",
            ],
        )
        .unwrap_or_else(|e| panic!("installing the CRDs in {}: {e}", dir.display()));
    });
}

/// Runs promtool with `args` in `dir`: (success, stdout and stderr).
fn run_promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A directory holding `rules.yaml`: the groups of the PrometheusRule in
/// `docs`, as Prometheus reads a rule file.
fn rule_file(docs: &[Value]) -> tempfile::TempDir {
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("no PrometheusRule rendered");
    let dir = tempfile::tempdir().unwrap();
    let text = serde_yaml::to_string(&json!({"groups": rule["spec"]["groups"]})).unwrap();
    std::fs::write(dir.path().join("rules.yaml"), text).unwrap();
    dir
}

/// `promtool test rules` of `tests/prometheus/<tests>` against the rules in
/// `dir`: (success, output).
fn test_rules(dir: &Path, tests: &str) -> (bool, String) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/prometheus")
        .join(tests);
    std::fs::copy(&src, dir.join(tests)).unwrap();
    run_promtool(dir, &["test", "rules", tests])
}

// ---------------------------------------------------------------------------
// Rendering tests

#[test]
fn each_piece_is_off_by_default_and_on_when_enabled() {
    assert_eq!(monitoring_kinds(&render(&[])), Vec::<String>::new());
    for (set, kind) in ALL_ON
        .iter()
        .zip(["ServiceMonitor", "PrometheusRule", "ConfigMap"])
    {
        let docs = render(&[set]);
        assert_eq!(monitoring_kinds(&docs), [kind], "{set}");
    }
    let docs = render(&ALL_ON);
    assert_eq!(
        monitoring_kinds(&docs),
        ["ConfigMap", "PrometheusRule", "ServiceMonitor"]
    );
    let sm = find(&docs, "ServiceMonitor", "tl-testlayer");
    assert_eq!(sm["metadata"]["namespace"], "testlayer-system");
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": "metrics", "path": "/metrics", "scheme": "http",
            "honorLabels": true, "interval": "30s", "scrapeTimeout": "10s"}])
    );
    // The four alerts, their thresholds, their severities and annotations.
    let by_alert = rules(&docs);
    assert_eq!(
        by_alert.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(ALERTS)
    );
    let job = r#"job="tl-testlayer-metrics""#;
    for (alert, expr, severity, r#for) in [
        (
            "TestlayerControllerDown",
            r#"absent(up{job="tl-testlayer-metrics", namespace="testlayer-system"} == 1)"#,
            "critical",
            "5m",
        ),
        (
            "TestlayerReconcileErrors",
            r#"sum by (namespace, job, error) (rate(testlayer_reconcile_errors_total{job="tl-testlayer-metrics", error=~"kube|panic|incomplete"}[10m])) > 0.05"#,
            "warning",
            "10m",
        ),
        (
            "TestlayerLayerFailing",
            r#"max by (namespace, layer) (testlayer_layer_failure_streak{job="tl-testlayer-metrics"}) >= 3"#,
            "warning",
            "1m",
        ),
        (
            "TestlayerRunsStuckWaiting",
            r#"max by (namespace, layer, queue) (testlayer_waiting_longest_seconds{job="tl-testlayer-metrics"}) > 1800"#,
            "warning",
            "1m",
        ),
    ] {
        let r = &by_alert[alert];
        assert_eq!(r["expr"], expr, "{alert}");
        assert!(r["expr"].as_str().unwrap().contains(job));
        assert_eq!(r["labels"], json!({"severity": severity}), "{alert}");
        assert_eq!(r["for"], r#for, "{alert}");
        let annotations = &r["annotations"];
        for a in ["summary", "description"] {
            assert!(annotations[a].is_string(), "{alert} has no {a}");
        }
        if alert == "TestlayerLayerFailing" || alert == "TestlayerRunsStuckWaiting" {
            for a in ["summary", "description"] {
                let text = annotations[a].as_str().unwrap();
                for label in ["{{ $labels.namespace }}", "{{ $labels.layer }}"] {
                    assert!(text.contains(label), "{alert} {a} names no {label}: {text}");
                }
            }
        }
    }
    let map = find(&docs, "ConfigMap", "tl-testlayer-dashboard");
    assert_eq!(map["metadata"]["namespace"], "testlayer-system");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert!(map["metadata"]["annotations"].is_null(), "{map}");
    // The dashboard is files/dashboard.json, as it is.
    let file = std::fs::read_to_string(common::chart_dir().join("files/dashboard.json")).unwrap();
    assert_eq!(
        map["data"]["testlayer.json"].as_str().unwrap().trim_end(),
        file.trim_end()
    );
    // Every alert can be left out, and then the rule has none of it.
    let rules_without = |alert: &str| {
        let set = format!("metrics.prometheusRule.alerts.{alert}.enabled=false");
        rules(&render(&["metrics.prometheusRule.enabled=true", &set]))
    };
    for (key, alert) in [
        "controllerDown",
        "reconcileErrors",
        "layerFailing",
        "runsStuckWaiting",
    ]
    .iter()
    .zip(ALERTS)
    {
        let left = rules_without(key);
        assert_eq!(left.len(), 3, "{key}");
        assert!(!left.contains_key(alert), "{key}");
    }
}

#[test]
fn every_monitoring_option_renders_where_it_belongs() {
    let values = every_monitoring_option("dashboards");
    let docs = documents(&helm_template("tl", "testlayer-system", Some(&values), &[]));
    let sm = find(&docs, "ServiceMonitor", "tl-testlayer");
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
    assert_eq!(
        sm["metadata"]["labels"]["app.kubernetes.io/name"],
        "testlayer"
    );
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["interval"], "15s");
    assert_eq!(endpoint["scrapeTimeout"], "5s");
    // Empty interval and timeout: the Prometheus's own.
    let docs_empty = render(&[
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.interval=",
        "metrics.serviceMonitor.scrapeTimeout=",
    ]);
    let endpoint_empty =
        &find(&docs_empty, "ServiceMonitor", "tl-testlayer")["spec"]["endpoints"][0];
    assert!(endpoint_empty["interval"].is_null(), "{endpoint_empty}");
    assert!(
        endpoint_empty["scrapeTimeout"].is_null(),
        "{endpoint_empty}"
    );

    let rule = find(&docs, "PrometheusRule", "tl-testlayer");
    assert_eq!(rule["metadata"]["labels"]["role"], "alert-rules");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let rules = rules(&docs);
    for (alert, in_expr, severity, r#for) in [
        (
            "TestlayerControllerDown",
            r#"up{job="ci-controller", namespace="testlayer-system"}"#,
            "page",
            "2m",
        ),
        ("TestlayerReconcileErrors", r#"[5m])) > 0.5"#, "info", "15m"),
        ("TestlayerLayerFailing", ">= 5", "critical", "0s"),
        ("TestlayerRunsStuckWaiting", "> 600", "info", "10m"),
    ] {
        let r = &rules[alert];
        let expr = r["expr"].as_str().unwrap();
        assert!(expr.contains(in_expr), "{alert}: {expr}");
        assert!(expr.contains(r#"job="ci-controller""#), "{alert}: {expr}");
        assert_eq!(
            r["labels"],
            json!({"severity": severity, "team": "ci"}),
            "{alert}"
        );
        assert_eq!(r["for"], r#for, "{alert}");
    }

    let map = find(&docs, "ConfigMap", "tl-testlayer-dashboard");
    assert_eq!(map["metadata"]["namespace"], "dashboards");
    let labels = &map["metadata"]["labels"];
    assert_eq!(labels["example.com/dashboard"], "yes");
    assert_eq!(labels["team"], "ci");
    assert!(labels["grafana_dashboard"].is_null(), "{labels}");
    assert_eq!(
        map["metadata"]["annotations"],
        json!({"k8s-sidecar-target-directory": "Testing", "example.com/owner": "ci"})
    );
    // The folder alone, under the sidecar's usual annotation.
    let docs = render(&[
        "metrics.dashboard.enabled=true",
        "metrics.dashboard.folder=CI",
    ]);
    assert_eq!(
        find(&docs, "ConfigMap", "tl-testlayer-dashboard")["metadata"]["annotations"],
        json!({"grafana_folder": "CI"})
    );
}

#[test]
fn bad_monitoring_values_are_refused() {
    let schema_refusal = "values don't meet the specifications of the schema";
    for (set, says) in [
        (
            "metrics.serviceMonitor.enabled=yes",
            "at '/metrics/serviceMonitor/enabled'",
        ),
        (
            "metrics.serviceMonitor.interval=30",
            "at '/metrics/serviceMonitor/interval'",
        ),
        (
            "metrics.serviceMonitor.labels.release=null",
            "at '/metrics/serviceMonitor/labels/release'",
        ),
        (
            "metrics.serviceMonitor.selector.app=x",
            "'selector' not allowed",
        ),
        (
            "metrics.prometheusRule.alerts.layerFailing.streak=0",
            "at '/metrics/prometheusRule/alerts/layerFailing/streak'",
        ),
        (
            "metrics.prometheusRule.alerts.layerFailing.streak=two",
            "at '/metrics/prometheusRule/alerts/layerFailing/streak'",
        ),
        (
            "metrics.prometheusRule.alerts.runsStuckWaiting.seconds=-1",
            "at '/metrics/prometheusRule/alerts/runsStuckWaiting/seconds'",
        ),
        (
            "metrics.prometheusRule.alerts.reconcileErrors.perSecond=0",
            "at '/metrics/prometheusRule/alerts/reconcileErrors/perSecond'",
        ),
        (
            "metrics.prometheusRule.alerts.reconcileErrors.window=ten",
            "at '/metrics/prometheusRule/alerts/reconcileErrors/window'",
        ),
        (
            "metrics.prometheusRule.alerts.controllerDown.for=5 minutes",
            "at '/metrics/prometheusRule/alerts/controllerDown/for'",
        ),
        (
            "metrics.prometheusRule.alerts.controllerDown.severity=",
            "at '/metrics/prometheusRule/alerts/controllerDown/severity'",
        ),
        (
            "metrics.prometheusRule.alerts.nodeDown.enabled=true",
            "'nodeDown' not allowed",
        ),
        (
            "metrics.prometheusRule.job=a\"b",
            "at '/metrics/prometheusRule/job'",
        ),
        (
            "metrics.dashboard.labelValue=1",
            "at '/metrics/dashboard/labelValue'",
        ),
        (
            "metrics.dashboard.namespace=Grafana_Dashboards",
            "at '/metrics/dashboard/namespace'",
        ),
    ] {
        let err = helm_refused(&[set]);
        assert!(err.contains(schema_refusal), "{set}: {err}");
        assert!(err.contains(says), "{set}: no {says:?} in\n{err}");
    }
    // What the schema cannot say: a ServiceMonitor needs the Service.
    let err = helm_refused(&[
        "metrics.serviceMonitor.enabled=true",
        "metrics.service.enabled=false",
    ]);
    assert!(
        err.contains("metrics.serviceMonitor.enabled needs metrics.service.enabled"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Against the apiserver

/// `kubectl apply` of `yaml` to `cp` with `extra` arguments; kubectl's
/// output, and its error output on failure.
fn kubectl_apply(cp: &ControlPlane, yaml: &str, extra: &[&str]) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = cp
        .kubectl()
        .arg("apply")
        .args(extra)
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

const DRY_RUN: [&str; 5] = [
    "--server-side",
    "--force-conflicts",
    "--field-manager=monitoring-dry-run",
    "--dry-run=server",
    "--validate=strict",
];

/// The ServiceMonitor scrapes the chart's metrics Service: the apiserver,
/// asked for the Services its selector selects, answers that one (not
/// another release's beside it); its
/// endpoint's port is that Service's port, whose target is the
/// controller's container port, on which the controller listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_monitor_selects_the_charts_metrics_service() {
    let cp = common::control_plane();
    install_monitoring_crds(cp);
    let ns = cp.create_namespace("mon-select").await.unwrap();
    let text = helm_template(
        "tl",
        &ns,
        None,
        &["metrics.serviceMonitor.enabled=true", "metrics.port=9100"],
    );
    let docs = documents(&text);
    let service = find(&docs, "Service", "tl-testlayer-metrics");
    let sm = find(&docs, "ServiceMonitor", "tl-testlayer");
    let deploy = find(&docs, "Deployment", "tl-testlayer");
    // Another release's metrics Service beside it, which it must not
    // select.
    let other = documents(&helm_template("other", &ns, None, &[]));
    let decoy = find(&other, "Service", "other-testlayer-metrics");
    // Only these, applied for real (a Deployment would need its Pods).
    let objects: String = [service, sm, decoy]
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
        .collect();
    kubectl_apply(cp, &objects, &[]).unwrap_or_else(|e| panic!("kubectl apply: {e}\n{objects}"));
    // As stored, not as rendered.
    let stored = cp
        .kubectl()
        .args([
            "get",
            "servicemonitor",
            "tl-testlayer",
            "-n",
            &ns,
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        stored.status.success(),
        "{}",
        String::from_utf8_lossy(&stored.stderr)
    );
    let sm: Value = serde_json::from_slice(&stored.stdout).unwrap();
    assert!(
        sm["spec"]["namespaceSelector"].is_null(),
        "the ServiceMonitor looks in its own namespace, the Service's"
    );
    let selector = sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("a matchLabels selector")
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    assert!(sm["spec"]["selector"]["matchExpressions"].is_null());
    let selected = cp
        .kubectl()
        .args(["get", "services", "-n", &ns, "-l", &selector, "-o", "name"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&selected.stdout).trim(),
        "service/tl-testlayer-metrics",
        "the Services {selector} selects"
    );
    // The endpoint's port is the Service's port of that name ...
    let endpoints = sm["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    let port_name = endpoints[0]["port"].as_str().unwrap();
    let ports = service["spec"]["ports"].as_array().unwrap();
    let port = ports
        .iter()
        .find(|p| p["name"] == port_name)
        .unwrap_or_else(|| panic!("the Service has no port {port_name}: {ports:?}"));
    assert_eq!(port["port"], 9100);
    assert_eq!(endpoints[0]["path"], "/metrics");
    // ... which targets the container's port, where the controller listens.
    let pod = &deploy["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let target = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port["targetPort"])
        .unwrap_or_else(|| panic!("no container port {}", port["targetPort"]));
    assert_eq!(target["containerPort"], 9100);
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--listen=0.0.0.0:9100")),
        "{}",
        container["args"]
    );
    // And the Service selects the controller's Pods.
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][k], v, "{k}");
    }
}

/// Every object the chart renders with the monitoring on (its defaults,
/// then every option) passes the apiserver's strict validation, the
/// ServiceMonitor and the PrometheusRule against the Prometheus Operator's
/// own CRDs; a field they do not have is refused (the check is not
/// vacuous).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_objects_pass_the_apiservers_validation() {
    let cp = common::control_plane();
    install_monitoring_crds(cp);
    let ns = cp.create_namespace("mon-dry").await.unwrap();
    let dashboards = cp.create_namespace("mon-dashboards").await.unwrap();
    let every = every_monitoring_option(&dashboards);
    for (what, values, sets) in [
        ("each piece on", None, ALL_ON.to_vec()),
        ("every option", Some(every.as_str()), vec![]),
    ] {
        let text = helm_template("dry", &ns, values, &sets);
        let docs = documents(&text);
        let out = kubectl_apply(cp, &text, &DRY_RUN)
            .unwrap_or_else(|e| panic!("{what}: the apiserver refused:\n{e}"));
        let validated = out
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(validated, docs.len(), "{what}: {out}");
        for (kind, name) in [
            ("servicemonitor.monitoring.coreos.com", "dry-testlayer"),
            ("prometheusrule.monitoring.coreos.com", "dry-testlayer"),
            ("configmap", "dry-testlayer-dashboard"),
        ] {
            assert!(
                out.lines()
                    .any(|l| l.starts_with(&format!("{kind}/{name} "))),
                "{what}: {kind}/{name} not validated:\n{out}"
            );
        }
    }
    for (good, bad, field) in [
        ("honorLabels: true", "honourLabels: true", "honourLabels"),
        (
            "        - alert: TestlayerLayerFailing\n",
            "        - alert: TestlayerLayerFailing\n          severity: warning\n",
            "severity",
        ),
    ] {
        let text = helm_template("dry", &ns, None, &ALL_ON);
        assert!(text.contains(good), "{good}");
        let text = text.replace(good, bad);
        let err = kubectl_apply(cp, &text, &DRY_RUN).expect_err(bad);
        assert!(err.contains(field), "{bad}: {err}");
    }
}

// ---------------------------------------------------------------------------
// promtool

#[test]
fn the_rules_pass_promtool_check_rules() {
    for (what, sets) in [
        ("the defaults", ALL_ON.to_vec()),
        ("custom values", CUSTOM_RULES.to_vec()),
    ] {
        let dir = rule_file(&render(&sets));
        let (ok, out) = run_promtool(dir.path(), &["check", "rules", "rules.yaml"]);
        assert!(ok, "{what}: {out}");
        let n = if what == "the defaults" { 4 } else { 3 };
        assert!(
            out.contains(&format!("SUCCESS: {n} rules found")),
            "{what}: {out}"
        );
    }
    // A broken expression is refused (the check is not vacuous).
    let docs = render(&ALL_ON);
    let dir = rule_file(&docs);
    let path = dir.path().join("rules.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("max by (namespace, layer)", "max by (namespace, layer"),
    )
    .unwrap();
    let (ok, out) = run_promtool(dir.path(), &["check", "rules", "rules.yaml"]);
    assert!(!ok, "{out}");
}

/// `promtool test rules`: tests/prometheus/rules.test.yaml against the
/// defaults (the controller down, then gone; conflicts alone, then kube
/// errors above the rate, panics below it; a streak of 2, then of 3, then
/// ended; waits of 1200 s and past 1800 s), and
/// tests/prometheus/rules-custom.test.yaml against CUSTOM_RULES. A rule
/// with another threshold fails them.
#[test]
fn the_alerts_fire_when_they_should_and_not_otherwise() {
    let dir = rule_file(&render(&ALL_ON));
    let (ok, out) = test_rules(dir.path(), "rules.test.yaml");
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");

    let dir = rule_file(&render(&CUSTOM_RULES));
    let (ok, out) = test_rules(dir.path(), "rules-custom.test.yaml");
    assert!(ok, "{out}");
    let left = rules(&render(&CUSTOM_RULES));
    assert!(!left.contains_key("TestlayerControllerDown"));

    // The tests would see a wrong threshold or a conflict counted.
    for (good, bad, failing) in [
        (">= 3", ">= 2", "a layer failing three times in a row"),
        (
            r#"error=~"kube|panic|incomplete""#,
            r#"error=~".+""#,
            "reconcile errors, not conflicts",
        ),
        ("> 1800", "> 1200", "runs stuck waiting"),
        ("== 1)", "== 0)", "controller down"),
    ] {
        let dir = rule_file(&render(&ALL_ON));
        let path = dir.path().join("rules.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(good), "{good} not in\n{text}");
        std::fs::write(&path, text.replacen(good, bad, 1)).unwrap();
        let (ok, out) = test_rules(dir.path(), "rules.test.yaml");
        assert!(!ok, "{bad} passed the tests:\n{out}");
        assert!(
            out.contains(failing),
            "{bad}: no failure of {failing:?}:\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------
// The dashboard

/// Every PromQL expression of the dashboard: (where, expression) for each
/// panel target, and the selector of each `label_values(...)` variable
/// query.
fn dashboard_expressions(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("panel {} {:?} target {}", p["id"], p["title"], t["refId"]),
                t["expr"].as_str().expect("a target's expr").to_string(),
            ));
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"].as_str().expect("a variable's query");
        assert_eq!(v["definition"].as_str(), Some(q), "{}", v["name"]);
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(...): {q}", v["name"]));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        assert!(!label.trim().is_empty(), "{q}");
        out.push((
            format!("variable {}", v["name"]),
            selector.trim().to_string(),
        ));
    }
    out
}

/// Grafana's own variables the dashboard may use.
const GRAFANA_VARIABLES: [&str; 4] = ["__rate_interval", "__range", "__interval", "__all"];

/// The names of the variables `text` refers to (`$name`, `${name}`,
/// `${name:format}`, `[[name]]`).
fn variable_references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices('$') {
        let rest = &text[i + 1..];
        let name = match rest.strip_prefix('{') {
            Some(r) => word(r),
            None => word(rest),
        };
        if !name.is_empty() {
            out.insert(name);
        }
    }
    for (i, _) in text.match_indices("[[") {
        let name = word(&text[i + 2..]);
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// The dashboard: unique panel ids, panels inside the 24 columns and not
/// overlapping, the Prometheus data source variable used by every panel
/// and target, only declared variables used (and every declared one), the
/// run metrics filtered by namespace and layer, a panel for each thing the
/// operations page promises, and every expression PromQL that promtool
/// parses (written as recording rules).
#[test]
fn the_dashboard_is_consistent_and_its_promql_parses() {
    let dash = dashboard(&render(&["metrics.dashboard.enabled=true"]));
    assert_eq!(dash["uid"], "testlayer");
    assert!(dash["id"].is_null(), "an imported dashboard has no id");
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for p in panels {
        let id = p["id"].as_u64().expect("a panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        assert!(
            p["panels"].as_array().is_none_or(|n| n.is_empty()),
            "collapsed row {id}"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "panel {id} is wider than the dashboard");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), id) {
                    panic!("panels {other} and {id} overlap at ({cx}, {cy})");
                }
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert!(
            p["title"].as_str().is_some_and(|t| !t.is_empty()),
            "panel {id}"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {id}");
        assert_eq!(p["datasource"]["type"], "prometheus", "panel {id}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {id} has no target");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"], p["datasource"], "panel {id}");
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "panel {id}: refId twice"
            );
        }
    }

    // Variables: the data source (Prometheus), the job, the namespace and
    // the layer; only these are used, and each is.
    let vars = dash["templating"]["list"].as_array().unwrap();
    let declared: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(declared, ["datasource", "job", "namespace", "layer"]);
    assert_eq!(vars[0]["type"], "datasource");
    assert_eq!(vars[0]["query"], "prometheus");
    let text = serde_json::to_string(&dash).unwrap();
    let used = variable_references(&text);
    for name in &used {
        assert!(
            declared.contains(&name.as_str()) || GRAFANA_VARIABLES.contains(&name.as_str()),
            "the dashboard uses ${name}, which it does not declare"
        );
    }
    for name in &declared {
        assert!(used.contains(*name), "${name} is declared and never used");
    }

    // The run, category and test metrics are filtered by namespace and
    // layer (and every series by job).
    let exprs = dashboard_expressions(&dash);
    let namespaced = [
        "testlayer_runs_finished_total",
        "testlayer_run_duration_seconds_bucket",
        "testlayer_categories_finished_total",
        "testlayer_category_duration_seconds_bucket",
        "testlayer_tests_total",
        "testlayer_flaky_tests_seen_total",
        "testlayer_queue_wait_seconds_bucket",
        "testlayer_waiting_longest_seconds",
        "testlayer_layer_failure_streak",
    ];
    for (at, expr) in &exprs {
        if at.starts_with("variable") {
            continue;
        }
        assert!(expr.contains(r#"job=~"$job""#), "{at}: {expr}");
        if metric_names(expr)
            .iter()
            .any(|m| namespaced.contains(&m.as_str()))
        {
            for m in [r#"namespace=~"$namespace""#, r#"layer=~"$layer""#] {
                assert_eq!(
                    expr.matches(m).count(),
                    expr.matches('{').count(),
                    "{at}: a selector without {m}: {expr}"
                );
            }
        }
    }
    // A panel for each thing docs/operations/monitoring.md promises.
    let used_metrics: BTreeSet<String> = exprs.iter().flat_map(|(_, e)| metric_names(e)).collect();
    for m in namespaced.iter().chain(&[
        "testlayer_reconciles_total",
        "testlayer_reconcile_errors_total",
        "testlayer_reconcile_duration_seconds_bucket",
        "testlayer_pods_created_total",
        "testlayer_pod_start_latency_seconds_bucket",
        "testlayer_leader",
        "testlayer_notifications_total",
    ]) {
        assert!(used_metrics.contains(*m), "no panel shows {m}");
    }
    for histogram in [
        "testlayer_run_duration_seconds_bucket",
        "testlayer_category_duration_seconds_bucket",
        "testlayer_queue_wait_seconds_bucket",
    ] {
        assert!(
            exprs
                .iter()
                .any(|(_, e)| e.starts_with("histogram_quantile(") && e.contains(histogram)),
            "no quantile of {histogram}"
        );
    }

    // Every expression parses: as recording rules, with Grafana's
    // variables given values of their kind.
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, (at, expr))| {
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$__range", "1d")
                .replace("$__interval", "1m")
                .replace("$job", "tl-testlayer-metrics")
                .replace("$namespace", "ci")
                .replace("$layer", "core");
            assert!(!expr.contains('$'), "{at}: {expr}");
            json!({"record": format!("dashboard:expression_{i}"), "expr": expr})
        })
        .collect();
    assert!(rules.len() > 30, "only {} expressions", rules.len());
    let dir = tempfile::tempdir().unwrap();
    let file =
        serde_yaml::to_string(&json!({"groups": [{"name": "dashboard", "rules": rules}]})).unwrap();
    std::fs::write(dir.path().join("dashboard.yaml"), &file).unwrap();
    let (ok, out) = run_promtool(dir.path(), &["check", "rules", "dashboard.yaml"]);
    assert!(ok, "{out}\n{file}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// The metrics the controller serves

/// The metric names `expr` (PromQL) selects: its identifiers that are not
/// in a string, a label matcher `{...}`, a range `[...]` or a grouping's
/// label list, not a number or duration, not a keyword, and not a
/// function or aggregation (followed by `(`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    const GROUPINGS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 8] = [
        "bool", "offset", "and", "or", "unless", "inf", "nan", "atan2",
    ];
    let c: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut label_list = false;
    // Skips a quoted string starting at `i`; the index after it.
    let skip_string = |mut i: usize| -> usize {
        let q = c[i];
        i += 1;
        while i < c.len() && c[i] != q {
            if c[i] == '\\' && q != '`' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = skip_string(i),
            '{' | '[' => {
                let close = if c[i] == '{' { '}' } else { ']' };
                i += 1;
                while i < c.len() && c[i] != close {
                    i = if matches!(c[i], '"' | '\'' | '`') {
                        skip_string(i)
                    } else {
                        i + 1
                    };
                }
                i += 1;
            }
            '(' if label_list => {
                while i < c.len() && c[i] != ')' {
                    i += 1;
                }
                label_list = false;
                i += 1;
            }
            d if d.is_ascii_digit() || d == '.' => {
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                    i += 1;
                }
            }
            a if a.is_ascii_alphabetic() || a == '_' || a == ':' => {
                let start = i;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let rest: String = c[i..].iter().collect();
                let rest = rest.trim_start();
                // An aggregation: `sum(`, or `sum by (...) (` / `sum without (`.
                let call = rest.starts_with('(')
                    || ["by", "without"].iter().any(|g| {
                        rest.strip_prefix(g)
                            .is_some_and(|r| r.trim_start().starts_with('('))
                    });
                if GROUPINGS.contains(&word.as_str()) {
                    label_list = true;
                } else if !call && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum by (namespace, le) (rate(a_bucket{x="y{z}", w=~"$v"}[$__rate_interval])) / on(pod) group_left(node) b offset 5m > bool 0.5 and c:rec or Inf"#
        ),
        ["a_bucket", "b", "c:rec"]
    );
    assert_eq!(
        names(r#"histogram_quantile(0.9, sum(rate(h_bucket[5m:1m])) without (pod))"#),
        ["h_bucket"]
    );
    assert_eq!(
        names("max without(pod)(d) + count by (x) (e) - sum by (y) f"),
        ["d", "e", "f"]
    );
    assert_eq!(names(r#"absent(up{job="x"} == 1)"#), ["up"]);
    assert_eq!(names("1e3 + 0x1f - 2.5"), Vec::<String>::new());
}

#[test]
fn served_names_are_read_from_the_exposition() {
    let text = "# HELP a_runs Runs.\n# TYPE a_runs counter\na_runs_total{x=\"1\"} 2\n# TYPE a_seconds histogram\n# TYPE a_up gauge\na_up 1\n# EOF\n";
    assert_eq!(
        served_names(text).into_iter().collect::<Vec<_>>(),
        [
            "a_runs_total",
            "a_seconds_bucket",
            "a_seconds_count",
            "a_seconds_sum",
            "a_up"
        ]
    );
}

/// The sample names of the metric families a `/metrics` text declares
/// (`# TYPE name type`): a counter's `name_total` (prometheus-client adds
/// the suffix to the samples, not to the TYPE line), a histogram's
/// `_bucket`, `_sum` and `_count`, a gauge's name; and every sample name
/// the text holds.
fn served_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    out.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        out.insert(format!("{name}{s}"));
                    }
                }
                "summary" => {
                    for s in ["", "_sum", "_count"] {
                        out.insert(format!("{name}{s}"));
                    }
                }
                _ => {
                    out.insert(name.to_string());
                }
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.insert(name);
        }
    }
    out
}

const CHAIN: &str = r#"
layers:
  chain:
    categories:
      - name: "smoke"
        timeout_seconds: 30
        command: "echo '2 passed in 0.1s'"
      - name: "unit"
        timeout_seconds: 30
        dependencies: ["smoke"]
        command: "echo '5 passed, 1 skipped in 0.3s'"
"#;

/// Every metric the PrometheusRule's alerts and the dashboard's
/// expressions use is one a real controller serves on `/metrics` (after a
/// run, so that the run metrics have samples), but `up`, Prometheus's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_use_is_served() {
    let docs = render(&ALL_ON);
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (alert, rule) in rules(&docs) {
        for m in metric_names(rule["expr"].as_str().unwrap()) {
            used.entry(m).or_default().insert(format!("alert {alert}"));
        }
    }
    for (at, expr) in dashboard_expressions(&dashboard(&docs)) {
        for m in metric_names(&expr) {
            used.entry(m).or_default().insert(format!("dashboard {at}"));
        }
    }
    assert!(
        used.len() > 15,
        "only {} metrics found: {used:?}",
        used.len()
    );

    let mut fx = Fixture::new("mon-metrics").await;
    fx.stop_controller();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = fx.controller_options();
    opts.listen = format!("127.0.0.1:{port}").parse().unwrap();
    opts.identity = "monitoring".into();
    fx.start_controller_with(opts).await;
    wait_ready(port, "/readyz to answer 200").await;
    fx.submit("m", "chain", CHAIN, json!({})).await;
    fx.wait_done("m", Duration::from_secs(60)).await;
    let (code, text) = tokio::task::spawn_blocking(move || http_get(port, "/metrics"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let served = served_names(&text);
    assert!(
        served.contains("testlayer_reconciles_total"),
        "the scrape was not read:\n{text}"
    );
    let missing: Vec<String> = used
        .iter()
        .filter(|(m, _)| !served.contains(*m) && !PROMETHEUS_OWN.contains(&m.as_str()))
        .map(|(m, at)| {
            format!(
                "{m} (used by {})",
                at.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "metrics used but not served on /metrics:\n{}\n\n/metrics:\n{text}",
        missing.join("\n")
    );
}
