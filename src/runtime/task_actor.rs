//! The task actor: one attempt of one task, as a one-shot actor.
//!
//! The scheduler starts it once the task's arguments are ready and its resources granted: a
//! blocking task's actor on a worker (whose thread it may block, and no one else's), an async
//! task's actor on the node's thread. It runs the body, stores the result, reports to the
//! scheduler and stops. A blocking task's actor then starts, on the same worker, the next
//! task its resources went to, if any; otherwise the worker goes idle. If the actor is
//! stopped before the body ends (an abort, a killed worker, a runtime failure) its `Drop`
//! reports the attempt lost, so no attempt is ever silently dropped.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use actix::prelude::*;

use super::context::{self, TaskContext, WithTask};
use super::panic::{CatchPanic, WorkerKill};
use super::task_spec::{Attempt, TaskSpec};
use super::task_threads::TaskWorkers;
use crate::base::error::TaskErrorKind;
use crate::base::function::FunctionKind;
use crate::runtime::scheduler::Scheduler;
use crate::runtime::scheduler::state::{Ended, Start};

pub(crate) struct TaskActor {
    spec: Arc<TaskSpec>,
    context: Arc<TaskContext>,
    scheduler: Scheduler,
    ended: bool,
}

impl TaskActor {
    /// The actor for `start`, not yet started.
    pub fn prepare(scheduler: Scheduler, start: Start) -> Self {
        let context = Arc::new(TaskContext {
            task_id: start.spec.id,
            node_id: scheduler.node_id(),
            function: start.spec.function.id,
            actor_id: None,
            attempt: start.attempt,
            log_to: start.spec.log_to,
            gpu_ids: start.gpu_ids,
            cancelled: start.cancelled,
            waits: Default::default(),
        });
        TaskActor {
            spec: start.spec,
            context,
            scheduler,
            ended: false,
        }
    }

    /// Starts the actor for `start` on the current thread's arbiter.
    pub fn launch(scheduler: Scheduler, start: Start) -> Addr<TaskActor> {
        let actor = Self::prepare(scheduler, start);
        actor.start()
    }

    /// Stores the outcome and reports it; returns the next blocking task to run here, when
    /// `claim` is set and the freed resources went to one.
    fn finish(&mut self, attempt: Attempt, claim: bool) -> Option<Start> {
        self.ended = true;
        let store = self.scheduler.store();
        let outcome = match attempt {
            Attempt::Value(value) => {
                store.seal(self.spec.return_id, value);
                Ended::Done
            }
            Attempt::DepFailed(err) => {
                let message = err.to_string();
                store.fail(self.spec.return_id, err);
                Ended::DepFailed(message)
            }
            Attempt::Failed { kind, message } => Ended::Failed { kind, message },
        };
        self.scheduler
            .task_ended(self.spec.id, self.context.attempt, outcome, claim)
    }

    fn run_blocking(&mut self, ctx: &mut Context<Self>) {
        let (spec, task) = (Arc::clone(&self.spec), Arc::clone(&self.context));
        let ran = catch_unwind(AssertUnwindSafe(|| {
            context::with_task(&task, || spec.body.run_blocking())
        }));
        let workers = TaskWorkers::current();
        // A worker of a node that is stopping takes no next task (its thread is going away).
        let claim = workers.as_ref().is_some_and(|w| !w.is_shut_down());
        match ran {
            Ok(attempt) => match (self.finish(attempt, claim), workers) {
                (Some(next), _) => {
                    TaskActor::launch(self.scheduler.clone(), next);
                }
                (None, Some(workers)) => workers.idle(),
                (None, None) => {}
            },
            Err(payload) if payload.is::<WorkerKill>() => {
                // The worker is meant to die, as a crashed Ray worker process would: the
                // attempt is lost (and retried within max_retries), the thread stops.
                self.finish(Attempt::lost("the worker running the task died"), false);
                if let Some(workers) = workers {
                    workers.retire();
                }
            }
            Err(payload) => resume_unwind(payload),
        }
        ctx.stop();
    }

    fn run_async(&mut self, ctx: &mut Context<Self>) {
        let body = WithTask {
            task: Arc::clone(&self.context),
            inner: Box::pin(self.spec.body.start_async()),
        };
        let guarded = CatchPanic {
            inner: Box::pin(body),
        };
        ctx.spawn(guarded.into_actor(self).map(|result, act, ctx| {
            let attempt = result.unwrap_or_else(|message| Attempt::Failed {
                kind: TaskErrorKind::Panicked,
                message,
            });
            act.finish(attempt, false);
            ctx.stop();
        }));
    }
}

impl Actor for TaskActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.spec.function.kind {
            FunctionKind::Blocking => self.run_blocking(ctx),
            FunctionKind::Async => self.run_async(ctx),
        }
    }
}

impl Drop for TaskActor {
    fn drop(&mut self) {
        if !self.ended {
            let outcome = Ended::Failed {
                kind: TaskErrorKind::WorkerDied,
                message: "the task's actor stopped before the task finished".into(),
            };
            self.scheduler
                .task_ended(self.spec.id, self.context.attempt, outcome, false);
        }
    }
}

/// Stop now: the task was cancelled. An async body is dropped mid-flight; a blocking body
/// cannot be interrupted (it is not running in a context that can be stopped) and is left to
/// finish, its result discarded.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Abort;

impl Handler<Abort> for TaskActor {
    type Result = ();

    fn handle(&mut self, _: Abort, ctx: &mut Context<Self>) {
        if self.spec.function.kind == FunctionKind::Async {
            ctx.stop();
        }
    }
}
