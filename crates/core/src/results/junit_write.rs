//! JUnit XML written for a run, in the dialect CI systems read (Jenkins,
//! GitLab, GitHub test reporters).

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::ResultsError;

/// How one test case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseOutcome {
    /// Passed.
    Passed,
    /// The test failed.
    Failed {
        /// One line.
        message: String,
        /// Details, e.g. the end of the log.
        detail: String,
    },
    /// The test could not run properly (infrastructure).
    Error {
        /// One line.
        message: String,
        /// Details.
        detail: String,
    },
    /// Not run.
    Skipped {
        /// Why.
        message: String,
    },
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub struct JunitCase {
    /// `classname` attribute.
    pub classname: String,
    /// `name` attribute.
    pub name: String,
    /// Seconds.
    pub time_secs: f64,
    /// How it ended.
    pub outcome: CaseOutcome,
    /// Optional `<system-out>`.
    pub system_out: Option<String>,
}

/// One `<testsuite>`.
#[derive(Debug, Clone, PartialEq)]
pub struct JunitSuite {
    /// `name` attribute.
    pub name: String,
    /// Its cases.
    pub cases: Vec<JunitCase>,
    /// `<properties>` name/value pairs.
    pub properties: Vec<(String, String)>,
}

/// Removes characters XML 1.0 cannot hold (most control characters).
fn xml_safe(s: &str) -> String {
    s.chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect()
}

struct Tally {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    time: f64,
}

fn tally<'a>(cases: impl Iterator<Item = &'a JunitCase>) -> Tally {
    let mut t = Tally {
        tests: 0,
        failures: 0,
        errors: 0,
        skipped: 0,
        time: 0.0,
    };
    for c in cases {
        t.tests += 1;
        t.time += c.time_secs.max(0.0);
        match c.outcome {
            CaseOutcome::Passed => {}
            CaseOutcome::Failed { .. } => t.failures += 1,
            CaseOutcome::Error { .. } => t.errors += 1,
            CaseOutcome::Skipped { .. } => t.skipped += 1,
        }
    }
    t
}

fn start<'a>(name: &'a str, name_attr: &str, t: &Tally) -> BytesStart<'a> {
    let mut e = BytesStart::new(name);
    e.push_attribute(("name", xml_safe(name_attr).as_str()));
    e.push_attribute(("tests", t.tests.to_string().as_str()));
    e.push_attribute(("failures", t.failures.to_string().as_str()));
    e.push_attribute(("errors", t.errors.to_string().as_str()));
    e.push_attribute(("skipped", t.skipped.to_string().as_str()));
    e.push_attribute(("time", format!("{:.3}", t.time).as_str()));
    e
}

/// Renders suites as a JUnit XML document under one `<testsuites name=...>`.
pub fn write_junit(name: &str, suites: &[JunitSuite]) -> Result<String, ResultsError> {
    let err = |e: std::io::Error| ResultsError::Write(e.to_string());
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(err)?;
    let all = tally(suites.iter().flat_map(|s| s.cases.iter()));
    w.write_event(Event::Start(start("testsuites", name, &all)))
        .map_err(err)?;
    for suite in suites {
        let t = tally(suite.cases.iter());
        w.write_event(Event::Start(start("testsuite", &suite.name, &t)))
            .map_err(err)?;
        if !suite.properties.is_empty() {
            w.write_event(Event::Start(BytesStart::new("properties")))
                .map_err(err)?;
            for (k, v) in &suite.properties {
                let mut p = BytesStart::new("property");
                p.push_attribute(("name", xml_safe(k).as_str()));
                p.push_attribute(("value", xml_safe(v).as_str()));
                w.write_event(Event::Empty(p)).map_err(err)?;
            }
            w.write_event(Event::End(BytesEnd::new("properties")))
                .map_err(err)?;
        }
        for case in &suite.cases {
            let mut e = BytesStart::new("testcase");
            e.push_attribute(("classname", xml_safe(&case.classname).as_str()));
            e.push_attribute(("name", xml_safe(&case.name).as_str()));
            e.push_attribute(("time", format!("{:.3}", case.time_secs.max(0.0)).as_str()));
            if case.outcome == CaseOutcome::Passed && case.system_out.is_none() {
                w.write_event(Event::Empty(e)).map_err(err)?;
                continue;
            }
            w.write_event(Event::Start(e)).map_err(err)?;
            match &case.outcome {
                CaseOutcome::Passed => {}
                CaseOutcome::Failed { message, detail }
                | CaseOutcome::Error { message, detail } => {
                    let tag = if matches!(case.outcome, CaseOutcome::Failed { .. }) {
                        "failure"
                    } else {
                        "error"
                    };
                    let mut f = BytesStart::new(tag);
                    f.push_attribute(("message", xml_safe(message).as_str()));
                    f.push_attribute(("type", tag));
                    w.write_event(Event::Start(f)).map_err(err)?;
                    w.write_event(Event::Text(BytesText::new(&xml_safe(detail))))
                        .map_err(err)?;
                    w.write_event(Event::End(BytesEnd::new(tag))).map_err(err)?;
                }
                CaseOutcome::Skipped { message } => {
                    let mut s = BytesStart::new("skipped");
                    s.push_attribute(("message", xml_safe(message).as_str()));
                    w.write_event(Event::Empty(s)).map_err(err)?;
                }
            }
            if let Some(out) = &case.system_out {
                w.write_event(Event::Start(BytesStart::new("system-out")))
                    .map_err(err)?;
                w.write_event(Event::Text(BytesText::new(&xml_safe(out))))
                    .map_err(err)?;
                w.write_event(Event::End(BytesEnd::new("system-out")))
                    .map_err(err)?;
            }
            w.write_event(Event::End(BytesEnd::new("testcase")))
                .map_err(err)?;
        }
        w.write_event(Event::End(BytesEnd::new("testsuite")))
            .map_err(err)?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuites")))
        .map_err(err)?;
    let mut out =
        String::from_utf8(w.into_inner()).map_err(|e| ResultsError::Write(e.to_string()))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{TestCounts, counts_from_junit_xml};
    use super::*;
    use proptest::prelude::*;

    fn case(name: &str, outcome: CaseOutcome) -> JunitCase {
        JunitCase {
            classname: "layer".into(),
            name: name.into(),
            time_secs: 1.5,
            outcome,
            system_out: None,
        }
    }

    #[test]
    fn writes_counts_attributes_and_escapes() {
        let suite = JunitSuite {
            name: "fast <feedback>".into(),
            cases: vec![
                case("unit", CaseOutcome::Passed),
                case(
                    "lint & \"style\"",
                    CaseOutcome::Failed {
                        message: "exit 1".into(),
                        detail: "a < b\u{1b}[0m".into(),
                    },
                ),
                case(
                    "infra",
                    CaseOutcome::Error {
                        message: "OOMKilled".into(),
                        detail: String::new(),
                    },
                ),
                case(
                    "e2e",
                    CaseOutcome::Skipped {
                        message: "dependency failed".into(),
                    },
                ),
            ],
            properties: vec![("strategy".into(), "HYBRID_SMART".into())],
        };
        let xml = write_junit("testlayer", &[suite]).unwrap();
        assert!(xml.contains(r#"<testsuites name="testlayer" tests="4" failures="1" errors="1" skipped="1" time="6.000">"#), "{xml}");
        assert!(xml.contains("fast &lt;feedback&gt;"), "{xml}");
        assert!(xml.contains("lint &amp; &quot;style&quot;"), "{xml}");
        assert!(
            xml.contains("a &lt; b[0m"),
            "control character removed: {xml}"
        );
        assert!(
            xml.contains(r#"<property name="strategy" value="HYBRID_SMART"/>"#),
            "{xml}"
        );
        assert_eq!(
            counts_from_junit_xml(&xml, "x").unwrap(),
            TestCounts {
                passed: 1,
                failed: 2,
                skipped: 1
            }
        );
    }

    fn outcome() -> impl Strategy<Value = CaseOutcome> {
        prop_oneof![
            Just(CaseOutcome::Passed),
            (".{0,40}", ".{0,80}")
                .prop_map(|(message, detail)| CaseOutcome::Failed { message, detail }),
            (".{0,40}", ".{0,80}")
                .prop_map(|(message, detail)| CaseOutcome::Error { message, detail }),
            ".{0,40}".prop_map(|message| CaseOutcome::Skipped { message }),
        ]
    }

    proptest! {
        #[test]
        fn round_trips_counts(cases in proptest::collection::vec((".{0,30}", outcome(), proptest::option::of(".{0,50}")), 0..20)) {
            let mut expected = TestCounts::default();
            let cases: Vec<JunitCase> = cases.into_iter().map(|(name, outcome, system_out)| {
                match outcome {
                    CaseOutcome::Passed => expected.passed += 1,
                    CaseOutcome::Skipped { .. } => expected.skipped += 1,
                    _ => expected.failed += 1,
                }
                JunitCase { classname: "c".into(), name, time_secs: 0.25, outcome, system_out }
            }).collect();
            let xml = write_junit("run", &[JunitSuite { name: "s".into(), cases, properties: vec![] }]).unwrap();
            prop_assert_eq!(counts_from_junit_xml(&xml, "generated").unwrap(), expected);
        }
    }
}
