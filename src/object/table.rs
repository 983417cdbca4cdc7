//! The object table of one store shard: a pure state machine.
//!
//! It tracks, per object: its state (pending, in memory, on disk, restored bytes, failed), how
//! many handles and spilled containers refer to it, its size and last use, and who waits for
//! it. Every operation returns [`Effects`]: waiters to wake, values to drop, files to delete,
//! references to take or release in other shards. The caller applies them after releasing the
//! shard's lock. There is no I/O, clock or thread in here, so every transition is unit-tested.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::value::StoredValue;
use super::waiter::Waiter;
use crate::base::error::GetError;
use crate::base::filter::Capped;
use crate::base::id::{ActorId, IdHash, NodeId, ObjectId, TaskId};
use crate::base::rows::{ObjectInfo, ObjectState};

/// A spilled copy of an object on disk, with the ids of the refs inside it, which stay
/// referenced while the file exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpillFile {
    pub path: PathBuf,
    pub contained: Vec<ObjectId>,
    /// Actors whose handles the file holds; they stay alive while it exists.
    pub actors: Vec<ActorId>,
}

/// A value on another node, to be fetched when wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RemoteCopy {
    /// The node that holds it.
    pub node: NodeId,
    /// How that node knows it.
    pub key: RemoteKey,
}

/// How the node that holds a value knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemoteKey {
    /// The value of a task this node sent there, held until fetched.
    Task(TaskId),
    /// An object in that node's store (a ref that came from there inside a value).
    Object(ObjectId),
}

/// Where an object that is not in memory can be read back from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    File(PathBuf),
    Node(RemoteCopy),
}

#[derive(Debug)]
enum State {
    /// Its task has not finished.
    Pending { waiters: Vec<Waiter> },
    /// In memory, typed. `spilling` while a copy is being written to disk.
    InMemory { value: StoredValue, spilling: bool },
    /// Only on disk (see `Entry::file`). `restoring` while it is being read back.
    OnDisk {
        waiters: Vec<Waiter>,
        restoring: bool,
    },
    /// Read back from disk or fetched from another node, not yet decoded by a typed get.
    /// `spilling` while they are being written to disk.
    Bytes { bytes: Arc<Vec<u8>>, spilling: bool },
    /// Will never have a value.
    Failed(Arc<GetError>),
}

#[derive(Debug)]
struct Entry {
    state: State,
    /// Live `ObjectRef` handles in this process.
    handles: u32,
    /// Spilled objects whose files hold a ref to this one.
    contained: u32,
    size: u64,
    last_used: u64,
    file: Option<SpillFile>,
    /// The value is on another node (it stays there until fetched).
    remote: Option<RemoteCopy>,
    /// Spilling failed for a reason that would repeat (its serialization fails).
    unspillable: bool,
    /// The task that makes it; `None` for a put.
    producer: Option<Producer>,
}

impl Entry {
    fn object_state(&self) -> ObjectState {
        match &self.state {
            State::Pending { .. } if self.remote.is_some() => ObjectState::Remote,
            State::Pending { .. } => ObjectState::Pending,
            State::InMemory { .. } | State::Bytes { .. } => ObjectState::InMemory,
            State::OnDisk { .. } => ObjectState::Spilled,
            State::Failed(_) => ObjectState::Failed,
        }
    }

    fn info(&self, object_id: ObjectId, node_id: NodeId) -> ObjectInfo {
        ObjectInfo {
            object_id,
            size: self.size,
            state: self.object_state(),
            node_id,
            ref_count: self.handles,
            contained_in: self.contained,
            spilled: self.file.is_some(),
            function: self.producer.map(|p| p.function.to_string()),
        }
    }
}

/// The task that makes an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Producer {
    pub task: TaskId,
    pub function: &'static str,
}

impl Entry {
    fn new(state: State) -> Self {
        Entry {
            state,
            handles: 1,
            contained: 0,
            size: 0,
            last_used: 0,
            file: None,
            remote: None,
            unspillable: false,
            producer: None,
        }
    }

    fn in_memory_bytes(&self) -> u64 {
        match &self.state {
            State::InMemory { .. } => self.size,
            State::Bytes { bytes, .. } => bytes.len() as u64,
            _ => 0,
        }
    }
}

/// What the caller must do after an operation, outside the lock.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Effects {
    pub wake: Vec<Waiter>,
    /// Values leaving the store; dropping them runs user code, so it happens off the lock.
    pub drop_values: Vec<StoredValue>,
    pub delete_files: Vec<PathBuf>,
    /// Ids whose `contained` count goes up (a spill file now holds them).
    pub retain: Vec<ObjectId>,
    /// Actors a new spill file holds handles of.
    pub retain_actors: Vec<ActorId>,
    /// Actors a deleted spill file held handles of.
    pub release_actors: Vec<ActorId>,
    /// Ids whose `contained` count goes down (a spill file holding them is gone).
    pub release: Vec<ObjectId>,
    /// Objects to read back now (waited for when their value went elsewhere).
    pub restore: Vec<ObjectId>,
    /// Values on other nodes nobody here wants any more (the object, and where it is).
    pub release_remote: Vec<(ObjectId, RemoteCopy)>,
    /// Change in bytes held in memory.
    pub memory_delta: i64,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.wake.is_empty()
            && self.drop_values.is_empty()
            && self.delete_files.is_empty()
            && self.retain.is_empty()
            && self.release.is_empty()
            && self.retain_actors.is_empty()
            && self.release_actors.is_empty()
            && self.restore.is_empty()
            && self.release_remote.is_empty()
            && self.memory_delta == 0
    }
}

/// A ready object, as seen by a get.
#[derive(Debug, Clone)]
pub(crate) enum Ready {
    Value(StoredValue),
    Bytes(Arc<Vec<u8>>),
    Failed(Arc<GetError>),
}

/// The answer to a probe.
#[derive(Debug)]
pub(crate) enum Probe {
    Ready(Ready),
    /// Not ready. `restore` is true when the caller must ask for the object to be read back
    /// from disk (it is the first to want it).
    NotReady {
        restore: bool,
    },
    /// Freed, or never known here.
    Missing,
}

/// What a spill of one object should do.
#[derive(Debug)]
pub(crate) enum SpillStart {
    /// Write this value out.
    Write(StoredValue),
    /// Write these bytes out as they are (already encoded).
    WriteBytes(Arc<Vec<u8>>),
    /// A file from an earlier spill is still valid: the object went to disk at once.
    Done(Effects),
    /// No longer spillable (freed, read meanwhile, or not in memory).
    Skip,
}

/// A candidate for spilling: least recently used first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Candidate {
    pub last_used: u64,
    pub id: ObjectId,
    pub size: u64,
}

/// What a cancel request found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CancelProbe {
    /// Its task has not finished.
    Pending(Producer),
    /// It was made by a put.
    NotATask,
    /// Its task finished (with a value or an error).
    Done,
    Missing,
}

#[derive(Debug, Default)]
pub(crate) struct ShardTable {
    entries: HashMap<ObjectId, Entry, IdHash>,
    memory: u64,
}

impl ShardTable {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Offers the objects of this shard, as the state API shows them, to `rows`.
    pub fn list(&self, node_id: NodeId, rows: &mut Capped<ObjectInfo>) {
        rows.offer_all(self.entries.iter().map(|(id, e)| e.info(*id, node_id)));
    }

    /// Adds this shard's objects to `counts`: by state, how many and their bytes.
    pub fn count(&self, counts: &mut HashMap<ObjectState, (u64, u64)>) {
        for entry in self.entries.values() {
            let c = counts.entry(entry.object_state()).or_default();
            c.0 += 1;
            c.1 += entry.size;
        }
    }

    /// Bytes held in memory by this shard.
    #[cfg(test)]
    pub fn memory(&self) -> u64 {
        self.memory
    }

    fn account(&mut self, fx: &mut Effects, before: u64, after: u64) {
        let delta = after as i64 - before as i64;
        self.memory = (self.memory as i64 + delta) as u64;
        fx.memory_delta += delta;
    }

    /// A new object with a value (a put), held by one handle.
    pub fn insert_value(&mut self, id: ObjectId, value: StoredValue, tick: u64) -> Effects {
        let mut fx = Effects::default();
        let mut entry = Entry::new(State::InMemory {
            value,
            spilling: false,
        });
        if let State::InMemory { value, .. } = &entry.state {
            entry.size = value.size;
        }
        entry.last_used = tick;
        let size = entry.size;
        self.entries.insert(id, entry);
        self.account(&mut fx, 0, size);
        fx
    }

    /// A new object that a task will produce, held by one handle.
    pub fn insert_pending(&mut self, id: ObjectId, producer: Producer) {
        let mut entry = Entry::new(State::Pending {
            waiters: Vec::new(),
        });
        entry.producer = Some(producer);
        self.entries.insert(id, entry);
    }

    /// One more handle. False when the object is unknown (already freed).
    pub fn incref(&mut self, id: ObjectId) -> bool {
        match self.entries.get_mut(&id) {
            Some(e) => {
                e.handles += 1;
                true
            }
            None => false,
        }
    }

    /// One handle fewer; frees the object when nothing refers to it any more.
    pub fn decref(&mut self, id: ObjectId) -> Effects {
        match self.entries.get_mut(&id) {
            Some(e) => {
                e.handles = e.handles.saturating_sub(1);
                self.free_if_unreferenced(id)
            }
            None => Effects::default(),
        }
    }

    /// A spill file now holds a ref to `id`.
    pub fn retain_contained(&mut self, id: ObjectId) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.contained += 1;
        }
    }

    /// A spill file holding a ref to `id` is gone.
    pub fn release_contained(&mut self, id: ObjectId) -> Effects {
        match self.entries.get_mut(&id) {
            Some(e) => {
                e.contained = e.contained.saturating_sub(1);
                self.free_if_unreferenced(id)
            }
            None => Effects::default(),
        }
    }

    fn free_if_unreferenced(&mut self, id: ObjectId) -> Effects {
        let mut fx = Effects::default();
        let Some(e) = self.entries.get(&id) else {
            return fx;
        };
        if e.handles > 0 || e.contained > 0 {
            return fx;
        }
        let Some(e) = self.entries.remove(&id) else {
            return fx;
        };
        let before = e.in_memory_bytes();
        self.account(&mut fx, before, 0);
        // Not fetched yet: its node still holds it.
        if let Some(copy) = e.remote {
            fx.release_remote.push((id, copy));
        }
        match e.state {
            State::InMemory { value, .. } => fx.drop_values.push(value),
            State::Pending { waiters, .. } | State::OnDisk { waiters, .. } => {
                fx.wake.extend(waiters)
            }
            State::Bytes { .. } | State::Failed(_) => {}
        }
        if let Some(file) = e.file {
            fx.delete_files.push(file.path);
            fx.release.extend(file.contained);
            fx.release_actors.extend(file.actors);
        }
        fx
    }

    /// A task's value arrives. Dropped when the object was freed or already has an outcome
    /// (it was cancelled, say).
    pub fn seal(&mut self, id: ObjectId, value: StoredValue, tick: u64) -> Effects {
        let mut fx = Effects::default();
        let Some(e) = self.entries.get_mut(&id) else {
            fx.drop_values.push(value);
            return fx;
        };
        if !matches!(e.state, State::Pending { .. }) {
            fx.drop_values.push(value);
            return fx;
        }
        let size = value.size;
        let old = std::mem::replace(
            &mut e.state,
            State::InMemory {
                value,
                spilling: false,
            },
        );
        e.size = size;
        e.last_used = tick;
        if let State::Pending { waiters, .. } = old {
            fx.wake = waiters;
        }
        self.account(&mut fx, 0, size);
        fx
    }

    /// A task's value stayed on the node that made it: the object is ready to be read back
    /// from there (as from disk). Read back at once if somebody already waits.
    pub fn seal_remote(&mut self, id: ObjectId, copy: RemoteCopy) -> Effects {
        let mut fx = Effects::default();
        let Some(e) = self.entries.get_mut(&id) else {
            fx.release_remote.push((id, copy));
            return fx;
        };
        let State::Pending { waiters } = &mut e.state else {
            fx.release_remote.push((id, copy));
            return fx;
        };
        // Those who only wanted to know that it exists are told; the others want its value.
        let (watchers, waiters): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(waiters)
            .into_iter()
            .partition(|w| matches!(w, Waiter::Watch(_)));
        fx.wake = watchers;
        let restoring = !waiters.is_empty();
        if restoring {
            fx.restore.push(id);
        }
        e.state = State::OnDisk { waiters, restoring };
        e.remote = Some(copy);
        fx
    }

    /// A ref that came from another node inside a value: the object lives in that node's
    /// store and is fetched from there when wanted. Held by one handle.
    pub fn insert_remote(&mut self, id: ObjectId, copy: RemoteCopy) {
        let mut e = Entry::new(State::OnDisk {
            waiters: Vec::new(),
            restoring: false,
        });
        e.remote = Some(copy);
        self.entries.insert(id, e);
    }

    /// The object will never have a value. Only a pending object can fail; the return value
    /// says whether this one did.
    pub fn fail(&mut self, id: ObjectId, error: Arc<GetError>) -> (bool, Effects) {
        let mut fx = Effects::default();
        let Some(e) = self.entries.get_mut(&id) else {
            return (false, fx);
        };
        if !matches!(e.state, State::Pending { .. }) {
            return (false, fx);
        }
        if let State::Pending { waiters, .. } =
            std::mem::replace(&mut e.state, State::Failed(error))
        {
            fx.wake = waiters;
        }
        (true, fx)
    }

    /// Looks at an object; when it is not ready and `waiter` is given, the waiter is
    /// registered (taken out of the option) and fires when the state changes.
    pub fn probe(&mut self, id: ObjectId, tick: u64, waiter: &mut Option<Waiter>) -> Probe {
        let Some(e) = self.entries.get_mut(&id) else {
            return Probe::Missing;
        };
        match &mut e.state {
            State::InMemory { value, .. } => {
                e.last_used = tick;
                Probe::Ready(Ready::Value(value.clone()))
            }
            State::Bytes { bytes, .. } => Probe::Ready(Ready::Bytes(Arc::clone(bytes))),
            State::Failed(err) => Probe::Ready(Ready::Failed(Arc::clone(err))),
            State::Pending { waiters, .. } => {
                waiters.extend(waiter.take());
                Probe::NotReady { restore: false }
            }
            State::OnDisk { waiters, restoring } => {
                let restore = waiter.is_some() && !*restoring;
                if restore {
                    *restoring = true;
                }
                waiters.extend(waiter.take());
                Probe::NotReady { restore }
            }
        }
    }

    /// Whether the object's task has finished (its value may be on disk or on another
    /// node) or it failed. An unknown object counts as existing: a get says what happened.
    pub fn exists_anywhere(&self, id: ObjectId) -> bool {
        self.entries
            .get(&id)
            .is_none_or(|e| !matches!(e.state, State::Pending { .. }))
    }

    /// Adds `waiter` to a pending object's; returns whether the object already exists
    /// anywhere instead (then `waiter` is dropped). Never starts a restore.
    pub fn watch(&mut self, id: ObjectId, waiter: Waiter) -> bool {
        match self.entries.get_mut(&id) {
            Some(Entry {
                state: State::Pending { waiters },
                ..
            }) => {
                waiters.push(waiter);
                false
            }
            _ => true,
        }
    }

    /// A typed get decoded restored bytes: keep the typed value instead.
    pub fn upgrade(&mut self, id: ObjectId, value: StoredValue) -> Effects {
        let mut fx = Effects::default();
        let Some(e) = self.entries.get_mut(&id) else {
            fx.drop_values.push(value);
            return fx;
        };
        let State::Bytes { bytes, .. } = &e.state else {
            fx.drop_values.push(value);
            return fx;
        };
        let before = bytes.len() as u64;
        e.size = value.size;
        e.state = State::InMemory {
            value,
            spilling: false,
        };
        let after = e.size;
        self.account(&mut fx, before, after);
        fx
    }

    /// Objects that could spill now: in memory, not being read by anyone, not known to fail;
    /// and bytes read back from a spill file that no typed get has decoded yet (they go back
    /// to that file).
    pub fn spill_candidates(&self, out: &mut Vec<Candidate>) {
        for (id, e) in &self.entries {
            let size = match &e.state {
                State::InMemory {
                    value,
                    spilling: false,
                } if !e.unspillable && value.is_unshared() => e.size,
                // Back to their file, or written to one (fetched from another node).
                State::Bytes {
                    bytes,
                    spilling: false,
                } if !e.unspillable && Arc::strong_count(bytes) == 1 => bytes.len() as u64,
                _ => continue,
            };
            out.push(Candidate {
                last_used: e.last_used,
                id: *id,
                size,
            });
        }
    }

    pub fn begin_spill(&mut self, id: ObjectId) -> SpillStart {
        let Some(e) = self.entries.get_mut(&id) else {
            return SpillStart::Skip;
        };
        // Restored bytes nobody reads now, whose file is still there: back to disk at once.
        if let State::Bytes {
            bytes,
            spilling: false,
        } = &e.state
            && e.file.is_some()
            && Arc::strong_count(bytes) == 1
        {
            let before = bytes.len() as u64;
            e.state = State::OnDisk {
                waiters: Vec::new(),
                restoring: false,
            };
            let mut fx = Effects::default();
            self.account(&mut fx, before, 0);
            return SpillStart::Done(fx);
        }
        // Bytes fetched from another node, which gave its copy up: written to a file as they
        // are (they are already encoded).
        if let State::Bytes { bytes, spilling } = &mut e.state {
            if *spilling || e.unspillable || Arc::strong_count(bytes) != 1 {
                return SpillStart::Skip;
            }
            *spilling = true;
            return SpillStart::WriteBytes(Arc::clone(bytes));
        }
        let State::InMemory { value, spilling } = &mut e.state else {
            return SpillStart::Skip;
        };
        if *spilling || e.unspillable || !value.is_unshared() {
            return SpillStart::Skip;
        }
        if e.file.is_some() {
            let mut fx = Effects::default();
            let old = std::mem::replace(
                &mut e.state,
                State::OnDisk {
                    waiters: Vec::new(),
                    restoring: false,
                },
            );
            let size = e.size;
            if let State::InMemory { value, .. } = old {
                fx.drop_values.push(value);
            }
            self.account(&mut fx, size, 0);
            return SpillStart::Done(fx);
        }
        *spilling = true;
        SpillStart::Write(value.clone())
    }

    /// The spill of `id` was written to `file`.
    pub fn finish_spill(&mut self, id: ObjectId, file: SpillFile) -> Effects {
        let mut fx = Effects::default();
        let Some(e) = self.entries.get_mut(&id) else {
            // Freed while being written.
            fx.delete_files.push(file.path);
            return fx;
        };
        let size = match &e.state {
            State::InMemory { spilling: true, .. } => e.size,
            State::Bytes {
                bytes,
                spilling: true,
            } => bytes.len() as u64,
            _ => {
                fx.delete_files.push(file.path);
                return fx;
            }
        };
        fx.retain.extend(file.contained.iter().copied());
        fx.retain_actors.extend(file.actors.iter().copied());
        e.file = Some(file);
        if let State::InMemory { value, .. } = std::mem::replace(
            &mut e.state,
            State::OnDisk {
                waiters: Vec::new(),
                restoring: false,
            },
        ) {
            fx.drop_values.push(value);
        }
        self.account(&mut fx, size, 0);
        fx
    }

    /// The spill of `id` failed; `permanent` when retrying would fail the same way.
    pub fn abort_spill(&mut self, id: ObjectId, permanent: bool) {
        if let Some(e) = self.entries.get_mut(&id)
            && let State::InMemory { spilling, .. } | State::Bytes { spilling, .. } = &mut e.state
        {
            *spilling = false;
            e.unspillable |= permanent;
        }
    }

    /// Where an object that is not in memory is read back from.
    pub fn restore_source(&self, id: ObjectId) -> Option<Source> {
        let e = self.entries.get(&id)?;
        match (&e.remote, &e.file) {
            (Some(copy), _) => Some(Source::Node(*copy)),
            (None, Some(file)) => Some(Source::File(file.path.clone())),
            (None, None) => None,
        }
    }

    /// A restore of `id` finished, with its bytes or with why it failed.
    pub fn finish_restore(
        &mut self,
        id: ObjectId,
        result: Result<Arc<Vec<u8>>, Arc<GetError>>,
    ) -> Effects {
        let mut fx = Effects::default();
        let Some(e) = self.entries.get_mut(&id) else {
            return fx;
        };
        if !matches!(e.state, State::OnDisk { .. }) {
            return fx;
        }
        // Fetched from another node, which gave its copy up.
        e.remote = None;
        let new = match result {
            Ok(bytes) => {
                let n = bytes.len() as u64;
                self.memory += n;
                fx.memory_delta += n as i64;
                State::Bytes {
                    bytes,
                    spilling: false,
                }
            }
            Err(err) => State::Failed(err),
        };
        let e = self.entries.get_mut(&id).expect("entry checked above");
        if let State::OnDisk { waiters, .. } = std::mem::replace(&mut e.state, new) {
            fx.wake = waiters;
        }
        fx
    }

    /// For cancel: is the object still being made, and by which task?
    pub fn cancel_probe(&self, id: ObjectId) -> CancelProbe {
        match self.entries.get(&id) {
            None => CancelProbe::Missing,
            Some(Entry { producer: None, .. }) => CancelProbe::NotATask,
            Some(Entry {
                state: State::Pending { .. },
                producer: Some(p),
                ..
            }) => CancelProbe::Pending(*p),
            Some(_) => CancelProbe::Done,
        }
    }

    /// Fails every pending object (the runtime is going away).
    pub fn fail_all_pending(&mut self, error: impl Fn(ObjectId) -> GetError) -> Effects {
        let mut fx = Effects::default();
        for (id, e) in self.entries.iter_mut() {
            match &mut e.state {
                State::Pending { waiters, .. } | State::OnDisk { waiters, .. } => {
                    fx.wake.append(waiters);
                    e.state = State::Failed(Arc::new(error(*id)));
                }
                _ => {}
            }
        }
        fx
    }

    /// Drops everything (shutdown); returns what must be dropped and deleted.
    pub fn clear(&mut self) -> Effects {
        let mut fx = Effects::default();
        for (_, e) in self.entries.drain() {
            match e.state {
                State::InMemory { value, .. } => fx.drop_values.push(value),
                State::Pending { waiters, .. } | State::OnDisk { waiters, .. } => {
                    fx.wake.extend(waiters)
                }
                _ => {}
            }
            if let Some(f) = e.file {
                fx.delete_files.push(f.path);
            }
        }
        fx.memory_delta = -(self.memory as i64);
        self.memory = 0;
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::id::NodeId;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ids() -> impl FnMut() -> ObjectId {
        let prefix = NodeId::random().prefix();
        let mut n = 0;
        move || {
            n += 1;
            ObjectId::from_parts(prefix, n)
        }
    }

    fn producer() -> Producer {
        Producer {
            task: TaskId::from_parts(1, 1),
            function: "f",
        }
    }

    fn counter_waiter(count: &Arc<AtomicUsize>) -> Option<Waiter> {
        let c = Arc::clone(count);
        Some(Waiter::Call(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })))
    }

    fn fire(fx: Effects) -> Effects {
        let mut fx = fx;
        for w in fx.wake.drain(..) {
            w.fire();
        }
        fx
    }

    #[test]
    fn put_value_is_ready_and_counted() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        let fx = t.insert_value(id, StoredValue::new(vec![0u8; 100]), 1);
        assert_eq!(fx.memory_delta, 108);
        assert_eq!(t.memory(), 108);
        match t.probe(id, 2, &mut None) {
            Probe::Ready(Ready::Value(v)) => {
                assert_eq!(*v.downcast::<Vec<u8>>().unwrap(), vec![0u8; 100])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pending_object_wakes_its_waiters_when_sealed() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        t.insert_pending(id, producer());
        let woken = Arc::new(AtomicUsize::new(0));
        let mut w = counter_waiter(&woken);
        assert!(matches!(
            t.probe(id, 0, &mut w),
            Probe::NotReady { restore: false }
        ));
        assert!(w.is_none(), "the waiter was taken");
        let fx = fire(t.seal(id, StoredValue::new(7u32), 1));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert_eq!(fx.memory_delta, 4);
        assert!(matches!(
            t.probe(id, 2, &mut None),
            Probe::Ready(Ready::Value(_))
        ));
    }

    #[test]
    fn a_second_outcome_is_discarded() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        t.insert_pending(id, producer());
        let err = Arc::new(GetError::NotInitialized);
        assert!(t.fail(id, Arc::clone(&err)).0);
        let fx = t.seal(id, StoredValue::new(1u8), 0);
        assert_eq!(fx.drop_values.len(), 1, "the late value is dropped");
        assert!(!t.fail(id, err).0);
        assert!(matches!(
            t.probe(id, 0, &mut None),
            Probe::Ready(Ready::Failed(_))
        ));
    }

    #[test]
    fn last_handle_frees_the_object_and_its_memory() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        let _ = t.insert_value(id, StoredValue::new(5u64), 0);
        assert!(t.incref(id));
        assert!(t.decref(id).is_empty());
        let fx = t.decref(id);
        assert_eq!(fx.drop_values.len(), 1);
        assert_eq!(fx.memory_delta, -8);
        assert_eq!(t.len(), 0);
        assert!(matches!(t.probe(id, 0, &mut None), Probe::Missing));
        assert!(!t.incref(id), "a freed object cannot be revived");
    }

    #[test]
    fn value_of_a_freed_pending_object_is_dropped_on_arrival() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        t.insert_pending(id, producer());
        let _ = t.decref(id);
        let fx = t.seal(id, StoredValue::new(1u8), 0);
        assert_eq!(fx.drop_values.len(), 1);
        assert_eq!(t.memory(), 0);
    }

    #[test]
    fn spill_moves_value_to_disk_and_restore_brings_bytes_back() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        let inner = next();
        let _ = t.insert_value(id, StoredValue::new(vec![1u64; 10]), 3);
        let mut cands = Vec::new();
        t.spill_candidates(&mut cands);
        assert_eq!(
            cands,
            vec![Candidate {
                last_used: 3,
                id,
                size: 88
            }]
        );
        let SpillStart::Write(v) = t.begin_spill(id) else {
            panic!("should write")
        };
        drop(v);
        assert!(
            matches!(t.begin_spill(id), SpillStart::Skip),
            "one spill at a time"
        );
        let file = SpillFile {
            path: "/spill/a".into(),
            contained: vec![inner],
            actors: vec![ActorId::from_parts(1, 9)],
        };
        let fx = t.finish_spill(id, file);
        assert_eq!(fx.retain, vec![inner]);
        assert_eq!(fx.retain_actors, vec![ActorId::from_parts(1, 9)]);
        assert_eq!(fx.drop_values.len(), 1);
        assert_eq!(fx.memory_delta, -88);
        assert_eq!(t.memory(), 0);

        let woken = Arc::new(AtomicUsize::new(0));
        let mut w1 = counter_waiter(&woken);
        let mut w2 = counter_waiter(&woken);
        assert!(matches!(
            t.probe(id, 4, &mut w1),
            Probe::NotReady { restore: true }
        ));
        assert!(
            matches!(t.probe(id, 4, &mut w2), Probe::NotReady { restore: false }),
            "restore asked once"
        );
        assert!(matches!(
            t.probe(id, 4, &mut None),
            Probe::NotReady { restore: false }
        ));
        let fx = fire(t.finish_restore(id, Ok(Arc::new(vec![9u8; 5]))));
        assert_eq!(woken.load(Ordering::SeqCst), 2);
        assert_eq!(fx.memory_delta, 5);
        assert_eq!(
            t.memory(),
            5,
            "restored bytes count against the store's memory"
        );
        // Restored bytes no typed get has decoded can spill again (back to their file),
        // unless someone reads them now.
        let Probe::Ready(Ready::Bytes(reading)) = t.probe(id, 5, &mut None) else {
            panic!("restored bytes are ready")
        };
        let mut cands = Vec::new();
        t.spill_candidates(&mut cands);
        assert!(cands.is_empty(), "being read");
        assert!(matches!(t.begin_spill(id), SpillStart::Skip));
        drop(reading);
        t.spill_candidates(&mut cands);
        assert_eq!(
            cands.iter().map(|c| (c.id, c.size)).collect::<Vec<_>>(),
            vec![(id, 5)]
        );
        let SpillStart::Done(fx) = t.begin_spill(id) else {
            panic!("restored bytes go back to their file")
        };
        assert_eq!((fx.memory_delta, t.memory()), (-5, 0));
        let mut w3 = counter_waiter(&woken);
        assert!(matches!(
            t.probe(id, 5, &mut w3),
            Probe::NotReady { restore: true }
        ));
        let _ = fire(t.finish_restore(id, Ok(Arc::new(vec![9u8; 5]))));
        assert!(matches!(
            t.probe(id, 5, &mut None),
            Probe::Ready(Ready::Bytes(_))
        ));
        let fx = t.upgrade(id, StoredValue::new(vec![1u64; 10]));
        assert_eq!(fx.memory_delta, 88 - 5);

        // The file is still valid: spilling again needs no write.
        let SpillStart::Done(fx) = t.begin_spill(id) else {
            panic!("file reused")
        };
        assert_eq!(fx.memory_delta, -88);

        // Freeing deletes the file and releases the refs it held.
        let fx = t.decref(id);
        assert_eq!(fx.delete_files, vec![PathBuf::from("/spill/a")]);
        assert_eq!(fx.release, vec![inner]);
        assert_eq!(fx.release_actors, vec![ActorId::from_parts(1, 9)]);
    }

    #[test]
    fn objects_being_read_do_not_spill() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        let _ = t.insert_value(id, StoredValue::new(1u32), 0);
        let Probe::Ready(Ready::Value(reader)) = t.probe(id, 1, &mut None) else {
            panic!()
        };
        let mut cands = Vec::new();
        t.spill_candidates(&mut cands);
        assert!(cands.is_empty());
        assert!(matches!(t.begin_spill(id), SpillStart::Skip));
        drop(reader);
        t.spill_candidates(&mut cands);
        assert_eq!(cands.len(), 1);
    }

    #[test]
    fn a_permanently_failed_spill_is_not_retried() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        let _ = t.insert_value(id, StoredValue::new(1u32), 0);
        assert!(matches!(t.begin_spill(id), SpillStart::Write(_)));
        t.abort_spill(id, false);
        assert!(
            matches!(t.begin_spill(id), SpillStart::Write(_)),
            "transient failure: try again"
        );
        t.abort_spill(id, true);
        assert!(matches!(t.begin_spill(id), SpillStart::Skip));
        assert!(
            matches!(t.probe(id, 0, &mut None), Probe::Ready(Ready::Value(_))),
            "the value is kept"
        );
    }

    #[test]
    fn freed_while_spilling_deletes_the_new_file() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        let _ = t.insert_value(id, StoredValue::new(1u32), 0);
        let SpillStart::Write(_) = t.begin_spill(id) else {
            panic!()
        };
        let _ = t.decref(id);
        let fx = t.finish_spill(
            id,
            SpillFile {
                path: "/spill/b".into(),
                contained: vec![],
                actors: vec![],
            },
        );
        assert_eq!(fx.delete_files, vec![PathBuf::from("/spill/b")]);
    }

    #[test]
    fn contained_refs_keep_an_object_alive() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        let _ = t.insert_value(id, StoredValue::new(1u32), 0);
        t.retain_contained(id);
        assert!(t.decref(id).is_empty(), "still held by a spilled container");
        let fx = t.release_contained(id);
        assert_eq!(fx.drop_values.len(), 1);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn bytes_fetched_from_another_node_count_and_can_spill() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let copy = RemoteCopy {
            node: NodeId::random(),
            key: RemoteKey::Task(TaskId::from_parts(3, 5)),
        };
        let woken = Arc::new(AtomicUsize::new(0));
        let a = next();
        t.insert_pending(a, producer());
        let _ = fire(t.seal_remote(a, copy));
        let mut w = counter_waiter(&woken);
        assert!(matches!(
            t.probe(a, 1, &mut w),
            Probe::NotReady { restore: true }
        ));
        let _ = fire(t.finish_restore(a, Ok(Arc::new(vec![7u8; 300]))));
        assert_eq!(
            t.memory(),
            300,
            "fetched bytes count against the store's memory"
        );
        // Nobody reads them and no typed get decoded them: they may spill, written as they
        // are (there is no file yet, and their node gave its copy up).
        let mut cands = Vec::new();
        t.spill_candidates(&mut cands);
        assert_eq!(
            cands.iter().map(|c| (c.id, c.size)).collect::<Vec<_>>(),
            vec![(a, 300)]
        );
        let SpillStart::WriteBytes(bytes) = t.begin_spill(a) else {
            panic!("written as they are")
        };
        assert_eq!(bytes.len(), 300);
        assert!(matches!(t.begin_spill(a), SpillStart::Skip), "once");
        drop(bytes);
        let file = SpillFile {
            path: PathBuf::from("/spill/fetched"),
            contained: Vec::new(),
            actors: Vec::new(),
        };
        let fx = t.finish_spill(a, file);
        assert_eq!((fx.memory_delta, t.memory()), (-300, 0));
        assert_eq!(
            t.restore_source(a),
            Some(Source::File(PathBuf::from("/spill/fetched")))
        );
        // A failed write lets them stay, and spill again later.
        let b = next();
        t.insert_pending(b, producer());
        let _ = fire(t.seal_remote(b, copy));
        let mut w = counter_waiter(&woken);
        let _ = t.probe(b, 1, &mut w);
        let _ = fire(t.finish_restore(b, Ok(Arc::new(vec![1u8; 10]))));
        assert!(matches!(t.begin_spill(b), SpillStart::WriteBytes(_)));
        t.abort_spill(b, false);
        assert!(matches!(t.begin_spill(b), SpillStart::WriteBytes(_)));
    }

    #[test]
    fn a_value_left_on_another_node_is_fetched_when_wanted_and_let_go_when_freed() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let copy = RemoteCopy {
            node: NodeId::random(),
            key: RemoteKey::Task(TaskId::from_parts(3, 4)),
        };
        let woken = Arc::new(AtomicUsize::new(0));
        // Nobody waits yet: no fetch; the first get asks for one, once.
        let a = next();
        t.insert_pending(a, producer());
        assert!(fire(t.seal_remote(a, copy)).restore.is_empty());
        assert_eq!(t.restore_source(a), Some(Source::Node(copy)));
        let mut w = counter_waiter(&woken);
        assert!(matches!(
            t.probe(a, 1, &mut w),
            Probe::NotReady { restore: true }
        ));
        let mut w2 = counter_waiter(&woken);
        assert!(matches!(
            t.probe(a, 1, &mut w2),
            Probe::NotReady { restore: false }
        ));
        let _ = fire(t.finish_restore(a, Ok(Arc::new(vec![7u8; 3]))));
        assert_eq!(woken.load(Ordering::SeqCst), 2);
        assert!(matches!(
            t.probe(a, 2, &mut None),
            Probe::Ready(Ready::Bytes(_))
        ));
        // Fetched: freeing it releases nothing elsewhere.
        assert!(fire(t.decref(a)).release_remote.is_empty());

        // Somebody already waits: fetched at once.
        let b = next();
        t.insert_pending(b, producer());
        let mut w = counter_waiter(&woken);
        assert!(matches!(
            t.probe(b, 1, &mut w),
            Probe::NotReady { restore: false }
        ));
        assert_eq!(fire(t.seal_remote(b, copy)).restore, vec![b]);

        // Freed before anyone fetched it: its node may let it go.
        let c = next();
        t.insert_pending(c, producer());
        let _ = fire(t.seal_remote(c, copy));
        assert_eq!(fire(t.decref(c)).release_remote, vec![(c, copy)]);

        // Watched (wait_anywhere): the watcher is told it exists, nothing is fetched.
        let d = next();
        t.insert_pending(d, producer());
        assert!(!t.exists_anywhere(d));
        let signal = Arc::new(crate::object::waiter::Signal::default());
        assert!(!t.watch(d, Waiter::Watch(Arc::clone(&signal))));
        let fx = t.seal_remote(d, copy);
        assert!(fx.restore.is_empty());
        let _ = fire(fx);
        assert!(signal.wait_until(Some(std::time::Instant::now())));
        assert!(t.exists_anywhere(d));
        assert!(
            t.watch(d, Waiter::Watch(signal)),
            "exists: nothing to watch"
        );
    }

    #[test]
    fn failed_restore_fails_the_object_and_wakes_waiters() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        let _ = t.insert_value(id, StoredValue::new(1u32), 0);
        let SpillStart::Write(_) = t.begin_spill(id) else {
            panic!()
        };
        let _ = t.finish_spill(
            id,
            SpillFile {
                path: "/x".into(),
                contained: vec![],
                actors: vec![],
            },
        );
        let woken = Arc::new(AtomicUsize::new(0));
        let mut w = counter_waiter(&woken);
        let _ = t.probe(id, 0, &mut w);
        let _ = fire(t.finish_restore(id, Err(Arc::new(GetError::NotInitialized))));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert!(matches!(
            t.probe(id, 0, &mut None),
            Probe::Ready(Ready::Failed(_))
        ));
    }

    #[test]
    fn cancel_probe_names_the_producer() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let (a, b) = (next(), next());
        let c = next();
        t.insert_pending(a, producer());
        let _ = t.insert_value(b, StoredValue::new(1u8), 0);
        t.insert_pending(c, producer());
        let _ = t.seal(c, StoredValue::new(1u8), 0);
        assert_eq!(t.cancel_probe(a), CancelProbe::Pending(producer()));
        assert_eq!(t.cancel_probe(b), CancelProbe::NotATask);
        assert_eq!(t.cancel_probe(c), CancelProbe::Done);
        assert_eq!(t.cancel_probe(next()), CancelProbe::Missing);
    }

    #[test]
    fn shutdown_fails_everything_pending() {
        let mut next = ids();
        let mut t = ShardTable::default();
        let id = next();
        t.insert_pending(id, producer());
        let woken = Arc::new(AtomicUsize::new(0));
        let _ = t.probe(id, 0, &mut counter_waiter(&woken));
        let _ = fire(t.fail_all_pending(|object_id| GetError::ShutDown { object_id }));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert!(
            matches!(t.probe(id, 0, &mut None), Probe::Ready(Ready::Failed(e)) if matches!(*e, GetError::ShutDown { .. }))
        );
    }
}
