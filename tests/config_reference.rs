//! The README's config reference is checked against the Rust types: the
//! parser's own "expected one of ..." list at every level of the file must be
//! documented there.

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
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## The layer config").expect("config section");
    let section = &readme[start
        ..start
            + readme[start..]
                .find("\n## Planning")
                .unwrap_or(readme.len() - start)];
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
        "fields missing from the README's config reference: {missing:?}"
    );
}

/// The README states once which runner's counts win when a log holds the
/// summaries of several, in the scanner's own order.
#[test]
fn the_readmes_order_of_runners_is_the_scanners() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let lead = "the counts of the first of\nthese win: ";
    let start = readme.find(lead).expect("the README states the order") + lead.len();
    let stated: Vec<String> = readme[start..]
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
    assert_eq!(
        readme.matches(" win: ").count() + readme.matches("most specific wins").count(),
        1,
        "the order is stated once"
    );
}
