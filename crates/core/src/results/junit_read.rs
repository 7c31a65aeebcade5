//! Test cases and counts from a JUnit XML report, read as a stream: memory
//! stays bounded by the largest single element, not the report.

use std::io::BufRead;
use std::path::Path;

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

use super::{ResultsError, TestCounts};

/// Longest test id kept, in characters; longer ones end in `…`.
pub const MAX_ID_CHARS: usize = 300;
/// Longest failure message kept (its first line), in characters.
pub const MAX_MESSAGE_CHARS: usize = 200;
/// Largest JUnit report file read locally, in bytes. A larger one is
/// refused with a message rather than read (a runner that writes this much
/// is better read from its counts in the log).
pub const MAX_REPORT_BYTES: u64 = 64 << 20;

/// How one test case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseResult {
    /// Passed.
    Passed,
    /// Failed or errored.
    Failed,
    /// Skipped.
    Skipped,
}

/// One `<testcase>` of a report, as much as results need of it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    /// `classname::name`, or `name` alone when there is no classname;
    /// control characters removed, at most [`MAX_ID_CHARS`].
    pub id: String,
    /// How it ended.
    pub result: CaseResult,
    /// The first line of its failure, error or skip message (at most
    /// [`MAX_MESSAGE_CHARS`]); empty when there is none.
    pub message: String,
    /// Its `time` attribute in seconds (0 when absent or not a number).
    pub time_secs: f64,
}

/// `text` without control characters, at most `max` characters: a longer
/// one is cut and ends with `…`.
pub fn clean_text(text: &str, max: usize) -> String {
    let kept: Vec<char> = text.chars().filter(|c| !c.is_control()).collect();
    if kept.len() <= max {
        return kept.into_iter().collect();
    }
    let mut out: String = kept[..max.saturating_sub(1)].iter().collect();
    out.push('…');
    out
}

/// The first line of `text` that is not blank, trimmed and cleaned.
fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    clean_text(line.unwrap_or(""), MAX_MESSAGE_CHARS)
}

/// The case being read.
struct Open {
    depth: usize,
    case: TestCase,
    /// Text of its failure element so far (for a message when it has no
    /// `message` attribute), bounded.
    text: Option<String>,
}

/// Text kept of a failure element's body, in bytes, to find its first line.
const TEXT_KEEP: usize = 4096;

fn attr(e: &BytesStart, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

fn start_case(e: &BytesStart, depth: usize) -> Open {
    let classname = attr(e, b"classname").unwrap_or_default();
    let name = attr(e, b"name").unwrap_or_default();
    let id = if classname.is_empty() {
        name
    } else {
        format!("{classname}::{name}")
    };
    let time_secs = attr(e, b"time")
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t >= 0.0)
        .unwrap_or(0.0);
    Open {
        depth,
        case: TestCase {
            id: clean_text(&id, MAX_ID_CHARS),
            result: CaseResult::Passed,
            message: String::new(),
            time_secs,
        },
        text: None,
    }
}

/// Reads a JUnit XML document from `input` and hands each test case to
/// `each`, in document order: failed when it holds `<failure>` or `<error>`,
/// skipped when it holds `<skipped>`, passed otherwise. Returns the counts.
/// `origin` names the document in errors. Input past `limit` bytes is an
/// error (memory is bounded by the largest element, which `limit` bounds).
pub fn read_junit<R: BufRead>(
    input: R,
    origin: &str,
    limit: u64,
    mut each: impl FnMut(TestCase),
) -> Result<TestCounts, ResultsError> {
    let malformed = |position: u64, problem: String| ResultsError::Malformed {
        origin: origin.to_string(),
        position,
        problem,
    };
    let mut reader = Reader::from_reader(input.take(limit.saturating_add(1)));
    let mut buf = Vec::new();
    let mut counts = TestCounts::default();
    let mut depth = 0usize;
    let mut junit = false;
    let mut open: Option<Open> = None;
    let finish = |o: Open, counts: &mut TestCounts, each: &mut dyn FnMut(TestCase)| {
        let mut case = o.case;
        match case.result {
            CaseResult::Passed => counts.passed += 1,
            CaseResult::Skipped => counts.skipped += 1,
            CaseResult::Failed => counts.failed += 1,
        }
        if case.message.is_empty()
            && let Some(t) = &o.text
        {
            case.message = first_line(t);
        }
        each(case);
    };
    loop {
        buf.clear();
        let event = reader.read_event_into(&mut buf);
        // All of the allowed input read and more there: too large, whatever
        // the parser made of the cut.
        if reader.get_ref().limit() == 0 {
            return Err(ResultsError::TooLarge {
                origin: origin.to_string(),
                limit,
            });
        }
        let event = event.map_err(|e| malformed(reader.error_position(), e.to_string()))?;
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
                        let case = start_case(e, depth);
                        if empty {
                            finish(case, &mut counts, &mut each);
                        } else if let Some(earlier) = open.replace(case) {
                            // A case inside a case: the outer one is done.
                            finish(earlier, &mut counts, &mut each);
                        }
                    }
                    kind @ (b"failure" | b"error" | b"skipped") => {
                        if let Some(o) = &mut open {
                            let failure = kind != b"skipped";
                            if failure || o.case.result == CaseResult::Passed {
                                let failed_before = o.case.result == CaseResult::Failed;
                                o.case.result = if failure {
                                    CaseResult::Failed
                                } else {
                                    CaseResult::Skipped
                                };
                                // The first failure names the case.
                                if !failed_before {
                                    o.case.message = attr(e, b"message")
                                        .map(|m| first_line(&m))
                                        .unwrap_or_default();
                                    o.text =
                                        (!empty && o.case.message.is_empty()).then(String::new);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some(text) = open.as_mut().and_then(|o| o.text.as_mut())
                    && text.len() < TEXT_KEEP
                {
                    text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::CData(t) => {
                if let Some(text) = open.as_mut().and_then(|o| o.text.as_mut())
                    && text.len() < TEXT_KEEP
                {
                    text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(text) = open.as_mut().and_then(|o| o.text.as_mut())
                    && text.len() < TEXT_KEEP
                {
                    let name = String::from_utf8_lossy(&r);
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        text.push(c);
                    } else if let Some(s) = resolve_predefined_entity(&name) {
                        text.push_str(s);
                    }
                }
            }
            Event::End(ref e) => {
                let name = e.local_name();
                if matches!(name.as_ref(), b"failure" | b"error")
                    && let Some(o) = &mut open
                {
                    // Only the first failure's body is read.
                    if o.case.message.is_empty()
                        && let Some(t) = o.text.take()
                    {
                        o.case.message = first_line(&t);
                    }
                }
                if open.as_ref().is_some_and(|o| o.depth == depth)
                    && let Some(o) = open.take()
                {
                    finish(o, &mut counts, &mut each);
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

/// Counts the `<testcase>` elements of a JUnit XML document (see
/// [`read_junit`]). `origin` names the document in errors.
pub fn counts_from_junit_xml(xml: &str, origin: &str) -> Result<TestCounts, ResultsError> {
    read_junit(xml.as_bytes(), origin, MAX_REPORT_BYTES, |_| {})
}

/// Reads a JUnit XML file, handing each test case to `each`, and returns
/// the counts.
pub fn read_junit_file(
    path: &Path,
    each: impl FnMut(TestCase),
) -> Result<TestCounts, ResultsError> {
    let read_err = |source| ResultsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    let origin = path.display().to_string();
    if len > MAX_REPORT_BYTES {
        return Err(ResultsError::TooLarge {
            origin,
            limit: MAX_REPORT_BYTES,
        });
    }
    read_junit(
        std::io::BufReader::new(file),
        &origin,
        MAX_REPORT_BYTES,
        each,
    )
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

    const REPORT: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" tests="5">
    <testcase classname="t" name="a" time="0.1"/>
    <testcase classname="t" name="b"><system-out>hi</system-out></testcase>
    <testcase classname="t" name="c" time="2.5"><failure message="boom&#10;second line">trace</failure></testcase>
    <testcase classname="t" name="d"><error>

  setup &amp; teardown failed
  more</error></testcase>
    <testcase classname="t" name="e"><skipped message="later"/></testcase>
  </testsuite>
  <testsuite name="nested"><testsuite name="inner"><testcase name="f"/></testsuite></testsuite>
</testsuites>"#;

    #[test]
    fn counts_cases() {
        assert_eq!(counts_from_junit_xml(REPORT, "r.xml").unwrap(), c(3, 2, 1));
    }

    #[test]
    fn cases_are_named_with_their_first_message_line() {
        let mut cases = Vec::new();
        read_junit(REPORT.as_bytes(), "r.xml", MAX_REPORT_BYTES, |t| {
            cases.push(t)
        })
        .unwrap();
        let ids: Vec<&str> = cases.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["t::a", "t::b", "t::c", "t::d", "t::e", "f"]);
        assert_eq!(cases[2].result, CaseResult::Failed);
        assert_eq!(cases[2].message, "boom");
        assert_eq!(cases[2].time_secs, 2.5);
        assert_eq!(cases[3].result, CaseResult::Failed);
        assert_eq!(cases[3].message, "setup & teardown failed");
        assert_eq!(cases[4].result, CaseResult::Skipped);
        assert_eq!(cases[4].message, "later");
        assert_eq!(cases[0].message, "");
    }

    #[test]
    fn hostile_names_are_cleaned_and_bounded() {
        let long = "x".repeat(10_000);
        let xml = format!(
            "<testsuite><testcase classname=\"a&#7;b\" name=\"{long}\"><failure message=\"{long}\"/></testcase></testsuite>"
        );
        let mut cases = Vec::new();
        read_junit(xml.as_bytes(), "r", MAX_REPORT_BYTES, |t| cases.push(t)).unwrap();
        assert_eq!(cases[0].id.chars().count(), MAX_ID_CHARS);
        assert!(cases[0].id.starts_with("ab::xxx") && cases[0].id.ends_with('…'));
        assert_eq!(cases[0].message.chars().count(), MAX_MESSAGE_CHARS);
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
        let e = counts_from_junit_xml("not xml at all", "plain.txt").unwrap_err();
        assert!(e.to_string().contains("plain.txt"), "{e}");
        let e = read_junit_file(Path::new("/nonexistent/report.xml"), |_| {}).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/report.xml"), "{e}");
    }

    #[test]
    fn a_report_past_the_limit_is_refused_with_a_message() {
        // A stream that never ends: the reader stops at the limit.
        let head = "<testsuite>".as_bytes();
        let body = std::io::repeat(b' ');
        let input = std::io::BufReader::new(std::io::Read::chain(head, body));
        let e = read_junit(input, "huge.xml", 1 << 20, |_| {}).unwrap_err();
        assert!(
            e.to_string().contains("huge.xml") && e.to_string().contains("1 MiB"),
            "{e}"
        );
    }
}
