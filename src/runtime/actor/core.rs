//! What all handles of one actor share: its call queue, its state, its host's address.
//!
//! Calls take the hot path: a caller queues a call under the queue's lock and, when a slot is
//! free, starts one; a slot drains the queue in order (on a worker thread for a blocking
//! actor, as a future on the runtime thread for an async one) and stores each result
//! directly. The host actor is told only about lifecycle: failures, kills, the last handle.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use actix::Addr;
use tokio::sync::RwLock;

use super::call::{CallOutcome, ErasedCall, Invoke, TypedCall};
use super::calls::LiveCalls;
use super::directory::{ActorDirectory, Describe};
use super::host::{ActorHost, Crashed, Kill, NoHandles, RunSlot, Stopped};
use crate::base::args::ArgList;
use crate::base::call_queue::{CallQueue, Phase, Push, Take};
use crate::base::error::{GetError, TaskError, TaskErrorKind};
use crate::base::id::{ActorId, IdMint, NodeId, ObjectId, TaskId};
use crate::base::options::ActorSettings;
use crate::base::rows::{ActorInfo, ActorState, TaskInfo, TaskState};
use crate::base::scheduling::history::Wall;
use crate::base::value::Value;
use crate::object::store::Store;
use crate::object::table::{CancelProbe, Producer};
use crate::runtime::actor::handle::ActorClass;
use crate::runtime::actor_threads::WorkerPool;
use crate::runtime::context::{self, TaskContext};
use crate::runtime::object_ref::ObjectRef;

/// Calls a blocking slot runs before it gives its thread back to the pool (and queues itself
/// again), so that busy actors share the pool fairly.
const SLOT_BATCH: usize = 256;

pub(crate) type Call<A> = Box<dyn ErasedCall<A>>;

pub(crate) struct ActorCore<A: ActorClass> {
    pub id: ActorId,
    /// How errors name the actor: class, name, id.
    pub label: String,
    pub settings: ActorSettings,
    pub node_id: NodeId,
    queue: Mutex<CallQueue<Call<A>>>,
    /// The user's actor, once constructed; taken away when the actor dies.
    state: Mutex<Option<Arc<RwLock<A>>>>,
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

    /// Queues a call; returns the ref to its result.
    pub fn call<L: ArgList, R: Value>(
        self: &Arc<Self>,
        label: &'static str,
        invoke: Invoke<A, L::Resolved, R>,
        args: L,
    ) -> ObjectRef<R> {
        let (id, return_id) = (self.ids.task(), self.ids.object());
        self.store.create_pending(
            return_id,
            Producer {
                task: id,
                function: label,
            },
        );
        let result = ObjectRef::adopt(return_id, self.store.clone());
        if self.store.is_closed() {
            self.store.fail(
                return_id,
                GetError::ShutDown {
                    object_id: return_id,
                },
            );
            return result;
        }
        let call: Call<A> = Box::new(TypedCall {
            id,
            return_id,
            label,
            attempt: 1,
            args,
            invoke,
        });
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
        result
    }

    /// Starts a slot of `generation`: a worker draining the queue (blocking actor) or a
    /// future on the runtime thread (async actor).
    pub fn start_slot(self: &Arc<Self>, generation: u64) {
        if self.settings.is_async {
            if let Some(host) = self.host.get() {
                host.do_send(RunSlot(generation));
            }
            return;
        }
        let core = Arc::clone(self);
        if let Err(reason) = self.pool.execute(Box::new(move || core.drain(generation))) {
            tracing::error!(actor = %self.label, %reason, "cannot run the actor's calls");
        }
    }

    /// A blocking slot: runs queued calls in order on this worker thread.
    fn drain(self: Arc<Self>, generation: u64) {
        let Some(state) = self.state() else {
            self.queue().release_slot(generation);
            return;
        };
        for _ in 0..SLOT_BATCH {
            let next = self.queue().take(generation);
            match next {
                Take::Stop => return,
                Take::Terminate(rest) => return self.terminated(rest),
                Take::Run(call) => {
                    if !self.wanted(&*call) {
                        self.queue().done(generation);
                        self.call_ended(call.id(), TaskState::Cancelled, None);
                        continue;
                    }
                    self.live_calls
                        .started(&self.directory.calls.clock, call.id(), call.attempt());
                    let task = self.task_context(&*call);
                    let outcome = context::with_task(&task, || call.run_blocking(&state));
                    if self.complete(generation, call, outcome) {
                        return;
                    }
                }
            }
        }
        let core = Arc::clone(&self);
        if self
            .pool
            .execute(Box::new(move || core.drain(generation)))
            .is_err()
        {
            self.queue().release_slot(generation);
        }
    }

    /// An async slot: the same loop, awaiting each call on the runtime thread.
    pub async fn drain_async(self: Arc<Self>, generation: u64) {
        let Some(state) = self.state() else {
            self.queue().release_slot(generation);
            return;
        };
        loop {
            let next = self.queue().take(generation);
            match next {
                Take::Stop => return,
                Take::Terminate(rest) => return self.terminated(rest),
                Take::Run(call) => {
                    if !self.wanted(&*call) {
                        self.queue().done(generation);
                        self.call_ended(call.id(), TaskState::Cancelled, None);
                        continue;
                    }
                    self.live_calls
                        .started(&self.directory.calls.clock, call.id(), call.attempt());
                    let task = self.task_context(&*call);
                    let body = context::WithTask {
                        task,
                        inner: Box::pin(call.run_async(Arc::clone(&state))),
                    };
                    let guarded = crate::runtime::panic::CatchPanic {
                        inner: Box::pin(body),
                    };
                    // If the host stops (a kill) while the call runs, this future is dropped:
                    // the call's result then says why.
                    let mut unfinished = Unfinished {
                        core: &*self,
                        id: call.id(),
                        return_id: call.return_id(),
                        armed: true,
                    };
                    let outcome = guarded.await.unwrap_or_else(CallOutcome::Panicked);
                    unfinished.armed = false;
                    if self.complete(generation, call, outcome) {
                        return;
                    }
                }
            }
        }
    }

    /// A call whose result nobody can get any more (cancelled) is skipped.
    fn wanted(&self, call: &dyn ErasedCall<A>) -> bool {
        matches!(
            self.store.cancel_probe(call.return_id()),
            CancelProbe::Pending(_)
        )
    }

    /// The context a run of the constructor sees: the actor's, under a task id of its own.
    pub fn constructor_context(&self) -> Arc<TaskContext> {
        self.context(self.ids.task(), A::CLASS, 1)
    }

    fn task_context(&self, call: &dyn ErasedCall<A>) -> Arc<TaskContext> {
        self.context(call.id(), call.label(), call.attempt())
    }

    fn context(&self, task_id: TaskId, function: &'static str, attempt: u32) -> Arc<TaskContext> {
        Arc::new(TaskContext {
            task_id,
            node_id: self.node_id,
            function,
            actor_id: Some(self.id),
            attempt,
            log_to: self.settings.log_to.unwrap_or(self.node_id),
            gpu_ids: self
                .gpu_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            cancelled: Arc::new(AtomicBool::new(false)),
            waits: Default::default(),
        })
    }

    /// Stores a call's outcome. Returns true when the slot must stop: the call panicked (the
    /// actor is failing) or the actor failed while the call ran.
    fn complete(&self, generation: u64, call: Call<A>, outcome: CallOutcome) -> bool {
        let panicked = matches!(outcome, CallOutcome::Panicked(_));
        let (current, phase, in_flight) = {
            let mut q = self.queue();
            q.done(generation);
            let current = q.generation();
            // A panic fails the actor at once, under the queue's lock: a call made after the
            // caller sees this call's error waits for the restart instead of being caught in
            // the failure.
            let in_flight = (panicked && current == generation).then(|| q.crash());
            (current, q.phase().clone(), in_flight)
        };
        let return_id = call.return_id();
        if current != generation {
            // The actor failed or was killed while this call ran: its result is void.
            let err = match phase {
                Phase::Dead(cause) => self.died(&cause),
                _ => GetError::ActorRestarting {
                    actor: self.label.clone(),
                    cause: "the actor failed while this call ran".into(),
                },
            };
            self.fail_call(call.id(), return_id, err);
            return true;
        }
        let task_error = |kind, message| {
            GetError::Task(TaskError {
                function: call.label().to_string(),
                task_id: call.id(),
                node_id: self.node_id,
                kind,
                message,
                attempts: call.attempt(),
            })
        };
        match outcome {
            CallOutcome::Value(v) => {
                self.store.seal(return_id, v);
                self.call_ended(call.id(), TaskState::Finished, None);
            }
            CallOutcome::Failed(message) => {
                self.fail_call(
                    call.id(),
                    return_id,
                    task_error(TaskErrorKind::Failed, message),
                );
            }
            CallOutcome::DepFailed(err) => {
                self.fail_call(call.id(), return_id, err);
            }
            CallOutcome::Panicked(message) => {
                let cause = format!("`{}` panicked: {message}", call.label());
                if let Some(host) = self.host.get() {
                    host.do_send(Crashed {
                        cause,
                        in_flight: in_flight.unwrap_or_default(),
                    });
                }
                self.fail_call(
                    call.id(),
                    return_id,
                    task_error(TaskErrorKind::Panicked, message),
                );
                return true;
            }
        }
        false
    }

    /// Fails call `id`'s result with `err`, and lists the call as failed.
    pub fn fail_call(&self, id: TaskId, return_id: ObjectId, err: GetError) {
        let message = err.to_string();
        self.store.fail(return_id, err);
        self.call_ended(id, TaskState::Failed, Some(message));
    }

    /// Call `id` ended: it moves from the actor's live calls to the node's ended ones.
    pub fn call_ended(&self, id: TaskId, state: TaskState, error: Option<String>) {
        if let Some(log) = self.live_calls.take(id) {
            self.directory.calls.ended(log, state, error);
        }
    }

    /// A slot reached a terminate marker: the actor is dead; later calls fail.
    fn terminated(&self, rest: Vec<Call<A>>) {
        let err = self.died("it was terminated");
        for call in rest {
            self.fail_call(call.id(), call.return_id(), err.clone());
        }
        if let Some(host) = self.host.get() {
            host.do_send(Stopped);
        }
    }

    pub fn terminate(self: &Arc<Self>) {
        let pushed = self.queue().push_terminate();
        if let Push::Queued {
            slot: Some(generation),
        } = pushed
        {
            self.start_slot(generation);
        }
    }

    /// Kills the actor. For good, it takes effect at once: when this returns, every queued
    /// and later call fails; the host then releases what the actor held.
    pub fn kill(&self, allow_restart: bool) {
        if !allow_restart {
            let cause = "it was killed with mobula::kill";
            let queued = {
                let mut queue = self.queue();
                if matches!(queue.phase(), Phase::Dead(_)) {
                    return;
                }
                queue.die(cause.into())
            };
            let err = self.died(cause);
            for call in queued {
                self.fail_call(call.id(), call.return_id(), err.clone());
            }
        }
        if let Some(host) = self.host.get() {
            host.do_send(Kill { allow_restart });
        }
    }

    /// One handle fewer.
    pub fn release_handle(&self) {
        self.directory.release(self.id);
    }

    /// The last handle is gone: stop after the pending calls (Ray's reference counting of
    /// actor handles).
    pub fn no_handles(&self) {
        if let Some(host) = self.host.get() {
            host.do_send(NoHandles);
        }
    }
}

/// Fails a call's result if its future is dropped before the call ends.
struct Unfinished<'a, A: ActorClass> {
    core: &'a ActorCore<A>,
    id: TaskId,
    return_id: ObjectId,
    armed: bool,
}

impl<A: ActorClass> Drop for Unfinished<'_, A> {
    fn drop(&mut self) {
        if self.armed {
            let err = self.core.died("it stopped while this call ran");
            self.core.fail_call(self.id, self.return_id, err);
        }
    }
}
