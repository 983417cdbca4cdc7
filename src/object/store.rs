//! The store's shared face: the hot paths (put, seal, get, reference counting) that any thread
//! takes without a message round trip.
//!
//! Each shard's table sits behind its own mutex, held only for a table operation (tens of
//! nanoseconds), never while running user code or doing I/O. Everything that is lifecycle
//! rather than lookup goes to the store's actors: dropping freed values (user `Drop` code),
//! spilling, restoring and deleting files. The actors are reached through [`StoreActors`],
//! installed once they have started.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use actix::Addr;

use super::shard::{DeleteFiles, DropValues, RestoreObject, Restored, ShardActor};
use super::supervisor::{Reclaim, StoreSupervisor};
use super::table::{CancelProbe, Effects, Probe, Producer, RemoteCopy, ShardTable};
use super::value::StoredValue;
use super::waiter::Waiter;
use crate::base::error::GetError;
use crate::base::id::{ActorId, NodeId, ObjectId};

/// Number of shards; a power of two so that the shard of an id is a mask.
pub(crate) const SHARDS: usize = 16;

/// The store's actors, for the work the hot paths hand off.
#[derive(Clone)]
pub(crate) struct StoreActors {
    pub supervisor: Addr<StoreSupervisor>,
    pub shards: Vec<Addr<ShardActor>>,
}

pub(crate) struct ShardSlot {
    pub table: Mutex<ShardTable>,
    /// Freed values waiting for the shard actor to drop them.
    pub graveyard: Mutex<Vec<StoredValue>>,
}

/// Counters of store activity, for the state API.
#[derive(Debug, Default)]
pub(crate) struct StoreCounters {
    pub spilled_objects: AtomicU64,
    pub spilled_bytes: AtomicU64,
    pub restored_objects: AtomicU64,
    pub spill_failures: AtomicU64,
    pub shard_restarts: AtomicU64,
}

pub(crate) struct StoreInner {
    pub node_id: NodeId,
    pub shards: Box<[ShardSlot]>,
    pub memory_used: AtomicI64,
    pub memory_limit: u64,
    pub spill_dir: PathBuf,
    pub counters: StoreCounters,
    tick: AtomicU64,
    reclaim_requested: AtomicBool,
    closed: AtomicBool,
    actors: OnceLock<StoreActors>,
    actor_refs: OnceLock<Arc<dyn ActorRefs>>,
    remote_objects: OnceLock<Arc<dyn RemoteObjects>>,
}

/// Counts handles of actors held inside spilled objects, so those actors stay alive.
pub(crate) trait ActorRefs: Send + Sync {
    fn retain(&self, id: ActorId);
    fn release(&self, id: ActorId);
}

/// Values that stayed on other nodes: the cluster fetches them and lets them go.
pub(crate) trait RemoteObjects: Send + Sync {
    /// Fetches object `id`'s bytes from where `copy` says; answers `reply` with them (or why
    /// not), as a spiller answers a restore.
    fn fetch(&self, id: ObjectId, copy: RemoteCopy, reply: actix::Recipient<Restored>);
    /// Nobody here wants the value any more: its node may drop it.
    fn release(&self, id: ObjectId, copy: RemoteCopy);
}

/// A handle to one node's object store; cheap to clone.
#[derive(Clone)]
pub(crate) struct Store(Arc<StoreInner>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store(node {})", self.0.node_id)
    }
}

impl std::ops::Deref for Store {
    type Target = StoreInner;
    fn deref(&self) -> &StoreInner {
        &self.0
    }
}

impl Store {
    pub fn new(node_id: NodeId, memory_limit: u64, spill_dir: PathBuf) -> Self {
        let shards = (0..SHARDS)
            .map(|_| ShardSlot {
                table: Mutex::new(ShardTable::default()),
                graveyard: Mutex::new(Vec::new()),
            })
            .collect();
        Store(Arc::new(StoreInner {
            node_id,
            shards,
            memory_used: AtomicI64::new(0),
            memory_limit,
            spill_dir,
            counters: StoreCounters::default(),
            tick: AtomicU64::new(0),
            reclaim_requested: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            actors: OnceLock::new(),
            actor_refs: OnceLock::new(),
            remote_objects: OnceLock::new(),
        }))
    }

    pub fn install_actors(&self, actors: StoreActors) {
        let _ = self.actors.set(actors);
    }

    /// The cluster's fetcher of values on other nodes (once, when the node joins).
    pub fn install_remote_objects(&self, remote: Arc<dyn RemoteObjects>) {
        let _ = self.0.remote_objects.set(remote);
    }

    /// The cluster's fetcher, in a cluster.
    pub fn remote_objects(&self) -> Option<&Arc<dyn RemoteObjects>> {
        self.0.remote_objects.get()
    }

    pub fn install_actor_refs(&self, refs: Arc<dyn ActorRefs>) {
        let _ = self.actor_refs.set(refs);
    }

    pub fn shard_index(id: ObjectId) -> usize {
        (id.sequence() as usize) & (SHARDS - 1)
    }

    pub fn table(&self, index: usize) -> MutexGuard<'_, ShardTable> {
        // A panic never happens while a table is locked (no user code runs under it); if
        // one ever did, the table itself is still consistent between operations.
        self.shards[index]
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn with_table<R>(&self, id: ObjectId, f: impl FnOnce(&mut ShardTable) -> R) -> R {
        f(&mut self.table(Self::shard_index(id)))
    }

    fn next_tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    fn current_tick(&self) -> u64 {
        self.tick.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Stores a put value under a fresh id, held by one handle.
    pub fn put(&self, id: ObjectId, value: StoredValue) {
        let tick = self.next_tick();
        let fx = self.with_table(id, |t| t.insert_value(id, value, tick));
        self.apply(Self::shard_index(id), fx);
    }

    /// Registers an object a task will produce, held by one handle.
    pub fn create_pending(&self, id: ObjectId, producer: Producer) {
        self.with_table(id, |t| t.insert_pending(id, producer));
    }

    /// A task's result arrives.
    pub fn seal(&self, id: ObjectId, value: StoredValue) {
        let tick = self.next_tick();
        let fx = self.with_table(id, |t| t.seal(id, value, tick));
        self.apply(Self::shard_index(id), fx);
    }

    /// A ref that came from another node: one more handle if the object is known here, else
    /// an entry to fetch it from `owner` when wanted.
    pub fn adopt_remote(&self, id: ObjectId, owner: RemoteCopy) {
        self.with_table(id, |t| {
            if !t.incref(id) {
                t.insert_remote(id, owner);
            }
        });
    }

    /// A task's value stayed on the node that made it; it is fetched when wanted.
    pub fn seal_remote(&self, id: ObjectId, copy: RemoteCopy) {
        let fx = self.with_table(id, |t| t.seal_remote(id, copy));
        self.apply(Self::shard_index(id), fx);
    }

    /// The object will never have a value; false when it already had an outcome.
    pub fn fail(&self, id: ObjectId, error: GetError) -> bool {
        let (failed, fx) = self.with_table(id, |t| t.fail(id, Arc::new(error)));
        self.apply(Self::shard_index(id), fx);
        failed
    }

    pub fn incref(&self, id: ObjectId) -> bool {
        self.with_table(id, |t| t.incref(id))
    }

    pub fn decref(&self, id: ObjectId) {
        let fx = self.with_table(id, |t| t.decref(id));
        self.apply(Self::shard_index(id), fx);
    }

    /// Looks an object up, registering `waiter` when it is not ready. Asks for a restore
    /// when the object is on disk and this is the first to want it back.
    pub fn probe(&self, id: ObjectId, waiter: &mut Option<Waiter>) -> Probe {
        let tick = self.current_tick();
        let index = Self::shard_index(id);
        let probe = self.table(index).probe(id, tick, waiter);
        if let Probe::NotReady { restore: true } = probe {
            match self.actors.get() {
                Some(actors) => actors.shards[index].do_send(RestoreObject(id)),
                None => tracing::error!(%id, "object store actors are not running; cannot restore"),
            }
        }
        probe
    }

    /// Whether the object has a value somewhere (here, on disk or on another node) or
    /// failed; never starts reading it back.
    pub fn exists_anywhere(&self, id: ObjectId) -> bool {
        self.with_table(id, |t| t.exists_anywhere(id))
    }

    /// Registers `waiter` to be woken when the object's task finishes, unless it already
    /// has (the return value), without reading anything back.
    pub fn watch(&self, id: ObjectId, waiter: Waiter) -> bool {
        self.with_table(id, |t| t.watch(id, waiter))
    }

    /// Keeps the typed value decoded from restored bytes.
    pub fn upgrade(&self, id: ObjectId, value: StoredValue) {
        let fx = self.with_table(id, |t| t.upgrade(id, value));
        self.apply(Self::shard_index(id), fx);
    }

    pub fn cancel_probe(&self, id: ObjectId) -> CancelProbe {
        self.with_table(id, |t| t.cancel_probe(id))
    }

    /// Offers the objects here to `rows`.
    pub fn list(&self, rows: &mut crate::base::filter::Capped<crate::base::rows::ObjectInfo>) {
        for i in 0..SHARDS {
            self.table(i).list(self.node_id, rows);
        }
    }

    /// Objects by state: how many, and their bytes.
    pub fn counts(&self) -> Vec<(crate::base::rows::ObjectState, u64, u64)> {
        let mut counts = std::collections::HashMap::new();
        for i in 0..SHARDS {
            self.table(i).count(&mut counts);
        }
        counts.into_iter().map(|(s, (n, b))| (s, n, b)).collect()
    }

    /// Number of objects known to the store.
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.table(i).len()).sum()
    }

    pub fn memory_used(&self) -> u64 {
        self.memory_used.load(Ordering::Relaxed).max(0) as u64
    }

    /// Carries out what a table operation asked for, outside the table's lock.
    pub fn apply(&self, shard: usize, fx: Effects) {
        if fx.is_empty() {
            return;
        }
        let mut fx = fx;
        // Retains first: a spill file that holds refs must keep them before the in-memory
        // value (whose handles also hold them) is dropped.
        for id in std::mem::take(&mut fx.retain) {
            self.with_table(id, |t| t.retain_contained(id));
        }
        if let Some(refs) = self.actor_refs.get() {
            fx.retain_actors.drain(..).for_each(|id| refs.retain(id));
            fx.release_actors.drain(..).for_each(|id| refs.release(id));
        }
        if fx.memory_delta != 0 {
            let used = self
                .memory_used
                .fetch_add(fx.memory_delta, Ordering::Relaxed)
                + fx.memory_delta;
            if fx.memory_delta > 0 && used > self.memory_limit as i64 {
                self.request_reclaim();
            }
        }
        for waiter in fx.wake.drain(..) {
            waiter.fire();
        }
        for id in std::mem::take(&mut fx.restore) {
            if let Some(actors) = self.actors.get() {
                actors.shards[shard].do_send(RestoreObject(id));
            }
        }
        if !fx.release_remote.is_empty()
            && let Some(remote) = self.remote_objects.get()
        {
            fx.release_remote
                .drain(..)
                .for_each(|(id, copy)| remote.release(id, copy));
        }
        if !fx.delete_files.is_empty() {
            match self.actors.get() {
                Some(actors) => {
                    actors.shards[shard].do_send(DeleteFiles(std::mem::take(&mut fx.delete_files)))
                }
                None => fx.delete_files.iter().for_each(|p| {
                    let _ = std::fs::remove_file(p);
                }),
            }
        }
        if !fx.drop_values.is_empty() {
            self.bury(shard, std::mem::take(&mut fx.drop_values));
        }
        for id in std::mem::take(&mut fx.release) {
            let fx = self.with_table(id, |t| t.release_contained(id));
            self.apply(Self::shard_index(id), fx);
        }
    }

    /// Hands freed values to the shard actor to drop: their `Drop` may be user code, which
    /// must neither run under a lock nor on the caller's thread (it could panic or be slow).
    fn bury(&self, shard: usize, values: Vec<StoredValue>) {
        let actors = match self.actors.get() {
            Some(a) if !self.is_closed() => a,
            _ => return drop_all(values),
        };
        let was_empty = {
            let mut grave = self.shards[shard]
                .graveyard
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let was_empty = grave.is_empty();
            grave.extend(values);
            was_empty
        };
        if was_empty {
            actors.shards[shard].do_send(DropValues);
        }
    }

    pub fn request_reclaim(&self) {
        if self.is_closed() || self.reclaim_requested.swap(true, Ordering::AcqRel) {
            return;
        }
        match self.actors.get() {
            Some(actors) => actors.supervisor.do_send(Reclaim),
            None => self.reclaim_requested.store(false, Ordering::Release),
        }
    }

    /// Called by the supervisor when nothing can be spilled now; the next put that goes over
    /// the limit asks again.
    pub fn reclaim_abandoned(&self) {
        self.reclaim_requested.store(false, Ordering::Release);
    }

    /// Called by the supervisor when a reclaim round is over.
    pub fn reclaim_finished(&self) {
        self.reclaim_requested.store(false, Ordering::Release);
        if self.memory_used() > self.memory_limit {
            self.request_reclaim();
        }
    }

    /// Closes the store: pending objects fail with `ShutDown`, memory is released, spill
    /// files are deleted.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        for index in 0..SHARDS {
            let mut fx = self
                .table(index)
                .fail_all_pending(|object_id| GetError::ShutDown { object_id });
            for w in fx.wake.drain(..) {
                w.fire();
            }
            let fx = self.table(index).clear();
            self.memory_used
                .fetch_add(fx.memory_delta, Ordering::Relaxed);
            for w in fx.wake {
                w.fire();
            }
            for p in fx.delete_files {
                let _ = std::fs::remove_file(p);
            }
            drop_all(fx.drop_values);
            let grave = std::mem::take(
                &mut *self.shards[index]
                    .graveyard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            drop_all(grave);
        }
        let _ = std::fs::remove_dir_all(&self.spill_dir);
    }
}

/// Drops values, surviving a `Drop` impl that panics.
pub(crate) fn drop_all(values: Vec<StoredValue>) {
    for v in values {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(v))).is_err() {
            tracing::error!("a stored value panicked while being dropped");
        }
    }
}
