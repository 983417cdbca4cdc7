//! Quick figures of the node this process runs, read in place (no query to the head).

use std::sync::atomic::Ordering;

use crate::runtime::global;

/// A snapshot of the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectStoreStats {
    /// Objects known to the store: in memory, on disk, pending or failed.
    pub objects: usize,
    /// Bytes of objects held in memory.
    pub memory_used: u64,
    /// The memory limit.
    pub memory_limit: u64,
    /// Objects written to disk since the start.
    pub spilled_objects: u64,
    /// Bytes written to disk since the start.
    pub spilled_bytes: u64,
    /// Objects read back from disk since the start.
    pub restored_objects: u64,
    /// Spills that failed (the objects stayed in memory).
    pub spill_failures: u64,
    /// Times a store shard was restarted after a failure.
    pub shard_restarts: u64,
}

/// The object store of the running node, or `None` when no runtime runs.
pub fn object_store() -> Option<ObjectStoreStats> {
    global::with_runtime(|rt| {
        let s = &rt.store;
        let c = &s.counters;
        ObjectStoreStats {
            objects: s.len(),
            memory_used: s.memory_used(),
            memory_limit: s.memory_limit,
            spilled_objects: c.spilled_objects.load(Ordering::Relaxed),
            spilled_bytes: c.spilled_bytes.load(Ordering::Relaxed),
            restored_objects: c.restored_objects.load(Ordering::Relaxed),
            spill_failures: c.spill_failures.load(Ordering::Relaxed),
            shard_restarts: c.shard_restarts.load(Ordering::Relaxed),
        }
    })
}

/// Worker threads alive now (blocking tasks and blocking actor calls run on them), or `None`
/// when no runtime runs.
pub fn worker_threads() -> Option<usize> {
    global::with_runtime(|rt| rt.workers.threads() + rt.actor_pool.threads())
}

/// Actors alive on the node (including ones starting or restarting), or `None` when no
/// runtime runs.
pub fn actor_count() -> Option<usize> {
    global::with_runtime(|rt| rt.actors.len())
}

/// Tasks on the node now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskCounts {
    /// Waiting for their arguments or their resources.
    pub waiting: usize,
    /// Running (including those blocked in a get).
    pub running: usize,
}

/// Tasks waiting and running, or `None` when no runtime runs.
pub fn tasks() -> Option<TaskCounts> {
    global::with_runtime(|rt| {
        let (waiting, running) = rt.scheduler.counts();
        TaskCounts { waiting, running }
    })
}
