use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The first `n` ticks after `from`.
fn ticks(expr: &str, tz: Option<&str>, from: &str, n: usize) -> Vec<Timestamp> {
    let c = Cron::parse(expr, tz).unwrap();
    let mut out = Vec::new();
    let mut t = at(from);
    while out.len() < n {
        let Some(next) = c.next_after(t) else { break };
        out.push(next);
        t = next;
    }
    out
}

fn all(list: &[&str]) -> Vec<Timestamp> {
    list.iter().map(|s| at(s)).collect()
}

/// The message of a refused expression.
fn refused(expr: &str) -> String {
    Cron::parse(expr, None).unwrap_err().to_string()
}

#[test]
fn five_fields_mean_what_a_cronjob_means_in_the_time_zone_given() {
    // Weekdays at 09:00 in Berlin: after Saturday comes Monday.
    let c = Cron::parse("0 9 * * 1-5", Some("Europe/Berlin")).unwrap();
    assert_eq!(
        c.next_after(at("2026-12-05T10:00:00Z")),
        Some(at("2026-12-07T08:00:00Z"))
    );
    // Sunday is 0, or its name in any case.
    for sunday in ["0 12 * * 0", "0 12 * * SUN", "0 12 * * sun", "0 12 * * Sun"] {
        let c = Cron::parse(sunday, None).unwrap();
        assert_eq!(
            c.next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-06T12:00:00Z")),
            "{sunday}"
        );
    }
    // Friday through Sunday.
    assert_eq!(
        ticks("0 0 * * 5-6,0", None, "2026-12-03T12:00:00Z", 4),
        all(&[
            "2026-12-04T00:00:00Z",
            "2026-12-05T00:00:00Z",
            "2026-12-06T00:00:00Z",
            "2026-12-11T00:00:00Z",
        ])
    );
}

#[test]
fn both_days_restricted_is_either_day() {
    // Every 1st and every Monday, as a CronJob (and Vixie cron) runs it.
    assert_eq!(
        ticks("0 2 1 * 1", None, "2026-03-28T00:00:00Z", 4),
        all(&[
            "2026-03-30T02:00:00Z", // Monday
            "2026-04-01T02:00:00Z", // the 1st, a Wednesday
            "2026-04-06T02:00:00Z",
            "2026-04-13T02:00:00Z",
        ])
    );
    // A range or list is restricted too, even when it covers every day.
    assert_eq!(
        ticks("0 0 1-31 * 1", None, "2026-03-28T12:00:00Z", 2),
        all(&["2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"])
    );
    // A step over 1 is restricted: */2 is the odd days, OR Mondays.
    assert_eq!(
        ticks("0 0 */2 * 1", None, "2026-03-29T12:00:00Z", 3),
        all(&[
            "2026-03-30T00:00:00Z",
            "2026-03-31T00:00:00Z",
            "2026-04-01T00:00:00Z"
        ])
    );
}

#[test]
fn a_star_on_either_day_is_both_days() {
    // `*` or `?` (also `*/1`) on one side: the other side alone decides.
    for expr in ["0 2 * * 1", "0 2 ? * 1", "0 2 */1 * 1", "0 2 *-5 * 1"] {
        assert_eq!(
            ticks(expr, None, "2026-03-28T00:00:00Z", 2),
            all(&["2026-03-30T02:00:00Z", "2026-04-06T02:00:00Z"]),
            "{expr}"
        );
    }
    for expr in ["0 2 1 * *", "0 2 1 * ?", "0 2 1 * */1"] {
        assert_eq!(
            ticks(expr, None, "2026-03-28T00:00:00Z", 2),
            all(&["2026-04-01T02:00:00Z", "2026-05-01T02:00:00Z"]),
            "{expr}"
        );
    }
}

#[test]
fn names_steps_ranges_and_lists() {
    // Month names in any case, ranges of names.
    assert_eq!(
        ticks("0 0 1 JAN,jul *", None, "2026-03-01T00:00:00Z", 2),
        all(&["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"])
    );
    assert_eq!(
        ticks("0 12 * * MON-fri", None, "2026-12-04T13:00:00Z", 2),
        all(&["2026-12-07T12:00:00Z", "2026-12-08T12:00:00Z"])
    );
    // Steps: */15, N/step is N-max/step, a range with a step.
    assert_eq!(
        ticks("*/15 0 * * *", None, "2026-01-01T00:00:00Z", 4),
        all(&[
            "2026-01-01T00:15:00Z",
            "2026-01-01T00:30:00Z",
            "2026-01-01T00:45:00Z",
            "2026-01-02T00:00:00Z",
        ])
    );
    assert_eq!(
        ticks("5/20 0 * * *", None, "2026-01-01T00:00:00Z", 4),
        all(&[
            "2026-01-01T00:05:00Z",
            "2026-01-01T00:25:00Z",
            "2026-01-01T00:45:00Z",
            "2026-01-02T00:05:00Z",
        ])
    );
    assert_eq!(
        ticks("0 9-17/4 * * *", None, "2026-01-01T00:00:00Z", 4),
        all(&[
            "2026-01-01T09:00:00Z",
            "2026-01-01T13:00:00Z",
            "2026-01-01T17:00:00Z",
            "2026-01-02T09:00:00Z",
        ])
    );
    // Lists, empty items dropped, a leading + read as Go reads it.
    assert_eq!(
        ticks("0,,30 +1 * * *", None, "2026-01-01T00:00:00Z", 3),
        all(&[
            "2026-01-01T01:00:00Z",
            "2026-01-01T01:30:00Z",
            "2026-01-02T01:00:00Z",
        ])
    );
}

#[test]
fn six_fields_have_seconds_first() {
    assert_eq!(
        ticks("*/5 * * * * *", None, "2026-12-01T10:00:01Z", 2),
        all(&["2026-12-01T10:00:05Z", "2026-12-01T10:00:10Z"])
    );
    assert_eq!(
        ticks("30 0 12 * * MON", None, "2026-12-01T00:00:00Z", 2),
        all(&["2026-12-07T12:00:30Z", "2026-12-14T12:00:30Z"])
    );
    // A fraction of a second counts from the whole second.
    assert_eq!(
        ticks("* * * * * *", None, "2026-12-01T10:00:00.7Z", 1),
        all(&["2026-12-01T10:00:01Z"])
    );
}

#[test]
fn macros() {
    let from = "2026-03-18T10:30:00Z"; // a Wednesday
    for (expr, first) in [
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@annually", "2027-01-01T00:00:00Z"),
        ("@monthly", "2026-04-01T00:00:00Z"),
        ("@weekly", "2026-03-22T00:00:00Z"),
        ("@daily", "2026-03-19T00:00:00Z"),
        ("@midnight", "2026-03-19T00:00:00Z"),
        ("@hourly", "2026-03-18T11:00:00Z"),
    ] {
        assert_eq!(ticks(expr, None, from, 1), all(&[first]), "{expr}");
    }
    // @every counts from the whole second before the moment asked about.
    assert_eq!(
        ticks(
            "@every 1h30m",
            Some("Europe/Berlin"),
            "2026-03-18T10:30:00.5Z",
            2
        ),
        all(&["2026-03-18T12:00:00Z", "2026-03-18T13:30:00Z"])
    );
    // Under a second is a second; fractions of a second are cut.
    assert_eq!(
        ticks("@every 10ms", None, "2026-03-18T10:30:00Z", 1),
        all(&["2026-03-18T10:30:01Z"])
    );
    assert_eq!(
        ticks("@every 2.9s", None, "2026-03-18T10:30:00Z", 1),
        all(&["2026-03-18T10:30:02Z"])
    );
    // Macros are written exactly.
    for bad in ["@Daily", "@daily ", "@every", "@every 1d", "@every -"] {
        assert!(Cron::parse(bad, None).is_err(), "{bad}");
    }
}

#[test]
fn every_counts_from_the_tick_before_not_from_now() {
    let c = Cron::parse("@every 90m", None).unwrap();
    let since = at("2026-03-18T10:00:00Z");
    assert_eq!(
        c.next_from(since, at("2026-03-18T14:00:00Z")),
        Some(at("2026-03-18T14:30:00Z"))
    );
    assert_eq!(
        c.latest_due(since, at("2026-03-18T14:00:00Z")),
        (Some(at("2026-03-18T13:00:00Z")), 2)
    );
    assert_eq!(c.latest_due(since, at("2026-03-18T11:29:59Z")), (None, 0));
    // Fields do not care where the counting starts.
    let c = Cron::parse("0 * * * *", None).unwrap();
    assert_eq!(
        c.next_from(since, at("2026-03-18T14:10:00Z")),
        Some(at("2026-03-18T15:00:00Z"))
    );
}

#[test]
fn the_hour_skipped_in_spring_skips_its_tick_and_the_repeated_hour_runs_it_twice() {
    let berlin = Some("Europe/Berlin");
    // 02:30 does not exist on 2026-03-29: no tick that day.
    assert_eq!(
        ticks("30 2 * * *", berlin, "2026-03-28T12:00:00Z", 2),
        all(&["2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"])
    );
    // 02:30 is there twice on 2026-10-25: a tick in each.
    assert_eq!(
        ticks("30 2 * * *", berlin, "2026-10-24T12:00:00Z", 3),
        all(&[
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-26T01:30:00Z"
        ])
    );
    // Hourly through both changes: one hour fewer, one more.
    assert_eq!(
        ticks("0 * * * *", berlin, "2026-03-28T23:30:00Z", 3),
        all(&[
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z"
        ])
    );
    assert_eq!(
        ticks("0 * * * *", berlin, "2026-10-24T23:30:00Z", 4),
        all(&[
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T03:00:00Z"
        ])
    );
    // A change not on the hour: Lord Howe goes from 02:00 to 02:30 on
    // 2026-10-04; the minute walk from 01:50 crosses it without looking at
    // the hour again and lands at 02:45, as robfig's does.
    assert_eq!(
        ticks(
            "45 1 * * *",
            Some("Australia/Lord_Howe"),
            "2026-10-03T15:20:00Z",
            2
        ),
        all(&["2026-10-03T15:45:00Z", "2026-10-04T14:45:00Z"])
    );
    // Outside the changed hour, once a day.
    assert_eq!(
        ticks("30 1 * * *", berlin, "2026-03-28T12:00:00Z", 2),
        all(&["2026-03-29T00:30:00Z", "2026-03-29T23:30:00Z"])
    );
}

#[test]
fn a_schedule_that_never_ticks_is_none_within_bounded_work() {
    let started = std::time::Instant::now();
    for expr in [
        "0 0 30 2 *",
        "0 0 31 4,6,9,11 *",
        ", * * * *",
        "0 0 , * *",
        "0 0 , * ,",
        ", * * * * *",
    ] {
        let c = Cron::parse(expr, Some("Europe/Berlin")).unwrap();
        assert_eq!(c.next_after(at("2026-01-01T00:00:00Z")), None, "{expr}");
        assert_eq!(
            c.latest_due(at("2020-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z")),
            (None, 0)
        );
    }
    // An empty day of month with a restricted day of week is that day of
    // week (either matches), and the other way round.
    for expr in ["0 0 , * 1", "0 0 1 * ,"] {
        let c = Cron::parse(expr, None).unwrap();
        assert!(c.next_after(at("2026-01-01T00:00:00Z")).is_some(), "{expr}");
    }
    // More than five years to the next tick is none, as robfig has it:
    // 2100 is no leap year.
    let c = Cron::parse("0 0 29 2 *", None).unwrap();
    assert_eq!(
        c.next_after(at("2095-03-01T00:00:00Z")),
        Some(at("2096-02-29T00:00:00Z"))
    );
    assert_eq!(c.next_after(at("2096-03-01T00:00:00Z")), None);
    // Near the end of the times there are: none, no panic.
    let c = Cron::parse("0 0 1 1 *", None).unwrap();
    assert_eq!(c.next_after(Timestamp::MAX), None);
    let c = Cron::parse("@every 2562047h", None).unwrap();
    assert_eq!(c.next_after(Timestamp::MAX), None);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_tick_robfig_steps_back_to_is_stepped_past() {
    // America/St_Johns went back from 00:01 to 23:01 on 2010-11-07 (02:31
    // UTC): robfig's walk for `45 0 * * *` lands on 23:45 (03:15 UTC), and
    // from there and for a quarter of an hour after, on it again. So does
    // next_after; the scheduler's stepping goes past it.
    let c = Cron::parse("45 0 * * *", Some("America/St_Johns")).unwrap();
    let stuck = at("2010-11-07T03:15:00Z");
    assert_eq!(c.next_after(at("2010-11-06T12:00:00Z")), Some(stuck));
    assert_eq!(c.next_after(stuck), Some(stuck));
    assert_eq!(c.next_after(at("2010-11-07T03:20:00Z")), Some(stuck));
    let after = Some(at("2010-11-07T04:15:00Z"));
    assert_eq!(c.next_strictly_after(stuck), after);
    assert_eq!(c.next_from(stuck, at("2010-11-07T03:20:00Z")), after);
    assert_eq!(
        c.latest_due(at("2010-11-06T12:00:00Z"), at("2010-11-09T00:00:00Z")),
        (Some(at("2010-11-08T04:15:00Z")), 3)
    );
}

#[test]
fn bad_expressions_say_which_field_and_what_is_wrong_in_one_line() {
    let cases = [
        (
            "61 * * * *",
            "cron expression \"61 * * * *\": minute 61 is out of range 0-59",
        ),
        (
            "* 24 * * *",
            "cron expression \"* 24 * * *\": hour 24 is out of range 0-23",
        ),
        (
            "0 0 0 * *",
            "cron expression \"0 0 0 * *\": day of month 0 is out of range 1-31",
        ),
        (
            "0 0 * 13 *",
            "cron expression \"0 0 * 13 *\": month 13 is out of range 1-12",
        ),
        (
            "0 0 * * 7",
            "cron expression \"0 0 * * 7\": day of week 7 is out of range 0-6 (Sunday is 0)",
        ),
        (
            "0 0 * * 5-7",
            "cron expression \"0 0 * * 5-7\": day of week 7 is out of range 0-6 (Sunday is 0)",
        ),
        (
            "* * *",
            "cron expression \"* * *\": has 3 fields: write five (minute hour day-of-month month day-of-week), or six with seconds first, or a macro such as @daily",
        ),
        (
            "",
            "cron expression \"\": is empty: write five fields (minute hour day-of-month month day-of-week) or a macro such as @daily",
        ),
        (
            "0 0 * * fry",
            "cron expression \"0 0 * * fry\": day of week \"fry\" is not a number 0-6 (0 is Sunday) or a name sun-sat",
        ),
        (
            "0 0 * foo *",
            "cron expression \"0 0 * foo *\": month \"foo\" is not a number 1-12 or a name jan-dec",
        ),
        (
            "x * * * *",
            "cron expression \"x * * * *\": minute \"x\" is not a number 0-59",
        ),
        (
            "0 5-3 * * *",
            "cron expression \"0 5-3 * * *\": hour range \"5-3\" runs backwards: 5 is after 3",
        ),
        (
            "*/0 * * * *",
            "cron expression \"*/0 * * * *\": minute step in \"*/0\" is 0; a step is 1 or more",
        ),
        (
            "*/x * * * *",
            "cron expression \"*/x * * * *\": minute step \"x\" in \"*/x\" is not a number",
        ),
        (
            "1-2-3 * * * *",
            "cron expression \"1-2-3 * * * *\": minute \"1-2-3\" has more than one \"-\"",
        ),
        (
            "*/2/3 * * * *",
            "cron expression \"*/2/3 * * * *\": minute \"*/2/3\" has more than one \"/\"",
        ),
        (
            "-5 * * * *",
            "cron expression \"-5 * * * *\": minute \"-5\" is missing a number before its \"-\"",
        ),
        (
            "99999999999999999999 * * * *",
            "cron expression \"99999999999999999999 * * * *\": minute 99999999999999999999 is out of range 0-59",
        ),
        (
            "@dialy",
            "cron expression \"@dialy\": @dialy is not a macro: the macros are @yearly (or @annually), @monthly, @weekly, @daily (or @midnight), @hourly and @every with a duration such as 90m",
        ),
        (
            "@every 2d",
            "cron expression \"@every 2d\": @every takes a duration such as 90m, 1h30m or 45s (units h, m, s, ms, us, ns), and \"2d\" has the unknown unit \"d\"",
        ),
        (
            "TZ=Europe/Berlin 0 2 * * *",
            "cron expression \"TZ=Europe/Berlin 0 2 * * *\": sets a time zone with TZ=Europe/Berlin; give the time zone as spec.timeZone instead",
        ),
        (
            "CRON_TZ=UTC @daily",
            "cron expression \"CRON_TZ=UTC @daily\": sets a time zone with CRON_TZ=UTC; give the time zone as spec.timeZone instead",
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(refused(expr), want);
    }
    let e = Cron::parse("@daily", Some("Mars/Olympus")).unwrap_err();
    assert_eq!(e, ScheduleError::TimeZone("Mars/Olympus".into()));
}

#[test]
fn messages_are_one_line_in_the_user_s_words() {
    let forbidden = [
        "struct", "enum", "u32", "u64", "i64", "f64", "usize", "variant", "untagged", "map",
        "sequence", "Some(", "None", "Err(", "Ok(",
    ];
    let bad = [
        "61 * * * *",
        "0 0 * * 9",
        "* * *",
        "",
        "   ",
        "a b c d e",
        "0 0 1,32 * *",
        "0 0 * * mon-sun/x",
        "0 0 * * 1-2-3",
        "0 0 * */1/2 *",
        "0 0 * 0/0 *",
        "1-\n * * * *",
        "\"quoted\" * * * *",
        "@every",
        "@every ",
        "@every 1x",
        "@every 1",
        "@every 99999999999h",
        "@every .h",
        "@whenever",
        "TZ=UTC",
        "CRON_TZ=UTC 0 0 * * *",
        "0 0 * * * * *",
        "+ * * * *",
        "0-0-0 * * * *",
        "* * * * \u{1F600}",
    ];
    for expr in bad {
        let msg = refused(expr);
        assert!(!msg.contains('\n') && !msg.contains('^'), "{msg}");
        assert!(
            msg.starts_with(&format!("cron expression {expr:?}: ")),
            "{msg}"
        );
        for word in forbidden {
            // Quoted input may hold anything; the words around it may not.
            let ours = msg.replacen(&format!("{expr:?}"), "", 1);
            assert!(!ours.contains(word), "{word} in {msg}");
        }
    }
}

#[test]
fn names_lower_as_go_lowers_them() {
    // Go's strings.ToLower turns U+0130 into `i`: robfig reads FRİ as fri.
    assert!(Cron::parse("0 0 * * FR\u{130}", None).is_ok());
    assert!(Cron::parse("0 0 * * FR\u{131}", None).is_err());
    assert!(Cron::parse("0 0 * * monday", None).is_err());
}

#[test]
fn durations_read_as_go_reads_them() {
    use parse::Spec;
    let every = |text: &str| match Cron::parse(&format!("@every {text}"), None).map(|c| c.spec) {
        Ok(Spec::Every { seconds }) => Some(seconds),
        _ => None,
    };
    assert_eq!(every("90m"), Some(5400));
    assert_eq!(every("1h30m"), Some(5400));
    assert_eq!(every("1.5h"), Some(5400));
    assert_eq!(every(".5m"), Some(30));
    assert_eq!(every("1h1h"), Some(7200));
    assert_eq!(every("0"), Some(1));
    assert_eq!(every("-1h"), Some(1));
    assert_eq!(every("+2s"), Some(2));
    assert_eq!(every("1500ms"), Some(1));
    assert_eq!(every("3000000us"), Some(3));
    assert_eq!(every("3000000\u{b5}s"), Some(3));
    assert_eq!(every("2562047h"), Some(2562047 * 3600));
    assert_eq!(every("2562048h"), None);
    assert_eq!(every("1"), None);
    assert_eq!(every("1H"), None);
    assert_eq!(every(" 1h"), None);
    assert_eq!(every("1h "), None);
    assert_eq!(every(""), None);
    assert_eq!(every("."), None);
}

proptest::proptest! {
    /// The latest due tick is the one found by stepping tick by tick.
    #[test]
    fn the_latest_due_tick_is_the_last_one_stepped_to(
        expr in proptest::sample::select(vec![
            "*/7 * * * *", "0 */3 * * *", "15 9 * * 1-5", "0 0 1 * *", "30 2 * * 0", "*/20 * * * * *",
            "0 2 1 * 1", "30 2 * * *", "@every 97m", "@hourly",
        ]),
        zone in proptest::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
        since in 0i64..(90 * 86_400),
        span in 0i64..(3 * 86_400),
    ) {
        let c = Cron::parse(expr, Some(zone)).unwrap();
        let since = Timestamp::from_second(1_790_000_000 + since).unwrap();
        let now = Timestamp::from_second(since.as_second() + span).unwrap();
        let mut stepped = None;
        let mut count = 0;
        let mut t = since;
        while let Some(n) = c.next_after(t) {
            if n > now { break; }
            stepped = Some(n);
            count += 1;
            t = n;
        }
        proptest::prop_assert_eq!(c.latest_due(since, now), (stepped, count.min(SCAN)));
    }
}
