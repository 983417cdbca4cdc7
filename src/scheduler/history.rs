//! What a node remembers of the tasks that ended on it, for the state API: the most recent
//! ones in full (a bounded ring, so a long-running node does not grow), and counts by
//! function and outcome of every one since the node started. Pure.

use std::collections::VecDeque;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::object::id::{ActorId, NodeId, TaskId};
use crate::state::types::{EndedCounts, TaskInfo, TaskState};

/// Ended tasks kept in full per node; older ones live on only in the counts.
pub(crate) const KEEP_ENDED: usize = 10_000;

/// The node's clock for task timings, cheap enough to read three times per task: on x86-64
/// the CPU's time-stamp counter (a few nanoseconds; a system clock read is tens), turned into
/// wall-clock microseconds only when reported, at the rate measured since the node started.
/// Elsewhere, microseconds since the start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    start_unix_us: u64,
    start_ticks: u64,
}

#[cfg(target_arch = "x86_64")]
fn ticks_now(_start: Instant) -> u64 {
    // SAFETY: reading the time-stamp counter has no preconditions; every x86-64 CPU has it.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn ticks_now(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

impl Clock {
    pub fn new() -> Self {
        let start_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let start = Instant::now();
        Clock {
            start,
            start_unix_us,
            start_ticks: ticks_now(start),
        }
    }

    /// Now, in ticks.
    pub fn now(&self) -> u64 {
        ticks_now(self.start)
    }

    /// Nanoseconds per tick, as measured since the start.
    fn nanos_per_tick(&self) -> f64 {
        if cfg!(target_arch = "x86_64") {
            let ticks = self.now().saturating_sub(self.start_ticks).max(1);
            self.start.elapsed().as_nanos() as f64 / ticks as f64
        } else {
            1000.0
        }
    }

    /// The conversion of ticks to wall-clock time, at the rate measured now: taken once per
    /// query, not per row.
    pub fn wall(&self) -> Wall {
        Wall {
            start_unix_us: self.start_unix_us,
            start_ticks: self.start_ticks,
            nanos_per_tick: self.nanos_per_tick(),
        }
    }
}

/// Ticks to wall-clock microseconds, at one measured rate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wall {
    start_unix_us: u64,
    start_ticks: u64,
    nanos_per_tick: f64,
}

impl Wall {
    /// A time from [`Clock::now`], in microseconds since the Unix epoch.
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
    fn times_become_wall_clock_microseconds() {
        let clock = Clock::new();
        let before = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let after = clock.now();
        let wall = clock.wall();
        let (a, b) = (wall.unix_us(before), wall.unix_us(after));
        assert!(
            a >= clock.start_unix_us && a <= clock.start_unix_us + 5_000,
            "{a}"
        );
        assert!((25_000..=200_000).contains(&(b - a)), "{} us", b - a);
        let info = log(before, "f").info(TaskState::Finished, NodeId::random(), &wall);
        assert_eq!(info.function, "f");
        assert_eq!(info.submitted_us, a);
    }
}
