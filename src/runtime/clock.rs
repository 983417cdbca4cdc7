//! The node's clock for task timings: the one place the scheduler's and the actors' task
//! records get their times from; the pure records in `base::scheduling::history` take them as
//! numbers.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::base::scheduling::history::Wall;

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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
