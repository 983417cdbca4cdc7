//! The scheduler actor: owns the node's [`LocalQueue`] and carries out its decisions.
//!
//! It hears of submitted tasks, of arguments becoming ready (through store waiters), of tasks
//! ending, blocking and being cancelled; it feeds these to the queue and starts a
//! [`TaskActor`] for each task the queue dispatches. Retry decisions come from the task's
//! [`RetryPolicy`](super::retry::RetryPolicy); the final error of a task is stored here.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::prelude::*;

use super::queue::{CancelOutcome, Decision, LocalQueue};
use crate::api::function::FunctionKind;
use crate::error::{GetError, TaskError, TaskErrorKind};
use crate::object::id::{IdHash, NodeId, ObjectId, TaskId};
use crate::object::store::Store;
use crate::object::table::Probe;
use crate::object::waiter::Waiter;
use crate::runtime::context::TaskContext;
use crate::runtime::task_actor::{Abort, TaskActor};
use crate::runtime::task_spec::TaskSpec;
use crate::runtime::worker_pool::WorkerPool;

struct TaskRecord {
    spec: Arc<TaskSpec>,
    attempt: u32,
    cancelled: Arc<AtomicBool>,
    actor: Option<Addr<TaskActor>>,
}

/// Told where (and whether) an actor was placed: its GPU ids, or why it cannot be.
pub(crate) type PlaceReply = Box<dyn FnOnce(Result<Vec<u32>, String>) + Send>;

pub(crate) struct SchedulerActor {
    node_id: NodeId,
    queue: LocalQueue,
    tasks: HashMap<TaskId, TaskRecord, IdHash>,
    /// Actors waiting for their resources, by placement id.
    placements: HashMap<TaskId, PlaceReply, IdHash>,
    store: Store,
    pool: WorkerPool,
}

impl SchedulerActor {
    pub fn new(node_id: NodeId, queue: LocalQueue, store: Store, pool: WorkerPool) -> Self {
        SchedulerActor {
            node_id,
            queue,
            tasks: HashMap::default(),
            placements: HashMap::default(),
            store,
            pool,
        }
    }

    fn apply(&mut self, decisions: Vec<Decision>, ctx: &mut Context<Self>) {
        for decision in decisions {
            match decision {
                Decision::Dispatch { task, grant } => match self.placements.remove(&task) {
                    Some(reply) => reply(Ok(grant.gpu_ids())),
                    None => self.start(task, grant.gpu_ids(), ctx),
                },
                Decision::Infeasible { task } => {
                    if let Some(reply) = self.placements.remove(&task) {
                        reply(Err("its resources exceed the node's".into()));
                        continue;
                    }
                    if let Some(rec) = self.tasks.remove(&task) {
                        let spec = &rec.spec;
                        let requested = spec
                            .options
                            .request
                            .as_ref()
                            .map(|r| r.to_string())
                            .unwrap_or_default();
                        let err = GetError::Infeasible {
                            function: spec.label(),
                            task_id: task,
                            requested,
                            total: self.queue.resources().describe_total(),
                        };
                        self.store.fail(spec.return_id, err);
                    }
                }
            }
        }
    }

    fn start(&mut self, task: TaskId, gpu_ids: Vec<u32>, ctx: &mut Context<Self>) {
        let Some(rec) = self.tasks.get_mut(&task) else {
            return;
        };
        let context = Arc::new(TaskContext {
            task_id: task,
            node_id: self.node_id,
            function: rec.spec.function.id,
            attempt: rec.attempt,
            gpu_ids: gpu_ids.into(),
            cancelled: Arc::clone(&rec.cancelled),
            waits: Default::default(),
        });
        let (spec, store, pool, me) = (
            Arc::clone(&rec.spec),
            self.store.clone(),
            self.pool.clone(),
            ctx.address(),
        );
        rec.actor = Some(TaskActor::create(move |_| {
            TaskActor::new(spec, context, store, me, pool)
        }));
    }

    fn fail_for_good(&mut self, task: TaskId, kind: TaskErrorKind, message: String) {
        if let Some(rec) = self.tasks.remove(&task) {
            let err = TaskError {
                function: rec.spec.label(),
                task_id: task,
                node_id: self.node_id,
                kind,
                message,
                attempts: rec.attempt,
            };
            self.store.fail(rec.spec.return_id, GetError::Task(err));
        }
    }
}

impl Actor for SchedulerActor {
    type Context = Context<Self>;
}

/// A new task.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SubmitTask(pub Arc<TaskSpec>);

impl Handler<SubmitTask> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, SubmitTask(spec): SubmitTask, ctx: &mut Context<Self>) {
        let request = match &spec.options.request {
            Ok(r) => r,
            Err(reason) => {
                let err = GetError::InvalidOptions {
                    function: spec.label(),
                    task_id: spec.id,
                    reason: reason.clone(),
                };
                self.store.fail(spec.return_id, err);
                return;
            }
        };
        let mut missing = Vec::new();
        for &dep in &spec.deps {
            if !matches!(self.store.probe(dep, &mut None), Probe::NotReady { .. }) {
                continue;
            }
            let me = ctx.address();
            let mut waiter = Some(Waiter::Call(Box::new(move || me.do_send(DepReady(dep)))));
            if let Probe::NotReady { .. } = self.store.probe(dep, &mut waiter) {
                missing.push(dep);
            }
        }
        let decisions = self.queue.submit(spec.id, request, &missing);
        let record = TaskRecord {
            spec: Arc::clone(&spec),
            attempt: 1,
            cancelled: Arc::default(),
            actor: None,
        };
        self.tasks.insert(spec.id, record);
        self.apply(decisions, ctx);
    }
}

/// An argument of some waiting task is ready.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DepReady(pub ObjectId);

impl Handler<DepReady> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, DepReady(object): DepReady, ctx: &mut Context<Self>) {
        let decisions = self.queue.dep_ready(object);
        self.apply(decisions, ctx);
    }
}

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Its object has its outcome (a value, or an argument's error).
    Done,
    /// It failed; the task may run again.
    Failed {
        kind: TaskErrorKind,
        message: String,
    },
}

/// An attempt of a task ended.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct TaskEnded {
    pub task: TaskId,
    pub attempt: u32,
    pub outcome: Ended,
}

impl Handler<TaskEnded> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: TaskEnded, ctx: &mut Context<Self>) {
        match self.tasks.get(&msg.task) {
            Some(rec) if rec.attempt == msg.attempt => {}
            _ => return, // a stale report
        }
        let mut decisions = self.queue.finished(msg.task);
        match msg.outcome {
            Ended::Done => {
                self.tasks.remove(&msg.task);
            }
            Ended::Failed { kind, message } => {
                let rec = self.tasks.get_mut(&msg.task).expect("checked above");
                let cancelled = rec.cancelled.load(Ordering::Relaxed);
                if !cancelled && rec.spec.options.retry.should_retry(rec.attempt, kind) {
                    tracing::warn!(task = %msg.task, function = rec.spec.function.id, attempt = rec.attempt,
                        %kind, %message, "task failed; retrying");
                    rec.attempt += 1;
                    rec.actor = None;
                    let spec = Arc::clone(&rec.spec);
                    if let Ok(request) = &spec.options.request {
                        decisions.extend(self.queue.submit(spec.id, request, &[]));
                    }
                } else {
                    self.fail_for_good(msg.task, kind, message);
                }
            }
        }
        self.apply(decisions, ctx);
    }
}

/// A running blocking task waits in a get.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct TaskBlocked(pub TaskId);

impl Handler<TaskBlocked> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, TaskBlocked(task): TaskBlocked, ctx: &mut Context<Self>) {
        let decisions = self.queue.blocked(task);
        self.apply(decisions, ctx);
    }
}

/// The blocked task resumes.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct TaskUnblocked(pub TaskId);

impl Handler<TaskUnblocked> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, TaskUnblocked(task): TaskUnblocked, _: &mut Context<Self>) {
        self.queue.unblocked(task);
    }
}

/// Cancel a task (its object is already marked cancelled).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct CancelTask(pub TaskId);

impl Handler<CancelTask> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, CancelTask(task): CancelTask, _: &mut Context<Self>) {
        let Some(rec) = self.tasks.get(&task) else {
            return;
        };
        rec.cancelled.store(true, Ordering::Relaxed);
        match self.queue.cancel(task) {
            CancelOutcome::Dropped => {
                self.tasks.remove(&task);
            }
            CancelOutcome::Running => {
                if rec.spec.function.kind == FunctionKind::Async
                    && let Some(actor) = &rec.actor
                {
                    actor.do_send(Abort);
                }
            }
            CancelOutcome::Unknown => {}
        }
    }
}

/// Reserve an actor's resources for its lifetime.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct PlaceActor {
    pub id: TaskId,
    /// What the node must have (Ray: an actor needs 1 CPU to be placed)...
    pub place: crate::scheduler::resources::ResourceRequest,
    /// ...and what it holds while alive.
    pub hold: crate::scheduler::resources::ResourceRequest,
    pub reply: PlaceReply,
}

impl Handler<PlaceActor> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: PlaceActor, ctx: &mut Context<Self>) {
        if !self.queue.resources().feasible(&msg.place) {
            let total = self.queue.resources().describe_total();
            return (msg.reply)(Err(format!(
                "it needs {} but the node has {total} in all",
                msg.place
            )));
        }
        self.placements.insert(msg.id, msg.reply);
        let decisions = self.queue.submit(msg.id, &msg.hold, &[]);
        self.apply(decisions, ctx);
    }
}

/// An actor is gone: its resources come back.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ActorGone(pub TaskId);

impl Handler<ActorGone> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, ActorGone(id): ActorGone, ctx: &mut Context<Self>) {
        self.placements.remove(&id);
        if self.queue.cancel(id) == CancelOutcome::Running {
            let decisions = self.queue.finished(id);
            self.apply(decisions, ctx);
        }
    }
}

/// How many tasks wait and run.
#[derive(Message)]
#[rtype(result = "(usize, usize)")]
pub(crate) struct QueueCounts;

impl Handler<QueueCounts> for SchedulerActor {
    type Result = MessageResult<QueueCounts>;

    fn handle(&mut self, _: QueueCounts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.queue.counts())
    }
}
