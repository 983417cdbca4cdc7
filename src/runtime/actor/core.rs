//! What all handles of one actor share: its call queue, its state, its host's address; and
//! queueing a call (the mailbox). Running the queued calls is `runner`, the actor's end and
//! its calls' ends are `lifecycle`.
//!
//! Calls take the hot path: a caller queues a call under the queue's lock and, when a slot is
//! free, starts one; a slot drains the queue in order (on a worker thread for a blocking
//! actor, as a future on the runtime thread for an async one) and stores each result
//! directly. The host actor is told only about lifecycle: failures, kills, the last handle.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use actix::Addr;
use tokio::sync::RwLock;

use super::call::ErasedCall;
use super::calls::LiveCalls;
use super::directory::{ActorDirectory, Describe};
use super::host::ActorHost;
use super::sink::{CallSink, MakeCall};
use crate::base::call_queue::{CallQueue, Phase, Push};
use crate::base::error::GetError;
use crate::base::id::{ActorId, IdMint, NodeId};
use crate::base::options::ActorSettings;
use crate::base::rows::{ActorInfo, ActorState, TaskInfo, TaskState};
use crate::base::scheduling::history::Wall;
use crate::object::store::Store;
use crate::runtime::actor::handle::ActorClass;
use crate::runtime::actor_threads::WorkerPool;
use crate::runtime::object_ref::ObjectRef;
use crate::runtime::submit::begin;

pub(crate) type Call<A> = Box<dyn ErasedCall<A>>;

pub(crate) struct ActorCore<A: ActorClass> {
    pub id: ActorId,
    /// How errors name the actor: class, name, id.
    pub label: String,
    pub settings: ActorSettings,
    pub node_id: NodeId,
    pub(super) queue: Mutex<CallQueue<Call<A>>>,
    /// The user's actor, once constructed; taken away when the actor dies.
    pub(super) state: Mutex<Option<Arc<RwLock<A>>>>,
    pub host: OnceLock<Addr<ActorHost<A>>>,
    pub gpu_ids: Mutex<Vec<u32>>,
    pub store: Store,
    pub pool: WorkerPool,
    pub ids: Arc<IdMint>,
    pub directory: Arc<ActorDirectory>,
    /// Times the host restarted it.
    pub restarts: AtomicU32,
    /// Its calls that have not ended, for the state API.
    pub live_calls: LiveCalls,
}

impl<A: ActorClass> Describe for ActorCore<A> {
    fn calls(&self, wall: &Wall) -> Vec<TaskInfo> {
        self.live_calls.rows(self.node_id, wall)
    }

    fn count_calls(&self, counts: &mut std::collections::HashMap<(&'static str, TaskState), u64>) {
        self.live_calls.count(counts);
    }

    fn describe(&self) -> ActorInfo {
        let (phase, calls) = {
            let q = self.queue();
            (q.phase().clone(), q.finished())
        };
        let (state, death_cause) = match phase {
            Phase::Starting => (ActorState::PendingCreation, None),
            Phase::Running => (ActorState::Alive, None),
            Phase::Restarting => (ActorState::Restarting, None),
            Phase::Dead(cause) => (ActorState::Dead, Some(cause.to_string())),
        };
        let name = self.settings.name.as_ref().map(|(ns, name)| {
            if ns == crate::base::options::DEFAULT_NAMESPACE {
                name.clone()
            } else {
                format!("{ns}/{name}")
            }
        });
        ActorInfo {
            actor_id: self.id,
            class: A::CLASS.to_string(),
            name,
            state,
            node_id: self.node_id,
            restarts: self.restarts.load(Ordering::Relaxed),
            calls,
            death_cause,
        }
    }
}

impl<A: ActorClass> ActorCore<A> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ActorId,
        settings: ActorSettings,
        node_id: NodeId,
        store: Store,
        pool: WorkerPool,
        ids: Arc<IdMint>,
        directory: Arc<ActorDirectory>,
    ) -> Self {
        let short = A::CLASS.rsplit("::").next().unwrap_or(A::CLASS);
        let label = match &settings.name {
            Some((ns, name)) if ns == crate::base::options::DEFAULT_NAMESPACE => {
                format!("{short} \"{name}\" ({id})")
            }
            Some((ns, name)) => format!("{short} \"{ns}/{name}\" ({id})"),
            None => format!("{short} ({id})"),
        };
        let queue = CallQueue::new(settings.max_concurrency, settings.max_pending_calls);
        ActorCore {
            id,
            label,
            settings,
            node_id,
            queue: Mutex::new(queue),
            state: Mutex::new(None),
            host: OnceLock::new(),
            gpu_ids: Mutex::new(Vec::new()),
            store,
            pool,
            ids,
            directory,
            restarts: AtomicU32::new(0),
            live_calls: LiveCalls::default(),
        }
    }

    pub fn queue(&self) -> MutexGuard<'_, CallQueue<Call<A>>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> Option<Arc<RwLock<A>>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs a newly constructed actor; the one it replaces (after a restart) is returned.
    pub fn install_state(&self, actor: A) -> Option<A> {
        let current = self.state();
        match current {
            Some(lock) => Some(std::mem::replace(&mut *lock.blocking_write(), actor)),
            None => {
                *self.state.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Arc::new(RwLock::new(actor)));
                None
            }
        }
    }

    /// The actor is dead: its state goes (once the calls still running on it end).
    pub fn drop_state(&self) -> Option<Arc<RwLock<A>>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub fn pending_calls(&self) -> usize {
        self.queue().pending()
    }

    pub fn died(&self, cause: &str) -> GetError {
        GetError::ActorDied {
            actor: self.label.clone(),
            cause: cause.to_string(),
        }
    }

    /// Begins a call and queues what `make` builds; returns the ref to its result.
    fn queue_call(self: &Arc<Self>, label: &'static str, make: MakeCall<'_, A>) -> ObjectRef<()> {
        let begun = begin::<()>(&self.ids, &self.store, label);
        let (id, return_id) = (begun.task, begun.result);
        if self.store.is_closed() {
            self.store.fail(
                return_id,
                GetError::ShutDown {
                    object_id: return_id,
                },
            );
            return begun.out;
        }
        let call = make(id, return_id);
        // Listed before it is queued: it may run and end at once.
        self.live_calls
            .submitted(&self.directory.calls.clock, id, label, self.id);
        let pushed = self.queue().push(call);
        match pushed {
            Push::Queued {
                slot: Some(generation),
            } => self.start_slot(generation),
            Push::Queued { slot: None } => {}
            Push::Dead(cause) => {
                self.fail_call(id, return_id, self.died(&cause));
            }
            Push::Full { limit } => {
                let err = GetError::Backpressure {
                    actor: self.label.clone(),
                    limit,
                };
                self.fail_call(id, return_id, err);
            }
        }
        begun.out
    }
}

/// A handle's calls to an actor on this node go straight to its core.
impl<A: ActorClass> CallSink<A> for Arc<ActorCore<A>> {
    fn name(&self) -> Option<&str> {
        self.settings.name.as_ref().map(|(_, n)| n.as_str())
    }

    fn node_id(&self) -> NodeId {
        self.node_id
    }

    fn pending_calls(&self) -> usize {
        ActorCore::pending_calls(self)
    }

    fn terminate(&self) {
        ActorCore::terminate(self);
    }

    fn kill(&self, allow_restart: bool) {
        ActorCore::kill(self, allow_restart);
    }

    fn release_handle(&self) {
        ActorCore::release_handle(self);
    }

    fn call(&self, label: &'static str, make: MakeCall<'_, A>) -> ObjectRef<()> {
        self.queue_call(label, make)
    }
}
