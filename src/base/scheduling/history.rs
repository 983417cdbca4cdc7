//! What a node remembers of the tasks that ended on it, for the state API: the most recent
//! ones in full (a bounded ring, so a long-running node does not grow), and counts by
//! function and outcome of every one since the node started. Pure.

use std::collections::VecDeque;

use crate::base::id::{ActorId, NodeId, TaskId};
use crate::base::rows::{EndedCounts, TaskInfo, TaskState};

/// Ended tasks kept in full per node; older ones live on only in the counts.
pub(crate) const KEEP_ENDED: usize = 10_000;

/// Ticks to wall-clock microseconds, at one measured rate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wall {
    /// The clock's start, in microseconds since the Unix epoch.
    pub start_unix_us: u64,
    /// The clock's start, in ticks.
    pub start_ticks: u64,
    /// The measured rate.
    pub nanos_per_tick: f64,
}

impl Wall {
    /// A time in ticks of the node's clock, in microseconds since the Unix epoch.
    pub fn unix_us(&self, ticks: u64) -> u64 {
        let since = ticks.saturating_sub(self.start_ticks) as f64 * self.nanos_per_tick;
        self.start_unix_us + (since / 1e3) as u64
    }
}

/// A task as its node saw it: what a row of `list_tasks` is made from.
#[derive(Debug, Clone)]
pub(crate) struct TaskLog {
    pub task_id: TaskId,
    pub function: &'static str,
    /// The task's name option, if it has one.
    pub name: Option<String>,
    /// For an actor's method call: the actor.
    pub actor_id: Option<ActorId>,
    pub attempts: u32,
    pub submitted: u64,
    pub started: Option<u64>,
    pub ended: Option<u64>,
    pub error: Option<String>,
}

impl TaskLog {
    pub fn info(&self, state: TaskState, node_id: NodeId, clock: &Wall) -> TaskInfo {
        TaskInfo {
            task_id: self.task_id,
            function: match &self.name {
                Some(name) => format!("{name} ({})", self.function),
                None => self.function.to_string(),
            },
            state,
            node_id,
            actor_id: self.actor_id,
            attempts: self.attempts,
            submitted_us: clock.unix_us(self.submitted),
            started_us: self.started.map(|t| clock.unix_us(t)),
            ended_us: self.ended.map(|t| clock.unix_us(t)),
            error: self.error.clone(),
        }
    }
}

/// The tasks that ended on a node.
#[derive(Debug)]
pub(crate) struct TaskHistory {
    recent: VecDeque<(TaskLog, TaskState)>,
    keep: usize,
    /// Counts by function, found by the id's address (few functions; the last one found
    /// is tried first, as tasks of one function tend to end in a row).
    counts: Vec<(&'static str, EndedCounts)>,
    last: usize,
}

impl TaskHistory {
    pub fn new(keep: usize) -> Self {
        TaskHistory {
            recent: VecDeque::new(),
            keep,
            counts: Vec::new(),
            last: 0,
        }
    }

    /// A task ended (`state` is finished, failed or cancelled).
    pub fn ended(&mut self, log: TaskLog, state: TaskState) {
        let same = |(f, _): &(&'static str, EndedCounts)| std::ptr::eq(*f, log.function);
        if !self.counts.get(self.last).is_some_and(same) {
            self.last = match self.counts.iter().position(same) {
                Some(i) => i,
                None => {
                    self.counts.push((log.function, EndedCounts::default()));
                    self.counts.len() - 1
                }
            };
        }
        let counts = &mut self.counts[self.last].1;
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
            actor_id: None,
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
    fn ticks_become_wall_clock_microseconds_at_the_measured_rate() {
        let wall = Wall {
            start_unix_us: 1_000_000,
            start_ticks: 500,
            nanos_per_tick: 0.5,
        };
        assert_eq!(wall.unix_us(500), 1_000_000);
        assert_eq!(wall.unix_us(4_500), 1_000_002);
        // A time before the clock's start is its start.
        assert_eq!(wall.unix_us(0), 1_000_000);
        let info = log(4_500, "f").info(TaskState::Finished, NodeId::random(), &wall);
        assert_eq!(info.function, "f");
        assert_eq!(info.submitted_us, 1_000_002);
    }
}
