//! Every kind of bad config gets an error that names the file, the field and the
//! problem; good configs resolve into complete plans.

use std::time::Duration;

use testlayer::config::Config;
use testlayer::layer::{LlmMode, Strategy};

const FILE: &str = "layers.yaml";

fn errors(yaml: &str) -> Vec<String> {
    let config = match Config::parse(yaml, FILE) {
        Ok(c) => c,
        Err(e) => return e.0.iter().map(|e| e.to_string()).collect(),
    };
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

/// Asserts that some error line contains every one of `parts`.
#[track_caller]
fn assert_error(yaml: &str, parts: &[&str]) {
    let errs = errors(yaml);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(FILE) && parts.iter().all(|p| e.contains(p))),
        "no error containing {parts:?} in {errs:#?}"
    );
}

fn layer(body: &str) -> String {
    format!("layers:\n  fast:\n    execution_mode: sequential\n{body}")
}

const CATS: &str = "    categories:\n      - name: smoke\n        timeout_seconds: 10\n";

#[test]
fn reference_config_is_valid_in_every_environment() {
    let c = Config::load(std::path::Path::new("config/test_layers.yaml")).unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.layer_keys(),
        [
            "core_integration",
            "e2e_background",
            "fast_feedback",
            "service_integration"
        ]
    );
    for env in ["test", "development", "staging", "production"] {
        for l in c.layer_keys() {
            c.resolve(l, Some(env)).unwrap();
        }
    }
}

#[test]
fn environment_overrides_resolve_into_the_plan() {
    let c = Config::load(std::path::Path::new("config/test_layers.yaml")).unwrap();
    let base = c.resolve("fast_feedback", None).unwrap();
    assert_eq!(base.settings.display_name, "Fast Feedback");
    assert_eq!(base.settings.strategy, Strategy::Sequential);
    assert!(base.settings.fail_fast);
    assert_eq!(base.settings.llm_mode, LlmMode::Mock);
    assert_eq!(base.settings.deadline, Some(Duration::from_secs(120)));
    assert_eq!(base.categories[0].timeout, Duration::from_secs(60));
    assert_eq!(
        base.categories[0].command.as_deref(),
        Some("pytest -m smoke --junitxml=/tmp/junit.xml")
    );
    assert_eq!(base.categories[1].dependencies, vec![0]);

    let staging = c.resolve("fast_feedback", Some("staging")).unwrap();
    assert_eq!(staging.settings.llm_mode, LlmMode::Real);
    assert_eq!(
        staging.settings.required_services,
        ["postgresql", "redis", "backend_service"]
    );
    assert_eq!(staging.categories[0].timeout, Duration::from_secs(90));
    assert_eq!(staging.settings.deadline, Some(Duration::from_secs(180)));

    let prod = c.resolve("e2e_background", Some("production")).unwrap();
    assert_eq!(prod.settings.max_parallel, Some(1));
    assert!(prod.settings.background());
    assert_eq!(prod.settings.strategy, Strategy::HybridSmart);
    let si = c.resolve("service_integration", None).unwrap();
    assert_eq!(si.categories[1].k8s_name, "e2e-critical");
    assert_eq!(si.categories[0].k8s_name, "agent-workflows");
    assert_eq!(si.settings.k8s_name, "service-integration");
    assert_eq!(si.settings.budget.cpu_millis, Some(8000));
    assert_eq!(
        si.categories[0].resources.limits.memory_bytes,
        Some(8 << 30)
    );
}

#[test]
fn malformed_yaml_names_the_position() {
    let errs = errors("layers:\n  fast: [unclosed\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("layers.yaml:"), "{errs:?}");
    assert!(errs[0].contains(':'), "{errs:?}");
}

#[test]
fn empty_file() {
    assert_error("", &["empty"]);
    assert_error("   \n", &["empty"]);
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    assert_error(
        &layer(&format!("{CATS}    colour: blue\n")),
        &["layers.fast", "unknown field `colour`"],
    );
    assert_error(
        &format!("{}        flaky: true\n", layer(CATS)),
        &["layers.fast.categories[0]", "unknown field `flaky`"],
    );
    assert_error("layerz: {}\n", &["unknown field `layerz`"]);
}

#[test]
fn wrong_types_and_enum_values() {
    assert_error(
        "layers:\n  fast:\n    execution_mode: sideways\n    categories: []\n",
        &[
            "layers.fast.execution_mode",
            "expected one of: sequential, parallel, hybrid, background, found \"sideways\"",
        ],
    );
    assert_error(
        &layer("    categories:\n      - name: a\n        timeout_seconds: soon\n"),
        &["timeout_seconds"],
    );
    assert_error(
        &layer(&format!("{CATS}    strategy: FASTEST\n")),
        &["strategy", "FASTEST"],
    );
    assert_error(
        &layer(&format!("{CATS}    llm_requirements:\n      mode: maybe\n")),
        &["mode", "maybe"],
    );
}

#[test]
fn unknown_layer_and_category_references() {
    assert_error(
        &layer(
            "    dependencies: [nope]\n    categories:\n      - name: a\n        timeout_seconds: 5\n",
        ),
        &["layers.fast.dependencies[0]", "unknown layer \"nope\""],
    );
    assert_error(
        &layer(
            "    categories:\n      - name: a\n        timeout_seconds: 5\n        dependencies: [b]\n",
        ),
        &[
            "layers.fast.categories[0].dependencies[0]",
            "unknown category \"b\"",
        ],
    );
    assert_error(
        &format!(
            "{}environment_overrides:\n  staging:\n    layers:\n      ghost: {{}}\n",
            layer(CATS)
        ),
        &[
            "environment_overrides.staging.layers.ghost",
            "unknown layer",
        ],
    );
}

#[test]
fn dependency_cycles_are_named() {
    let yaml = layer(
        "    categories:\n      - name: a\n        timeout_seconds: 5\n        dependencies: [c]\n      - name: b\n        timeout_seconds: 5\n        dependencies: [a]\n      - name: c\n        timeout_seconds: 5\n        dependencies: [b]\n",
    );
    let errs = errors(&yaml);
    let cycle = errs
        .iter()
        .find(|e| e.contains("dependency cycle"))
        .expect("cycle error");
    assert!(cycle.contains("layers.fast.categories"), "{cycle}");
    // Every member is named, and the cycle closes on its first member.
    for n in ["a", "b", "c"] {
        assert!(cycle.contains(n), "{cycle}");
    }
    let tail = cycle.rsplit(": ").next().unwrap();
    let names: Vec<&str> = tail.split(" -> ").collect();
    assert_eq!(names.first(), names.last(), "{cycle}");
    assert_eq!(names.len(), 4);

    assert_error(
        &layer(
            "    categories:\n      - name: a\n        timeout_seconds: 5\n        dependencies: [a]\n",
        ),
        &["dependency cycle: a -> a"],
    );
    let layers = "layers:\n  x:\n    dependencies: [y]\n    categories: [{name: a, timeout_seconds: 1}]\n  y:\n    dependencies: [x]\n    categories: [{name: a, timeout_seconds: 1}]\n";
    assert_error(layers, &["layer dependency cycle", "x -> y -> x"]);
    assert_error(
        "layers:\n  x:\n    dependencies: [x]\n    categories: [{name: a, timeout_seconds: 1}]\n",
        &["layers.x.dependencies[0]", "cannot depend on itself"],
    );
}

#[test]
fn duplicate_names() {
    assert_error(
        &layer(
            "    categories:\n      - name: a\n        timeout_seconds: 5\n      - name: a\n        timeout_seconds: 5\n",
        ),
        &[
            "layers.fast.categories[1].name",
            "duplicate category name \"a\"",
        ],
    );
    // Duplicate keys in YAML itself.
    assert_error(
        &format!("{}{}", layer(CATS), "  fast:\n    categories: []\n"),
        &["duplicate"],
    );
}

#[test]
fn bad_timeouts_and_numbers() {
    for (value, needle) in [
        ("0", "got 0"),
        ("-5", "got -5"),
        ("100000000", "at most 86400"),
        (".nan", "NaN"),
    ] {
        assert_error(
            &layer(&format!(
                "    categories:\n      - name: a\n        timeout_seconds: {value}\n"
            )),
            &["layers.fast.categories[0].timeout_seconds", needle],
        );
    }
    assert_error(
        &layer("    categories:\n      - name: a\n"),
        &["categories[0].timeout_seconds", "needs a timeout_seconds"],
    );
    assert_error(
        &layer(&format!("{CATS}    max_duration_minutes: 0\n")),
        &["layers.fast.max_duration_minutes", "more than 0"],
    );
    assert_error(
        &layer(&format!("{CATS}    max_duration_minutes: 100000\n")),
        &["max_duration_minutes", "one week"],
    );
    assert_error(
        &format!("{}        retries: 99\n", layer(CATS)),
        &["categories[0].retries", "between 0 and 10"],
    );
    assert_error(
        &format!("{}        retries: -1\n", layer(CATS)),
        &["categories[0].retries", "got -1"],
    );
    assert_error(
        &layer(&format!("{CATS}    timeout_multiplier: 0\n")),
        &["timeout_multiplier", "more than 0"],
    );
    assert_error(
        &format!(
            "{}environment_overrides:\n  slow:\n    timeout_multiplier: -2\n",
            layer(CATS)
        ),
        &["environment_overrides.slow.timeout_multiplier", "got -2"],
    );
    assert_error(
        &layer(&format!(
            "{CATS}    resource_limits:\n      max_parallel_instances: 0\n"
        )),
        &["resource_limits.max_parallel_instances", "between 1"],
    );
    assert_error(
        &layer("    categories: []\n"),
        &["layers.fast.categories", "no categories"],
    );
    assert_error("layers: {}\n", &["no layers"]);
}

#[test]
fn impossible_resources() {
    let res = |r: &str| format!("{}        resources:\n{r}", layer(CATS));
    assert_error(
        &res("          limits: {cpu: lots}\n"),
        &["categories[0].resources.limits.cpu", "not a CPU quantity"],
    );
    assert_error(
        &res("          limits: {memory: 2GB}\n"),
        &["resources.limits.memory", "not a memory quantity"],
    );
    assert_error(
        &res("          requests: {cpu: 0}\n"),
        &["resources.requests.cpu", "more than zero"],
    );
    assert_error(
        &res("          limits: {cpu: 5000}\n"),
        &["resources.limits.cpu", "more than any node"],
    );
    assert_error(
        &res("          limits: {memory: 100Ti}\n"),
        &["resources.limits.memory", "more than any node"],
    );
    assert_error(
        &res("          requests: {cpu: 2}\n          limits: {cpu: 1}\n"),
        &[
            "resources.requests.cpu",
            "request 2 is more than the limit 1",
        ],
    );
    assert_error(
        &format!(
            "{}    resource_limits: {{cpu: 1, memory: 1Gi}}\n",
            res("          limits: {cpu: 2, memory: 512Mi}\n")
        ),
        &[
            "categories[0].resources",
            "needs cpu 2",
            "could never start",
        ],
    );
    assert_error(
        &layer(&format!("{CATS}    strategy: PARALLEL_LIMITED\n")),
        &["max_parallel_instances", "PARALLEL_LIMITED needs a limit"],
    );
}

#[test]
fn names_that_cannot_become_kubernetes_names() {
    assert_error(
        &layer("    categories:\n      - name: \"!!!\"\n        timeout_seconds: 5\n"),
        &["categories[0].name", "no ASCII letters or digits"],
    );
    assert_error(
        &layer("    categories:\n      - name: \"\"\n        timeout_seconds: 5\n"),
        &["categories[0].name", "empty"],
    );
    assert_error(
        "layers:\n  \"???\":\n    categories: [{name: a, timeout_seconds: 1}]\n",
        &["layers.???", "layer key"],
    );
    assert_error(
        &layer(&format!("{CATS}    required_services: [\"9lives\"]\n")),
        &["required_services[0]", "cannot name a Kubernetes Service"],
    );
    assert_error(
        &layer(&format!("{CATS}    env:\n      \"1BAD\": x\n")),
        &["env.1BAD", "not a valid environment variable name"],
    );
}

#[test]
fn unknown_environment_and_layer_on_resolve() {
    let c = Config::parse(&layer(CATS), FILE).unwrap();
    let e = c.resolve("fast", Some("mars")).unwrap_err().to_string();
    assert!(
        e.contains("unknown environment \"mars\"") && e.starts_with(FILE),
        "{e}"
    );
    let e = c.resolve("slow", None).unwrap_err().to_string();
    assert!(
        e.contains("unknown layer \"slow\"") && e.contains("known layers: fast"),
        "{e}"
    );
}

#[test]
fn colliding_names_map_to_distinct_kubernetes_names() {
    let c = Config::parse(
        &layer("    categories:\n      - name: E2E Critical\n        timeout_seconds: 5\n      - name: e2e_critical\n        timeout_seconds: 5\n"),
        FILE,
    )
    .unwrap();
    let p = c.resolve("fast", None).unwrap();
    assert_ne!(p.categories[0].k8s_name, p.categories[1].k8s_name);
    assert!(
        p.categories
            .iter()
            .all(|c| c.k8s_name.starts_with("e2e-critical-"))
    );
}

#[test]
fn many_problems_are_reported_together() {
    let errs = errors(&layer(
        "    categories:\n      - name: a\n        timeout_seconds: 0\n      - name: b\n        timeout_seconds: 5\n        retries: 50\n        dependencies: [zzz]\n",
    ));
    assert!(errs.len() >= 3, "{errs:#?}");
}

#[test]
fn background_layers_cannot_block_others() {
    let yaml = format!(
        "layers:\n  e2e:\n    execution_mode: background\n{CATS}  fast:\n    execution_mode: sequential\n    dependencies: [e2e]\n{CATS}"
    );
    assert_error(
        &yaml,
        &[
            "layers.fast.dependencies[0]",
            "\"e2e\" runs in the background",
        ],
    );
}

#[test]
fn a_junit_report_path_must_be_a_plain_path() {
    assert_error(
        &layer(
            "    categories:\n      - name: a\n        timeout_seconds: 5\n        junit_report: \"  \"\n",
        ),
        &[
            "layers.fast.categories[0].junit_report",
            "must not be empty",
        ],
    );
    assert_error(
        &layer(
            "    categories:\n      - name: a\n        timeout_seconds: 5\n        junit_report: \"out/\\nx.xml\"\n",
        ),
        &[
            "layers.fast.categories[0].junit_report",
            "control characters",
        ],
    );
}

#[test]
fn quarantine_patterns_are_checked_and_unknown_ids_are_fine() {
    // A layer pattern that is bad is named once, at the layer.
    let yaml = layer(
        "    quarantine: [\"t::ok*\", \"t::\\\\x\"]\n    categories:\n      - {name: a, timeout_seconds: 5}\n      - {name: b, timeout_seconds: 5}\n",
    );
    assert_error(
        &yaml,
        &[
            "layers.fast.quarantine[1]",
            "test id pattern",
            "only `\\*`, `\\?` and `\\\\` escape",
        ],
    );
    assert_eq!(
        errors(&yaml)
            .iter()
            .filter(|e| e.contains("quarantine[1]"))
            .count(),
        1,
        "{:#?}",
        errors(&yaml)
    );
    assert_error(
        &layer(
            "    categories:\n      - name: a\n        timeout_seconds: 5\n        quarantine: [\"\"]\n",
        ),
        &["layers.fast.categories[0].quarantine[0]", "is empty"],
    );
    assert_error(
        &layer(
            "    categories:\n      - name: a\n        timeout_seconds: 5\n        allow_failure: sometimes\n",
        ),
        &["allow_failure", "sometimes"],
    );
    // Ids that no test has, brackets and globs: fine, merged with the layer's.
    let good = layer(
        "    quarantine: [\"tests.api::*\"]\n    categories:\n      - name: a\n        timeout_seconds: 5\n        allow_failure: true\n        quarantine: [\"t::test_x[foo-bar]\", \"no::such::test\", \"tests.api::*\"]\n",
    );
    assert!(errors(&good).is_empty(), "{:#?}", errors(&good));
    let plan = Config::parse(&good, FILE)
        .unwrap()
        .resolve("fast", None)
        .unwrap();
    let a = &plan.categories[0];
    assert!(a.allow_failure);
    assert_eq!(
        a.quarantine,
        ["tests.api::*", "t::test_x[foo-bar]", "no::such::test"]
    );
}

#[test]
fn shared_resources_resolve_into_the_plan() {
    let yaml = "resources:\n  staging_db: {}\n  sandbox:\n    capacity: 3\n    description: licence-limited\n\
layers:\n  e2e:\n    uses: [staging_db]\n    deadline_counts_resource_wait: true\n    categories:\n      - name: checkout\n        timeout_seconds: 10\n        uses: [{name: sandbox, units: 2}]\n      - name: search\n        timeout_seconds: 10\n";
    let c = Config::parse(yaml, FILE).unwrap();
    c.validate().unwrap();
    let p = c.resolve("e2e", None).unwrap();
    let map = |v: &[(&str, u32)]| {
        v.iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // Names are the Kubernetes ones: `_` as `-`.
    assert_eq!(p.settings.uses, map(&[("staging-db", 1)]));
    assert_eq!(p.categories[0].uses, map(&[("sandbox", 2)]));
    assert!(p.categories[1].uses.is_empty());
    assert_eq!(
        p.settings.capacities,
        map(&[("sandbox", 3), ("staging-db", 1)])
    );
    assert!(p.settings.deadline_counts_resource_wait);
    assert!(p.uses_shared_resources());
}

#[test]
fn bad_shared_resources_are_named_where_they_are_written() {
    let with = |resources: &str, layer_uses: &str, cat_uses: &str| {
        format!(
            "resources:\n{resources}layers:\n  e2e:\n    uses: {layer_uses}\n    categories:\n      - name: checkout\n        timeout_seconds: 10\n        uses: {cat_uses}\n"
        )
    };
    let db = "  staging_db: {capacity: 2}\n";
    assert_error(
        &with(db, "[]", "[stagin_db]"),
        &[
            "layers.e2e.categories[0].uses[0]",
            "resource \"stagin_db\" is not declared",
            "declared: staging_db",
        ],
    );
    assert_error(
        &with(db, "[]", "[{name: staging_db, units: 3}]"),
        &[
            "layers.e2e.categories[0].uses[0].units",
            "between 1 and the capacity of \"staging_db\" (2), got 3",
        ],
    );
    assert_error(
        &with(db, "[{name: staging_db, units: 0}]", "[]"),
        &["layers.e2e.uses[0].units", "got 0"],
    );
    assert_error(
        &with(db, "[staging_db, staging-db]", "[]"),
        &["layers.e2e.uses[1]", "listed twice"],
    );
    assert_error(
        &with(db, "[staging_db]", "[staging_db]"),
        &[
            "layers.e2e.categories[0].uses[0]",
            "the layer holds \"staging_db\" for its whole run",
        ],
    );
    assert_error(
        &with("  db: {capacity: 0}\n", "[]", "[]"),
        &["resources.db.capacity", "between 1 and 1000, got 0"],
    );
    assert_error(
        &with("  9lives: {}\n", "[]", "[]"),
        &["resources.9lives", "cannot name a shared resource"],
    );
    assert_error(
        &with("  db: {}\n  DB: {}\n", "[]", "[]"),
        &["name the same resource \"db\""],
    );
    assert_error(
        &with(db, "[]", "[{name: staging_db, count: 2}]"),
        &[
            "layers.e2e.categories[0].uses[0]",
            "expected a resource name, or a mapping `{name: NAME, units: N}`",
        ],
    );
    assert_error(
        &with("  db: {capacity: 1, size: 2}\n", "[]", "[]"),
        &["resources.db", "unknown field `size`"],
    );
}

#[test]
fn layers_that_could_wait_for_each_other_for_ever_are_refused() {
    let config = |b_category_uses: &str| {
        format!(
            "resources:\n  db: {{}}\n  sandbox: {{}}\nlayers:\n  a:\n    uses: [db]\n    categories:\n      - name: pay\n        timeout_seconds: 10\n        uses: [sandbox]\n  b:\n    uses: [sandbox]\n    categories:\n      - name: seed\n        timeout_seconds: 10\n        uses: {b_category_uses}\n"
        )
    };
    assert_error(
        &config("[db]"),
        &[
            "layers.a.uses",
            "runs of these layers can wait for each other for ever",
            "layer a holds db while its category \"pay\" waits for sandbox",
            "layer b holds sandbox while its category \"seed\" waits for db",
        ],
    );
    // One direction alone is fine: nothing waits in a circle.
    assert_eq!(errors(&config("[]")), Vec::<String>::new());
}
