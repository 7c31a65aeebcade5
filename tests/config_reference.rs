//! The config reference (`docs/reference/layer-config.md`) is checked
//! against the Rust types: the parser's own "expected one of ..." list at
//! every level of the file must be documented there.

use testlayer::config::Config;

const CAT: &str = "        timeout_seconds: 10\n";

/// Field names the parser accepts where `yaml` has the unknown field `bogus_field`.
fn accepted(yaml: &str) -> Vec<String> {
    let err = match Config::parse(yaml, "ref.yaml") {
        Ok(_) => panic!("bogus_field was accepted in:\n{yaml}"),
        Err(e) => e.to_string(),
    };
    let list = err
        .split("expected one of ")
        .nth(1)
        .or_else(|| err.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("no field list in: {err}"));
    list.split([','])
        .flat_map(|p| p.split(" or "))
        .filter_map(|f| {
            f.trim()
                .trim_end_matches('.')
                .strip_prefix('`')?
                .strip_suffix('`')
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn every_config_field_is_documented() {
    let section = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/reference/layer-config.md"
    ))
    .expect("docs/reference/layer-config.md");
    let levels = [
        ("top level", "bogus_field: 1\nlayers:\n  l:\n    categories:\n      - name: a\n".to_string() + CAT),
        ("layer", "layers:\n  l:\n    bogus_field: 1\n    categories:\n      - name: a\n".to_string() + CAT),
        ("category", "layers:\n  l:\n    categories:\n      - name: a\n        bogus_field: 1\n".to_string() + CAT),
        ("resource_limits", "layers:\n  l:\n    resource_limits: {bogus_field: 1}\n    categories:\n      - name: a\n".to_string() + CAT),
        ("resources", "layers:\n  l:\n    categories:\n      - name: a\n        resources: {bogus_field: 1}\n".to_string() + CAT),
        ("requests", "layers:\n  l:\n    categories:\n      - name: a\n        resources: {requests: {bogus_field: 1}}\n".to_string() + CAT),
        ("llm_requirements", "layers:\n  l:\n    llm_requirements: {bogus_field: 1}\n    categories:\n      - name: a\n".to_string() + CAT),
        ("environment", "layers:\n  l:\n    categories:\n      - name: a\n".to_string() + CAT + "environment_overrides:\n  staging:\n    bogus_field: 1\n"),
        (
            "environment layer",
            "layers:\n  l:\n    categories:\n      - name: a\n".to_string() + CAT + "environment_overrides:\n  staging:\n    layers:\n      l:\n        bogus_field: 1\n",
        ),
        ("shared resource", "layers:\n  l:\n    categories:\n      - name: a\n".to_string() + CAT + "resources:\n  db:\n    bogus_field: 1\n"),
        ("service", "layers:\n  l:\n    categories:\n      - name: a\n".to_string() + CAT + "services:\n  db:\n    bogus_field: 1\n"),
    ];
    let mut missing = Vec::new();
    for (level, yaml) in &levels {
        let fields = accepted(yaml);
        assert!(!fields.is_empty(), "{level}: no fields found");
        for f in fields {
            if !section.contains(&format!("`{f}")) && !section.contains(&format!("{f}:")) {
                missing.push(format!("{level}.{f}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fields missing from docs/reference/layer-config.md: {missing:?}"
    );
}

/// The README and the docs, every markdown page of them, as one text.
fn all_docs() -> String {
    fn walk(dir: &std::path::Path, out: &mut String) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "md") {
                out.push_str(&std::fs::read_to_string(&path).expect("a page"));
                out.push('\n');
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    walk(&root.join("docs"), &mut text);
    text
}

/// The command-line reference states once (in the README and the docs)
/// which runner's counts win when a log holds the summaries of several, in
/// the scanner's own order.
#[test]
fn the_documented_order_of_runners_is_the_scanners() {
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/reference/command-line.md"
    ))
    .expect("docs/reference/command-line.md");
    let lead = "the counts of the first of\nthese win: ";
    let start = reference
        .find(lead)
        .expect("docs/reference/command-line.md states the order")
        + lead.len();
    let stated: Vec<String> = reference[start..]
        .split_once('.')
        .expect("a sentence")
        .0
        .split(',')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let code: Vec<String> = testlayer::results::PRECEDENCE
        .iter()
        .map(|f| f.as_str().to_string())
        .collect();
    assert_eq!(stated, code);
    let docs = all_docs();
    assert_eq!(
        docs.matches(" win: ").count() + docs.matches("most specific wins").count(),
        1,
        "the order is stated once in the README and the docs"
    );
}
