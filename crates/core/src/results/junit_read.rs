//! Test counts from a JUnit XML report.

use std::path::Path;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{ResultsError, TestCounts};

/// Counts the `<testcase>` elements of a JUnit XML document: failed when it
/// holds `<failure>` or `<error>`, skipped when it holds `<skipped>`, passed
/// otherwise. `origin` names the document in errors.
pub fn counts_from_junit_xml(xml: &str, origin: &str) -> Result<TestCounts, ResultsError> {
    #[derive(PartialEq)]
    enum Case {
        Passed,
        Skipped,
        Failed,
    }
    let malformed = |position: u64, problem: String| ResultsError::Malformed {
        origin: origin.to_string(),
        position,
        problem,
    };

    let mut reader = Reader::from_str(xml);
    let mut counts = TestCounts::default();
    let mut depth = 0usize;
    let mut junit = false;
    let mut case: Option<(usize, Case)> = None;
    let record = |c: Case, counts: &mut TestCounts| match c {
        Case::Passed => counts.passed += 1,
        Case::Skipped => counts.skipped += 1,
        Case::Failed => counts.failed += 1,
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(reader.error_position(), e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                // `<x/>` opens and closes at once: no depth, and a bare
                // `<testcase/>` is a passed case.
                let empty = matches!(event, Event::Empty(_));
                if !empty {
                    depth += 1;
                }
                match e.local_name().as_ref() {
                    b"testsuite" | b"testsuites" => junit = true,
                    b"testcase" => {
                        junit = true;
                        if empty {
                            counts.passed += 1;
                        } else {
                            case = Some((depth, Case::Passed));
                        }
                    }
                    b"failure" | b"error" => {
                        if let Some((_, c)) = &mut case {
                            *c = Case::Failed;
                        }
                    }
                    b"skipped" => {
                        if let Some((_, c)) = &mut case
                            && *c == Case::Passed
                        {
                            *c = Case::Skipped;
                        }
                    }
                    _ => {}
                }
            }
            Event::End(_) => {
                if let Some((d, _)) = &case
                    && *d == depth
                    && let Some((_, c)) = case.take()
                {
                    record(c, &mut counts);
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => {
                if depth > 0 {
                    return Err(malformed(
                        reader.buffer_position(),
                        format!("document ends with {depth} element(s) still open"),
                    ));
                }
                break;
            }
            _ => {}
        }
    }
    if !junit {
        return Err(ResultsError::NotJunit {
            origin: origin.to_string(),
        });
    }
    Ok(counts)
}

/// Reads a JUnit XML file and counts its test cases.
pub fn counts_from_junit_file(path: &Path) -> Result<TestCounts, ResultsError> {
    let bytes = std::fs::read(path).map_err(|source| ResultsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    counts_from_junit_xml(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(passed: u64, failed: u64, skipped: u64) -> TestCounts {
        TestCounts {
            passed,
            failed,
            skipped,
        }
    }

    #[test]
    fn counts_cases() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" tests="5">
    <testcase classname="t" name="a" time="0.1"/>
    <testcase classname="t" name="b"><system-out>hi</system-out></testcase>
    <testcase classname="t" name="c"><failure message="boom">trace</failure></testcase>
    <testcase classname="t" name="d"><error message="setup"/></testcase>
    <testcase classname="t" name="e"><skipped message="later"/></testcase>
  </testsuite>
  <testsuite name="nested"><testsuite name="inner"><testcase name="f"/></testsuite></testsuite>
</testsuites>"#;
        assert_eq!(counts_from_junit_xml(xml, "r.xml").unwrap(), c(3, 2, 1));
    }

    #[test]
    fn empty_suite_is_zero() {
        assert_eq!(
            counts_from_junit_xml("<testsuite name='x' tests='0'/>", "r").unwrap(),
            c(0, 0, 0)
        );
    }

    #[test]
    fn errors_name_the_origin() {
        let e = counts_from_junit_xml("<testsuite><testcase></testsuite>", "out/report.xml")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("out/report.xml: malformed JUnit XML"),
            "{e}"
        );
        let e = counts_from_junit_xml("<testsuite><testcase>", "r.xml").unwrap_err();
        assert!(e.to_string().contains("still open"), "{e}");
        let e = counts_from_junit_xml("<html><body/></html>", "page.html").unwrap_err();
        assert!(e.to_string().contains("not a JUnit report"), "{e}");
        let e = counts_from_junit_file(Path::new("/nonexistent/report.xml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/report.xml"), "{e}");
    }
}
