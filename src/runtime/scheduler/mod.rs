//! The scheduler's shared face.
//!
//! Whoever submits, finishes, blocks or cancels a task calls in directly, from its own thread:
//! the state sits behind one mutex, held only while the pure decisions are taken; the actions
//! (start a task actor, fail an object, answer an actor host) are carried out after it is
//! released, so no user code, store waiter or actor start ever runs under the lock. A task
//! actor finishing on a worker may keep the next blocking task its resources were given to and
//! start it right there, which is what lets a backlog of tasks run without thread switches.

pub(crate) mod bundles;
pub(crate) mod state;

use std::sync::{Arc, Mutex, MutexGuard};

use actix::Actor;
use actix_rt::ArbiterHandle;

use self::state::{Action, Ended, PlaceReply, SchedState, Start};
use crate::base::id::{NodeId, ObjectId, TaskId};
use crate::base::scheduling::resources::ResourceRequest;
use crate::base::scheduling::task_queue::LocalQueue;
use crate::object::store::Store;
use crate::object::table::Probe;
use crate::object::waiter::Waiter;
use crate::runtime::clock::Clock;
use crate::runtime::context;
use crate::runtime::task_actor::{Abort, TaskActor};
use crate::runtime::task_spec::TaskSpec;
use crate::runtime::task_threads::TaskWorkers;

struct Inner {
    state: Mutex<SchedState>,
    /// Times the task records; the state takes them as numbers.
    clock: Clock,
    node_id: NodeId,
    store: Store,
    workers: TaskWorkers,
    node_arbiter: ArbiterHandle,
}

/// A handle to the node's scheduler; cheap to clone.
#[derive(Clone)]
pub(crate) struct Scheduler(Arc<Inner>);

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scheduler(node {})", self.0.node_id)
    }
}

impl Scheduler {
    pub fn new(
        node_id: NodeId,
        queue: LocalQueue,
        store: Store,
        workers: TaskWorkers,
        node_arbiter: ArbiterHandle,
    ) -> Self {
        Scheduler(Arc::new(Inner {
            state: Mutex::new(SchedState::new(node_id, queue)),
            clock: Clock::new(),
            node_id,
            store,
            workers,
            node_arbiter,
        }))
    }

    /// Now, on the node's clock.
    fn now(&self) -> u64 {
        self.0.clock.now()
    }

    fn lock(&self) -> MutexGuard<'_, SchedState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn node_id(&self) -> NodeId {
        self.0.node_id
    }

    /// Offers the tasks on this node to `rows`, live ones then the most recently ended.
    pub fn list_tasks(&self, rows: &mut crate::base::filter::Capped<crate::base::rows::TaskInfo>) {
        self.lock().list_tasks(&self.0.clock.wall(), rows);
    }

    /// Tasks by function and state (ended ones since the node started).
    pub fn task_counts(&self) -> Vec<(String, crate::base::rows::TaskState, u64)> {
        self.lock().task_counts()
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn workers(&self) -> &TaskWorkers {
        &self.0.workers
    }

    /// A new task. Its missing arguments are watched under the lock, so that one becoming
    /// ready meanwhile is not missed.
    pub fn submit(&self, spec: Arc<TaskSpec>) {
        let mut out = Vec::new();
        {
            let mut state = self.lock();
            let mut missing = Vec::new();
            for &dep in &spec.deps {
                if !matches!(self.0.store.probe(dep, &mut None), Probe::NotReady { .. }) {
                    continue;
                }
                let me = self.clone();
                let mut waiter = Some(Waiter::Call(Box::new(move || me.dep_ready(dep))));
                if let Probe::NotReady { .. } = self.0.store.probe(dep, &mut waiter) {
                    missing.push(dep);
                }
            }
            state.submit(spec, &missing, self.now(), &mut out);
        }
        self.act(out, false);
    }

    fn dep_ready(&self, object: ObjectId) {
        let mut out = Vec::new();
        self.lock().dep_ready(object, self.now(), &mut out);
        self.act(out, false);
    }

    /// An attempt ended. With `claim`, the caller (a task actor on a worker) takes back the
    /// first blocking task to start, to run it on its own worker.
    pub fn task_ended(
        &self,
        task: TaskId,
        attempt: u32,
        outcome: Ended,
        claim: bool,
    ) -> Option<Start> {
        let mut out = Vec::new();
        self.lock()
            .ended(task, attempt, outcome, self.now(), &mut out);
        self.act(out, claim)
    }

    pub fn blocked(&self, task: TaskId) {
        let mut out = Vec::new();
        self.lock().blocked(task, self.now(), &mut out);
        self.act(out, false);
    }

    pub fn unblocked(&self, task: TaskId) {
        self.lock().unblocked(task);
    }

    pub fn cancel(&self, task: TaskId) {
        let mut out = Vec::new();
        self.lock().cancel(task, self.now(), &mut out);
        self.act(out, false);
    }

    pub fn place_actor(
        &self,
        id: TaskId,
        place: &ResourceRequest,
        hold: &ResourceRequest,
        reply: PlaceReply,
    ) {
        let mut out = Vec::new();
        self.lock()
            .place_actor(id, place, hold, reply, self.now(), &mut out);
        self.act(out, false);
    }

    pub fn actor_gone(&self, id: TaskId) {
        let mut out = Vec::new();
        self.lock().actor_gone(id, self.now(), &mut out);
        self.act(out, false);
    }

    /// Custom resources are announced, or become free (a placement group's bundles).
    pub fn add_resources(&self, amounts: &[(Arc<str>, i64)], free: bool) {
        let mut out = Vec::new();
        self.lock()
            .add_resources(amounts, free, self.now(), &mut out);
        self.act(out, false);
    }

    /// This node's CPUs become `cpu` units (its agent shares the machine between builds
    /// anew): growing starts what now fits; shrinking lets running tasks finish.
    pub fn set_cpu_total(&self, cpu: i64) {
        let mut out = Vec::new();
        self.lock().set_cpu_total(cpu, self.now(), &mut out);
        self.act(out, false);
    }

    /// Custom resources go (a removed placement group); tasks waiting for them fail.
    pub fn remove_resources(&self, amounts: &[(Arc<str>, i64)]) {
        let mut out = Vec::new();
        self.lock().remove_resources(amounts, self.now(), &mut out);
        self.act(out, false);
    }

    /// What the node has free now, by name.
    pub fn available(&self) -> Vec<(String, f64)> {
        self.lock().resources().available()
    }

    /// The node's total CPUs, GPUs and custom resources.
    pub fn totals(&self) -> (i64, i64, std::collections::BTreeMap<Arc<str>, i64>) {
        self.lock().resources().totals()
    }

    /// Tasks waiting, and tasks running.
    /// Whether work asking `req` would start at once: nothing waits before it and its
    /// resources are free.
    pub fn would_start_now(&self, req: &ResourceRequest) -> bool {
        let state = self.lock();
        state.counts().0 == 0 && state.resources().fits_now(req)
    }

    pub fn counts(&self) -> (usize, usize) {
        self.lock().counts()
    }

    fn act(&self, actions: Vec<Action>, claim: bool) -> Option<Start> {
        let mut claimed = None;
        for action in actions {
            match action {
                Action::Start(start) => {
                    if claim && claimed.is_none() && !start.is_async() {
                        claimed = Some(start);
                    } else {
                        self.start(start);
                    }
                }
                Action::Fail(object, err) => {
                    self.0.store.fail(object, err);
                }
                Action::Placed(reply, placed) => reply(placed),
                Action::Abort(actor) => actor.do_send(Abort),
                Action::Retrying {
                    task,
                    function,
                    attempt,
                    kind,
                    message,
                } => {
                    tracing::warn!(%task, function, attempt, %kind, %message, "task failed; retrying");
                }
            }
        }
        claimed
    }

    /// Starts an attempt: a blocking task on a worker, an async one on the node's thread.
    pub fn start(&self, start: Start) {
        let (task, attempt) = (start.spec.id, start.attempt);
        if start.is_async() {
            let addr = if context::on_runtime_thread() {
                TaskActor::launch(self.clone(), start)
            } else {
                let me = self.clone();
                TaskActor::start_in_arbiter(&self.0.node_arbiter, move |_| {
                    TaskActor::prepare(me, start)
                })
            };
            self.lock().started(task, attempt, addr);
            return;
        }
        let me = self.clone();
        if let Err(reason) = self.0.workers.run(Box::new(move || {
            TaskActor::launch(me, start);
        })) {
            tracing::warn!(%task, %reason, "cannot start a task");
        }
    }
}
