//! What runs inside a replica beside the user's deployment: the gate that lets at most
//! `max_ongoing_requests` requests run and at most `max_queued_requests` wait, its counts
//! (the replica's load, read by the controller), and the batch queue of a batched method.
//!
//! `#[mobula::deployment]` makes each replica an actor that holds the user's value and a
//! [`ReplicaCore`]; every request passes the gate, while the controller's calls (health,
//! load, reconfigure, drain) do not, so they are answered while requests queue.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

use super::batch::Batcher;
use super::metrics;
use super::status::LatencyHistogram;

/// What the controller tells a replica when it starts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSetup {
    /// The application.
    pub app: String,
    /// The deployment.
    pub deployment: String,
    /// The replica's number in its deployment.
    pub replica: u64,
    /// Requests it runs at once.
    pub max_ongoing_requests: u32,
    /// Requests that may wait for room (`None`: no limit).
    pub max_queued_requests: Option<usize>,
    /// The user config (JSON) its `reconfigure` gets before it takes requests.
    pub user_config: Option<String>,
}

/// A replica's load and counts, as the controller reads them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaLoad {
    /// Requests running.
    pub running: u32,
    /// Requests waiting for room.
    pub queued: u32,
    /// Requests finished since the replica started.
    pub served: u64,
    /// Of which failed (a panic, an error response, a full queue).
    pub errors: u64,
    /// Their latency.
    pub latency: LatencyHistogram,
}

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "replica {replica} of deployment `{deployment}` is full: {running} requests running (max_ongoing_requests) and {queued} waiting (max_queued_requests); retry later"
)]
pub struct Full {
    /// The deployment.
    pub deployment: String,
    /// The replica.
    pub replica: u64,
    /// Running.
    pub running: u32,
    /// Waiting.
    pub queued: usize,
}

/// The replica's side of serving: its gate and counts.
pub struct ReplicaCore {
    setup: ReplicaSetup,
    permits: Arc<Semaphore>,
    queued: AtomicU64,
    served: AtomicU64,
    errors: AtomicU64,
    latency: std::sync::Mutex<LatencyHistogram>,
    idle: Notify,
}

/// A request let in: running until dropped.
pub struct Admitted<'a> {
    core: &'a ReplicaCore,
    _permit: OwnedSemaphorePermit,
    started: Instant,
    failed: bool,
}

impl Admitted<'_> {
    /// Counts the request as failed when it ends.
    pub fn failed(&mut self) {
        self.failed = true;
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let core = self.core;
        let took = self.started.elapsed();
        let failed = self.failed || std::thread::panicking();
        core.served.fetch_add(1, Ordering::Relaxed);
        if failed {
            core.errors.fetch_add(1, Ordering::Relaxed);
        }
        core.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(took);
        let s = &core.setup;
        metrics::finished(&s.app, &s.deployment, took, failed);
        core.idle.notify_waiters();
    }
}

impl ReplicaCore {
    /// A replica's core.
    pub fn new(setup: ReplicaSetup) -> Self {
        let permits = Arc::new(Semaphore::new(setup.max_ongoing_requests.max(1) as usize));
        ReplicaCore {
            setup,
            permits,
            queued: AtomicU64::new(0),
            served: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: std::sync::Mutex::new(LatencyHistogram::default()),
            idle: Notify::new(),
        }
    }

    /// The replica's setup.
    pub fn setup(&self) -> &ReplicaSetup {
        &self.setup
    }

    fn running(&self) -> u32 {
        self.setup
            .max_ongoing_requests
            .max(1)
            .saturating_sub(self.permits.available_permits() as u32)
    }

    /// Lets a request in: at once if fewer than `max_ongoing_requests` run, after waiting
    /// if fewer than `max_queued_requests` wait, else refused.
    pub async fn admit(&self) -> Result<Admitted<'_>, Full> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let waiting = self.queued.fetch_add(1, Ordering::AcqRel) as usize;
                let _counted = Uncount(&self.queued);
                if matches!(self.setup.max_queued_requests, Some(max) if waiting >= max) {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    metrics::refused(&self.setup.app, &self.setup.deployment);
                    return Err(Full {
                        deployment: self.setup.deployment.clone(),
                        replica: self.setup.replica,
                        running: self.running(),
                        queued: waiting,
                    });
                }
                Arc::clone(&self.permits)
                    .acquire_owned()
                    .await
                    .expect("the gate is never closed")
            }
        };
        let s = &self.setup;
        metrics::arrived(&s.app, &s.deployment);
        Ok(Admitted {
            core: self,
            _permit: permit,
            started: Instant::now(),
            failed: false,
        })
    }

    /// The load and counts now.
    pub fn load(&self) -> ReplicaLoad {
        ReplicaLoad {
            running: self.running(),
            queued: self.queued.load(Ordering::Acquire) as u32,
            served: self.served.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: self
                .latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Waits until no request runs or waits, at most `timeout`; true if it got there.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.idle.notified();
            if self.running() == 0 && self.queued.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return false;
            }
        }
    }
}

struct Uncount<'a>(&'a AtomicU64);

impl Drop for Uncount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type Waiting<X, Y> = (X, oneshot::Sender<Result<Y, String>>);

/// The queue of a batched method: callers send one request each; one of them (the first of
/// a batch) waits for the batch to fill or its wait to end, then runs the method on the
/// whole batch and hands each caller its answer.
pub struct BatchQueue<X, Y> {
    state: std::sync::Mutex<BatchState<X, Y>>,
    filled: Notify,
    base: Instant,
    wait: Duration,
}

struct BatchState<X, Y> {
    batcher: Batcher<Waiting<X, Y>>,
    /// A caller is waiting to run the next batch.
    led: bool,
    /// Sizes of the batches run, for tests and status (the last 1,024).
    sizes: std::collections::VecDeque<usize>,
}

impl<X, Y> BatchQueue<X, Y> {
    /// Batches of at most `max_batch_size`, waiting at most `wait` to fill.
    pub fn new(max_batch_size: usize, wait: Duration) -> Self {
        BatchQueue {
            state: std::sync::Mutex::new(BatchState {
                batcher: Batcher::new(max_batch_size, wait.as_millis() as u64),
                led: false,
                sizes: Default::default(),
            }),
            filled: Notify::new(),
            base: Instant::now(),
            wait,
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// The sizes of the latest batches run, oldest first.
    pub fn batch_sizes(&self) -> Vec<usize> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.sizes.iter().copied().collect()
    }

    /// Sends one request and waits for its answer; `run` is the method on a batch.
    pub async fn call<F, Fut>(&self, request: X, run: F) -> Result<Y, String>
    where
        F: Fn(Vec<X>) -> Fut,
        Fut: Future<Output = Vec<Y>>,
    {
        let (tx, rx) = oneshot::channel();
        let (full, lead) = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let full = state.batcher.push(self.now_ms(), (request, tx));
            let lead = full.is_none() && !state.led;
            if lead {
                state.led = true;
            }
            (full, lead)
        };
        if let Some(batch) = full {
            self.filled.notify_waiters();
            self.run(batch, &run).await;
        } else if lead {
            self.lead(&run).await;
        }
        rx.await
            .unwrap_or_else(|_| Err("the batch this request was in failed".into()))
    }

    /// Waits for each batch's wait to end (or for it to be taken full) and runs it, until
    /// none is left.
    async fn lead<F, Fut>(&self, run: &F)
    where
        F: Fn(Vec<X>) -> Fut,
        Fut: Future<Output = Vec<Y>>,
    {
        loop {
            let deadline = {
                let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.batcher.deadline()
            };
            let Some(deadline) = deadline else {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.batcher.is_empty() {
                    state.led = false;
                    return;
                }
                continue;
            };
            let filled = self.filled.notified();
            let left = deadline.saturating_sub(self.now_ms());
            if left > 0 {
                let _ = tokio::time::timeout(Duration::from_millis(left), filled).await;
            }
            let batch = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.batcher.due(self.now_ms())
            };
            if let Some(batch) = batch {
                self.run(batch, run).await;
            }
        }
    }

    async fn run<F, Fut>(&self, batch: Vec<Waiting<X, Y>>, run: &F)
    where
        F: Fn(Vec<X>) -> Fut,
        Fut: Future<Output = Vec<Y>>,
    {
        let n = batch.len();
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.sizes.len() == 1024 {
                state.sizes.pop_front();
            }
            state.sizes.push_back(n);
        }
        let (requests, answers): (Vec<X>, Vec<_>) = batch.into_iter().unzip();
        let results = run(requests).await;
        if results.len() != n {
            let why = format!(
                "the batched method returned {} answers for a batch of {n} requests",
                results.len()
            );
            for tx in answers {
                let _ = tx.send(Err(why.clone()));
            }
            return;
        }
        for (tx, y) in answers.into_iter().zip(results) {
            let _ = tx.send(Ok(y));
        }
    }

    /// How long a batch waits to fill.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

/// What `reconfigure` and `check_health` may return: nothing, or a `Result` whose error
/// fails the call. Used by `#[mobula::deployment]`.
#[doc(hidden)]
pub trait Outcome {
    /// The outcome as a result.
    fn into_outcome(self) -> Result<(), String>;
}

impl Outcome for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: std::fmt::Display> Outcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:#}"))
    }
}

/// The 503 a full replica answers over HTTP.
#[doc(hidden)]
pub fn refused(full: Full) -> super::http::Response {
    super::http::Response::error(503, full.to_string()).with_header("retry-after", "1")
}
