//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mobula::{Config, InitGuard};

pub mod cli;
pub mod cli_cluster;
pub mod groups;
pub mod http;

/// One Mobula runtime per process: tests that start one take turns.
static TURN: Mutex<()> = Mutex::new(());

/// A runtime for one test; dropping it shuts the runtime down, then lets the next test run.
pub struct TestNode {
    pub guard: Option<InitGuard>,
    _turn: MutexGuard<'static, ()>,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.guard.take();
    }
}

pub fn start(config: Config) -> TestNode {
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    mobula::shutdown(); // in case a failed test left one running
    let guard = mobula::init(config).expect("init");
    TestNode {
        guard: Some(guard),
        _turn: turn,
    }
}

/// Takes the runtime turn without starting a runtime.
pub fn turn() -> MutexGuard<'static, ()> {
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    mobula::shutdown();
    turn
}

/// Polls `cond` until it holds; panics with `what` after a generous bound. For effects that
/// happen asynchronously (a spill, a restart), never to assert on speed.
pub fn eventually(what: &str, cond: impl FnMut() -> bool) {
    eventually_or(what, cond, String::new);
}

/// [`eventually`], saying `show()` too if it never happens (what a child process wrote).
pub fn eventually_or(what: &str, mut cond: impl FnMut() -> bool, show: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "never happened: {what} {}",
            show()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Counts how many bodies run at once and the most that ever did.
pub struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Concurrency {
    pub const fn new() -> Self {
        Concurrency {
            now: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
        }
    }

    pub fn reset(&self) {
        self.now.store(0, Ordering::SeqCst);
        self.max.store(0, Ordering::SeqCst);
    }

    /// Enters, waits (up to a bound) until `expect` bodies are in at once so that the
    /// maximum is reached whenever the scheduler allows it, then leaves.
    pub fn run(&self, expect: usize) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.now.load(Ordering::SeqCst) < expect && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(10));
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// A gate that tasks wait on until the test opens it.
pub struct Gate(Mutex<bool>, std::sync::Condvar);

impl Gate {
    pub const fn new() -> Self {
        Gate(Mutex::new(false), std::sync::Condvar::new())
    }

    pub fn open(&self) {
        *self.0.lock().unwrap() = true;
        self.1.notify_all();
    }

    pub fn close(&self) {
        *self.0.lock().unwrap() = false;
    }

    pub fn pass(&self) {
        let mut open = self.0.lock().unwrap();
        while !*open {
            open = self.1.wait(open).unwrap();
        }
    }
}

/// A `LocalCluster`: a head started with `head`, `n` workers started with `worker`, and this
/// process joined as the driver with `driver` added to its config, once it sees every worker.
pub fn local_cluster(
    head: Config,
    worker: impl Fn() -> Config,
    n: usize,
    driver: impl FnOnce(Config) -> Config,
) -> (
    mobula::testing::LocalCluster,
    Vec<mobula::NodeId>,
    InitGuard,
) {
    let mut cluster = mobula::testing::LocalCluster::start(head).expect("the head starts");
    let workers: Vec<mobula::NodeId> = (0..n)
        .map(|_| cluster.add_node(worker()).expect("a worker joins"))
        .collect();
    let guard = mobula::init(driver(cluster.driver_config())).expect("the driver joins");
    eventually("the driver sees every worker", || {
        mobula::node::nodes()
            .iter()
            .filter(|node| node.alive && node.info.runs_tasks)
            .count()
            == n
    });
    (cluster, workers, guard)
}
