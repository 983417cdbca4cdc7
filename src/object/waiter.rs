//! Who is waiting for an object, and how to tell them it is ready.

use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::time::Instant;

/// Someone waiting for an object to become ready (or fail, or come back from disk).
pub(crate) enum Waiter {
    /// An async get.
    Wake(Waker),
    /// A blocked thread.
    Signal(Arc<Signal>),
    /// Anything else: the scheduler's dependency tracking, `wait`.
    Call(Box<dyn FnOnce() + Send>),
    /// A blocked thread that only needs the value to exist somewhere (`wait_anywhere`): woken
    /// when the value is left on another node, without fetching it.
    Watch(Arc<Signal>),
}

impl Waiter {
    pub(crate) fn fire(self) {
        match self {
            Waiter::Wake(w) => w.wake(),
            Waiter::Signal(s) | Waiter::Watch(s) => s.notify(),
            Waiter::Call(f) => f(),
        }
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiter::Wake(_) => "Waiter::Wake",
            Waiter::Signal(_) => "Waiter::Signal",
            Waiter::Call(_) => "Waiter::Call",
            Waiter::Watch(_) => "Waiter::Watch",
        })
    }
}

/// A one-way flag a thread can block on.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: Mutex<bool>,
    cond: Condvar,
}

impl Signal {
    pub(crate) fn notify(&self) {
        *self.set.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cond.notify_all();
    }

    /// Blocks until notified or until `deadline`; true when notified.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            match deadline {
                None => set = self.cond.wait(set).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    set = self
                        .cond
                        .wait_timeout(set, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        *set = false;
        true
    }
}
