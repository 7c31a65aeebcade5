//! The README and the book under `docs/`, read as markdown: every relative
//! link leads to a file, every `#anchor` to a heading of its page (as GitHub
//! makes their ids), every page is reachable from `docs/README.md` or the
//! README, and every command block of a getting-started page is run by the
//! test `tests/doc_blocks/mod.rs` names for the page, or says why not; and
//! every test binary is in the fast tier (`cargo fast-test`) or named on
//! `docs/contributing/test-tiers.md` as needing more.

mod doc_blocks;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Every markdown page: the README and `docs/**/*.md`, relative to the
/// repository's root.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|x| x == "md") {
                out.push(
                    path.strip_prefix(root)
                        .expect("under the root")
                        .to_path_buf(),
                );
            }
        }
    }
    let root = doc_blocks::repo();
    let mut out = vec![PathBuf::from("README.md")];
    walk(&root.join("docs"), root, &mut out);
    out.sort();
    out
}

/// What a page has: the ids of its headings and its link targets (with the
/// line each is on).
#[derive(Default)]
struct Page {
    anchors: BTreeSet<String>,
    links: Vec<(String, usize)>,
}

/// The id GitHub gives a heading: its text in lower case, without what is
/// neither a letter, a digit, `-`, `_` nor a space, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Reads `markdown`: its headings' ids (a repeated one gets `-1`, `-2`, as
/// on GitHub) and its links and images.
fn read(markdown: &str) -> Page {
    let mut page = Page::default();
    let mut heading: Option<String> = None;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for (event, range) in Parser::new_ext(markdown, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let base = slug(&h);
                    let n = seen.entry(base.clone()).or_insert(0);
                    let id = if *n == 0 {
                        base.clone()
                    } else {
                        format!("{base}-{n}")
                    };
                    *n += 1;
                    page.anchors.insert(id);
                }
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                let line = markdown[..range.start].lines().count().max(1);
                page.links.push((dest_url.to_string(), line));
            }
            _ => {}
        }
    }
    page
}

/// `target` (a link's path) from the page at `from`, relative to the root;
/// `None` when it leaves the repository.
fn resolve(from: &Path, target: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in from
        .parent()
        .unwrap_or(Path::new(""))
        .join(target)
        .components()
    {
        match part {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether a link goes outside the repository (checked by nobody here).
fn external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// The problems of the links of `pages` (path → text): a file that is not
/// there, an anchor its page does not have.
fn link_problems(pages: &BTreeMap<PathBuf, String>, exists: impl Fn(&Path) -> bool) -> Vec<String> {
    let read_pages: BTreeMap<&PathBuf, Page> = pages.iter().map(|(p, t)| (p, read(t))).collect();
    let mut problems = Vec::new();
    for (path, page) in &read_pages {
        for (link, line) in &page.links {
            if external(link) {
                continue;
            }
            let at = format!("{}:{line}: {link}", path.display());
            let (file, anchor) = match link.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                (*path).clone()
            } else {
                match resolve(path, file) {
                    Some(t) => t,
                    None => {
                        problems.push(format!("{at}: leads outside the repository"));
                        continue;
                    }
                }
            };
            if !pages.contains_key(&target) && !exists(&target) {
                problems.push(format!("{at}: there is no {}", target.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            match read_pages.get(&target) {
                Some(t) if t.anchors.contains(anchor) => {}
                Some(t) => problems.push(format!(
                    "{at}: {} has no heading with the id {anchor:?} (its ids: {})",
                    target.display(),
                    t.anchors.iter().cloned().collect::<Vec<_>>().join(", ")
                )),
                None => problems.push(format!(
                    "{at}: an anchor into {}, which is no markdown page",
                    target.display()
                )),
            }
        }
    }
    problems
}

/// Every page on disk, by path.
fn all_pages() -> BTreeMap<PathBuf, String> {
    pages()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(doc_blocks::repo().join(&p))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, text)
        })
        .collect()
}

#[test]
fn every_link_of_the_readme_and_the_docs_leads_somewhere() {
    let pages = all_pages();
    assert!(pages.len() > 20, "only {} pages found", pages.len());
    let links: usize = pages.values().map(|t| read(t).links.len()).sum();
    assert!(
        links > 50,
        "only {links} links found: the reading is broken"
    );
    let problems = link_problems(&pages, |p| doc_blocks::repo().join(p).exists());
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_broken_link_or_anchor_is_found() {
    let pages: BTreeMap<PathBuf, String> = [
        (
            PathBuf::from("docs/a.md"),
            "# A\n\n## Two words: `code`\n\n[ok](b.md#b) [ok](#two-words-code) [gone](c.md) \
             [no anchor](b.md#nope) [out](../../x.md) [web](https://example.com/x)\n"
                .to_string(),
        ),
        (PathBuf::from("docs/b.md"), "# B\n".to_string()),
    ]
    .into_iter()
    .collect();
    let problems = link_problems(&pages, |_| false);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].contains("there is no docs/c.md"),
        "{problems:#?}"
    );
    assert!(
        problems[1].contains("no heading with the id \"nope\""),
        "{problems:#?}"
    );
    assert!(
        problems[2].contains("outside the repository"),
        "{problems:#?}"
    );
}

#[test]
fn headings_get_the_ids_github_gives_them() {
    let page = read(
        "# Try it on a real node\n## From CI: submit and wait\n## `testlayer run`\n## Shared resources\n### Shared resources\n",
    );
    let ids: Vec<&str> = page.anchors.iter().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "from-ci-submit-and-wait",
            "shared-resources",
            "shared-resources-1",
            "testlayer-run",
            "try-it-on-a-real-node"
        ]
    );
}

#[test]
fn every_page_of_the_docs_is_reachable_from_the_readme_or_the_contents() {
    let pages = all_pages();
    let mut reached: BTreeSet<PathBuf> = BTreeSet::new();
    let mut next = vec![PathBuf::from("README.md"), PathBuf::from("docs/README.md")];
    while let Some(page) = next.pop() {
        if !reached.insert(page.clone()) {
            continue;
        }
        let Some(text) = pages.get(&page) else {
            continue;
        };
        for (link, _) in read(text).links {
            if external(&link) {
                continue;
            }
            let file = link.split('#').next().unwrap_or_default();
            if let Some(target) = resolve(&page, file).filter(|t| pages.contains_key(t)) {
                next.push(target);
            }
        }
    }
    let unreached: Vec<String> = pages
        .keys()
        .filter(|p| !reached.contains(*p))
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        unreached.is_empty(),
        "pages no link leads to from README.md or docs/README.md: {unreached:?}"
    );
}

/// The getting-started pages, relative to the root.
fn getting_started_pages() -> Vec<String> {
    pages()
        .into_iter()
        .filter(|p| p.starts_with("docs/getting-started"))
        .map(|p| p.display().to_string())
        .collect()
}

/// The problems of a getting-started page's code blocks: one without a
/// language, a `no-run` one without a reason.
fn block_problems(page: &str, markdown: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for block in doc_blocks::blocks(markdown) {
        if block.language.is_empty() {
            problems.push(format!(
                "{page}:{}: a code block without a language (say `bash`, `yaml`, `text`...)",
                block.line
            ));
        }
        if block.no_run && block.reason.is_none() {
            problems.push(format!(
                "{page}:{}: a `no-run` block needs `<!-- no-run: REASON -->` right above it",
                block.line
            ));
        }
        if block.is_commands() && !block.no_run && block.commands().is_empty() {
            problems.push(format!(
                "{page}:{}: a command block with no command",
                block.line
            ));
        }
    }
    problems
}

#[test]
fn every_command_block_of_the_getting_started_pages_is_run_by_a_test() {
    let pages = getting_started_pages();
    assert!(pages.len() >= 3, "{pages:?}");
    let mut problems = Vec::new();
    let mut not_run = Vec::new();
    for page in &pages {
        let Some((_, file, test)) = doc_blocks::RUNNERS.iter().find(|(p, _, _)| p == page) else {
            problems.push(format!(
                "{page}: no test runs its commands: name one in RUNNERS (tests/doc_blocks/mod.rs)"
            ));
            continue;
        };
        let source = std::fs::read_to_string(doc_blocks::repo().join(file)).unwrap_or_default();
        if !source.contains(&format!("fn {test}(")) {
            problems.push(format!("{page}: {file} has no test {test}"));
        }
        let markdown = doc_blocks::page(page);
        problems.extend(block_problems(page, &markdown));
        let blocks = doc_blocks::blocks(&markdown);
        if !blocks.iter().any(|b| b.is_commands() && !b.no_run) {
            problems.push(format!("{page}: no command block to run"));
        }
        not_run.extend(blocks.iter().filter(|b| b.no_run).map(|b| {
            format!(
                "{page}:{}: {}",
                b.line,
                b.reason.clone().unwrap_or_default()
            )
        }));
    }
    for (page, _, _) in doc_blocks::RUNNERS {
        if !pages.iter().any(|p| p == page) {
            problems.push(format!("RUNNERS names {page}, which is not there"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Blocks that cannot run in a test are the exception.
    assert!(
        not_run.len() <= 2,
        "{} blocks of the getting-started pages are not run:\n{}",
        not_run.len(),
        not_run.join("\n")
    );
    eprintln!(
        "blocks not run, with their reasons:\n{}",
        not_run.join("\n")
    );
}

#[test]
fn a_block_without_a_language_or_a_reason_is_found() {
    let page = "# P\n\n```\nls\n```\n\n```bash no-run\nrm -rf /\n```\n\n<!-- no-run: it names your own registry -->\n```sh no-run\ndocker push registry.example.com/x\n```\n\n```bash\n# only a comment\n```\n";
    let problems = block_problems("p.md", page);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("p.md:3: a code block without a language"));
    assert!(problems[1].contains("p.md:7: a `no-run` block needs"));
    assert!(problems[2].contains("p.md:16: a command block with no command"));
    let blocks = doc_blocks::blocks(page);
    assert_eq!(
        blocks[2].reason.as_deref(),
        Some("it names your own registry")
    );
}

#[test]
fn commands_are_read_as_a_user_types_them() {
    let blocks = doc_blocks::blocks(
        "```sh\n# a comment\nfirst --a \\\n  --b   # why\n\nsecond\n```\n\n```console\n$ third\noutput\n$ fourth \\\n  --c\n```\n",
    );
    assert_eq!(blocks[0].commands(), ["first --a   --b   # why", "second"]);
    assert_eq!(blocks[1].commands(), ["third", "fourth   --c"]);
}

/// The integration tests `cargo fast-test` runs: the names after `--test`
/// in its alias (`.cargo/config.toml`), and the alias's other words.
fn fast_tier() -> (Vec<String>, Vec<String>) {
    let config = std::fs::read_to_string(doc_blocks::repo().join(".cargo/config.toml"))
        .expect(".cargo/config.toml");
    let start = config
        .find("fast-test = [")
        .expect(".cargo/config.toml has no fast-test alias");
    let list = &config[start..];
    let list = &list[..list.find(']').expect("the alias's list is not closed")];
    let words: Vec<String> = list
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let tests = words
        .windows(2)
        .filter(|w| w[0] == "--test")
        .map(|w| w[1].clone())
        .collect();
    (tests, words)
}

/// The test binaries the test-tiers page names as needing more than
/// `cargo test`'s own build: the first cell of each row of its marked table.
fn named_cluster_tests(page: &str) -> Vec<String> {
    let start = page
        .find("<!-- cluster tests -->")
        .expect("the test-tiers page has no <!-- cluster tests --> table");
    let end = page
        .find("<!-- /cluster tests -->")
        .expect("the test-tiers page's table is not closed");
    page[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_string))
        .collect()
}

/// Every test target of the workspace: (name, source path relative to the
/// root), as `cargo metadata` lists them.
fn test_targets() -> Vec<(String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(doc_blocks::repo())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
    let root = doc_blocks::repo();
    let mut found = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        for target in package["targets"].as_array().expect("targets") {
            if target["kind"] != serde_json::json!(["test"]) {
                continue;
            }
            let src = Path::new(target["src_path"].as_str().expect("src_path"));
            let src = src.strip_prefix(root).unwrap_or(src);
            found.push((
                target["name"].as_str().expect("name").to_string(),
                src.display().to_string(),
            ));
        }
    }
    found
}

/// What in a test's source says it needs a cluster (the test support that
/// starts a control plane, a node or Kueue, or reads what a Go build or the
/// image build made). Written in two halves so that this file does not
/// name them whole.
fn cluster_markers() -> Vec<String> {
    [
        ("Fix", "ture"),
        ("Control", "Plane"),
        ("Real", "Node"),
        ("real_", "node()"),
        ("bin_", "dir()"),
        ("node_build", "_dir"),
        ("kueue_build", "_dir"),
        ("Kue", "ue::"),
        ("image_", "archive"),
        ("TESTLAYER_CRON", "_REFERENCE"),
        ("TESTLAYER_GITOPS", "_CRDS"),
        ("TESTLAYER_PROM", "TOOL"),
        ("cluster/", "up.sh"),
    ]
    .iter()
    .map(|(a, b)| format!("{a}{b}"))
    .collect()
}

#[test]
fn every_test_binary_is_in_the_fast_tier_or_named_as_needing_more() {
    let (fast, words) = fast_tier();
    for word in ["test", "--workspace", "--lib", "--bins", "--no-fail-fast"] {
        assert!(
            words.contains(&word.to_string()),
            "the fast-test alias lacks {word}: {words:?}"
        );
    }
    let page = doc_blocks::page("docs/contributing/test-tiers.md");
    let named = named_cluster_tests(&page);
    let targets = test_targets();
    assert!(
        targets.len() > 30,
        "only {} test targets found",
        targets.len()
    );
    let markers = cluster_markers();
    let mut problems = Vec::new();
    for (name, src) in &targets {
        let in_fast = fast.contains(name);
        let in_named = named.contains(src);
        let source = std::fs::read_to_string(doc_blocks::repo().join(src)).unwrap_or_default();
        let needs = markers.iter().find(|m| source.contains(m.as_str()));
        match (in_fast, in_named, needs) {
            (true, true, _) => problems.push(format!(
                "{src} is both in the fast tier and named as needing more"
            )),
            (false, false, _) => problems.push(format!(
                "{src} is in no tier: add `--test {name}` to the fast-test alias in \
                 .cargo/config.toml, or name it in docs/contributing/test-tiers.md with \
                 what it needs"
            )),
            (true, false, Some(marker)) => problems.push(format!(
                "{src} is in the fast tier but needs a cluster (it uses {marker}): \
                 name it in docs/contributing/test-tiers.md instead"
            )),
            _ => {}
        }
    }
    for name in &fast {
        if !targets.iter().any(|(n, _)| n == name) {
            problems.push(format!(
                "the fast-test alias runs `--test {name}`, which is no test binary"
            ));
        }
    }
    for src in &named {
        if !targets.iter().any(|(_, s)| s == src) {
            problems.push(format!(
                "docs/contributing/test-tiers.md names {src}, which is no test binary"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_tier_lists_are_read_as_written() {
    let page = "text\n<!-- cluster tests -->\n| test binary | needs |\n|---|---|\n| `tests/a.rs` | x |\n| `testkit/tests/b.rs` | y |\n<!-- /cluster tests -->\n| `tests/c.rs` | z |\n";
    assert_eq!(
        named_cluster_tests(page),
        ["tests/a.rs", "testkit/tests/b.rs"]
    );
    let (fast, _) = fast_tier();
    assert!(fast.contains(&"docs".to_string()), "{fast:?}");
    let markers = cluster_markers();
    assert!(
        markers
            .iter()
            .any(|m| m.starts_with("Fix") && m.ends_with("ture"))
    );
    let operator = std::fs::read_to_string(doc_blocks::repo().join("tests/operator.rs"))
        .expect("tests/operator.rs");
    assert!(markers.iter().any(|m| operator.contains(m.as_str())));
}

/// The lines from `start` to `end` of `text`, both included.
fn between<'t>(text: &'t str, start: &str, end: &str) -> Option<Vec<&'t str>> {
    let lines: Vec<&str> = text.lines().collect();
    let i = lines.iter().position(|l| *l == start)?;
    let j = lines.iter().position(|l| *l == end)?;
    (i < j).then(|| lines[i..=j].to_vec())
}

/// The README's table of the operator benchmark's targets is the one the
/// last full run printed (docs/benchmarks/operator-last-run.txt, copied by
/// scripts/bench-record.sh), never typed: a full run, with every part.
#[test]
fn the_readmes_benchmark_table_is_the_last_full_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (start, end) = (
        "<!-- operator benchmark targets: start -->",
        "<!-- operator benchmark targets: end -->",
    );
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let run = std::fs::read_to_string(root.join("docs/benchmarks/operator-last-run.txt"))
        .expect("docs/benchmarks/operator-last-run.txt");
    assert!(
        run.lines()
            .next()
            .is_some_and(|l| l.starts_with("testlayer operator benchmark, full tier")),
        "the recorded run is not a full one: {:?}",
        run.lines().next()
    );
    let recorded = between(&run, start, end).expect("the recorded run's table");
    let shown = between(&readme, start, end).expect("the README's table");
    assert_eq!(
        shown, recorded,
        "the README's table differs from the recorded run's: run `bash scripts/bench-record.sh`"
    );
    for part in ["(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "(g)", "(h)"] {
        assert!(
            recorded.iter().any(|l| l.starts_with(&format!("| {part}"))),
            "no figure of part {part} in the recorded table"
        );
    }
}
