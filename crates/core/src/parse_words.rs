//! Parser messages in the user's words.
//!
//! serde and the parsers under it describe a wrong value in the terms of the
//! Rust type it was meant for (`invalid type: string "abc", expected f64`,
//! `data did not match any variant of untagged enum Q`, `expected struct
//! RunReport`). Everything that reads a user's file or object passes the
//! parser's message through [`plain`] with the field's path, which says what
//! was expected in words ("a number of seconds", "a whole number", "a
//! quantity like 500m or 2", "one of: sequential, parallel, hybrid,
//! background") and what was found ("the text \"abc\"").
//!
//! The vocabulary rewritten here is serde's own (`serde::de::Unexpected`, the
//! `expecting` texts of its primitive and derived types, and the messages of
//! `serde::de::Error`); text that is not serde's passes through unchanged.

/// Words that name a Rust type or a serde notion and so must never reach a
/// user: what [`plain`] rewrites away, and what the tests look for.
pub const FORBIDDEN_WORDS: &[&str] = &[
    "struct", "enum", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
    "i128", "isize", "f32", "f64", "variant", "untagged", "map", "sequence", "newtype", "tuple",
    "Option",
];

/// The forbidden words (whole words) that `message` contains.
pub fn forbidden_words_in(message: &str) -> Vec<&'static str> {
    let words: Vec<&str> = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    FORBIDDEN_WORDS
        .iter()
        .copied()
        .filter(|w| words.contains(w))
        .collect()
}

/// What is wrong with a JSON document, in the user's words: where (line and
/// column when the text is known, and the field's path) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct JsonProblem {
    /// Line and column (1-based) in the text, when it was read from text.
    pub position: Option<(usize, usize)>,
    /// The field's dotted path; empty for the document as a whole.
    pub path: String,
    /// What is wrong, in words ([`plain`]).
    pub message: String,
}

impl JsonProblem {
    fn describe(&self) -> String {
        let mut out = String::new();
        if let Some((line, column)) = self.position {
            out.push_str(&format!("{line}:{column}: "));
        }
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }

    fn from_serde(e: serde_path_to_error::Error<serde_json::Error>) -> JsonProblem {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner();
        let position = (inner.line() > 0).then(|| (inner.line(), inner.column()));
        let mut message = inner.to_string();
        // serde_json places the position in the text; it is kept apart.
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        let message = plain(&path, &message);
        JsonProblem {
            position,
            path,
            message,
        }
    }
}

/// Reads JSON text as a `T`; what is wrong is said in the user's words
/// with its line, column and field.
pub fn json_from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, JsonProblem> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(JsonProblem::from_serde)?;
    de.end().map_err(|e| JsonProblem {
        position: Some((e.line(), e.column())),
        path: String::new(),
        message: "more text follows the JSON document".into(),
    })?;
    Ok(value)
}

/// Reads a JSON value as a `T`; what is wrong is said in the user's words
/// with its field.
pub fn json_from_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, JsonProblem> {
    serde_path_to_error::deserialize(value).map_err(JsonProblem::from_serde)
}

/// `message`, a parser's description of what is wrong with the value at
/// `path` (dotted, as `serde_path_to_error` writes it, e.g.
/// `layers.fast.categories[0].timeout_seconds` or `spec.retries`), in the
/// user's words. The path itself is not repeated.
pub fn plain(path: &str, message: &str) -> String {
    let message = message.trim();
    let field = last_field(path);
    let mismatch = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some(rest) = mismatch
        && let Some((found, expected)) = split_found_expected(rest)
    {
        return format!(
            "expected {}, found {}",
            expected_words(field, expected),
            found_words(found)
        );
    }
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((n, expected)) = rest.split_once(", expected ")
    {
        return format!(
            "expected {}, found {n} items",
            expected_words(field, expected)
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (value, known) = match rest.split_once(", expected ") {
            Some((v, k)) => (v, Some(k)),
            None => (
                rest.split_once(", there are no").map_or(rest, |p| p.0),
                None,
            ),
        };
        let value = value.trim_matches('`');
        return match (known, field_words(field)) {
            (_, Some(words)) => format!("expected {words}, found {value:?}"),
            (Some(k), None) => format!(
                "unknown value {value:?}; expected {}",
                k.replace('`', "").replacen("one of ", "one of: ", 1)
            ),
            (None, None) => format!("unknown value {value:?}"),
        };
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!("the required field {} is missing", rest.trim());
    }
    if let Some(rest) = message.strip_prefix("duplicate field ") {
        return format!("the field {} is given twice", rest.trim());
    }
    if message.starts_with("data did not match any variant of untagged enum") {
        return match field_words(field) {
            Some(words) => format!("expected {words}"),
            None => "the value has none of the forms this field takes".to_string(),
        };
    }
    // A top-level type mismatch of a JSON document: "expected struct X".
    if let Some(rest) = message.strip_prefix("expected ")
        && type_name_words(rest).is_some()
    {
        return format!("expected {}", expected_words(field, rest));
    }
    message.to_string()
}

/// The last field name of a dotted path (`[i]` indices dropped).
fn last_field(path: &str) -> &str {
    let mut field = "";
    for part in path.split('.') {
        let name = part.split('[').next().unwrap_or("");
        if !name.is_empty() {
            field = name;
        }
    }
    field
}

/// Splits `<found>, expected <expected>`, where `<found>` may be a quoted
/// string holding `, expected `.
fn split_found_expected(rest: &str) -> Option<(&str, &str)> {
    let start = if let Some(s) = rest.strip_prefix("string \"") {
        // serde writes the string as Rust's Debug does: find the closing
        // quote that is not escaped.
        let mut escaped = false;
        let mut end = None;
        for (i, c) in s.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        "string \"".len() + end? + 1
    } else {
        0
    };
    let at = rest[start..].find(", expected ")? + start;
    Some((&rest[..at], &rest[at + ", expected ".len()..]))
}

/// What a field is, in words, where its name says more than its type: the
/// field's name normalised (`timeout_seconds` and `timeoutSeconds` alike).
fn field_words(field: &str) -> Option<&'static str> {
    let key: String = field
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Some(match key.as_str() {
        "cpu" => "a CPU quantity like 500m or 2",
        "memory" => "a memory quantity like 512Mi or 2Gi",
        "executionmode" => "one of: sequential, parallel, hybrid, background",
        "strategy" => "one of: SEQUENTIAL, PARALLEL_UNLIMITED, PARALLEL_LIMITED, HYBRID_SMART",
        "mode" | "llmmode" => "one of: mock, real",
        "concurrencypolicy" => "one of: Allow, Forbid, Replace",
        "timeoutmultiplier" => "a positive number (1.5 makes every timeout half as long again)",
        "uses" => "a list of resource names, or of mappings {name: NAME, units: N}",
        "schedule" => "a cron expression such as \"0 2 * * *\"",
        _ => return None,
    })
}

/// The unit a field's name ends in, if any (`timeout_seconds` → seconds).
fn field_unit(field: &str) -> Option<&'static str> {
    let lower = field.to_ascii_lowercase();
    if lower.ends_with("seconds") {
        Some("seconds")
    } else if lower.ends_with("minutes") {
        Some("minutes")
    } else {
        None
    }
}

/// What was expected, in words: the field's own words when its name says,
/// else serde's `expecting` text translated.
fn expected_words(field: &str, expected: &str) -> String {
    if let Some(words) = field_words(field) {
        return words.to_string();
    }
    let expected = expected.trim();
    let unit = field_unit(field);
    match type_name_words(expected) {
        Some(TypeWords::Whole { unsigned }) => match (unit, unsigned) {
            (Some(u), true) => format!("a whole number of {u}, 0 or more"),
            (Some(u), false) => format!("a whole number of {u}"),
            (None, true) => "a whole number, 0 or more".into(),
            (None, false) => "a whole number".into(),
        },
        Some(TypeWords::Number) => match unit {
            Some(u) => format!("a number of {u}"),
            None => "a number".into(),
        },
        Some(TypeWords::Words(w)) => w.to_string(),
        None => {
            if let Some(list) = expected.strip_prefix("one of ") {
                format!("one of: {}", list.replace('`', ""))
            } else {
                expected.replace('`', "")
            }
        }
    }
}

/// A Rust type's `expecting` text, in words.
enum TypeWords {
    /// An integer type.
    Whole { unsigned: bool },
    /// A floating-point type.
    Number,
    /// Anything else known.
    Words(&'static str),
}

fn type_name_words(expected: &str) -> Option<TypeWords> {
    Some(match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => TypeWords::Whole { unsigned: true },
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => TypeWords::Whole { unsigned: false },
        "f32" | "f64" => TypeWords::Number,
        "a string" | "a borrowed string" | "string" => TypeWords::Words("text"),
        "a character" | "char" => TypeWords::Words("a single character"),
        "a boolean" | "bool" => TypeWords::Words("true or false"),
        "a sequence" => TypeWords::Words("a list"),
        "a map" | "map" | "a mapping" => TypeWords::Words("a mapping of names to values"),
        "option" => TypeWords::Words("a value"),
        "unit" => TypeWords::Words("nothing (null)"),
        e if e.starts_with("struct ") => TypeWords::Words("a mapping of fields"),
        e if e.starts_with("enum ") => TypeWords::Words("one of this field's words"),
        e if e.starts_with("tuple ") || e.starts_with("a tuple") => TypeWords::Words("a list"),
        e if e.starts_with("newtype ") => TypeWords::Words("a value"),
        _ => return None,
    })
}

/// What was found, in words (serde's `Unexpected`).
fn found_words(found: &str) -> String {
    let inner = |prefix: &str| -> Option<String> {
        found
            .strip_prefix(prefix)
            .map(|v| v.trim_matches('`').to_string())
    };
    if let Some(v) = inner("boolean ") {
        return format!("the value {v}");
    }
    if let Some(v) = inner("integer ") {
        return format!("the whole number {v}");
    }
    if let Some(v) = inner("floating point ") {
        return format!("the number {v}");
    }
    if let Some(v) = inner("character ") {
        return format!("the character {v:?}");
    }
    if let Some(v) = found.strip_prefix("string ") {
        return format!("the text {v}");
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" | "unit" => "nothing (null)".into(),
        "Option value" => "a value".into(),
        "newtype struct" => "a value".into(),
        "byte array" => "bytes".into(),
        "enum" | "unit variant" | "newtype variant" | "tuple variant" | "struct variant" => {
            "a tagged value".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serdes_words_become_the_users() {
        let cases = [
            (
                "layers.x.categories[0].timeout_seconds",
                "invalid type: string \"abc\", expected f64",
                "expected a number of seconds, found the text \"abc\"",
            ),
            (
                "resources.db.capacity",
                "invalid type: floating point `1.5`, expected i64",
                "expected a whole number, found the number 1.5",
            ),
            (
                "spec.retries",
                "invalid value: integer `-1`, expected u32",
                "expected a whole number, 0 or more, found the whole number -1",
            ),
            (
                "spec.nodeLostSeconds",
                "invalid type: string \"x\", expected u32",
                "expected a whole number of seconds, 0 or more, found the text \"x\"",
            ),
            (
                "layers.x.resource_limits.cpu",
                "data did not match any variant of untagged enum Q",
                "expected a CPU quantity like 500m or 2",
            ),
            (
                "layers.x.execution_mode",
                "unknown variant `fast`, expected one of `sequential`, `parallel`, `hybrid`, `background`",
                "expected one of: sequential, parallel, hybrid, background, found \"fast\"",
            ),
            (
                "kind",
                "unknown variant `x`, expected one of `A`, `B`",
                "unknown value \"x\"; expected one of: A, B",
            ),
            (
                ".",
                "invalid type: integer `42`, expected struct RunReport",
                "expected a mapping of fields, found the whole number 42",
            ),
            (
                "layers.x.categories",
                "invalid type: map, expected a sequence",
                "expected a list, found a mapping",
            ),
            (
                "layers.x.env",
                "invalid type: sequence, expected a map",
                "expected a mapping of names to values, found a list",
            ),
            (
                "layers.x.fail_fast",
                "invalid type: string \"yes\", expected a boolean",
                "expected true or false, found the text \"yes\"",
            ),
            (
                "layers.x.categories[0]",
                "missing field `name`",
                "the required field `name` is missing",
            ),
            (
                "layers.x.name",
                "invalid type: string \"a, expected b\", expected unit",
                "expected nothing (null), found the text \"a, expected b\"",
            ),
        ];
        for (path, serde, want) in cases {
            let got = plain(path, serde);
            assert_eq!(got, want, "{path}: {serde}");
            assert!(forbidden_words_in(&got).is_empty(), "{got}");
        }
    }

    #[test]
    fn what_is_not_serdes_passes_through() {
        let m = "did not find expected key";
        assert_eq!(plain("a", m), m);
        assert_eq!(
            plain("a", "unknown field `x`, expected one of `a`, `b`"),
            "unknown field `x`, expected one of `a`, `b`"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Report {
        layer: String,
        attempts: Vec<u32>,
    }

    #[test]
    fn json_problems_say_where_and_what() {
        let e = json_from_str::<Report>("42").unwrap_err();
        assert_eq!(
            e.to_string(),
            "1:2: expected a mapping of fields, found the whole number 42"
        );
        let e = json_from_str::<Report>("{\"layer\": \"x\",\n \"attempts\": [1, -2]}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "2:19: attempts[1]: expected a whole number, 0 or more, found the whole number -2"
        );
        let e = json_from_str::<Report>("{\"layer\": \"x\"}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "1:14: the required field `attempts` is missing"
        );
        let e =
            json_from_value::<Report>(serde_json::json!({"layer": 1, "attempts": []})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "layer: expected text, found the whole number 1"
        );
    }

    #[test]
    fn forbidden_words_are_whole_words() {
        assert_eq!(
            forbidden_words_in("a mapping of fields"),
            Vec::<&str>::new()
        );
        assert_eq!(forbidden_words_in("expected f64"), vec!["f64"]);
        assert_eq!(
            forbidden_words_in("untagged enum Q"),
            vec!["enum", "untagged"]
        );
    }
}
