//! The scheduler's state: the node's task queue plus what it knows of each task. Every event
//! (a submission, an argument ready, an attempt ended, a cancel, an actor placed or gone)
//! turns into [`Action`]s for the caller to carry out once the lock is released. No I/O here:
//! starting actors, failing objects and replying to actor hosts happen outside.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::Addr;

use crate::base::error::{GetError, TaskError, TaskErrorKind};
use crate::base::filter::Capped;
use crate::base::function::FunctionKind;
use crate::base::id::{IdHash, NodeId, ObjectId, TaskId};
use crate::base::rows::{TaskInfo, TaskState};
use crate::base::scheduling::queue::{CancelOutcome, Decision, LocalQueue};
use crate::base::scheduling::resources::ResourceRequest;
use crate::runtime::task_actor::TaskActor;
use crate::runtime::task_spec::TaskSpec;

use crate::base::scheduling::history::{KEEP_ENDED, TaskHistory, TaskLog};
use crate::runtime::clock::Clock;

/// Told where (and whether) an actor was placed: its GPU ids, or why it cannot be.
pub(crate) type PlaceReply = Box<dyn FnOnce(Result<Vec<u32>, String>) + Send>;

/// Start one attempt of a task.
pub(crate) struct Start {
    pub spec: Arc<TaskSpec>,
    pub attempt: u32,
    pub gpu_ids: Vec<u32>,
    pub cancelled: Arc<AtomicBool>,
}

impl Start {
    pub fn is_async(&self) -> bool {
        self.spec.function.kind == FunctionKind::Async
    }
}

/// What the caller must do after an event.
pub(crate) enum Action {
    Start(Start),
    /// The object will never have a value.
    Fail(ObjectId, GetError),
    /// Tell an actor's host where it was placed.
    Placed(PlaceReply, Result<Vec<u32>, String>),
    /// Stop a running async task.
    Abort(Addr<TaskActor>),
}

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Its object has its value.
    Done,
    /// An argument failed: its object has the argument's error (this message).
    DepFailed(String),
    /// It failed; the task may run again.
    Failed {
        kind: TaskErrorKind,
        message: String,
    },
}

struct TaskRecord {
    spec: Arc<TaskSpec>,
    attempt: u32,
    /// When it was submitted and its latest attempt started ([`Clock`] time).
    submitted: u64,
    started: Option<u64>,
    cancelled: Arc<AtomicBool>,
    /// For a running async task, so that cancel can abort it.
    actor: Option<Addr<TaskActor>>,
}

pub(crate) struct SchedState {
    node_id: NodeId,
    queue: LocalQueue,
    tasks: HashMap<TaskId, TaskRecord, IdHash>,
    placements: HashMap<TaskId, PlaceReply, IdHash>,
    clock: Clock,
    history: TaskHistory,
}

impl TaskRecord {
    fn log(&self, ended: Option<u64>, error: Option<String>) -> TaskLog {
        TaskLog {
            task_id: self.spec.id,
            function: self.spec.function.id,
            name: self.spec.options.name.clone(),
            actor_id: None,
            attempts: self.attempt,
            submitted: self.submitted,
            started: self.started,
            ended,
            error,
        }
    }
}

impl SchedState {
    pub fn new(node_id: NodeId, queue: LocalQueue) -> Self {
        SchedState {
            node_id,
            queue,
            tasks: HashMap::default(),
            placements: HashMap::default(),
            clock: Clock::new(),
            history: TaskHistory::new(KEEP_ENDED),
        }
    }

    /// A new task, with those of its ref arguments that are not ready yet.
    pub fn submit(&mut self, spec: Arc<TaskSpec>, missing: &[ObjectId], out: &mut Vec<Action>) {
        let request = match &spec.options.request {
            Ok(r) => r,
            Err(reason) => {
                let err = GetError::InvalidOptions {
                    function: spec.label(),
                    task_id: spec.id,
                    reason: reason.clone(),
                };
                let now = self.clock.now();
                let log = TaskLog {
                    task_id: spec.id,
                    function: spec.function.id,
                    name: spec.options.name.clone(),
                    actor_id: None,
                    attempts: 1,
                    submitted: now,
                    started: None,
                    ended: Some(now),
                    error: Some(err.to_string()),
                };
                self.history.ended(log, TaskState::Failed);
                out.push(Action::Fail(spec.return_id, err));
                return;
            }
        };
        let decisions = self.queue.submit(spec.id, request, missing);
        let record = TaskRecord {
            spec: Arc::clone(&spec),
            attempt: 1,
            submitted: self.clock.now(),
            started: None,
            cancelled: Arc::default(),
            actor: None,
        };
        self.tasks.insert(spec.id, record);
        self.apply(decisions, out);
    }

    pub fn dep_ready(&mut self, object: ObjectId, out: &mut Vec<Action>) {
        let decisions = self.queue.dep_ready(object);
        self.apply(decisions, out);
    }

    /// Attempt `attempt` of `task` ended.
    pub fn ended(&mut self, task: TaskId, attempt: u32, outcome: Ended, out: &mut Vec<Action>) {
        match self.tasks.get(&task) {
            Some(rec) if rec.attempt == attempt => {}
            _ => return, // a stale report
        }
        let decisions = self.queue.finished(task);
        match outcome {
            Ended::Done | Ended::DepFailed(_) => {
                if let Some(rec) = self.tasks.remove(&task) {
                    let now = Some(self.clock.now());
                    let (state, error) = match outcome {
                        Ended::DepFailed(why) => (TaskState::Failed, Some(why)),
                        _ => (TaskState::Finished, None),
                    };
                    self.history.ended(rec.log(now, error), state);
                }
            }
            Ended::Failed { kind, message } => {
                let rec = self.tasks.get_mut(&task).expect("checked above");
                let cancelled = rec.cancelled.load(Ordering::Relaxed);
                if !cancelled && rec.spec.options.retry.should_retry(rec.attempt, kind) {
                    tracing::warn!(task = %task, function = rec.spec.function.id, attempt = rec.attempt,
                        %kind, %message, "task failed; retrying");
                    rec.attempt += 1;
                    rec.actor = None;
                    let spec = Arc::clone(&rec.spec);
                    self.apply(decisions, out);
                    if let Ok(request) = &spec.options.request {
                        let again = self.queue.submit(task, request, &[]);
                        self.apply(again, out);
                    }
                    return;
                }
                if let Some(rec) = self.tasks.remove(&task) {
                    let state = if cancelled {
                        TaskState::Cancelled
                    } else {
                        TaskState::Failed
                    };
                    let log = rec.log(Some(self.clock.now()), Some(message.clone()));
                    self.history.ended(log, state);
                    let err = TaskError {
                        function: rec.spec.label(),
                        task_id: task,
                        node_id: self.node_id,
                        kind,
                        message,
                        attempts: rec.attempt,
                    };
                    out.push(Action::Fail(rec.spec.return_id, GetError::Task(err)));
                }
            }
        }
        self.apply(decisions, out);
    }

    /// An async task's actor started: remember it so that cancel can abort it.
    pub fn started(&mut self, task: TaskId, attempt: u32, actor: Addr<TaskActor>) {
        if let Some(rec) = self.tasks.get_mut(&task)
            && rec.attempt == attempt
        {
            rec.actor = Some(actor);
        }
    }

    pub fn blocked(&mut self, task: TaskId, out: &mut Vec<Action>) {
        let decisions = self.queue.blocked(task);
        self.apply(decisions, out);
    }

    pub fn unblocked(&mut self, task: TaskId) {
        self.queue.unblocked(task);
    }

    /// Cancels a task (its object is already marked cancelled).
    pub fn cancel(&mut self, task: TaskId, out: &mut Vec<Action>) {
        let Some(rec) = self.tasks.get(&task) else {
            return;
        };
        rec.cancelled.store(true, Ordering::Relaxed);
        match self.queue.cancel(task) {
            CancelOutcome::Dropped => {
                if let Some(rec) = self.tasks.remove(&task) {
                    let log = rec.log(Some(self.clock.now()), Some("cancelled".into()));
                    self.history.ended(log, TaskState::Cancelled);
                }
            }
            CancelOutcome::Running => {
                if rec.spec.function.kind == FunctionKind::Async
                    && let Some(actor) = &rec.actor
                {
                    out.push(Action::Abort(actor.clone()));
                }
            }
            CancelOutcome::Unknown => {}
        }
    }

    /// Reserve an actor's resources (`hold`) for its lifetime, on a node that has `place`.
    pub fn place_actor(
        &mut self,
        id: TaskId,
        place: &ResourceRequest,
        hold: &ResourceRequest,
        reply: PlaceReply,
        out: &mut Vec<Action>,
    ) {
        if !self.queue.resources().feasible(place) {
            let total = self.queue.resources().describe_total();
            out.push(Action::Placed(
                reply,
                Err(format!("it needs {place} but the node has {total} in all")),
            ));
            return;
        }
        self.placements.insert(id, reply);
        let decisions = self.queue.submit(id, hold, &[]);
        self.apply(decisions, out);
    }

    /// An actor is gone: its resources come back.
    pub fn actor_gone(&mut self, id: TaskId, out: &mut Vec<Action>) {
        self.placements.remove(&id);
        if self.queue.cancel(id) == CancelOutcome::Running {
            let decisions = self.queue.finished(id);
            self.apply(decisions, out);
        }
    }

    /// A placement group's bundles appear as custom resources.
    pub fn add_resources(
        &mut self,
        amounts: &[(Arc<str>, i64)],
        free: bool,
        out: &mut Vec<Action>,
    ) {
        let decisions = self.queue.add_resources(amounts, free);
        self.apply(decisions, out);
    }

    /// A placement group's bundles go: what waits for them fails.
    pub fn remove_resources(&mut self, amounts: &[(Arc<str>, i64)], out: &mut Vec<Action>) {
        let decisions = self.queue.remove_resources(amounts);
        self.apply(decisions, out);
    }

    /// The node's resources.
    pub fn resources(&self) -> &crate::base::scheduling::resources::NodeResources {
        self.queue.resources()
    }

    /// Tasks waiting for arguments or resources, and tasks running.
    pub fn counts(&self) -> (usize, usize) {
        self.queue.counts()
    }

    /// The tasks on this node that pass `filters`, live ones first then the most recently
    /// ended, at most `limit`; and how many more passed.
    pub fn list_tasks(&self, rows: &mut Capped<TaskInfo>) {
        let wall = self.clock.wall();
        let live = self.tasks.values().filter_map(|rec| {
            let state = self.queue.phase(rec.spec.id)?;
            Some(rec.log(None, None).info(state, self.node_id, &wall))
        });
        let ended = self
            .history
            .recent()
            .rev()
            .map(|(log, state)| log.info(*state, self.node_id, &wall));
        rows.offer_all(live.chain(ended));
    }

    /// Tasks by function and state: the live ones now, the ended ones since the start.
    pub fn task_counts(&self) -> Vec<(String, TaskState, u64)> {
        let mut counts: HashMap<(&'static str, TaskState), u64> = HashMap::new();
        for rec in self.tasks.values() {
            if let Some(state) = self.queue.phase(rec.spec.id) {
                *counts.entry((rec.spec.function.id, state)).or_default() += 1;
            }
        }
        for (function, ended) in self.history.counts() {
            for (state, n) in [
                (TaskState::Finished, ended.finished),
                (TaskState::Failed, ended.failed),
                (TaskState::Cancelled, ended.cancelled),
            ] {
                if n > 0 {
                    *counts.entry((function, state)).or_default() += n;
                }
            }
        }
        counts
            .into_iter()
            .map(|((f, s), n)| (f.to_string(), s, n))
            .collect()
    }

    fn apply(&mut self, decisions: Vec<Decision>, out: &mut Vec<Action>) {
        for decision in decisions {
            match decision {
                Decision::Dispatch { task, grant } => {
                    if let Some(reply) = self.placements.remove(&task) {
                        out.push(Action::Placed(reply, Ok(grant.gpu_ids())));
                    } else if let Some(rec) = self.tasks.get_mut(&task) {
                        rec.started = Some(self.clock.now());
                        out.push(Action::Start(Start {
                            spec: Arc::clone(&rec.spec),
                            attempt: rec.attempt,
                            gpu_ids: grant.gpu_ids(),
                            cancelled: Arc::clone(&rec.cancelled),
                        }));
                    }
                }
                Decision::Infeasible { task } => {
                    if let Some(reply) = self.placements.remove(&task) {
                        out.push(Action::Placed(
                            reply,
                            Err("its resources exceed the node's".into()),
                        ));
                    } else if let Some(rec) = self.tasks.remove(&task) {
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
                        let log = rec.log(Some(self.clock.now()), Some(err.to_string()));
                        self.history.ended(log, TaskState::Failed);
                        out.push(Action::Fail(spec.return_id, err));
                    }
                }
            }
        }
    }
}
