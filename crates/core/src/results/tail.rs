//! The last lines of a log, bounded in lines and bytes.

use std::collections::VecDeque;

/// Keeps the last `max_lines` lines of a stream, and never more than
/// `max_bytes` bytes of text including the note about omitted lines.
#[derive(Debug, Clone)]
pub struct LogTail {
    max_lines: usize,
    max_bytes: usize,
    lines: VecDeque<String>,
    bytes: usize,
    omitted: u64,
}

/// Room kept for the "... N earlier lines omitted" note.
const NOTE_ROOM: usize = 48;

impl LogTail {
    /// A tail of at most `max_lines` lines and `max_bytes` bytes (at least 64).
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        Self {
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(NOTE_ROOM + 16),
            lines: VecDeque::new(),
            bytes: 0,
            omitted: 0,
        }
    }

    fn budget(&self) -> usize {
        self.max_bytes - NOTE_ROOM
    }

    /// Appends one line (its line ending, if any, is dropped). A line longer
    /// than the whole budget keeps only its end.
    pub fn push_line(&mut self, line: &str) {
        let line = line.trim_end_matches(['\r', '\n']);
        let budget = self.budget();
        let kept = if line.len() + 1 > budget {
            let mut start = line.len() + 1 - budget;
            while !line.is_char_boundary(start) {
                start += 1;
            }
            &line[start..]
        } else {
            line
        };
        self.bytes += kept.len() + 1;
        self.lines.push_back(kept.to_string());
        while self.lines.len() > self.max_lines || self.bytes > budget {
            match self.lines.pop_front() {
                Some(old) => {
                    self.bytes -= old.len() + 1;
                    self.omitted += 1;
                }
                None => break,
            }
        }
    }

    /// Whether earlier lines were dropped.
    pub fn truncated(&self) -> bool {
        self.omitted > 0
    }

    /// The kept text, preceded by a note when earlier lines were dropped.
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.bytes + NOTE_ROOM);
        if self.omitted > 0 {
            out.push_str(&format!("... {} earlier lines omitted\n", self.omitted));
        }
        for (i, l) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(l);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_last_lines() {
        let mut t = LogTail::new(2, 1000);
        for l in ["a", "b\n", "c\r\n"] {
            t.push_line(l);
        }
        assert!(t.truncated());
        assert_eq!(t.text(), "... 1 earlier lines omitted\nb\nc");
        let mut t = LogTail::new(5, 1000);
        t.push_line("only");
        assert!(!t.truncated());
        assert_eq!(t.text(), "only");
    }

    #[test]
    fn long_line_keeps_its_end_on_a_char_boundary() {
        let mut t = LogTail::new(10, 100);
        t.push_line(&"é".repeat(200));
        let text = t.text();
        assert!(text.len() <= 100, "{}", text.len());
        assert!(text.ends_with('é'));
    }

    proptest! {
        #[test]
        fn bounded(lines in proptest::collection::vec("\\PC{0,300}", 0..60), max_lines in 1usize..20, max_bytes in 0usize..2000) {
            let mut t = LogTail::new(max_lines, max_bytes);
            for l in &lines { t.push_line(l); }
            let text = t.text();
            prop_assert!(text.len() <= max_bytes.max(64), "{} > {}", text.len(), max_bytes);
            prop_assert!(text.lines().count() <= max_lines + 1);
            if let Some(last) = lines.last() {
                prop_assert!(last.ends_with(text.rsplit('\n').next().unwrap_or("")));
            }
        }
    }
}
