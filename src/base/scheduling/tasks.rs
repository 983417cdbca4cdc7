//! The scheduler's state: the node's task queue plus what it knows of each task. Every event
//! (a submission, an argument ready, an attempt ended, a cancel, an actor placed or gone)
//! turns into [`Action`]s for the caller to carry out once the lock is released. No I/O here:
//! starting actors, failing objects and replying to actor hosts happen outside. Generic over
//! the task (`T`: what the runtime submits) and the handle that aborts a running async
//! attempt (`H`); every event that stamps a time takes it as `now` (ticks of the node's
//! clock).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::history::{KEEP_ENDED, TaskHistory, TaskLog, Wall};
use super::resources::ResourceRequest;
use super::task_queue::{CancelOutcome, Decision, LocalQueue};
use crate::base::error::{GetError, TaskError, TaskErrorKind};
use crate::base::filter::Capped;
use crate::base::function::FunctionDescriptor;
use crate::base::function::FunctionKind;
use crate::base::id::{IdHash, NodeId, ObjectId, TaskId};
use crate::base::options::ResolvedOptions;
use crate::base::rows::{TaskInfo, TaskState};

/// What the scheduler needs to know of a task.
pub(crate) trait QueuedTask: Send + Sync {
    /// The task's id.
    fn id(&self) -> TaskId;
    /// The object its result goes to.
    fn return_id(&self) -> ObjectId;
    /// Its function.
    fn function(&self) -> &'static FunctionDescriptor;
    /// Its options, checked.
    fn options(&self) -> &ResolvedOptions;
    /// How it is named in errors: its name option, else its function's id.
    fn label(&self) -> String {
        match &self.options().name {
            Some(name) => format!("{name} ({})", self.function().id),
            None => self.function().id.to_string(),
        }
    }
}

/// Told where (and whether) an actor was placed: its GPU ids, or why it cannot be.
pub(crate) type PlaceReply = Box<dyn FnOnce(Result<Vec<u32>, String>) + Send>;

/// Start one attempt of a task.
pub(crate) struct Start<T> {
    pub spec: Arc<T>,
    pub attempt: u32,
    pub gpu_ids: Vec<u32>,
    pub cancelled: Arc<AtomicBool>,
}

impl<T: QueuedTask> Start<T> {
    pub fn is_async(&self) -> bool {
        self.spec.function().kind == FunctionKind::Async
    }
}

/// What the caller must do after an event.
pub(crate) enum Action<T, H> {
    Start(Start<T>),
    /// The object will never have a value.
    Fail(ObjectId, GetError),
    /// Tell an actor's host where it was placed.
    Placed(PlaceReply, Result<Vec<u32>, String>),
    /// Stop a running async task.
    Abort(H),
    /// An attempt failed and the task runs again (for the log).
    Retrying {
        task: TaskId,
        function: &'static str,
        attempt: u32,
        kind: TaskErrorKind,
        message: String,
    },
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

struct TaskRecord<T, H> {
    spec: Arc<T>,
    attempt: u32,
    /// When it was submitted and its latest attempt started (ticks of the node's clock).
    submitted: u64,
    started: Option<u64>,
    cancelled: Arc<AtomicBool>,
    /// For a running async task, so that cancel can abort it.
    actor: Option<H>,
}

pub(crate) struct SchedState<T, H> {
    node_id: NodeId,
    queue: LocalQueue,
    tasks: HashMap<TaskId, TaskRecord<T, H>, IdHash>,
    placements: HashMap<TaskId, PlaceReply, IdHash>,
    history: TaskHistory,
}

impl<T: QueuedTask, H> TaskRecord<T, H> {
    fn log(&self, ended: Option<u64>, error: Option<String>) -> TaskLog {
        TaskLog {
            task_id: self.spec.id(),
            function: self.spec.function().id,
            name: self.spec.options().name.clone(),
            actor_id: None,
            attempts: self.attempt,
            submitted: self.submitted,
            started: self.started,
            ended,
            error,
        }
    }
}

impl<T: QueuedTask, H: Clone> SchedState<T, H> {
    pub fn new(node_id: NodeId, queue: LocalQueue) -> Self {
        SchedState {
            node_id,
            queue,
            tasks: HashMap::default(),
            placements: HashMap::default(),
            history: TaskHistory::new(KEEP_ENDED),
        }
    }

    /// A new task, with those of its ref arguments that are not ready yet.
    pub fn submit(
        &mut self,
        spec: Arc<T>,
        missing: &[ObjectId],
        now: u64,
        out: &mut Vec<Action<T, H>>,
    ) {
        let request = match &spec.options().request {
            Ok(r) => r,
            Err(reason) => {
                let err = GetError::InvalidOptions {
                    function: spec.label(),
                    task_id: spec.id(),
                    reason: reason.clone(),
                };
                let log = TaskLog {
                    task_id: spec.id(),
                    function: spec.function().id,
                    name: spec.options().name.clone(),
                    actor_id: None,
                    attempts: 1,
                    submitted: now,
                    started: None,
                    ended: Some(now),
                    error: Some(err.to_string()),
                };
                self.history.ended(log, TaskState::Failed);
                out.push(Action::Fail(spec.return_id(), err));
                return;
            }
        };
        let decisions = self.queue.submit(spec.id(), request, missing);
        let record = TaskRecord {
            spec: Arc::clone(&spec),
            attempt: 1,
            submitted: now,
            started: None,
            cancelled: Arc::default(),
            actor: None,
        };
        self.tasks.insert(spec.id(), record);
        self.apply(decisions, now, out);
    }

    pub fn dep_ready(&mut self, object: ObjectId, now: u64, out: &mut Vec<Action<T, H>>) {
        let decisions = self.queue.dep_ready(object);
        self.apply(decisions, now, out);
    }

    /// Attempt `attempt` of `task` ended.
    pub fn ended(
        &mut self,
        task: TaskId,
        attempt: u32,
        outcome: Ended,
        now: u64,
        out: &mut Vec<Action<T, H>>,
    ) {
        match self.tasks.get(&task) {
            Some(rec) if rec.attempt == attempt => {}
            _ => return, // a stale report
        }
        let decisions = self.queue.finished(task);
        match outcome {
            Ended::Done | Ended::DepFailed(_) => {
                if let Some(rec) = self.tasks.remove(&task) {
                    let now = Some(now);
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
                if !cancelled && rec.spec.options().retry.should_retry(rec.attempt, kind) {
                    out.push(Action::Retrying {
                        task,
                        function: rec.spec.function().id,
                        attempt: rec.attempt,
                        kind,
                        message,
                    });
                    rec.attempt += 1;
                    rec.actor = None;
                    let spec = Arc::clone(&rec.spec);
                    self.apply(decisions, now, out);
                    if let Ok(request) = &spec.options().request {
                        let again = self.queue.submit(task, request, &[]);
                        self.apply(again, now, out);
                    }
                    return;
                }
                if let Some(rec) = self.tasks.remove(&task) {
                    let state = if cancelled {
                        TaskState::Cancelled
                    } else {
                        TaskState::Failed
                    };
                    let log = rec.log(Some(now), Some(message.clone()));
                    self.history.ended(log, state);
                    let err = TaskError {
                        function: rec.spec.label(),
                        task_id: task,
                        node_id: self.node_id,
                        kind,
                        message,
                        attempts: rec.attempt,
                    };
                    out.push(Action::Fail(rec.spec.return_id(), GetError::Task(err)));
                }
            }
        }
        self.apply(decisions, now, out);
    }

    /// An async task's actor started: remember it so that cancel can abort it.
    pub fn started(&mut self, task: TaskId, attempt: u32, actor: H) {
        if let Some(rec) = self.tasks.get_mut(&task)
            && rec.attempt == attempt
        {
            rec.actor = Some(actor);
        }
    }

    pub fn blocked(&mut self, task: TaskId, now: u64, out: &mut Vec<Action<T, H>>) {
        let decisions = self.queue.blocked(task);
        self.apply(decisions, now, out);
    }

    pub fn unblocked(&mut self, task: TaskId) {
        self.queue.unblocked(task);
    }

    /// Cancels a task (its object is already marked cancelled).
    pub fn cancel(&mut self, task: TaskId, now: u64, out: &mut Vec<Action<T, H>>) {
        let Some(rec) = self.tasks.get(&task) else {
            return;
        };
        rec.cancelled.store(true, Ordering::Relaxed);
        match self.queue.cancel(task) {
            CancelOutcome::Dropped => {
                if let Some(rec) = self.tasks.remove(&task) {
                    let log = rec.log(Some(now), Some("cancelled".into()));
                    self.history.ended(log, TaskState::Cancelled);
                }
            }
            CancelOutcome::Running => {
                if rec.spec.function().kind == FunctionKind::Async
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
        now: u64,
        out: &mut Vec<Action<T, H>>,
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
        self.apply(decisions, now, out);
    }

    /// An actor is gone: its resources come back.
    pub fn actor_gone(&mut self, id: TaskId, now: u64, out: &mut Vec<Action<T, H>>) {
        self.placements.remove(&id);
        if self.queue.cancel(id) == CancelOutcome::Running {
            let decisions = self.queue.finished(id);
            self.apply(decisions, now, out);
        }
    }

    /// A placement group's bundles appear as custom resources.
    pub fn add_resources(
        &mut self,
        amounts: &[(Arc<str>, i64)],
        free: bool,
        now: u64,
        out: &mut Vec<Action<T, H>>,
    ) {
        let decisions = self.queue.add_resources(amounts, free);
        self.apply(decisions, now, out);
    }

    /// The node's CPUs become `cpu` units (its agent shares the machine anew).
    pub fn set_cpu_total(&mut self, cpu: i64, now: u64, out: &mut Vec<Action<T, H>>) {
        let decisions = self.queue.set_cpu_total(cpu);
        self.apply(decisions, now, out);
    }

    /// A placement group's bundles go: what waits for them fails.
    pub fn remove_resources(
        &mut self,
        amounts: &[(Arc<str>, i64)],
        now: u64,
        out: &mut Vec<Action<T, H>>,
    ) {
        let decisions = self.queue.remove_resources(amounts);
        self.apply(decisions, now, out);
    }

    /// The node's resources.
    pub fn resources(&self) -> &super::resources::NodeResources {
        self.queue.resources()
    }

    /// Tasks waiting for arguments or resources, and tasks running.
    pub fn counts(&self) -> (usize, usize) {
        self.queue.counts()
    }

    /// The tasks on this node that pass `filters`, live ones first then the most recently
    /// ended, at most `limit`; and how many more passed.
    pub fn list_tasks(&self, wall: &Wall, rows: &mut Capped<TaskInfo>) {
        let live = self.tasks.values().filter_map(|rec| {
            let state = self.queue.phase(rec.spec.id())?;
            Some(rec.log(None, None).info(state, self.node_id, wall))
        });
        let ended = self
            .history
            .recent()
            .rev()
            .map(|(log, state)| log.info(*state, self.node_id, wall));
        rows.offer_all(live.chain(ended));
    }

    /// Tasks by function and state: the live ones now, the ended ones since the start.
    pub fn task_counts(&self) -> Vec<(String, TaskState, u64)> {
        let mut counts: HashMap<(&'static str, TaskState), u64> = HashMap::new();
        for rec in self.tasks.values() {
            if let Some(state) = self.queue.phase(rec.spec.id()) {
                *counts.entry((rec.spec.function().id, state)).or_default() += 1;
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

    fn apply(&mut self, decisions: Vec<Decision>, now: u64, out: &mut Vec<Action<T, H>>) {
        for decision in decisions {
            match decision {
                Decision::Dispatch { task, grant } => {
                    if let Some(reply) = self.placements.remove(&task) {
                        out.push(Action::Placed(reply, Ok(grant.gpu_ids())));
                    } else if let Some(rec) = self.tasks.get_mut(&task) {
                        rec.started = Some(now);
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
                            .options()
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
                        let log = rec.log(Some(now), Some(err.to_string()));
                        self.history.ended(log, TaskState::Failed);
                        out.push(Action::Fail(spec.return_id(), err));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::function::FunctionKind;
    use crate::base::options::TaskOptions;
    use crate::base::scheduling::placement::SchedulingStrategy;
    use crate::base::scheduling::resources::{NodeResources, UNIT};
    use crate::base::scheduling::retry::{Retries, RetryPolicy};

    static F: FunctionDescriptor =
        FunctionDescriptor::new("t::f", FunctionKind::Async, TaskOptions::new);

    struct Spec {
        id: TaskId,
        options: ResolvedOptions,
    }

    impl QueuedTask for Spec {
        fn id(&self) -> TaskId {
            self.id
        }
        fn return_id(&self) -> ObjectId {
            ObjectId::from_parts(1, self.id.sequence())
        }
        fn function(&self) -> &'static FunctionDescriptor {
            &F
        }
        fn options(&self) -> &ResolvedOptions {
            &self.options
        }
    }

    fn spec(n: u64, retries: u32) -> Arc<Spec> {
        Arc::new(Spec {
            id: TaskId::from_parts(1, n),
            options: ResolvedOptions {
                request: ResourceRequest::new(1.0, 0.0, &[]),
                place_request: None,
                retry: RetryPolicy {
                    max_retries: Retries::Limited(retries),
                    retry_exceptions: true,
                },
                name: None,
                strategy: SchedulingStrategy::Default,
            },
        })
    }

    /// The abort handle: a number the test can recognise.
    type State = SchedState<Spec, u32>;

    fn state(cpus: i64) -> State {
        let node = NodeResources::new(cpus * UNIT, &[], &[]).unwrap();
        SchedState::new(NodeId::random(), LocalQueue::new(node))
    }

    fn started(out: &[Action<Spec, u32>]) -> Vec<(u64, u32)> {
        out.iter()
            .filter_map(|a| match a {
                Action::Start(s) => Some((s.spec.id().sequence(), s.attempt)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn times_are_the_ones_given_and_a_failed_attempt_runs_again() {
        let mut st = state(1);
        let mut out = Vec::new();
        st.submit(spec(1, 1), &[], 100, &mut out);
        st.submit(spec(2, 0), &[], 110, &mut out);
        assert_eq!(started(&out), vec![(1, 1)], "one CPU: one task at a time");
        out.clear();

        let failed = Ended::Failed {
            kind: TaskErrorKind::Failed,
            message: "boom".into(),
        };
        st.ended(TaskId::from_parts(1, 1), 1, failed, 200, &mut out);
        assert!(matches!(out[0], Action::Retrying { attempt: 1, .. }));
        // The freed CPU goes to the task that waited; the retry queues behind it.
        assert_eq!(started(&out), vec![(2, 1)]);
        out.clear();

        st.ended(TaskId::from_parts(1, 2), 1, Ended::Done, 300, &mut out);
        assert_eq!(started(&out), vec![(1, 2)]);
        out.clear();
        st.ended(TaskId::from_parts(1, 1), 2, Ended::Done, 400, &mut out);

        let wall = Wall {
            start_unix_us: 0,
            start_ticks: 0,
            nanos_per_tick: 1000.0,
        };
        let mut rows = Capped::new(&[], 10);
        st.list_tasks(&wall, &mut rows);
        let (rows, _) = rows.finish();
        let first = rows
            .iter()
            .find(|r| r.task_id == TaskId::from_parts(1, 1))
            .expect("task 1 listed");
        assert_eq!(first.state, TaskState::Finished);
        assert_eq!(first.attempts, 2);
        assert_eq!(first.submitted_us, 100);
        assert_eq!(first.started_us, Some(300));
    }

    #[test]
    fn a_stale_report_changes_nothing_and_cancel_aborts_a_running_async_attempt() {
        let mut st = state(1);
        let mut out = Vec::new();
        st.submit(spec(1, 0), &[], 1, &mut out);
        st.started(TaskId::from_parts(1, 1), 1, 42);
        out.clear();
        st.ended(TaskId::from_parts(1, 1), 7, Ended::Done, 2, &mut out);
        assert!(out.is_empty(), "a report for another attempt is ignored");
        st.cancel(TaskId::from_parts(1, 1), 3, &mut out);
        assert!(matches!(out.as_slice(), [Action::Abort(42)]));
    }
}
