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

/// `testlayer` without its default feature `cluster` (what
/// `scripts/example.sh` builds) depends on no Kubernetes crate, so that a
/// first local run compiles no client, API types or TLS stack; with it, it
/// does (so the check is not vacuous).
#[test]
fn the_local_build_compiles_no_kubernetes_client() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = |features: &[&str]| {
        let out = std::process::Command::new(env!("CARGO"))
            .args([
                "tree",
                "--locked",
                "-p",
                "testlayer",
                "-e",
                "normal",
                "--prefix",
                "none",
            ])
            .args(features)
            .current_dir(root)
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let kubernetes = |deps: &str| -> Vec<String> {
        deps.lines()
            .filter(|l| {
                ["kube ", "kube-", "k8s-openapi ", "rustls ", "hyper "]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .map(String::from)
            .collect()
    };
    let local = tree(&["--no-default-features"]);
    assert!(kubernetes(&local).is_empty(), "{:?}", kubernetes(&local));
    assert!(
        local.lines().any(|l| l.starts_with("testlayer-local ")),
        "{local}"
    );
    let full = tree(&[]);
    assert!(
        kubernetes(&full).iter().any(|l| l.starts_with("kube ")),
        "{full}"
    );
}
