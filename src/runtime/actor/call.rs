//! One method call on an actor: its arguments, how to run it on the actor's state, and its
//! result's object.

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::base::args::ArgList;
use crate::base::error::GetError;
use crate::base::function::AppError;
use crate::base::id::{NodeId, ObjectId, TaskId};
use crate::base::value::Value;
use crate::object::codec;
use crate::object::value::StoredValue;
use crate::runtime::cluster_port::{DecodeValue, EncodeArgs, encoder};
use crate::runtime::panic;

/// How a method reaches the actor's state: `&mut self` runs alone, `&self` may share it with
/// other `&self` calls; async methods hold an owned guard for as long as their future runs.
#[doc(hidden)]
pub enum Invoke<A, Args, R> {
    /// A blocking `&mut self` method.
    Exclusive(fn(&mut A, Args) -> Result<R, AppError>),
    /// A blocking `&self` method.
    Shared(fn(&A, Args) -> Result<R, AppError>),
    /// An async `&mut self` method.
    AsyncExclusive(
        fn(OwnedRwLockWriteGuard<A>, Args) -> LocalBoxFuture<'static, Result<R, AppError>>,
    ),
    /// An async `&self` method.
    AsyncShared(fn(OwnedRwLockReadGuard<A>, Args) -> LocalBoxFuture<'static, Result<R, AppError>>),
}

impl<A, Args, R> Clone for Invoke<A, Args, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, Args, R> Copy for Invoke<A, Args, R> {}

/// How a call ended.
pub(crate) enum CallOutcome {
    Value(StoredValue),
    Failed(String),
    Panicked(String),
    DepFailed(GetError),
}

/// A call with its argument and result types erased.
pub(crate) trait ErasedCall<A>: Send {
    fn id(&self) -> TaskId;
    fn return_id(&self) -> ObjectId;
    /// `Class.method`.
    fn label(&self) -> &'static str;
    /// Runs so far (1 on the first run).
    fn attempt(&self) -> u32;
    fn next_attempt(&mut self);
    /// Resolves the arguments and runs the method, on a thread that may block.
    fn run_blocking(&self, state: &RwLock<A>) -> CallOutcome;
    /// Resolves the arguments and runs the method, without blocking.
    fn run_async(&self, state: Arc<RwLock<A>>) -> LocalBoxFuture<'static, CallOutcome>;
    /// The call as it goes to the actor on node `host`: its arguments to resolve and encode,
    /// and how its answer decodes.
    fn into_remote(self: Box<Self>, host: NodeId) -> (EncodeArgs, DecodeValue);
}

pub(crate) struct TypedCall<A, L: ArgList, R> {
    pub id: TaskId,
    pub return_id: ObjectId,
    pub label: &'static str,
    pub attempt: u32,
    pub args: L,
    pub invoke: Invoke<A, L::Resolved, R>,
}

fn finish<R: Value>(result: Result<R, AppError>) -> CallOutcome {
    match result {
        Ok(v) => CallOutcome::Value(StoredValue::new(v)),
        Err(AppError(message)) => CallOutcome::Failed(message),
    }
}

impl<A, L, R> ErasedCall<A> for TypedCall<A, L, R>
where
    A: Send + Sync + 'static,
    L: ArgList,
    R: Value,
{
    fn id(&self) -> TaskId {
        self.id
    }

    fn return_id(&self) -> ObjectId {
        self.return_id
    }

    fn label(&self) -> &'static str {
        self.label
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    fn next_attempt(&mut self) {
        self.attempt += 1;
    }

    fn run_blocking(&self, state: &RwLock<A>) -> CallOutcome {
        let ran = panic::catching(|| {
            let args = match self.args.resolve_blocking() {
                Ok(args) => args,
                Err(e) => return CallOutcome::DepFailed(e),
            };
            match self.invoke {
                Invoke::Exclusive(f) => finish(f(&mut state.blocking_write(), args)),
                Invoke::Shared(f) => finish(f(&state.blocking_read(), args)),
                // Async methods make an actor async, whose calls never come here; if one did,
                // blocking on it is still correct on a worker thread.
                Invoke::AsyncExclusive(_) | Invoke::AsyncShared(_) => {
                    CallOutcome::Failed("an async method was called on a blocking worker".into())
                }
            }
        });
        ran.unwrap_or_else(CallOutcome::Panicked)
    }

    fn into_remote(self: Box<Self>, host: NodeId) -> (EncodeArgs, DecodeValue) {
        let TypedCall {
            id, label, args, ..
        } = *self;
        let encode = encoder(args, Cow::Borrowed(label), id, host);
        (encode, decode_value::<R>)
    }

    fn run_async(&self, state: Arc<RwLock<A>>) -> LocalBoxFuture<'static, CallOutcome> {
        let args = self.args.resolve();
        let invoke = self.invoke;
        Box::pin(async move {
            let args = match args.await {
                Ok(args) => args,
                Err(e) => return CallOutcome::DepFailed(e),
            };
            match invoke {
                Invoke::AsyncExclusive(f) => finish(f(state.write_owned().await, args).await),
                Invoke::AsyncShared(f) => finish(f(state.read_owned().await, args).await),
                // A blocking method of an async actor runs in place, on the runtime thread.
                Invoke::Exclusive(f) => finish(f(&mut *state.write().await, args)),
                Invoke::Shared(f) => finish(f(&*state.read().await, args)),
            }
        })
    }
}

/// Decodes a value another node sent as `R`.
pub(crate) fn decode_value<R: Value>(bytes: Vec<u8>) -> Result<StoredValue, String> {
    codec::read_owned::<R>(bytes).map(StoredValue::new)
}
