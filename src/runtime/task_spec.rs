//! A submitted task: what to run, with which arguments and options.

use std::sync::Arc;

use futures::future::LocalBoxFuture;

use super::panic;
use crate::base::args::{ArgList, Params};
use crate::base::error::{GetError, TaskErrorKind};
use crate::base::function::{AppError, Body, FunctionDescriptor, RemoteFunction};
use crate::base::id::{NodeId, ObjectId, TaskId};
use crate::base::options::ResolvedOptions;
use crate::base::value::Value;
use crate::object::value::StoredValue;

/// One task, shared by the scheduler (which keeps it for retries) and the task actor running
/// an attempt of it.
pub(crate) struct TaskSpec {
    pub id: TaskId,
    pub return_id: ObjectId,
    pub function: &'static FunctionDescriptor,
    pub options: Arc<ResolvedOptions>,
    /// The ref arguments, without repeats.
    pub deps: Vec<ObjectId>,
    pub body: Box<dyn ErasedTask>,
    /// The node whose terminal shows what the task prints: its driver's.
    pub log_to: NodeId,
}

/// How one attempt ended.
pub(crate) enum Attempt {
    /// The body produced a value.
    Value(StoredValue),
    /// The body failed (or its worker died).
    Failed {
        kind: TaskErrorKind,
        message: String,
    },
    /// An argument's object failed; the task fails with the same error, without running.
    DepFailed(GetError),
}

impl Attempt {
    pub fn lost(message: impl Into<String>) -> Self {
        Attempt::Failed {
            kind: TaskErrorKind::WorkerDied,
            message: message.into(),
        }
    }
}

/// A task with its function and argument types erased.
pub(crate) trait ErasedTask: Send + Sync {
    /// Resolves the arguments and runs a blocking body, on a worker thread.
    fn run_blocking(&self) -> Attempt;
    /// The future of an async body (resolving its arguments first), for the runtime thread.
    fn start_async(&self) -> LocalBoxFuture<'static, Attempt>;
}

pub(crate) struct TypedTask<F: RemoteFunction> {
    pub args: <F::Params as Params>::Args,
}

fn finish<T: Value>(result: Result<T, AppError>) -> Attempt {
    match result {
        Ok(v) => Attempt::Value(StoredValue::new(v)),
        Err(AppError(message)) => Attempt::Failed {
            kind: TaskErrorKind::Failed,
            message,
        },
    }
}

impl<F: RemoteFunction> ErasedTask for TypedTask<F> {
    fn run_blocking(&self) -> Attempt {
        let ran = panic::catching(|| {
            let args = match self.args.resolve_blocking() {
                Ok(args) => args,
                Err(e) => return Attempt::DepFailed(e),
            };
            match F::invoke(args) {
                Body::Done(result) => finish(result),
                // Not how the runtime calls an async function, but correct all the same.
                Body::Future(fut) => finish(futures::executor::block_on(fut)),
            }
        });
        ran.unwrap_or_else(|message| Attempt::Failed {
            kind: TaskErrorKind::Panicked,
            message,
        })
    }

    fn start_async(&self) -> LocalBoxFuture<'static, Attempt> {
        let args = self.args.resolve();
        Box::pin(async move {
            let args = match args.await {
                Ok(args) => args,
                Err(e) => return Attempt::DepFailed(e),
            };
            match F::invoke(args) {
                Body::Done(result) => finish(result),
                Body::Future(fut) => finish(fut.await),
            }
        })
    }
}
