//! Every field of every input format, given a value of each wrong JSON
//! type, gets a message in the user's words: the field's path, what was
//! expected in words, and none of the parser's type names
//! ([`parse_words::FORBIDDEN_WORDS`]).
//!
//! The inputs: the layer config (YAML, every field of `FULL_CONFIG`), the
//! JSON reports `testlayer report` and `--rerun-failed` read, and the five
//! kinds' objects as the controller decodes them (every property of each
//! CRD's schema).

use serde_json::{Value, json};
use testlayer::config::Config;
use testlayer::parse_words::{FORBIDDEN_WORDS, forbidden_words_in, json_from_str};

/// A layer config that sets every field the format has.
const FULL_CONFIG: &str = r#"
layers:
  fast:
    name: Fast
    description: the fast layer
    execution_mode: hybrid
    strategy: HYBRID_SMART
    max_duration_minutes: 10
    categories:
      - name: a
        timeout_seconds: 10
        priority_order: 1
        dependencies: []
        command: "true"
        image: busybox
        env: {A: "1"}
        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 1, memory: 128Mi}}
        retries: 1
        infra_retries: 1
        retry_backoff_seconds: 1
        expected_duration_seconds: 5
        junit_report: r.xml
        working_dir: .
        quarantine: [x]
        allow_failure: false
        uses: [db, {name: pool, units: 2}]
      - name: b
        timeout_seconds: 10
        dependencies: [a]
    dependencies: []
    required_services: [api]
    llm_requirements: {mode: mock}
    fail_fast: true
    resource_limits: {cpu: 2, memory: 1Gi, max_parallel_instances: 2}
    timeout_multiplier: 1.5
    image: busybox
    command: "echo {category}"
    env: {B: "2"}
    retries: 0
    resources: {requests: {cpu: 100m}}
    service_wait_seconds: 30
    quarantine: [y]
    uses: [lock]
    deadline_counts_resource_wait: false
  slow:
    categories: [{name: c, timeout_seconds: 5}]
    dependencies: [fast]
environment_overrides:
  staging:
    llm_requirements: {mode: real}
    required_services: [api]
    timeout_multiplier: 2
    fail_fast: false
    env: {C: "3"}
    image: busybox
    layers:
      fast:
        llm_requirements: {mode: mock}
        required_services: []
        timeout_multiplier: 1
        fail_fast: true
        strategy: SEQUENTIAL
        resource_limits: {max_parallel_instances: 1}
        max_duration_minutes: 5
        env: {D: "4"}
        image: busybox
        retries: 1
services:
  api: {address: "localhost:8080"}
resources:
  db: {capacity: 1, description: the staging database}
  pool: {capacity: 3}
  lock: {}
"#;

/// One value of each JSON type, wrong for most fields.
fn wrong_values() -> Vec<Value> {
    vec![
        json!("abc"),
        json!(5),
        json!(-3),
        json!(1.5),
        json!(true),
        json!([1]),
        json!({"k": 1}),
        Value::Null,
    ]
}

fn same_type(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.is_f64() == y.is_f64() && x.is_i64() == y.is_i64()
        }
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// Every node under `v` but the root: its JSON pointer and its dotted path
/// as the parsers write it (`layers.fast.categories[0].name`).
fn nodes(v: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, pointer: &str, dotted: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let p = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                    let d = if dotted.is_empty() {
                        k.clone()
                    } else {
                        format!("{dotted}.{k}")
                    };
                    out.push((p.clone(), d.clone()));
                    walk(child, &p, &d, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    let p = format!("{pointer}/{i}");
                    let d = format!("{dotted}[{i}]");
                    out.push((p.clone(), d.clone()));
                    walk(child, &p, &d, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", "", &mut out);
    out
}

/// Checks one message: no forbidden word, and not empty.
fn check_words(what: &str, message: &str, bad: &mut Vec<String>) {
    let found = forbidden_words_in(message);
    if !found.is_empty() {
        bad.push(format!("{what}: {message}\n    (says {found:?})"));
    }
}

/// Parses, validates and resolves every layer in every environment.
fn load(yaml: &str) -> Result<(), testlayer::config::ConfigErrors> {
    let config = Config::parse(yaml, "full.yaml")?;
    config.validate()?;
    for layer in ["fast", "slow"] {
        for env in [None, Some("staging")] {
            config.resolve(layer, env)?;
        }
    }
    Ok(())
}

#[test]
fn every_field_of_the_layer_config_given_a_wrong_type_is_told_in_words() {
    load(FULL_CONFIG).expect("the full config is valid");
    let full: Value = serde_yaml::from_str(FULL_CONFIG).unwrap();
    let mut bad = Vec::new();
    let mut refused = 0;
    for (pointer, dotted) in nodes(&full) {
        let original = full.pointer(&pointer).unwrap();
        for wrong in wrong_values() {
            if same_type(original, &wrong) {
                continue;
            }
            let mut doc = full.clone();
            *doc.pointer_mut(&pointer).unwrap() = wrong.clone();
            let yaml = serde_yaml::to_string(&doc).unwrap();
            let what = format!("{dotted} = {wrong}");
            let parsed = Config::parse(&yaml, "full.yaml");
            let errors = match load(&yaml) {
                Ok(()) => continue,
                Err(e) => e,
            };
            refused += 1;
            for e in &errors.0 {
                check_words(&what, &e.to_string(), &mut bad);
            }
            // A value the parser refuses: the message names the field (or
            // the list item that no longer has the form of one) and its
            // line. (A value that parses and is then found wrong may be
            // told at the field it contradicts: a dependency's name.)
            if parsed.is_err() {
                let text = errors.to_string();
                let parent = dotted.rsplit_once(['.', '[']).map_or("", |p| p.0);
                let names = text.contains(&format!(": {dotted}: "))
                    || (!parent.is_empty() && text.contains(&format!(": {parent}: ")));
                if !names || !text.starts_with("full.yaml:") || errors.0[0].position.is_none() {
                    bad.push(format!("{what}: does not name the field and line: {text}"));
                }
            }
        }
    }
    assert!(refused > 300, "only {refused} wrong values were refused");
    assert!(
        bad.is_empty(),
        "{} messages are not in words:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn a_json_report_of_the_wrong_shape_is_told_in_words() {
    for text in [
        "42",
        "[]",
        "{\"layer\": 5}",
        "\"x\"",
        "{}",
        "null",
        "{\"layers\": {}}",
    ] {
        for result in [
            json_from_str::<testlayer::report::RunReport>(text).map(|_| ()),
            json_from_str::<testlayer::history::History>(text).map(|_| ()),
        ] {
            if let Err(e) = result {
                let mut bad = Vec::new();
                check_words(text, &e.to_string(), &mut bad);
                assert!(bad.is_empty(), "{bad:?}");
            }
        }
    }
}

#[test]
fn the_forbidden_words_are_the_issues_list_and_more() {
    for w in [
        "struct", "enum", "u32", "u64", "i64", "f64", "usize", "variant", "untagged", "map",
        "sequence",
    ] {
        assert!(FORBIDDEN_WORDS.contains(&w), "{w}");
    }
}

/// A valid value for a schema: the least that satisfies it (required
/// properties only, the first of an enum, one item of a list with a
/// minimum).
fn minimal(schema: &Value) -> Value {
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    if let Some(any) = schema
        .get("anyOf")
        .or(schema.get("oneOf"))
        .and_then(|a| a.get(0))
    {
        return minimal(any);
    }
    if schema.get("x-kubernetes-int-or-string").is_some() {
        return json!("1");
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2026-01-01T00:00:00Z"),
            _ => json!("x"),
        },
        Some("integer") => json!(
            schema
                .get("minimum")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                .max(1)
        ),
        Some("number") => json!(1.0),
        Some("boolean") => json!(false),
        Some("array") => {
            let n = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let item = schema.get("items").map(minimal).unwrap_or(json!("x"));
            Value::Array((0..n).map(|_| item.clone()).collect())
        }
        _ => {
            let mut obj = serde_json::Map::new();
            let props = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = name.as_str().unwrap();
                let sub = props
                    .and_then(|p| p.get(name))
                    .cloned()
                    .unwrap_or(json!({}));
                obj.insert(name.to_string(), minimal(&sub));
            }
            Value::Object(obj)
        }
    }
}

/// Every property under `schema`, with its JSON pointer (lists through
/// their first item) and dotted path; `base` grows the parents each needs.
fn properties(schema: &Value, pointer: &str, dotted: &str, out: &mut Vec<(String, String, Value)>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let p = format!("{pointer}/{name}");
            let d = if dotted.is_empty() {
                name.clone()
            } else {
                format!("{dotted}.{name}")
            };
            out.push((p.clone(), d.clone(), sub.clone()));
            properties(sub, &p, &d, out);
        }
    }
    if let Some(items) = schema.get("items") {
        let p = format!("{pointer}/0");
        let d = format!("{dotted}[0]");
        properties(items, &p, &d, out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        let p = format!("{pointer}/key");
        let d = format!("{dotted}.key");
        out.push((p.clone(), d.clone(), values.clone()));
        properties(values, &p, &d, out);
    }
}

/// Sets `pointer` in `doc` to `value`, making the parents it needs (their
/// minimal values from `root_schema`'s walk: objects, and lists of one).
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut at = doc;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let next_is_index = parts.get(i + 1).is_some_and(|p| *p == "0");
        let fresh = || {
            if next_is_index {
                json!([{}])
            } else {
                json!({})
            }
        };
        at = match at {
            Value::Array(items) => {
                if items.is_empty() {
                    items.push(fresh());
                }
                if last {
                    items[0] = value;
                    return;
                }
                &mut items[0]
            }
            Value::Object(m) => {
                if last {
                    m.insert(part.to_string(), value);
                    return;
                }
                m.entry(part.to_string()).or_insert_with(fresh)
            }
            other => {
                *other = fresh();
                return set(other, &format!("/{}", parts[i..].join("/")), value);
            }
        };
    }
}

/// What the controller says of an object of kind `K` stored as `text`:
/// `None` when it decodes.
fn problem_of<K: serde::de::DeserializeOwned>(text: &str) -> Option<String> {
    match testlayer::api::Decoded::<K>::from_json(text) {
        testlayer::api::Decoded::Valid(_) => None,
        testlayer::api::Decoded::Invalid(u) => Some(u.problem.clone()),
    }
}

/// For each kind, every property of its spec given each wrong value: what
/// the controller writes (the Stalled condition, a Warning Event) names the
/// field in words.
#[test]
fn every_field_of_every_kind_given_a_wrong_type_is_told_in_words() {
    use testlayer::api::{
        CategoryRun, TestLayerResource, TestLayerRun, TestLayerSchedule, TestLayerTrigger,
    };
    type Decode = fn(&str) -> Option<String>;
    let decoders: [(&str, Decode); 5] = [
        ("TestLayerRun", problem_of::<TestLayerRun>),
        ("CategoryRun", problem_of::<CategoryRun>),
        ("TestLayerSchedule", problem_of::<TestLayerSchedule>),
        ("TestLayerTrigger", problem_of::<TestLayerTrigger>),
        ("TestLayerResource", problem_of::<TestLayerResource>),
    ];
    let mut bad = Vec::new();
    let mut refused = 0;
    let mut fields = 0;
    for crd in testlayer::api::all_crds() {
        let kind = crd.spec.names.kind.clone();
        let decode = decoders
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("a decoder")
            .1;
        let version = &crd.spec.versions[0];
        let schema = serde_json::to_value(
            version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .unwrap(),
        )
        .unwrap();
        let spec_schema = &schema["properties"]["spec"];
        let base = json!({
            "apiVersion": format!("{}/{}", crd.spec.group, version.name),
            "kind": kind,
            "metadata": {"name": "x", "namespace": "ns"},
            "spec": minimal(spec_schema),
        });
        let text = base.to_string();
        assert_eq!(
            decode(&text),
            None,
            "the least {kind} does not decode: {text}"
        );
        let mut props = Vec::new();
        properties(spec_schema, "/spec", "spec", &mut props);
        for (pointer, dotted, sub) in props {
            fields += 1;
            let valid = minimal(&sub);
            for wrong in wrong_values() {
                if same_type(&valid, &wrong) {
                    continue;
                }
                let mut doc = base.clone();
                set(&mut doc, &pointer, wrong.clone());
                let Some(problem) = decode(&doc.to_string()) else {
                    continue;
                };
                refused += 1;
                let what = format!("{kind} {dotted} = {wrong}");
                check_words(&what, &problem, &mut bad);
                let parent = dotted.rsplit_once(['.', '[']).map_or("", |p| p.0);
                if !problem.starts_with(&dotted) && !problem.starts_with(parent) {
                    bad.push(format!("{what}: does not name the field: {problem}"));
                }
            }
        }
    }
    assert!(fields > 100, "only {fields} fields");
    assert!(refused > 300, "only {refused} wrong values were refused");
    assert!(
        bad.is_empty(),
        "{} messages are not in words:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
