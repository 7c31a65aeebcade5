//! A cron expression to bit sets, as robfig/cron v3.0.1's `ParseStandard`
//! (`parser.go`) reads it, with the same inputs accepted and refused, and
//! errors in the user's words.
//!
//! What robfig accepts, and so this does:
//! - exactly five fields split on white space (minute, hour, day of month,
//!   month, day of week; six with seconds first is our extension);
//! - a field is a comma-separated list (empty items are dropped, so `,` is
//!   an empty set that never matches); each item is `*` or `?` (every
//!   value), `N`, `N-M`, and any of those with `/step`; `N/step` means
//!   `N-max/step`; a number may have a leading `+`;
//! - after `*` or `?`, anything following a `-` is ignored (`*-5` is `*`);
//! - month names `jan`..`dec` and day names `sun`..`sat`, in any case, in
//!   place of a number (not as a step);
//! - day of week 0-6 with 0 Sunday (7 is refused);
//! - the macros `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//!   `@midnight`, `@hourly`, exactly so written, and `@every DURATION` with
//!   a duration as Go's `time.ParseDuration` reads it.
//!
//! A field written `*` or `?` (with no step, or step 1) keeps the star bit:
//! it decides whether day of month and day of week are ANDed (either is a
//! star) or ORed (both are restricted).

/// Bit 63 of a field's set: the field was written `*` or `?` with step 1.
pub(super) const STAR: u64 = 1 << 63;

/// Nanoseconds in a second.
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The bit sets of a cron expression: bit `v` set when value `v` matches,
/// plus [`STAR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fields {
    pub second: u64,
    pub minute: u64,
    pub hour: u64,
    pub dom: u64,
    pub month: u64,
    pub dow: u64,
}

impl Fields {
    /// Whether no moment matches (a field is an empty set, or so are the
    /// days): robfig's walk then gives up after five years; this says so at
    /// once.
    pub(super) fn never(&self) -> bool {
        let empty = |bits: u64| bits & !STAR == 0;
        let days = if (self.dom | self.dow) & STAR != 0 {
            !empty(self.dom) && !empty(self.dow)
        } else {
            !empty(self.dom) || !empty(self.dow)
        };
        empty(self.second) || empty(self.minute) || empty(self.hour) || empty(self.month) || !days
    }
}

/// A parsed schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spec {
    /// Fields (or a macro that stands for fields).
    Fields(Fields),
    /// `@every`: a tick this many seconds (at least 1) after the whole
    /// second at or before the moment asked about.
    Every {
        /// The delay, in whole seconds.
        seconds: i64,
    },
}

/// One of the six fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    fn min(self) -> u64 {
        match self {
            Field::DayOfMonth | Field::Month => 1,
            _ => 0,
        }
    }

    fn max(self) -> u64 {
        match self {
            Field::Second | Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::DayOfWeek => 6,
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Month => &[
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
            Field::DayOfWeek => &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            _ => &[],
        }
    }

    /// The value of name `text` (any case), if it is one.
    fn named(self, text: &str) -> Option<u64> {
        let lower = go_lower(text)?;
        let at = self.names().iter().position(|n| *n == lower)?;
        Some(at as u64 + self.min())
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day of month",
            Field::Month => "month",
            Field::DayOfWeek => "day of week",
        })
    }
}

/// What a field may hold, for messages: `(0-59)`, or with names.
fn allowed(field: Field) -> String {
    match field {
        Field::Month => "a number 1-12 or a name jan-dec".to_string(),
        Field::DayOfWeek => "a number 0-6 (0 is Sunday) or a name sun-sat".to_string(),
        f => format!("a number {}-{}", f.min(), f.max()),
    }
}

/// Why a cron expression does not parse: the text after
/// `cron expression "...": `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum CronError {
    /// Nothing written.
    #[error(
        "is empty: write five fields (minute hour day-of-month month day-of-week) or a macro such as @daily"
    )]
    Empty,
    /// A `TZ=` or `CRON_TZ=` prefix.
    #[error("sets a time zone with {0}; give the time zone as spec.timeZone instead")]
    TimeZone(String),
    /// Not five (or six) fields.
    #[error(
        "has {count} field{s}: write five (minute hour day-of-month month day-of-week), or six with seconds first, or a macro such as @daily",
        s = if *count == 1 { "" } else { "s" }
    )]
    FieldCount {
        /// How many there are.
        count: usize,
    },
    /// An `@` word that is not a macro.
    #[error(
        "{0} is not a macro: the macros are @yearly (or @annually), @monthly, @weekly, @daily (or @midnight), @hourly and @every with a duration such as 90m"
    )]
    Macro(String),
    /// `@every` with a bad duration.
    #[error(
        "@every takes a duration such as 90m, 1h30m or 45s (units h, m, s, ms, us, ns), and {text:?} {why}"
    )]
    Duration {
        /// The duration as written.
        text: String,
        /// Why it is not one.
        why: String,
    },
    /// Neither a number nor a name.
    #[error("{field} {text:?} is not {}", allowed(*field))]
    NotANumber {
        /// Which field.
        field: Field,
        /// As written.
        text: String,
    },
    /// A range with nothing on one side of its `-`.
    #[error("{field} {item:?} is missing a number {side} its \"-\"")]
    MissingNumber {
        /// Which field.
        field: Field,
        /// The list item.
        item: String,
        /// `before` or `after`.
        side: &'static str,
    },
    /// More than one `-`.
    #[error("{field} {item:?} has more than one \"-\"")]
    Hyphens {
        /// Which field.
        field: Field,
        /// The list item.
        item: String,
    },
    /// More than one `/`.
    #[error("{field} {item:?} has more than one \"/\"")]
    Slashes {
        /// Which field.
        field: Field,
        /// The list item.
        item: String,
    },
    /// A step that is not a number.
    #[error("{field} step {step:?} in {item:?} is not a number")]
    Step {
        /// Which field.
        field: Field,
        /// The list item.
        item: String,
        /// The step as written.
        step: String,
    },
    /// A step of 0.
    #[error("{field} step in {item:?} is 0; a step is 1 or more")]
    StepZero {
        /// Which field.
        field: Field,
        /// The list item.
        item: String,
    },
    /// A number outside the field's range.
    #[error(
        "{field} {value} is out of range {}-{}{}",
        field.min(),
        field.max(),
        if *field == Field::DayOfWeek && value == "7" { " (Sunday is 0)" } else { "" }
    )]
    OutOfRange {
        /// Which field.
        field: Field,
        /// The number, in digits.
        value: String,
    },
    /// A range whose start is after its end.
    #[error("{field} range {item:?} runs backwards: {start} is after {end}")]
    Backwards {
        /// Which field.
        field: Field,
        /// The list item.
        item: String,
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
    },
}

/// Parses `expr`: five fields, six with seconds first, or a macro.
pub(super) fn parse(expr: &str) -> Result<Spec, CronError> {
    if expr.trim().is_empty() {
        return Err(CronError::Empty);
    }
    let start = expr.trim_start();
    for prefix in ["TZ=", "CRON_TZ="] {
        if start.starts_with(prefix) {
            let word = start.split_whitespace().next().unwrap_or(prefix);
            return Err(CronError::TimeZone(word.to_string()));
        }
    }
    if expr.starts_with('@') {
        return descriptor(expr);
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let (second, rest) = match fields.len() {
        5 => ("0", &fields[..]),
        6 => (fields[0], &fields[1..]),
        count => return Err(CronError::FieldCount { count }),
    };
    Ok(Spec::Fields(Fields {
        second: field(second, Field::Second)?,
        minute: field(rest[0], Field::Minute)?,
        hour: field(rest[1], Field::Hour)?,
        dom: field(rest[2], Field::DayOfMonth)?,
        month: field(rest[3], Field::Month)?,
        dow: field(rest[4], Field::DayOfWeek)?,
    }))
}

/// Every value of `field`, and the star bit.
fn all(field: Field) -> u64 {
    bits(field.min(), field.max(), 1) | STAR
}

/// Value `v` alone.
fn one(v: u64) -> u64 {
    1 << v
}

/// A macro (robfig's `parseDescriptor`): exactly as written, no spaces
/// around it.
fn descriptor(expr: &str) -> Result<Spec, CronError> {
    use Field::*;
    let fields = |minute, hour, dom, month, dow| {
        Ok(Spec::Fields(Fields {
            second: one(0),
            minute,
            hour,
            dom,
            month,
            dow,
        }))
    };
    match expr {
        "@yearly" | "@annually" => fields(one(0), one(0), one(1), one(1), all(DayOfWeek)),
        "@monthly" => fields(one(0), one(0), one(1), all(Month), all(DayOfWeek)),
        "@weekly" => fields(one(0), one(0), all(DayOfMonth), all(Month), one(0)),
        "@daily" | "@midnight" => {
            fields(one(0), one(0), all(DayOfMonth), all(Month), all(DayOfWeek))
        }
        "@hourly" => fields(
            one(0),
            all(Hour),
            all(DayOfMonth),
            all(Month),
            all(DayOfWeek),
        ),
        _ => match expr.strip_prefix("@every ") {
            Some(text) => {
                let nanos = go_duration(text).map_err(|why| CronError::Duration {
                    text: text.to_string(),
                    why,
                })?;
                // robfig's Every: under a second is a second; the rest is
                // cut to whole seconds.
                let seconds = if nanos < NANOS_PER_SECOND as i64 {
                    1
                } else {
                    nanos / NANOS_PER_SECOND as i64
                };
                Ok(Spec::Every { seconds })
            }
            None => Err(CronError::Macro(
                expr.split_whitespace().next().unwrap_or(expr).to_string(),
            )),
        },
    }
}

/// One field (robfig's `getField`): the union of its comma-separated items,
/// empty items dropped.
fn field(text: &str, field: Field) -> Result<u64, CronError> {
    let mut out = 0;
    for item in text.split(',').filter(|i| !i.is_empty()) {
        out |= range(item, field)?;
    }
    Ok(out)
}

/// A number as Go's `strconv.Atoi` reads it (an optional `+`, ASCII digits;
/// a `-` never reaches here, it splits a range): `Ok(None)` when it is
/// digits too large for Go's int, which is an error there too.
fn number(text: &str) -> Result<Option<u64>, ()> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let mut v: u64 = 0;
    for b in digits.bytes() {
        match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
        {
            Some(n) if n <= i64::MAX as u64 => v = n,
            _ => return Ok(None),
        }
    }
    Ok(Some(v))
}

/// A value of `field`: a name or a number; a number too large to read is
/// out of range.
fn value(text: &str, item: &str, field: Field, side: &'static str) -> Result<u64, CronError> {
    if let Some(v) = field.named(text) {
        return Ok(v);
    }
    if text.is_empty() {
        return Err(CronError::MissingNumber {
            field,
            item: item.to_string(),
            side,
        });
    }
    match number(text) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(CronError::OutOfRange {
            field,
            value: text.trim_start_matches('+').to_string(),
        }),
        Err(()) => Err(CronError::NotANumber {
            field,
            text: text.to_string(),
        }),
    }
}

/// One list item (robfig's `getRange`).
fn range(item: &str, field: Field) -> Result<u64, CronError> {
    let range_and_step: Vec<&str> = item.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (field.min(), field.max(), STAR)
    } else {
        let start = value(low_and_high[0], item, field, "before")?;
        let end = match low_and_high.len() {
            1 => start,
            2 => value(low_and_high[1], item, field, "after")?,
            _ => {
                return Err(CronError::Hyphens {
                    field,
                    item: item.to_string(),
                });
            }
        };
        (start, end, 0)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let text = range_and_step[1];
            let step = match number(text) {
                Ok(Some(v)) => v,
                // Too large to read is an error in Go too.
                Ok(None) | Err(()) => {
                    return Err(CronError::Step {
                        field,
                        item: item.to_string(),
                        step: text.to_string(),
                    });
                }
            };
            // `N/step` is `N-max/step`.
            if single {
                end = field.max();
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => {
            return Err(CronError::Slashes {
                field,
                item: item.to_string(),
            });
        }
    };
    for v in [start, end] {
        if v < field.min() || v > field.max() {
            return Err(CronError::OutOfRange {
                field,
                value: v.to_string(),
            });
        }
    }
    if start > end {
        return Err(CronError::Backwards {
            field,
            item: item.to_string(),
            start,
            end,
        });
    }
    if step == 0 {
        return Err(CronError::StepZero {
            field,
            item: item.to_string(),
        });
    }
    Ok(bits(start, end, step) | extra)
}

/// Values `min..=max` by `step` (robfig's `getBits`); `max` is at most 59.
fn bits(min: u64, max: u64, step: u64) -> u64 {
    let mut out = 0;
    let mut v = min;
    while v <= max {
        out |= 1 << v;
        v += step;
    }
    out
}

/// `text` in lower case as Go's `strings.ToLower` has it, where that is
/// ASCII (the names are): Go lowers `İ` to `i` and the Kelvin sign to `k`.
fn go_lower(text: &str) -> Option<String> {
    text.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' => Some(c.to_ascii_lowercase()),
            '\u{130}' => Some('i'),
            '\u{212A}' => Some('k'),
            c if c.is_ascii() => Some(c),
            _ => None,
        })
        .collect()
}

/// Nanoseconds of a duration as Go's `time.ParseDuration` reads it
/// (`[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units ns us µs μs ms s m h), with
/// its overflow behaviour.
fn go_duration(orig: &str) -> Result<i64, String> {
    let malformed = || "is not a duration".to_string();
    let too_long = || "is too long".to_string();
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(malformed());
    }
    const LIMIT: u64 = 1 << 63;
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(malformed());
        }
        // Leading integer.
        let before = s.len();
        let mut v: u64 = 0;
        let mut i = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            if v > LIMIT / 10 {
                return Err(too_long());
            }
            v = v * 10 + u64::from(s[i] - b'0');
            if v > LIMIT {
                return Err(too_long());
            }
            i += 1;
        }
        s = &s[i..];
        let pre = before != s.len();
        // Fraction.
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let mut i = 0;
            let mut overflow = false;
            while i < s.len() && s[i].is_ascii_digit() {
                if !overflow {
                    if f > (LIMIT - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + u64::from(s[i] - b'0');
                        if y > LIMIT {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                i += 1;
            }
            post = i > 0;
            s = &s[i..];
        }
        if !pre && !post {
            return Err(malformed());
        }
        // Unit.
        let mut i = 0;
        while i < s.len() && !(s[i] == b'.' || s[i].is_ascii_digit()) {
            i += 1;
        }
        if i == 0 {
            return Err("has a number without a unit".to_string());
        }
        let unit: u64 = match &s[..i] {
            b"ns" => 1,
            b"us" => 1_000,
            u if u == "µs".as_bytes() || u == "μs".as_bytes() => 1_000,
            b"ms" => 1_000_000,
            b"s" => NANOS_PER_SECOND,
            b"m" => 60 * NANOS_PER_SECOND,
            b"h" => 3_600 * NANOS_PER_SECOND,
            u => {
                return Err(format!(
                    "has the unknown unit {:?}",
                    String::from_utf8_lossy(u)
                ));
            }
        };
        s = &s[i..];
        if v > LIMIT / unit {
            return Err(too_long());
        }
        v *= unit;
        if f > 0 {
            v = v.wrapping_add((f as f64 * (unit as f64 / scale)) as u64);
            if v > LIMIT {
                return Err(too_long());
            }
        }
        // Go's sum is a uint64 that may wrap at 2^64 (2^63 + 2^63).
        d = d.wrapping_add(v);
        if d > LIMIT {
            return Err(too_long());
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > LIMIT - 1 {
        return Err(too_long());
    }
    Ok(d as i64)
}
