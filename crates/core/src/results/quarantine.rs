//! Quarantined tests: ids (or patterns of ids) whose failures do not fail
//! their category.
//!
//! A pattern is a test id as a report names it (`classname::name`), where
//! `*` stands for any run of characters (also none, also `::` and `/`) and
//! `?` for exactly one; `\*`, `\?` and `\\` stand for the character itself.
//! Nothing else is special: brackets are literal, because parametrized test
//! ids (`test_login[admin-user]`) contain them.

use serde::{Deserialize, Serialize};

use super::{CaseResult, FailedTests, TestCase};

/// Longest pattern taken, in characters (test ids are cut at 300).
pub const MAX_PATTERN_CHARS: usize = 300;

/// What is wrong with a quarantine pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Nothing but spaces.
    #[error("is empty")]
    Empty,
    /// Longer than [`MAX_PATTERN_CHARS`].
    #[error("is {0} characters long; at most {MAX_PATTERN_CHARS} are taken")]
    TooLong(usize),
    /// A control character (a newline, a tab) at a character position.
    #[error("has a control character at position {0}")]
    Control(usize),
    /// Leading or trailing spaces, which no test id has.
    #[error("starts or ends with a space")]
    Spaces,
    /// A backslash that escapes nothing special.
    #[error("has `\\{0}` at position {1}: only `\\*`, `\\?` and `\\\\` escape a character")]
    BadEscape(char, usize),
    /// A backslash at the very end.
    #[error("ends with a lone `\\`")]
    TrailingEscape,
}

/// One piece of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// This character.
    Char(char),
    /// Any one character.
    One,
    /// Any run of characters.
    Any,
}

/// One parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPattern {
    text: String,
    pieces: Vec<Piece>,
}

impl IdPattern {
    /// Parses `text`, saying what is wrong with it.
    pub fn parse(text: &str) -> Result<IdPattern, PatternError> {
        if text.trim().is_empty() {
            return Err(PatternError::Empty);
        }
        let len = text.chars().count();
        if len > MAX_PATTERN_CHARS {
            return Err(PatternError::TooLong(len));
        }
        if text.trim() != text {
            return Err(PatternError::Spaces);
        }
        let mut pieces = Vec::with_capacity(len);
        let mut chars = text.chars().enumerate();
        while let Some((at, c)) = chars.next() {
            if c.is_control() {
                return Err(PatternError::Control(at));
            }
            pieces.push(match c {
                '*' => Piece::Any,
                '?' => Piece::One,
                '\\' => match chars.next() {
                    Some((_, e @ ('*' | '?' | '\\'))) => Piece::Char(e),
                    Some((_, e)) => return Err(PatternError::BadEscape(e, at)),
                    None => return Err(PatternError::TrailingEscape),
                },
                c => Piece::Char(c),
            });
        }
        // `**` means what `*` means.
        pieces.dedup_by(|a, b| *a == Piece::Any && *b == Piece::Any);
        Ok(IdPattern {
            text: text.to_string(),
            pieces,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `id` matches: linear in the id's length times the pattern's
    /// (the classic two-pointer match with one backtrack point).
    pub fn matches(&self, id: &str) -> bool {
        let id: Vec<char> = id.chars().collect();
        let p = &self.pieces;
        let (mut i, mut j) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while i < id.len() {
            match p.get(j) {
                Some(Piece::Any) => {
                    star = Some((j, i));
                    j += 1;
                }
                Some(Piece::One) => {
                    i += 1;
                    j += 1;
                }
                Some(Piece::Char(c)) if *c == id[i] => {
                    i += 1;
                    j += 1;
                }
                _ => match star {
                    Some((sj, si)) => {
                        j = sj + 1;
                        i = si + 1;
                        star = Some((sj, si + 1));
                    }
                    None => return false,
                },
            }
        }
        p[j..].iter().all(|x| *x == Piece::Any)
    }
}

/// The quarantined tests of one category: its own patterns and its layer's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quarantine {
    patterns: Vec<IdPattern>,
}

impl Quarantine {
    /// Parses every pattern; the first bad one is named by its position.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Quarantine, (usize, PatternError)> {
        let patterns = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| IdPattern::parse(p.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<_, _>>()?;
        Ok(Quarantine { patterns })
    }

    /// Whether nothing is quarantined.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether test `id` is quarantined.
    pub fn covers(&self, id: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(id))
    }
}

/// The failing tests of one attempt, sorted by a [`Quarantine`]: those it
/// covers, and how many it does not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineSort {
    /// Failing tests the quarantine covers.
    pub quarantined: FailedTests,
    /// Failing tests it does not cover.
    pub others: u64,
}

impl QuarantineSort {
    /// Sorts `case` of attempt `attempt`, when it failed.
    pub fn record(&mut self, q: &Quarantine, case: &TestCase, attempt: u32) {
        if case.result != CaseResult::Failed {
            return;
        }
        if q.covers(&case.id) {
            self.quarantined.record(case, attempt);
        } else {
            self.others = self.others.saturating_add(1);
        }
    }

    /// Whether the attempt passes by quarantine: at least one failing test
    /// was read, and every one is quarantined. (An attempt that failed with
    /// no failing test read failed for some other reason.)
    pub fn passes(&self) -> bool {
        self.others == 0 && !self.quarantined.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, id: &str) -> bool {
        IdPattern::parse(p).unwrap().matches(id)
    }

    #[test]
    fn exact_ids_stars_and_question_marks() {
        assert!(m("a::b", "a::b"));
        assert!(!m("a::b", "a::bc"));
        assert!(m("tests.api::*", "tests.api::test_login"));
        assert!(m("*::test_login", "tests.api::test_login"));
        assert!(m("*slow*", "x::a_slow_one"));
        assert!(m("*", ""));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("**", "anything"));
        // Brackets are literal (parametrized ids).
        assert!(m("t::test_x[foo-bar]", "t::test_x[foo-bar]"));
        assert!(!m("t::test_x[ab]", "t::test_xa"));
        // Escapes.
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("a\\?b\\\\", "a?b\\"));
        // Unicode is one character each.
        assert!(m("t::é?", "t::éü"));
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        assert_eq!(IdPattern::parse(""), Err(PatternError::Empty));
        assert_eq!(IdPattern::parse("   "), Err(PatternError::Empty));
        assert_eq!(IdPattern::parse(" a"), Err(PatternError::Spaces));
        assert_eq!(IdPattern::parse("a\nb"), Err(PatternError::Control(1)));
        assert_eq!(
            IdPattern::parse("a\\xb"),
            Err(PatternError::BadEscape('x', 1))
        );
        assert_eq!(IdPattern::parse("ab\\"), Err(PatternError::TrailingEscape));
        let long = "a".repeat(MAX_PATTERN_CHARS + 1);
        assert_eq!(
            IdPattern::parse(&long),
            Err(PatternError::TooLong(MAX_PATTERN_CHARS + 1))
        );
        assert_eq!(
            Quarantine::new(&["ok", "", "x"]).unwrap_err(),
            (1, PatternError::Empty)
        );
        assert!(
            PatternError::BadEscape('x', 1)
                .to_string()
                .contains("only `\\*`, `\\?` and `\\\\`")
        );
    }

    fn case(id: &str, result: CaseResult) -> TestCase {
        TestCase {
            id: id.into(),
            result,
            message: String::new(),
            time_secs: 0.0,
        }
    }

    #[test]
    fn an_attempt_passes_only_when_every_failure_is_quarantined() {
        let q = Quarantine::new(&["api::flaky_*"]).unwrap();
        let mut s = QuarantineSort::default();
        s.record(&q, &case("api::ok", CaseResult::Passed), 1);
        assert!(!s.passes(), "nothing failed: not a pass by quarantine");
        s.record(&q, &case("api::flaky_login", CaseResult::Failed), 1);
        s.record(&q, &case("api::flaky_skip", CaseResult::Skipped), 1);
        assert!(s.passes());
        assert_eq!(s.quarantined.total(), 1);
        s.record(&q, &case("api::real_bug", CaseResult::Failed), 1);
        assert!(!s.passes());
        assert_eq!(s.others, 1);
    }

    /// A pattern matched by a plain recursive definition.
    fn reference(p: &[Piece], id: &[char]) -> bool {
        match p.split_first() {
            None => id.is_empty(),
            Some((Piece::Any, rest)) => (0..=id.len()).any(|k| reference(rest, &id[k..])),
            Some((Piece::One, rest)) => !id.is_empty() && reference(rest, &id[1..]),
            Some((Piece::Char(c), rest)) => id.first() == Some(c) && reference(rest, &id[1..]),
        }
    }

    proptest! {
        #[test]
        fn matching_agrees_with_the_definition(p in "[ab*?]{1,8}", id in "[ab]{0,10}") {
            let pat = IdPattern::parse(&p).unwrap();
            let chars: Vec<char> = id.chars().collect();
            prop_assert_eq!(pat.matches(&id), reference(&pat.pieces, &chars));
        }

        #[test]
        fn every_id_matches_itself_escaped(id in "[ -~]{1,40}") {
            prop_assume!(id.trim() == id && !id.trim().is_empty());
            let escaped: String = id.chars().flat_map(|c| match c {
                '*' | '?' | '\\' => vec!['\\', c],
                c => vec![c],
            }).collect();
            let pat = IdPattern::parse(&escaped).unwrap();
            prop_assert!(pat.matches(&id));
        }
    }
}
