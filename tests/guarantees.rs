//! The table of guarantees (`docs/reference/guarantees.md`) names, for each, the test that proves
//! it: every test it names must exist (a `fn` of that name in that file),
//! and every row must name one and say where it runs.

use std::path::Path;

/// One row of the table.
struct Row {
    guarantee: String,
    /// (file, test name) pairs.
    tests: Vec<(String, String)>,
    /// Where the tests meet it.
    place: String,
}

/// The table's rows.
fn rows(page: &str) -> Vec<Row> {
    let start = page
        .find("<!-- guarantees -->")
        .expect("the guarantees page has no <!-- guarantees --> table");
    let end = page
        .find("<!-- /guarantees -->")
        .expect("the guarantees page's table is not closed");
    page[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| guarantee"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "a row of three cells: {l}");
            let ticked: Vec<&str> = cells[1].split('`').skip(1).step_by(2).collect();
            assert!(
                ticked.len().is_multiple_of(2) && !ticked.is_empty(),
                "the test cell names `file` `test` pairs: {l}"
            );
            let tests = ticked
                .chunks(2)
                .map(|p| (p[0].to_string(), p[1].to_string()))
                .collect();
            Row {
                guarantee: cells[0].to_string(),
                tests,
                place: cells[2].to_string(),
            }
        })
        .collect()
}

#[test]
fn every_guarantee_names_a_test_that_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("docs/reference/guarantees.md"))
        .expect("docs/reference/guarantees.md");
    let rows = rows(&page);
    assert!(rows.len() >= 20, "only {} guarantees listed", rows.len());
    let mut missing = Vec::new();
    for Row {
        guarantee,
        tests,
        place,
    } in &rows
    {
        assert!(
            ["real node", "test kubelet", "apiserver", "locally"].contains(&place.as_str()),
            "{guarantee}: where is {place:?}?"
        );
        for (file, name) in tests {
            let text = std::fs::read_to_string(root.join(file)).unwrap_or_default();
            let defined = text.contains(&format!("fn {name}("));
            if !defined {
                missing.push(format!("{guarantee}: {file} has no test {name}"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn a_row_naming_a_test_that_is_gone_is_found() {
    let page = "<!-- guarantees -->\n| guarantee | test | where |\n|---|---|---|\n| x | `tests/guarantees.rs` `no_such_test` | locally |\n<!-- /guarantees -->\n";
    let rows = rows(page);
    assert_eq!(
        rows[0].tests,
        [(
            "tests/guarantees.rs".to_string(),
            "no_such_test".to_string()
        )]
    );
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/guarantees.rs"))
        .unwrap();
    assert!(!text.contains(&format!("fn {}(", "no_such_test")));
}
