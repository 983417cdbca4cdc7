//! The worker threads that run blocking tasks: each is an actix arbiter hosting the task
//! actor it runs.
//!
//! A blocking body runs inside its task actor, on the worker's own thread, so it blocks only
//! that worker, never the node's actors. A task actor that ends on a worker starts the next
//! task its freed resources were given to on the same worker, so a backlog of tasks runs
//! without a thread switch per task. The scheduler decides how many tasks run at once (their
//! CPUs); the workers only make sure each admitted task has a thread: idle workers are
//! reused, new ones started when none is idle, and workers beyond one per CPU stop when they
//! fall idle.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_rt::{Arbiter, ArbiterHandle, System};

use super::global::Pin;

type Job = Box<dyn FnOnce() + Send>;

struct State {
    idle: Vec<ArbiterHandle>,
    alive: usize,
    shutdown: bool,
}

struct Inner {
    state: Mutex<State>,
    system: System,
    core: usize,
    /// Entered by each worker thread of a node beside the process's runtime.
    pin: Option<Pin>,
}

/// A handle to the node's task workers; cheap to clone.
#[derive(Clone)]
pub(crate) struct TaskWorkers(Arc<Inner>);

thread_local! {
    /// On a worker thread: the workers it belongs to.
    static CURRENT: RefCell<Option<TaskWorkers>> = const { RefCell::new(None) };
}

impl TaskWorkers {
    /// Workers of `system`, keeping `core` of them when idle.
    pub fn new(system: System, core: usize, pin: Option<Pin>) -> Self {
        TaskWorkers(Arc::new(Inner {
            state: Mutex::new(State {
                idle: Vec::new(),
                alive: 0,
                shutdown: false,
            }),
            system,
            core: core.max(1),
            pin,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `job` (which starts a task actor) on an idle worker, or on a new one.
    pub fn run(&self, job: Job) -> Result<(), String> {
        let slot = Arc::new(Mutex::new(Some(job)));
        loop {
            let idle = {
                let mut s = self.lock();
                if s.shutdown {
                    return Err("the runtime is shutting down".into());
                }
                let idle = s.idle.pop();
                if idle.is_none() {
                    s.alive += 1;
                }
                idle
            };
            let Some(handle) = idle else {
                let job = slot
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .expect("not yet given away");
                return self.start_worker(job);
            };
            let given = Arc::clone(&slot);
            if handle.spawn_fn(move || {
                if let Some(job) = given.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    job();
                }
            }) {
                return Ok(());
            }
            // That worker had stopped; the job is still in the slot: try another.
        }
    }

    fn start_worker(&self, job: Job) -> Result<(), String> {
        if System::try_current().is_none() {
            System::set_current(self.0.system.clone());
        }
        let arbiter = match Arbiter::try_new() {
            Ok(a) => a,
            Err(e) => {
                self.lock().alive -= 1;
                return Err(format!("cannot start a worker thread: {e}"));
            }
        };
        let workers = self.clone();
        arbiter.spawn_fn(move || {
            if let Some(pin) = &workers.0.pin {
                pin.enter();
            }
            CURRENT.with(|c| *c.borrow_mut() = Some(workers));
            job();
        });
        // The arbiter runs until it is stopped; dropping this handle does not stop it.
        drop(arbiter);
        Ok(())
    }

    /// The workers the current thread belongs to, if it is a worker.
    pub fn current() -> Option<TaskWorkers> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// The current worker has nothing to do: keep it for later, or stop it when there are
    /// already enough idle workers.
    pub fn idle(&self) {
        let handle = Arbiter::current();
        let mut s = self.lock();
        if s.shutdown || s.idle.len() >= self.0.core {
            s.alive -= 1;
            drop(s);
            handle.stop();
        } else {
            s.idle.push(handle);
        }
    }

    /// The current worker dies (a deliberate kill): it stops once its task is over.
    pub fn retire(&self) {
        self.lock().alive -= 1;
        Arbiter::current().stop();
    }

    /// Whether the node is stopping: no worker takes a new task.
    pub fn is_shut_down(&self) -> bool {
        self.lock().shutdown
    }

    /// Worker threads alive.
    pub fn threads(&self) -> usize {
        self.lock().alive
    }

    /// Stops every idle worker; busy ones stop when their task is over.
    pub fn shutdown(&self) {
        let idle = {
            let mut s = self.lock();
            s.shutdown = true;
            std::mem::take(&mut s.idle)
        };
        for h in idle {
            h.stop();
        }
    }
}
