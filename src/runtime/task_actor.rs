//! The task actor: one attempt of one task, as a one-shot actor.
//!
//! The scheduler spawns it when the task's arguments are ready and its resources granted. It
//! runs the body (a blocking body on a worker thread, an async body in its own context on the
//! runtime thread), stores the result, reports to the scheduler and stops. If it is stopped
//! before the body ends (an abort, a dying worker, a runtime failure) its `Drop` reports the
//! attempt lost, so no attempt is ever silently dropped.

use std::sync::Arc;

use actix::prelude::*;
use futures::channel::oneshot;

use super::context::{self, TaskContext, WithTask};
use super::panic::CatchPanic;
use super::task_spec::{Attempt, TaskSpec};
use super::worker_pool::WorkerPool;
use crate::api::function::FunctionKind;
use crate::error::TaskErrorKind;
use crate::object::store::Store;
use crate::scheduler::actor::{Ended, SchedulerActor, TaskEnded};

pub(crate) struct TaskActor {
    spec: Arc<TaskSpec>,
    context: Arc<TaskContext>,
    store: Store,
    scheduler: Addr<SchedulerActor>,
    pool: WorkerPool,
    ended: bool,
}

impl TaskActor {
    pub fn new(
        spec: Arc<TaskSpec>,
        context: Arc<TaskContext>,
        store: Store,
        scheduler: Addr<SchedulerActor>,
        pool: WorkerPool,
    ) -> Self {
        TaskActor {
            spec,
            context,
            store,
            scheduler,
            pool,
            ended: false,
        }
    }

    fn end(&mut self, attempt: Attempt, ctx: &mut Context<Self>) {
        self.ended = true;
        let outcome = match attempt {
            Attempt::Value(value) => {
                self.store.seal(self.spec.return_id, value);
                Ended::Done
            }
            Attempt::DepFailed(err) => {
                self.store.fail(self.spec.return_id, err);
                Ended::Done
            }
            Attempt::Failed { kind, message } => Ended::Failed { kind, message },
        };
        self.scheduler.do_send(TaskEnded {
            task: self.spec.id,
            attempt: self.context.attempt,
            outcome,
        });
        ctx.stop();
    }

    fn run_blocking(&mut self, ctx: &mut Context<Self>) {
        let (tx, rx) = oneshot::channel();
        let spec = Arc::clone(&self.spec);
        let task = Arc::clone(&self.context);
        let job = Box::new(move || {
            let attempt = context::with_task(&task, || spec.body.run_blocking());
            let _ = tx.send(attempt);
        });
        if let Err(reason) = self.pool.execute(job) {
            return self.end(Attempt::lost(reason), ctx);
        }
        ctx.wait(rx.into_actor(self).map(|received, act, ctx| {
            let attempt = received
                .unwrap_or_else(|_| Attempt::lost("the worker thread running the task died"));
            act.end(attempt, ctx);
        }));
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
            act.end(attempt, ctx);
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
            self.scheduler.do_send(TaskEnded {
                task: self.spec.id,
                attempt: self.context.attempt,
                outcome,
            });
        }
    }
}

/// Stop now: the task was cancelled. An async body is dropped mid-flight; a blocking body
/// cannot be interrupted, so the actor waits for it (its result will be discarded).
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
