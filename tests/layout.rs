//! The workspace's files import one way: no two files import each other,
//! directly or round a loop (see `testlayer_testkit::imports`, whose own
//! tests show it finds such circles).

use std::path::Path;

use testlayer_testkit::imports::{circles, workspace_graph};

#[test]
fn no_files_import_each_other_directly_or_round_a_loop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = workspace_graph(root).expect("the workspace's sources parse");
    let edges: usize = graph.values().map(|to| to.len()).sum();
    // A walk that lost its way would find no circle in nothing.
    assert!(
        graph.len() > 200 && edges > 500,
        "only {} files and {edges} imports found: the walk is broken",
        graph.len()
    );
    let found = circles(&graph);
    let listed: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        found.is_empty(),
        "{} circles of files (move what both use into a file of its own):\n{}",
        found.len(),
        listed.join("\n")
    );
}
