//! The node's actors: who exists, under which names, how many handles each has.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::calls::EndedCalls;
use crate::base::filter::Capped;
use crate::base::id::NodeId;
use crate::base::id::{ActorId, IdHash};
use crate::base::rows::{ActorInfo, ActorState, TaskInfo, TaskState};
use crate::base::scheduling::history::Wall;

/// What the state API reads of an actor (implemented by its core).
pub(crate) trait Describe: Send + Sync {
    fn describe(&self) -> ActorInfo;
    /// Its calls that have not ended, as task rows.
    fn calls(&self, wall: &Wall) -> Vec<TaskInfo>;
    /// Its calls that have not ended, counted by method and state.
    fn count_calls(&self, counts: &mut HashMap<(&'static str, TaskState), u64>);
}

/// An actor's core as the directory holds it: typed behind `Any`, and described.
pub(crate) trait HostedCore: Describe + Any {
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Describe + Any> HostedCore for T {
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Dead actors remembered in full per node, for the state API.
const KEEP_DEAD: usize = 1_000;

/// Called when an actor's last handle is gone (none for a detached actor).
pub(crate) type OnLast = Arc<dyn Fn() + Send + Sync>;

struct Entry {
    class: &'static str,
    on_last: Option<OnLast>,
    /// Live handles in this process, plus spilled objects holding a handle.
    handles: u64,
    name: Option<(String, String)>,
    /// The actor's `Arc<ActorCore<A>>`.
    core: Arc<dyn HostedCore>,
}

/// What a name lookup found.
pub(crate) enum Named {
    /// An actor of this class with this id.
    Found {
        class: &'static str,
        core: Arc<dyn Any + Send + Sync>,
    },
    Missing,
}

#[derive(Default)]
struct Inner {
    actors: HashMap<ActorId, Entry, IdHash>,
    names: HashMap<(String, String), ActorId>,
    /// The latest actors to die here, oldest first.
    dead: std::collections::VecDeque<ActorInfo>,
    /// Every actor that died here, by class.
    dead_counts: HashMap<&'static str, u64>,
}

impl Inner {
    /// The live actors' cores, to describe once the directory's lock is released
    /// (describing one takes its queue's lock).
    fn live(&self) -> Vec<Arc<dyn Describe>> {
        self.actors
            .values()
            .map(|e| Arc::clone(&e.core) as Arc<dyn Describe>)
            .collect()
    }
}

/// Told when an actor's name is freed (the cluster frees it on the head too).
pub(crate) type OnNameFreed = Box<dyn Fn((String, String), ActorId) + Send + Sync>;

/// What to do when an actor of this node ends (its collective groups fail).
pub(crate) type OnGone = Box<dyn Fn(ActorId) + Send + Sync>;

#[derive(Default)]
pub(crate) struct ActorDirectory {
    inner: Mutex<Inner>,
    /// Method calls of this node's actors that ended, and the clock their calls are timed by.
    pub calls: EndedCalls,
    on_name_freed: std::sync::OnceLock<OnNameFreed>,
    on_gone: std::sync::OnceLock<OnGone>,
}

impl ActorDirectory {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new actor with one handle. If its name is taken, nothing is registered
    /// and the holder of the name is returned (with one more handle when `share` is set).
    pub fn register(
        &self,
        id: ActorId,
        class: &'static str,
        name: Option<(String, String)>,
        core: Arc<dyn HostedCore>,
        on_last: Option<OnLast>,
        share: bool,
    ) -> Result<(), Named> {
        let mut inner = self.lock();
        if let Some(key) = &name
            && let Some(&holder) = inner.names.get(key)
            && let Some(entry) = inner.actors.get_mut(&holder)
        {
            if share && entry.class == class {
                entry.handles += 1;
            }
            return Err(Named::Found {
                class: entry.class,
                core: Arc::clone(&entry.core).into_any(),
            });
        }
        if let Some(key) = &name {
            inner.names.insert(key.clone(), id);
        }
        inner.actors.insert(
            id,
            Entry {
                class,
                on_last,
                handles: 1,
                name,
                core,
            },
        );
        Ok(())
    }

    /// The actor of a name, with one more handle when its class is `class`.
    pub fn named(&self, namespace: &str, name: &str, class: &'static str) -> Named {
        let mut inner = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let Some(&id) = inner.names.get(&key) else {
            return Named::Missing;
        };
        match inner.actors.get_mut(&id) {
            Some(entry) => {
                if entry.class == class {
                    entry.handles += 1;
                }
                Named::Found {
                    class: entry.class,
                    core: Arc::clone(&entry.core).into_any(),
                }
            }
            None => Named::Missing,
        }
    }

    /// Whether actor `id` is on this node.
    pub fn contains(&self, id: ActorId) -> bool {
        self.lock().actors.contains_key(&id)
    }

    /// The actor's core as `T`, with one more handle; `None` if unknown or of another type.
    pub fn acquire<T: Any + Send + Sync>(&self, id: ActorId) -> Option<Arc<T>> {
        let mut inner = self.lock();
        let entry = inner.actors.get_mut(&id)?;
        let core = Arc::clone(&entry.core).into_any().downcast::<T>().ok()?;
        entry.handles += 1;
        Some(core)
    }

    /// One more handle (a spilled object holds one).
    pub fn retain(&self, id: ActorId) {
        if let Some(e) = self.lock().actors.get_mut(&id) {
            e.handles += 1;
        }
    }

    /// One handle fewer; when that was the last, the actor is told (unless detached).
    pub fn release(&self, id: ActorId) {
        let on_last = {
            let mut inner = self.lock();
            match inner.actors.get_mut(&id) {
                Some(e) => {
                    e.handles = e.handles.saturating_sub(1);
                    if e.handles == 0 {
                        e.on_last.clone()
                    } else {
                        None
                    }
                }
                None => None,
            }
        };
        if let Some(f) = on_last {
            f();
        }
    }

    /// Sets what to do when a name is freed (once: when the node joins a cluster).
    pub fn on_name_freed(&self, f: OnNameFreed) {
        let _ = self.on_name_freed.set(f);
    }

    /// Sets what to do when an actor ends (once: when the node starts).
    pub fn on_gone(&self, f: OnGone) {
        let _ = self.on_gone.set(f);
    }

    /// The actor is gone: its name is free again.
    pub fn remove(&self, id: ActorId) {
        let (removed, freed) = {
            let mut inner = self.lock();
            let removed = inner.actors.remove(&id);
            let mut freed = None;
            if let Some(key) = removed.as_ref().and_then(|e| e.name.clone())
                && inner.names.get(&key) == Some(&id)
            {
                inner.names.remove(&key);
                freed = Some(key);
            }
            (removed, freed)
        };
        if let Some(entry) = &removed {
            // Described outside the directory's lock: it takes the actor's queue lock.
            let mut info = entry.core.describe();
            if info.state != ActorState::Dead {
                info.state = ActorState::Dead;
                info.death_cause = Some("it was terminated".into());
            }
            let mut inner = self.lock();
            if inner.dead.len() == KEEP_DEAD {
                inner.dead.pop_front();
            }
            inner.dead.push_back(info);
            *inner.dead_counts.entry(entry.class).or_default() += 1;
        }
        let was_here = removed.is_some();
        drop(removed); // outside the lock: it may hold the last reference to the actor
        if let (Some(key), Some(f)) = (freed, self.on_name_freed.get()) {
            f(key, id);
        }
        if was_here && let Some(f) = self.on_gone.get() {
            f(id);
        }
    }

    /// Forgets every actor (the runtime is stopping).
    pub fn clear(&self) {
        let actors = std::mem::take(&mut *self.lock());
        drop(actors);
    }

    /// Offers the actors here to `rows`, live ones first then the latest dead.
    pub fn list(&self, rows: &mut Capped<ActorInfo>) {
        let (live, dead) = {
            let inner = self.lock();
            let dead: Vec<ActorInfo> = inner.dead.iter().rev().cloned().collect();
            (inner.live(), dead)
        };
        // Described outside the directory's lock: each takes its actor's queue lock.
        rows.offer_all(live.iter().map(|d| d.describe()).chain(dead));
    }

    /// Actors by class and state (dead ones since the node started).
    pub fn counts(&self) -> Vec<(String, ActorState, u64)> {
        let (live, dead) = {
            let inner = self.lock();
            let dead: Vec<(&'static str, u64)> =
                inner.dead_counts.iter().map(|(c, n)| (*c, *n)).collect();
            (inner.live(), dead)
        };
        let mut counts: HashMap<(String, ActorState), u64> = HashMap::new();
        for info in live.iter().map(|d| d.describe()) {
            *counts.entry((info.class, info.state)).or_default() += 1;
        }
        for (class, n) in dead {
            *counts
                .entry((class.to_string(), ActorState::Dead))
                .or_default() += n;
        }
        counts.into_iter().map(|((c, s), n)| (c, s, n)).collect()
    }

    /// Offers the method calls of the actors here to `rows`: those not ended, then the
    /// latest ended, newest first.
    pub fn list_calls(&self, node: NodeId, rows: &mut Capped<TaskInfo>) {
        let live = self.lock().live();
        let wall = self.calls.clock.wall();
        // Read outside the directory's lock: each takes its actor's lock of calls.
        for core in &live {
            rows.offer_all(core.calls(&wall));
        }
        self.calls.offer(node, &wall, rows);
    }

    /// Method calls by method and state (ended ones since the node started).
    pub fn call_counts(&self) -> Vec<(String, TaskState, u64)> {
        let live = self.lock().live();
        let mut counts = HashMap::new();
        for core in &live {
            core.count_calls(&mut counts);
        }
        self.calls.count(&mut counts);
        counts
            .into_iter()
            .map(|((f, s), n)| (f.to_string(), s, n))
            .collect()
    }

    /// Actors alive.
    pub fn len(&self) -> usize {
        self.lock().actors.len()
    }
}

impl crate::object::store::ActorRefs for ActorDirectory {
    fn retain(&self, id: ActorId) {
        ActorDirectory::retain(self, id);
    }

    fn release(&self, id: ActorId) {
        ActorDirectory::release(self, id);
    }
}
