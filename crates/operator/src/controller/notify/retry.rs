//! When a notification is tried again: after an answer of 5xx, a timeout
//! or a connection error, with exponential backoff (1 s, 2 s, 4 s, 8 s),
//! at most [`MAX_ATTEMPTS`] attempts; never after a 4xx (the request
//! itself is wrong: sending it again would not help). Pure.

use std::time::Duration;

/// Attempts of one notification at most.
pub const MAX_ATTEMPTS: u32 = 5;
/// Wait after the first failed attempt; doubled after each.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// What came of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with this HTTP status.
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// No connection, or it broke (why, scrubbed of secrets).
    Connection(String),
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It was delivered.
    Sent,
    /// Try again, after [`backoff`].
    Retry,
    /// Give up.
    GiveUp,
}

/// The verdict on `answer`.
pub fn verdict(answer: &Answer) -> Verdict {
    match answer {
        Answer::Status(c) if (200..300).contains(c) => Verdict::Sent,
        Answer::Status(c) if *c >= 500 => Verdict::Retry,
        Answer::Status(_) => Verdict::GiveUp,
        Answer::Timeout | Answer::Connection(_) => Verdict::Retry,
    }
}

/// The wait after failed attempt `attempt` (1-based).
pub fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF * 2u32.saturating_pow(attempt.saturating_sub(1).min(10))
}

/// The words of `answer` for a status, an Event or a log.
pub fn describe(answer: &Answer) -> String {
    match answer {
        Answer::Status(c) => format!("the receiver answered HTTP {c}"),
        Answer::Timeout => "no answer within the timeout".into(),
        Answer::Connection(why) => format!("cannot connect: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_lost_connections_are_retried_client_errors_are_not() {
        assert_eq!(verdict(&Answer::Status(200)), Verdict::Sent);
        assert_eq!(verdict(&Answer::Status(204)), Verdict::Sent);
        assert_eq!(verdict(&Answer::Status(500)), Verdict::Retry);
        assert_eq!(verdict(&Answer::Status(503)), Verdict::Retry);
        assert_eq!(verdict(&Answer::Timeout), Verdict::Retry);
        assert_eq!(
            verdict(&Answer::Connection("refused".into())),
            Verdict::Retry
        );
        assert_eq!(verdict(&Answer::Status(400)), Verdict::GiveUp);
        assert_eq!(verdict(&Answer::Status(404)), Verdict::GiveUp);
        assert_eq!(verdict(&Answer::Status(301)), Verdict::GiveUp);
    }

    #[test]
    fn backoff_doubles_and_all_attempts_fit_in_a_minute() {
        let waits: Vec<u64> = (1..MAX_ATTEMPTS).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8]);
        assert!(waits.iter().sum::<u64>() < 60);
    }
}
