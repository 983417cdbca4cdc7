//! What a node remembers of the tasks that ended on it, for the state API: the most recent
//! ones in full (a bounded ring, so a long-running node does not grow), and counts by
//! function and outcome of every one since the node started. Pure.

use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::object::id::{NodeId, TaskId};
use crate::state::types::{EndedCounts, TaskInfo, TaskState};

/// Ended tasks kept in full per node; older ones live on only in the counts.
pub(crate) const KEEP_ENDED: usize = 10_000;

/// The node's clock for task timings: microseconds since the node started, turned into
/// wall-clock milliseconds when reported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    start_unix_ms: u64,
}

impl Clock {
    pub fn new() -> Self {
        let start_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            start: Instant::now(),
            start_unix_ms,
        }
    }

    /// Now, in microseconds since the node started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// A time from [`now`](Self::now), in milliseconds since the Unix epoch.
    pub fn unix_ms(&self, micros: u64) -> u64 {
        self.start_unix_ms + micros / 1000
    }
}

/// A task as its node saw it: what a row of `list_tasks` is made from.
#[derive(Debug, Clone)]
pub(crate) struct TaskLog {
    pub task_id: TaskId,
    pub function: &'static str,
    /// The task's name option, if it has one.
    pub name: Option<String>,
    pub attempts: u32,
    pub submitted: u64,
    pub started: Option<u64>,
    pub ended: Option<u64>,
    pub error: Option<String>,
}

impl TaskLog {
    pub fn info(&self, state: TaskState, node_id: NodeId, clock: &Clock) -> TaskInfo {
        TaskInfo {
            task_id: self.task_id,
            function: match &self.name {
                Some(name) => format!("{name} ({})", self.function),
                None => self.function.to_string(),
            },
            state,
            node_id,
            attempts: self.attempts,
            submitted_ms: clock.unix_ms(self.submitted),
            started_ms: self.started.map(|t| clock.unix_ms(t)),
            ended_ms: self.ended.map(|t| clock.unix_ms(t)),
            error: self.error.clone(),
        }
    }
}

/// The tasks that ended on a node.
#[derive(Debug)]
pub(crate) struct TaskHistory {
    recent: VecDeque<(TaskLog, TaskState)>,
    keep: usize,
    counts: HashMap<&'static str, EndedCounts>,
}

impl TaskHistory {
    pub fn new(keep: usize) -> Self {
        TaskHistory {
            recent: VecDeque::new(),
            keep,
            counts: HashMap::new(),
        }
    }

    /// A task ended (`state` is finished, failed or cancelled).
    pub fn ended(&mut self, log: TaskLog, state: TaskState) {
        let counts = self.counts.entry(log.function).or_default();
        match state {
            TaskState::Failed => counts.failed += 1,
            TaskState::Cancelled => counts.cancelled += 1,
            _ => counts.finished += 1,
        }
        if self.keep == 0 {
            return;
        }
        if self.recent.len() == self.keep {
            self.recent.pop_front();
        }
        self.recent.push_back((log, state));
    }

    /// The ended tasks kept, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &(TaskLog, TaskState)> {
        self.recent.iter()
    }

    /// Every ended task counted, by function.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, &EndedCounts)> {
        self.counts.iter().map(|(f, c)| (*f, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u64, function: &'static str) -> TaskLog {
        TaskLog {
            task_id: TaskId::NIL,
            function,
            name: None,
            attempts: 1,
            submitted: n,
            started: Some(n + 1),
            ended: Some(n + 2),
            error: None,
        }
    }

    #[test]
    fn keeps_the_latest_in_full_and_counts_them_all() {
        let mut h = TaskHistory::new(3);
        for n in 0..10 {
            let state = if n % 5 == 0 {
                TaskState::Failed
            } else {
                TaskState::Finished
            };
            h.ended(log(n, if n < 4 { "a" } else { "b" }), state);
        }
        let kept: Vec<u64> = h.recent().map(|(l, _)| l.submitted).collect();
        assert_eq!(kept, vec![7, 8, 9]);
        let mut counts: Vec<_> = h.counts().map(|(f, c)| (f, c.clone())).collect();
        counts.sort_by_key(|(f, _)| *f);
        assert_eq!(counts[0].0, "a");
        assert_eq!((counts[0].1.finished, counts[0].1.failed), (3, 1));
        assert_eq!((counts[1].1.finished, counts[1].1.failed), (5, 1));
    }

    #[test]
    fn times_become_wall_clock_milliseconds() {
        let clock = Clock::new();
        let info = log(5_000, "f").info(TaskState::Finished, NodeId::random(), &clock);
        assert_eq!(info.submitted_ms, clock.start_unix_ms + 5);
        assert_eq!(info.ended_ms, Some(clock.start_unix_ms + 5));
        assert_eq!(info.function, "f");
    }
}
