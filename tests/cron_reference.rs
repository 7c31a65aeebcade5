//! A schedule means what a CronJob's means: our cron parser and next-tick
//! walk (`testlayer_core::schedule::Cron`) against the original a
//! Kubernetes CronJob runs, github.com/robfig/cron/v3 v3.0.1, called as the
//! apiserver and kube-controller-manager call it (tests/cron/reference,
//! built by tests/cron/build.sh).
//!
//! Thousands of expressions from a seeded generator (fields, lists, ranges,
//! steps, names, `?`, macros, `@every`, and malformed ones), in time zones
//! with daylight saving changes, from start times at random and near those
//! changes, plus hand-picked edge cases, all in one batch through one
//! reference process: the same expressions must be accepted, and from each
//! start the next ten ticks must be the same. Six fields (seconds first)
//! are our extension and not compared.
//!
//! The reference binary comes from TESTLAYER_CRON_REFERENCE, else from
//! `bash tests/cron/build.sh --print-path`; when it is not there the test
//! fails and says to build it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use testlayer_core::schedule::Cron;

/// Ticks compared from each start.
const COUNT: usize = 10;
/// Random cases (expression × zone × start) besides the hand-picked ones.
const RANDOM_CASES: usize = 4_000;

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe", // half an hour forward and back
    "America/Sao_Paulo",   // midnight skipped, until 2019
    "Asia/Kolkata",        // +05:30, no changes
    "America/St_Johns",    // -03:30
    "Pacific/Chatham",     // +12:45 and +13:45
    "America/Santiago",    // midnight changes
    "Europe/London",
];

/// The reference binary, or a failure saying how to build it.
fn reference() -> PathBuf {
    if let Ok(p) = std::env::var("TESTLAYER_CRON_REFERENCE") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "TESTLAYER_CRON_REFERENCE={} is not there: run `bash tests/cron/build.sh` (it needs Go)",
            p.display()
        );
        return p;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/tests/cron/build.sh"))
        .arg("--print-path")
        .output()
        .expect("bash tests/cron/build.sh --print-path");
    assert!(
        out.status.success(),
        "tests/cron/build.sh --print-path failed"
    );
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        p.is_file(),
        "the cron reference is not built ({} is missing): run `bash tests/cron/build.sh` (it needs Go and the Go module proxy or cache)",
        p.display()
    );
    p
}

/// xorshift64*: the same cases every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

#[derive(Clone, Copy)]
enum F {
    Minute,
    Hour,
    Dom,
    Month,
    Dow,
}

impl F {
    fn bounds(self) -> (i64, i64) {
        match self {
            F::Minute => (0, 59),
            F::Hour => (0, 23),
            F::Dom => (1, 31),
            F::Month => (1, 12),
            F::Dow => (0, 6),
        }
    }
    fn names(self) -> &'static [&'static str] {
        match self {
            F::Month => &[
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
            F::Dow => &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            _ => &[],
        }
    }
    /// Values where daylight saving changes and month ends are.
    fn likely(self) -> &'static [i64] {
        match self {
            F::Minute => &[0, 0, 15, 30, 45, 59],
            F::Hour => &[0, 1, 2, 3, 23],
            F::Dom => &[1, 15, 28, 29, 30, 31],
            F::Month => &[2, 3, 10, 11],
            F::Dow => &[0, 1, 6],
        }
    }
}

/// A name in a random case.
fn cased(rng: &mut Rng, name: &str) -> String {
    match rng.below(4) {
        0 => name.to_uppercase(),
        1 => {
            let mut c = name.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
        _ => name.to_string(),
    }
}

fn value(rng: &mut Rng, f: F) -> String {
    let (lo, hi) = f.bounds();
    if rng.percent(1) {
        // Out of range: just past either end, or Sunday as 7.
        return match f {
            F::Dow => "7".to_string(),
            _ => (if rng.percent(50) && lo > 0 {
                lo - 1
            } else {
                hi + 1
            })
            .to_string(),
        };
    }
    let v = if rng.percent(40) {
        *rng.pick(f.likely())
    } else {
        rng.range(lo, hi)
    };
    if !f.names().is_empty() && rng.percent(30) {
        return cased(rng, f.names()[(v - lo) as usize]);
    }
    match rng.below(50) {
        0 => format!("+{v}"),
        1 => format!("0{v}"),
        _ => v.to_string(),
    }
}

fn step(rng: &mut Rng, f: F) -> String {
    let (_, hi) = f.bounds();
    match rng.below(60) {
        0..=2 => "1".to_string(),
        3 => "0".to_string(),
        4 => (hi + 5).to_string(),
        _ => rng.range(2, hi / 2 + 1).to_string(),
    }
}

/// `a-b`, mostly with a before b.
fn range(rng: &mut Rng, f: F) -> String {
    if rng.percent(10) {
        return format!("{}-{}", value(rng, f), value(rng, f));
    }
    let (lo, hi) = f.bounds();
    let a = rng.range(lo, hi);
    let b = rng.range(a, hi);
    let name = |v: i64| match f.names() {
        [] => v.to_string(),
        names => names[(v - lo) as usize].to_string(),
    };
    if rng.percent(20) {
        format!("{}-{}", name(a), name(b))
    } else {
        format!("{a}-{b}")
    }
}

fn item(rng: &mut Rng, f: F) -> String {
    match rng.below(100) {
        0..=19 => "*".to_string(),
        20..=23 => "?".to_string(),
        24..=53 => value(rng, f),
        54..=67 => range(rng, f),
        68..=77 => format!("*/{}", step(rng, f)),
        78..=85 => format!("{}/{}", value(rng, f), step(rng, f)),
        86..=96 => format!("{}/{}", range(rng, f), step(rng, f)),
        97 => format!("*-{}", value(rng, f)),
        _ => rng
            .pick(&[
                "", "1-2-3", "*/2/3", "x", "-5", "1-", "*/", "5/", "?/2", "**",
            ])
            .to_string(),
    }
}

fn field(rng: &mut Rng, f: F) -> String {
    let n = if rng.percent(75) { 1 } else { rng.range(2, 3) };
    let mut items: Vec<String> = (0..n).map(|_| item(rng, f)).collect();
    if rng.percent(2) {
        items.push(String::new()); // a stray comma
    }
    let s = items.join(",");
    if s.is_empty() { "*".to_string() } else { s }
}

fn duration(rng: &mut Rng) -> String {
    let parts = rng.range(1, 3);
    let mut s = String::new();
    if rng.percent(5) {
        s.push(*rng.pick(&['-', '+']));
    }
    for _ in 0..parts {
        let unit = *rng.pick(&["h", "m", "s", "ms", "us", "µs", "ns", "d", ""]);
        let n = match rng.below(6) {
            0 => format!("{}.{}", rng.below(3), rng.below(10)),
            1 => format!(".{}", rng.below(100)),
            _ => rng.range(0, 120).to_string(),
        };
        s += &n;
        s += unit;
    }
    if rng.percent(5) {
        s = rng
            .pick(&[
                "0",
                "",
                "2562047h",
                "2562048h",
                "1h ",
                " 1h",
                "1H",
                "9223372036854775808ns",
            ])
            .to_string();
    }
    s
}

fn expression(rng: &mut Rng) -> String {
    match rng.below(100) {
        0..=79 => [F::Minute, F::Hour, F::Dom, F::Month, F::Dow]
            .map(|f| field(rng, f))
            .join(" "),
        80..=87 => rng
            .pick(&[
                "@yearly",
                "@annually",
                "@monthly",
                "@weekly",
                "@daily",
                "@midnight",
                "@hourly",
                "@Daily",
                "@every",
                "@reboot",
                "@daily ",
                " @daily",
            ])
            .to_string(),
        88..=94 => format!("@every {}", duration(rng)),
        95..=97 => {
            // Four or seven fields.
            let n = if rng.percent(50) { 4 } else { 7 };
            (0..n)
                .map(|_| field(rng, F::Minute))
                .collect::<Vec<_>>()
                .join(" ")
        }
        _ => {
            // Odd white space around five fields.
            let fs = [F::Minute, F::Hour, F::Dom, F::Month, F::Dow].map(|f| field(rng, f));
            format!(
                "  {}\t{}  {} {}\u{a0}{} ",
                fs[0], fs[1], fs[2], fs[3], fs[4]
            )
        }
    }
}

/// A start: at random, or near one of the zone's daylight saving changes.
fn start(rng: &mut Rng, zone: &str) -> Timestamp {
    let tz = TimeZone::get(zone).expect("zone");
    let year = rng.range(2008, 2036);
    let jan1: Timestamp = format!("{year}-01-01T00:00:00Z").parse().expect("date");
    let change = if rng.percent(60) {
        let from = jan1 + jiff::SignedDuration::from_hours(rng.range(0, 364 * 24));
        tz.following(from).next().map(|t| t.timestamp())
    } else {
        None
    };
    let second = match change {
        Some(t) => {
            let s = t.as_second();
            match rng.below(6) {
                0 => s + rng.range(-2, 1),
                1 => s + 60 * rng.range(-180, 180),
                _ => s + rng.range(-3 * 3600, 3 * 3600),
            }
        }
        None => jan1.as_second() + rng.range(0, 366 * 86_400),
    };
    let nanos = if rng.percent(15) { 500_000_000 } else { 0 };
    Timestamp::new(second, nanos).expect("start")
}

struct Case {
    expr: String,
    tz: String,
    from: Timestamp,
}

/// Hand-picked expressions, each in every zone from a few starts.
const PICKED: &[&str] = &[
    "0 2 1 * 1",
    "*/5 * * * 1-5",
    "0 0 * * 7",
    "0 0 * * 0-7",
    "0 0 29 2 *",
    "0 0 30 2 *",
    "0 0 31 * *",
    "30 2 * * *",
    "0 2 * * *",
    "0 3 * * *",
    "0 0 * * *",
    "30 0 * * *",
    "0 * * * *",
    "*/15 * * * *",
    "15,45 1-3 * * *",
    "59 23 31 12 *",
    "0 0 1 JAN,jul *",
    "0 12 * * MON-fri",
    "0 0 * * FR\u{130}",
    "0 0 , * 1",
    "0 0 1 * ,",
    "0 0 , * *",
    "0 0 1-31 * 1",
    "0 0 */1 * 1",
    "0 0 *-3 * 1",
    "0 0 ? * ?",
    "+5 +1 * * *",
    "5/20 * * * *",
    "0 9-17/4 * * *",
    "0,,30 1 * * *",
    "@yearly",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
    "@every 90m",
    "@every 1h30m",
    "@every 1.5h",
    "@every 10ms",
    "@every 0",
    "@every -5m",
    "@every 2562047h",
    "@every 9223372036854775808ns9223372036854775808ns",
    "@every 1d",
    "61 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 * 13 *",
    "*/0 * * * *",
    "* * * *",
    "",
    "TZ=UTC 0 2 * * *",
    "CRON_TZ=Europe/Berlin @daily",
    "TZ=UTC",
];

fn cases() -> Vec<Case> {
    let mut rng = Rng(0x7e57_1a7e_2c0f_f1e5);
    let mut out = Vec::new();
    for &expr in PICKED {
        for zone in ZONES {
            for _ in 0..3 {
                out.push(Case {
                    expr: expr.to_string(),
                    tz: zone.to_string(),
                    from: start(&mut rng, zone),
                });
            }
        }
    }
    // The daylight saving days of 2026 in Berlin, by the minute around them.
    let berlin = "Europe/Berlin";
    for (expr, tz, from) in [
        ("30 2 * * *", berlin, "2026-03-28T23:59:00Z"),
        ("30 2 * * *", berlin, "2026-03-29T00:30:00Z"),
        ("30 2 * * *", berlin, "2026-03-29T01:29:59Z"),
        ("30 2 * * *", berlin, "2026-10-25T00:29:59Z"),
        ("30 2 * * *", berlin, "2026-10-25T00:30:00Z"),
        ("30 2 * * *", berlin, "2026-10-25T01:30:00Z"),
        ("0 2 * * *", berlin, "2026-10-25T00:00:00Z"),
        ("* 2 * * *", berlin, "2026-10-25T00:58:30Z"),
        ("*/10 1-3 * * *", berlin, "2026-03-29T00:55:00Z"),
        // No minute at all: robfig walks five years by the minute to say so.
        (", * * * *", berlin, "2026-03-29T00:00:00Z"),
        // The five years robfig looks ahead: 2100 is no leap year, so from
        // March 2096 the next 29 February is 2104, past the bound, until
        // the start is in 2099 (in the zone).
        ("0 0 29 2 *", "UTC", "2095-03-01T00:00:00Z"),
        ("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z"),
        ("0 0 29 2 *", "UTC", "2098-12-31T23:30:00Z"),
        ("0 0 29 2 *", berlin, "2098-12-31T23:30:00Z"),
        ("0 0 29 2 *", "UTC", "2099-01-01T00:00:00Z"),
        ("0 0 29 2 *", "America/New_York", "2099-01-01T03:00:00Z"),
    ] {
        out.push(Case {
            expr: expr.to_string(),
            tz: tz.to_string(),
            from: from.parse().expect("from"),
        });
    }
    for _ in 0..RANDOM_CASES {
        let expr = expression(&mut rng);
        let zone = rng.pick(ZONES).to_string();
        let from = start(&mut rng, &zone);
        out.push(Case {
            expr,
            tz: zone,
            from,
        });
    }
    out
}

/// Ours: the ticks, or the message.
fn ours(c: &Case) -> Result<Vec<Timestamp>, String> {
    let cron = Cron::parse(&c.expr, Some(&c.tz)).map_err(|e| e.to_string())?;
    let mut t = c.from;
    let mut out = Vec::new();
    while out.len() < COUNT {
        match cron.next_after(t) {
            Some(n) => {
                out.push(n);
                t = n;
            }
            None => break,
        }
    }
    Ok(out)
}

/// The reference's answers, one per case, from one process.
fn theirs(cases: &[Case]) -> Vec<Result<Vec<Timestamp>, String>> {
    let mut child = Command::new(reference())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the cron reference");
    let mut stdin = child.stdin.take().expect("stdin");
    let input: String = cases
        .iter()
        .map(|c| {
            json!({"expr": c.expr, "tz": c.tz, "from": c.from.to_string(), "count": COUNT})
                .to_string()
                + "\n"
        })
        .collect();
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(input.as_bytes())
            .expect("write to the reference");
    });
    let out: Vec<Result<Vec<Timestamp>, String>> =
        BufReader::new(child.stdout.take().expect("stdout"))
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(&line.expect("read")).expect("a JSON line");
                if v["ok"].as_bool() == Some(true) {
                    Ok(v["next"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|t| t.as_str().expect("a time").parse().expect("RFC 3339"))
                                .collect()
                        })
                        .unwrap_or_default())
                } else {
                    Err(v["error"].as_str().unwrap_or("").to_string())
                }
            })
            .collect();
    writer.join().expect("writer");
    assert!(
        child.wait().expect("wait").success(),
        "the reference failed"
    );
    assert_eq!(out.len(), cases.len(), "one answer per case");
    out
}

fn show(r: &Result<Vec<Timestamp>, String>) -> String {
    match r {
        Ok(ticks) if ticks.is_empty() => "accepted, no tick within five years".to_string(),
        Ok(ticks) => ticks
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        Err(e) => format!("refused: {e}"),
    }
}

#[test]
fn a_schedule_means_what_a_cronjob_s_means() {
    let started = Instant::now();
    let cases = cases();
    let reference = theirs(&cases);
    let mut differ = Vec::new();
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    let mut ticks = 0;
    for (c, theirs) in cases.iter().zip(&reference) {
        let ours = ours(c);
        let same = match (&ours, theirs) {
            (Ok(a), Ok(b)) => a == b,
            (Err(e), Err(_)) => {
                assert!(!e.contains('\n'), "a message of more than one line: {e}");
                true
            }
            _ => false,
        };
        *outcomes
            .entry(match theirs {
                Ok(t) if t.is_empty() => "accepted, never ticks",
                Ok(_) => "accepted",
                Err(_) => "refused",
            })
            .or_default() += 1;
        if let Ok(t) = theirs {
            ticks += t.len();
        }
        if !same {
            differ.push(format!(
                "expr {:?} tz {} from {}\n    ours:      {}\n    reference: {}",
                c.expr,
                c.tz,
                c.from,
                show(&ours),
                show(theirs)
            ));
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{} cases ({:?}), {ticks} ticks compared, in {:.1}s",
        cases.len(),
        outcomes,
        elapsed.as_secs_f64()
    );
    assert!(
        differ.is_empty(),
        "{} of {} cases differ from robfig/cron; the first:\n{}",
        differ.len(),
        cases.len(),
        differ
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(cases.len() >= 3_000);
    // Enough of each kind to mean something.
    assert!(
        outcomes.get("accepted").copied().unwrap_or(0) >= 2_000,
        "{outcomes:?}"
    );
    assert!(
        outcomes.get("refused").copied().unwrap_or(0) >= 300,
        "{outcomes:?}"
    );
}
