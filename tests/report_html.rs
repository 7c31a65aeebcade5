//! `testlayer report`: the HTML picture of a run, opened in headless
//! Chromium. The DOM after its scripts ran has one timeline bar per attempt,
//! the dependencies drawn and the failing tests listed; the screenshot is
//! not blank.

mod common;

use std::path::Path;
use std::process::Command;

use common::browser;

fn testlayer(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_testlayer"));
    c.current_dir(dir)
        .env("TESTLAYER_HISTORY", dir.join("history.json"));
    c
}

const CONFIG: &str = r#"layers:
  pic:
    execution_mode: parallel
    categories:
      - {name: first, timeout_seconds: 30, command: "sleep 0.2; echo '3 passed in 0.2s'"}
      - name: checkout
        timeout_seconds: 30
        retries: 1
        retry_backoff_seconds: 0
        junit_report: checkout.xml
        command: "printf '%s' \"<testsuite><testcase classname='shop.cart' name='test_total'><failure message='assert 1 == 2'/></testcase><testcase classname='shop.cart' name='test_add'/></testsuite>\" > checkout.xml; echo 'the end of the log'; exit 1"
      - {name: after, timeout_seconds: 30, dependencies: [first], command: "sleep 0.1"}
      - {name: skipped, timeout_seconds: 30, dependencies: [checkout], command: "true"}
"#;

#[test]
fn the_report_of_a_run_draws_every_attempt_and_names_the_failing_tests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("layers.yaml"), CONFIG).unwrap();
    let out = testlayer(dir)
        .args([
            "run",
            "-c",
            "layers.yaml",
            "-l",
            "pic",
            "-o",
            "json",
            "--progress",
            "none",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("run.json"), &out.stdout).unwrap();
    let out = testlayer(dir)
        .args(["report", "run.json", "-o", "run.html"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = dir.join("run.html");

    let dom = browser::dom(&page);
    assert!(
        dom.contains("data-drawn=\"true\""),
        "the script ran to its end:\n{dom}"
    );
    // One bar per attempt: first 1, checkout 2 (a retry), after 1, skipped 0.
    let bars = |category: &str| {
        dom.matches(&format!("data-category=\"{category}\""))
            .count()
    };
    assert_eq!(dom.matches("<rect class=\"bar ").count(), 4, "{dom}");
    assert_eq!(
        (
            bars("first"),
            bars("checkout"),
            bars("after"),
            bars("skipped")
        ),
        (1, 2, 1, 0)
    );
    assert_eq!(dom.matches("class=\"bar failed\"").count(), 2);
    // The dependency after -> first is drawn.
    assert!(
        dom.contains("data-from=\"first\" data-to=\"after\""),
        "{dom}"
    );
    // The failing test, listed under its category.
    let failing = &dom[dom.find("id=\"failing-tests\"").unwrap()..];
    let failing = &failing[..failing.find("</div>").unwrap()];
    assert!(
        failing.contains("shop.cart::test_total: assert 1 == 2 (attempt 2)"),
        "{failing}"
    );
    assert!(dom.contains("the end of the log"), "log tails are there");
    assert!(dom.contains(">Failed</span>"), "the outcome");

    let (w, h, rgba) = browser::screenshot(&page, dir);
    assert_eq!((w, h), (1200, 900));
    let (inked, colours) = browser::ink(&rgba);
    assert!(
        inked > 0.03 && colours > 20,
        "the screenshot looks blank: {:.1}% inked, {colours} colours",
        inked * 100.0
    );
    // The red of failed attempts and the green of passed ones are drawn.
    let has = |rgb: [u8; 3]| rgba.chunks(4).any(|p| p[..3] == rgb);
    assert!(has([0xcf, 0x22, 0x2e]) && has([0x2d, 0xa4, 0x4e]));
}

#[test]
fn bad_input_to_report_is_said() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = testlayer(dir)
        .args(["report", "nope.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.json: cannot read the file"));
    std::fs::write(dir.join("x.json"), "[1, 2]").unwrap();
    let out = testlayer(dir).args(["report", "x.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a JSON report"));
    let out = testlayer(dir).args(["report"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap: a file or --run is needed"
    );
}

#[test]
fn a_layer_of_a_suite_is_drawn_from_the_suite_s_report() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("layers.yaml"),
        "layers:\n  fast:\n    execution_mode: parallel\n    categories:\n      - {name: smoke, timeout_seconds: 30, command: \"true\"}\n  core:\n    execution_mode: parallel\n    dependencies: [fast]\n    categories:\n      - {name: unit, timeout_seconds: 30, command: \"true\"}\n      - {name: lint, timeout_seconds: 30, command: \"true\"}\n",
    )
    .unwrap();
    let out = testlayer(dir)
        .args([
            "run",
            "--all",
            "-c",
            "layers.yaml",
            "-o",
            "json",
            "--progress",
            "none",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("suite.json"), &out.stdout).unwrap();
    let out = testlayer(dir)
        .args(["report", "suite.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a suite's report: name the layer to draw with -l (fast, core)"),
        "{err}"
    );
    let out = testlayer(dir)
        .args(["report", "suite.json", "-l", "core", "-o", "core.html"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = browser::dom(&dir.join("core.html"));
    assert_eq!(dom.matches("<rect class=\"bar ").count(), 2, "{dom}");
    assert!(dom.contains("data-category=\"lint\""));
}
