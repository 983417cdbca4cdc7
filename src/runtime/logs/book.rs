//! A node's log book: the latest lines its tasks and actors wrote, bounded in lines and
//! bytes, read newest first by `mobula logs`. Pure (a lock around a ring).

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::base::log_line::LogLine;

/// Lines a node keeps at most.
pub const MAX_LINES: usize = 20_000;
/// Bytes of text a node keeps at most.
pub const MAX_BYTES: usize = 8 << 20;
/// Longer lines are cut to this many bytes.
pub const MAX_LINE: usize = 16 << 10;

/// The latest lines written on a node.
#[derive(Debug)]
pub(crate) struct LogBook {
    ring: Mutex<Ring>,
    max_lines: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    bytes: usize,
    next_seq: u64,
    /// Lines let go to stay within the bounds.
    evicted: u64,
}

impl Default for LogBook {
    fn default() -> Self {
        LogBook::with_bounds(MAX_LINES, MAX_BYTES)
    }
}

impl LogBook {
    /// A book keeping at most `max_lines` lines and `max_bytes` bytes of text.
    pub fn with_bounds(max_lines: usize, max_bytes: usize) -> Self {
        LogBook {
            ring: Mutex::new(Ring::default()),
            max_lines: max_lines.max(1),
            max_bytes,
        }
    }

    /// Keeps `line` (numbered, and cut to [`MAX_LINE`] bytes), letting the oldest go beyond
    /// the bounds; returns it as kept.
    pub fn push(&self, mut line: LogLine) -> LogLine {
        cut(&mut line.text, MAX_LINE);
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        line.seq = ring.next_seq;
        ring.next_seq += 1;
        ring.bytes += line.text.len();
        ring.lines.push_back(line.clone());
        while ring.lines.len() > self.max_lines
            || (ring.bytes > self.max_bytes && ring.lines.len() > 1)
        {
            if let Some(old) = ring.lines.pop_front() {
                ring.bytes -= old.text.len();
                ring.evicted += 1;
            }
        }
        line
    }

    /// The newest `limit` lines that `keep` accepts, oldest first, and how many more it
    /// accepted that the limit left out.
    pub fn latest(
        &self,
        limit: usize,
        mut keep: impl FnMut(&LogLine) -> bool,
    ) -> (Vec<LogLine>, u64) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = Vec::new();
        let mut left_out = 0u64;
        for line in ring.lines.iter().rev().filter(|l| keep(l)) {
            if found.len() < limit {
                found.push(line.clone());
            } else {
                left_out += 1;
            }
        }
        found.reverse();
        (found, left_out)
    }

    /// Lines kept now, and lines let go since the node started.
    pub fn counts(&self) -> (usize, u64) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        (ring.lines.len(), ring.evicted)
    }
}

/// Cuts `text` to at most `max` bytes, on a character boundary, marking the cut.
fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = text.len() - end;
    text.truncate(end);
    text.push_str(&format!(" [... {dropped} bytes cut]"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::id::{NodeId, TaskId};
    use crate::base::log_line::LogStream;

    fn line(task: u64, text: &str) -> LogLine {
        LogLine {
            node_id: NodeId::random(),
            task_id: TaskId::from_parts(1, task),
            actor_id: None,
            function: "f".into(),
            stream: LogStream::Stdout,
            text: text.into(),
            time_us: 0,
            seq: 99,
        }
    }

    #[test]
    fn lines_are_numbered_in_order_and_read_oldest_first() {
        let book = LogBook::default();
        for i in 0..5 {
            book.push(line(i % 2, &format!("line {i}")));
        }
        let (all, left) = book.latest(10, |_| true);
        assert_eq!(left, 0);
        let seqs: Vec<u64> = all.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
        let (odd, _) = book.latest(10, |l| l.task_id.sequence() == 1);
        let texts: Vec<&str> = odd.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, vec!["line 1", "line 3"]);
    }

    #[test]
    fn the_limit_keeps_the_newest_and_counts_the_rest() {
        let book = LogBook::default();
        for i in 0..10 {
            book.push(line(0, &i.to_string()));
        }
        let (last, left) = book.latest(3, |_| true);
        let texts: Vec<&str> = last.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, vec!["7", "8", "9"]);
        assert_eq!(left, 7);
    }

    #[test]
    fn the_oldest_lines_go_beyond_either_bound() {
        let by_lines = LogBook::with_bounds(3, usize::MAX);
        for i in 0..5 {
            by_lines.push(line(0, &i.to_string()));
        }
        assert_eq!(by_lines.counts(), (3, 2));
        assert_eq!(by_lines.latest(10, |_| true).0[0].text, "2");

        let by_bytes = LogBook::with_bounds(100, 10);
        for _ in 0..4 {
            by_bytes.push(line(0, "abcd"));
        }
        assert_eq!(by_bytes.counts(), (2, 2), "8 bytes kept of 16");
        // One line larger than the bound is still kept, alone.
        by_bytes.push(line(0, "a line longer than ten bytes"));
        assert_eq!(by_bytes.counts(), (1, 4));
    }

    #[test]
    fn a_long_line_is_cut_on_a_character_boundary() {
        let book = LogBook::default();
        let long = "é".repeat(MAX_LINE);
        let kept = book.push(line(0, &long));
        assert!(kept.text.len() < MAX_LINE + 40);
        assert!(
            kept.text.ends_with("bytes cut]"),
            "{}",
            &kept.text[kept.text.len() - 30..]
        );
    }
}
