//! Submitting a task: the hot path behind `f.remote(args...)`.
//!
//! Every call starts the same way ([`begin`]: ids minted, the result registered as pending,
//! the caller's ref to it); then one placement step ([`where_to_run`]) decides local or
//! remote, and the caller follows its answer. No lock beyond one shard of the object table,
//! no serialization, one message.

use std::borrow::Cow;
use std::sync::Arc;

use super::actor::call::decode_value;
use super::cluster_port::{RemoteTask, encoder};
use super::generator::ObjectRefGenerator;
use super::global::{self, Runtime};
use super::object_ref::ObjectRef;
use super::task_spec::{TaskSpec, TypedTask};
use crate::base::args::{ArgList, Params};
use crate::base::error::GetError;
use crate::base::function::RemoteFunction;
use crate::base::generator::Sink;
use crate::base::id::{IdMint, NodeId, ObjectId, TaskId};
use crate::base::options::{ResolvedOptions, TaskOptions};
use crate::base::scheduling::placement::{Placement, SchedulingStrategy};
use crate::base::scheduling::resources::ResourceRequest;
use crate::base::value::Value;
use crate::object::store::Store;
use crate::object::table::Producer;

/// A call just begun: its ids, and the caller's ref to its pending result.
pub(crate) struct Begun<R> {
    pub task: TaskId,
    pub result: ObjectId,
    pub out: ObjectRef<R>,
}

/// The first steps of every call (a task, an actor call, here or on another node): a task
/// id and a result id minted, the result registered as pending (produced by `label`), and
/// the caller's ref to it.
pub(crate) fn begin<R>(ids: &IdMint, store: &Store, label: &'static str) -> Begun<R> {
    begin_as(ids.task(), ids, store, label)
}

/// [`begin`] under a task id given (the submitter's, for a task another node sent here).
fn begin_as<R>(task: TaskId, ids: &IdMint, store: &Store, label: &'static str) -> Begun<R> {
    let result = ids.object();
    store.create_pending(
        result,
        Producer {
            task,
            function: label,
        },
    );
    Begun {
        task,
        result,
        out: ObjectRef::adopt(result, store.clone()),
    }
}

/// Where work asking `request` with `strategy` runs: here outside a cluster, else where the
/// cluster places it. The one placement step of tasks and actors.
pub(crate) fn where_to_run(
    rt: &Runtime,
    request: &ResourceRequest,
    strategy: SchedulingStrategy,
) -> Placement {
    match rt.cluster.get() {
        Some(cluster) => cluster.place(request, strategy),
        None => Placement::Local,
    }
}

/// Submits a call of `F`; `options` are the builder's, or `None` for the attribute's.
pub fn submit<F: RemoteFunction>(
    options: Option<TaskOptions>,
    args: <F::Params as Params>::Args,
) -> ObjectRef<F::Output> {
    global::with_runtime(|rt| {
        let function = F::descriptor();
        let options = match options {
            None => Arc::clone(function.default_options()),
            Some(o) => Arc::new(o.resolve()),
        };
        let log_to = super::context::log_to().unwrap_or(rt.node_id);
        let call = begin::<F::Output>(&rt.ids, &rt.store, function.id);
        let placement = match &options.request {
            Ok(request) => {
                let place = options.place_request.as_ref().unwrap_or(request);
                where_to_run(rt, place, options.strategy)
            }
            // The scheduler reports invalid options as the task's error.
            Err(_) => Placement::Local,
        };
        match placement {
            Placement::Local => enqueue::<F>(rt, call, options, args, log_to),
            Placement::Remote(target) => send::<F>(rt, call, options, args, Some(target), log_to),
            // Placed once a node can take it (the cluster waits, up to its timeout).
            Placement::Wait(_) => send::<F>(rt, call, options, args, None, log_to),
            Placement::Infeasible(reason) => {
                rt.store.fail(
                    call.result,
                    GetError::Unschedulable {
                        function: function.id.to_string(),
                        task_id: call.task,
                        reason,
                    },
                );
                call.out
            }
        }
    })
    .unwrap_or_else(ObjectRef::detached)
}

/// Submits a call of `F` that another node placed here: to this node's scheduler, with no
/// second placement, under the task id given (the submitter's, so that the id its errors
/// name is the one this node lists and logs under; the cluster gives one of this node's
/// own when a task with that id runs here already).
pub(crate) fn submit_here<F: RemoteFunction>(
    task: TaskId,
    options: Arc<ResolvedOptions>,
    args: <F::Params as Params>::Args,
    log_to: NodeId,
) -> ObjectRef<F::Output> {
    global::with_runtime(|rt| {
        let call = begin_as::<F::Output>(task, &rt.ids, &rt.store, F::descriptor().id);
        enqueue::<F>(rt, call, options, args, log_to)
    })
    .unwrap_or_else(ObjectRef::detached)
}

/// Hands a begun call to this node's scheduler.
fn enqueue<F: RemoteFunction>(
    rt: &Runtime,
    call: Begun<F::Output>,
    options: Arc<ResolvedOptions>,
    args: <F::Params as Params>::Args,
    log_to: NodeId,
) -> ObjectRef<F::Output> {
    if rt.store.is_closed() {
        rt.store.fail(
            call.result,
            GetError::ShutDown {
                object_id: call.result,
            },
        );
        return call.out;
    }
    let mut deps = Vec::new();
    args.deps(&mut deps);
    if deps.len() > 1 {
        deps.sort_unstable();
        deps.dedup();
    }
    let spec = TaskSpec {
        id: call.task,
        return_id: call.result,
        function: F::descriptor(),
        options,
        deps,
        body: Box::new(TypedTask::<F> { args }),
        log_to,
    };
    rt.scheduler.submit(Arc::new(spec));
    call.out
}

/// Hands a begun call to the cluster, for node `target` (or the first that can take it):
/// its arguments are resolved and
/// encoded on the event loop, its result decoded as `F::Output` when it comes back.
fn send<F: RemoteFunction>(
    rt: &Runtime,
    call: Begun<F::Output>,
    options: Arc<ResolvedOptions>,
    args: <F::Params as Params>::Args,
    target: Option<NodeId>,
    log_to: NodeId,
) -> ObjectRef<F::Output> {
    let function = F::descriptor().id;
    let Some(cluster) = rt.cluster.get() else {
        // Placed on another node by a cluster this node has left: the ref says so rather
        // than stay pending.
        rt.store.fail(
            call.result,
            GetError::Unschedulable {
                function: function.to_string(),
                task_id: call.task,
                reason: "it was placed in a cluster this node is not in".to_string(),
            },
        );
        return call.out;
    };
    let mut deps = Vec::new();
    args.deps(&mut deps);
    let encode = encoder(args, Cow::Borrowed(function), call.task, rt.node_id);
    Arc::clone(cluster).send_task(
        rt,
        RemoteTask {
            task: call.task,
            result: call.result,
            function,
            has_deps: !deps.is_empty(),
            args: encode,
            decode: decode_value::<F::Output>,
            options,
            target,
            log_to,
        },
    );
    call.out
}

/// Submits a call of `F`, a function that yields `T` items: the generator is registered
/// here first, then the task is submitted with its sink as the last argument (`args` makes
/// the arguments around it).
pub fn submit_generator<F, T>(
    options: Option<TaskOptions>,
    args: impl FnOnce(Sink) -> <F::Params as Params>::Args,
) -> ObjectRefGenerator<T>
where
    F: RemoteFunction<Output = u64>,
    T: Value,
{
    let window = match &options {
        Some(o) => o.generator_backpressure,
        None => (F::descriptor().defaults)().generator_backpressure,
    };
    let opened = super::generator::open::<T>(F::descriptor().id, window);
    let end = submit::<F>(options, args(opened.sink));
    opened.attach(end)
}

/// Calls an actor method that yields `T` items: the generator is registered here first,
/// then `call` sends the call with its sink (the window is the default one).
pub fn call_generator<T: Value>(
    label: &'static str,
    call: impl FnOnce(Sink) -> ObjectRef<u64>,
) -> ObjectRefGenerator<T> {
    let opened = super::generator::open::<T>(label, crate::base::generator::DEFAULT_WINDOW);
    let end = call(opened.sink);
    opened.attach(end)
}
