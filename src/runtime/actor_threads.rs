//! The threads that run blocking actor calls and actor constructors.
//!
//! Actor calls hold no CPUs, so the pool itself bounds them: it runs at most its bound of jobs
//! at once, queueing the rest, except that a thread waiting in a `get` does not count (so
//! actors waiting on each other cannot starve it). Threads beyond the bound that fall idle
//! leave after a while. (Blocking tasks run on the scheduler's workers, `workers.rs`.)

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::global::Pin;
use super::panic::WorkerKill;

/// How long a thread beyond the core count stays idle before it exits.
const EXTRA_IDLE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    idle: usize,
    threads: usize,
    /// Threads waiting in a get (bounded pools do not count them).
    blocked: usize,
    started: u64,
    shutdown: bool,
}

struct Inner {
    state: Mutex<State>,
    cond: Condvar,
    core: usize,
    /// How many jobs may run at once (not counting blocked threads).
    bound: usize,
    /// Entered by each thread of a node beside the process's runtime.
    pin: Option<Pin>,
}

/// A handle to the pool; cheap to clone.
#[derive(Clone)]
pub(crate) struct WorkerPool(Arc<Inner>);

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        write!(f, "WorkerPool(threads {}, idle {})", s.threads, s.idle)
    }
}

impl WorkerPool {
    /// A pool running at most `bound` jobs at once.
    pub fn bounded(bound: usize, pin: Option<Pin>) -> Self {
        WorkerPool(Arc::new(Inner {
            pin,
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
            core: bound.max(1),
            bound: bound.max(1),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `job` on a pool thread, starting one when none is idle.
    pub fn execute(&self, job: Job) -> Result<(), String> {
        let mut s = self.lock();
        if s.shutdown {
            return Err("the worker pool is shut down".into());
        }
        s.jobs.push_back(job);
        if s.jobs.len() <= s.idle {
            drop(s);
            self.0.cond.notify_one();
            return Ok(());
        }
        if s.threads - s.blocked.min(s.threads) >= self.0.bound {
            return Ok(()); // a running thread takes it when it is done
        }
        self.spawn(s)
    }

    fn spawn(&self, mut s: std::sync::MutexGuard<'_, State>) -> Result<(), String> {
        s.threads += 1;
        s.started += 1;
        let n = s.started;
        drop(s);
        let pool = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("mobula-worker-{n}"))
            .spawn(move || pool.work());
        if let Err(e) = spawned {
            let mut s = self.lock();
            s.threads -= 1;
            // The job stays queued for a running thread, if there is one.
            if s.threads == 0 {
                s.jobs.clear();
            }
            return Err(format!("cannot start a worker thread: {e}"));
        }
        Ok(())
    }

    fn work(self) {
        if let Some(pin) = &self.0.pin {
            pin.enter();
        }
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        let mut s = self.lock();
        loop {
            if let Some(job) = s.jobs.pop_front() {
                drop(s);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                s = self.lock();
                if let Err(payload) = outcome {
                    // A job never lets a task's panic through; what arrives here is a
                    // deliberate kill (or a runtime bug): this thread dies, as a crashed
                    // worker process would in Ray. Its task is reported lost by the task actor.
                    if !payload.is::<WorkerKill>() {
                        tracing::error!("a worker thread failed outside task code");
                    }
                    s.threads -= 1;
                    return;
                }
                continue;
            }
            if s.shutdown {
                s.threads -= 1;
                return;
            }
            s.idle += 1;
            let (guard, timeout) = self
                .0
                .cond
                .wait_timeout(s, EXTRA_IDLE)
                .unwrap_or_else(|e| e.into_inner());
            s = guard;
            s.idle -= 1;
            if timeout.timed_out() && s.jobs.is_empty() && s.threads > self.0.core {
                s.threads -= 1;
                return;
            }
        }
    }

    /// This thread waits in a get: a bounded pool may start another thread meanwhile.
    fn block(&self) {
        let mut s = self.lock();
        s.blocked += 1;
        if s.jobs.len() > s.idle {
            let _ = self.spawn(s);
        }
    }

    fn unblock(&self) {
        let mut s = self.lock();
        s.blocked = s.blocked.saturating_sub(1);
    }

    /// Threads alive now.
    pub fn threads(&self) -> usize {
        self.lock().threads
    }

    /// Lets every thread exit once its current job is done; queued jobs are dropped.
    pub fn shutdown(&self) {
        let jobs = {
            let mut s = self.lock();
            s.shutdown = true;
            std::mem::take(&mut s.jobs)
        };
        drop(jobs);
        self.0.cond.notify_all();
    }
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<WorkerPool>> = const { std::cell::RefCell::new(None) };
}

/// While alive, the current pool thread counts as waiting in a get.
pub(crate) struct Blocked(WorkerPool);

impl Drop for Blocked {
    fn drop(&mut self) {
        self.0.unblock();
    }
}

/// Marks the current thread, if it is a pool thread, as waiting in a get.
pub(crate) fn blocked() -> Option<Blocked> {
    let pool = CURRENT.with(|c| c.borrow().clone())?;
    pool.block();
    Some(Blocked(pool))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_bounded_pool_queues_beyond_its_bound_but_not_behind_a_blocked_thread() {
        let pool = WorkerPool::bounded(1, None);
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (tx, rx) = (started_tx.clone(), Arc::clone(&release_rx));
        pool.execute(Box::new(move || {
            tx.send(1).unwrap();
            rx.lock().unwrap().recv().unwrap();
        }))
        .unwrap();
        assert_eq!(started_rx.recv().unwrap(), 1);
        let tx = started_tx.clone();
        pool.execute(Box::new(move || tx.send(2).unwrap())).unwrap();
        assert_eq!(pool.threads(), 1, "the second job waits: the bound is 1");
        // The first job now waits in a get: the second may run.
        pool.block();
        assert_eq!(started_rx.recv().unwrap(), 2);
        pool.unblock();
        release_tx.send(()).unwrap();
        pool.shutdown();
    }

    #[test]
    fn a_killed_worker_thread_is_replaced() {
        let pool = WorkerPool::bounded(1, None);
        let (tx, rx) = mpsc::channel();
        pool.execute(Box::new(|| std::panic::resume_unwind(Box::new(WorkerKill))))
            .unwrap();
        while pool.threads() > 0 {
            std::thread::yield_now();
        }
        pool.execute(Box::new(move || tx.send(7).unwrap())).unwrap();
        assert_eq!(rx.recv().unwrap(), 7);
    }
}
