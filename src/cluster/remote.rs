//! Tasks that run on another node: sending one (the submitting side) and running one (the
//! executing side).
//!
//! The submitting node keeps the task's result ref pending, resolves the ref arguments where
//! they live, sends the function's id and the encoded arguments, and seals the result with
//! the value that comes back. A node that dies under a task makes it run again on another
//! node while `max_retries` allows. The executing node submits the call to itself as an
//! ordinary local task, so resources, retries of errors and panics work as on one node.

use std::sync::Arc;

use futures::future::LocalBoxFuture;

use super::node::ClusterNode;
use super::objects::Lineage;
use crate::base::args::{ArgList, Params};
use crate::base::error::{GetError, TaskError, TaskErrorKind};
use crate::base::function::RemoteFunction;
use crate::base::id::{NodeId, ObjectId, TaskId};
use crate::base::options::{ResolvedOptions, TaskOptions};
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::base::scheduling::resources::{ResourceRequest, UNIT};
use crate::base::value::Value;
use crate::object::codec;
use crate::object::store::Store;
use crate::object::table::{RemoteCopy, RemoteKey};
use crate::object::value::StoredValue;
use crate::transport::link;
use crate::wire::{self, Message, RunTask, TaskOutcome};

/// Runs a call sent by another node; made for each function by `#[mobula::remote]`.
pub type RunRemote = fn(RunTask, NodeId) -> LocalBoxFuture<'static, TaskOutcome>;

/// The executing side: decodes the arguments, runs the call here as a local task, encodes
/// what it returns.
pub fn run_remote<F: RemoteFunction>(
    task: RunTask,
    here: NodeId,
) -> LocalBoxFuture<'static, TaskOutcome> {
    let args = match <<F::Params as Params>::Args as ArgList>::decode(&task.args) {
        Ok(args) => args,
        Err(e) => {
            let why = format!("the arguments of `{}` do not decode: {e}", task.function);
            return Box::pin(async move { TaskOutcome::Refused(why) });
        }
    };
    let mut options = TaskOptions::new()
        .max_retries(task.max_retries)
        .retry_exceptions(task.retry_exceptions)
        .scheduling_strategy(SchedulingStrategy::NodeAffinity {
            node: here,
            soft: false,
        });
    for (name, amount) in &task.resources {
        options = match name.as_str() {
            "CPU" => options.num_cpus(*amount),
            "GPU" => options.num_gpus(*amount),
            _ => options.resource(name.clone(), *amount),
        };
    }
    if task.resources.iter().all(|(n, _)| n != "CPU") {
        options = options.num_cpus(0.0);
    }
    if let Some(name) = task.name {
        options = options.name(name);
    }
    let result = crate::runtime::context::on_behalf_of(task.log_to, || {
        crate::runtime::submit::submit::<F>(Some(options), args)
    });
    Box::pin(async move { outcome_of::<F::Output>(result.get_shared().await) })
}

/// How a task or call that ran here ended, for the node that asked for it.
pub(crate) fn outcome_of<R: Value>(result: Result<Arc<R>, GetError>) -> TaskOutcome {
    match result {
        Ok(value) => {
            let mut bytes = Vec::new();
            match codec::write::<R>(&value, &mut bytes) {
                Ok(()) => TaskOutcome::Value(bytes),
                Err(e) => TaskOutcome::Failed {
                    kind: TaskErrorKind::ResultRejected,
                    message: format!("the result could not be encoded: {e}"),
                },
            }
        }
        Err(GetError::Task(e)) => TaskOutcome::Failed {
            kind: e.kind,
            message: e.message,
        },
        Err(GetError::ActorDied { cause, .. }) => TaskOutcome::ActorDied(cause),
        Err(e) => TaskOutcome::DepFailed(e.to_string()),
    }
}

/// A request as the wire carries it: `CPU`, `GPU`, then custom resources.
pub(crate) fn request_list(req: &ResourceRequest) -> Vec<(String, f64)> {
    let mut out = Vec::with_capacity(2 + req.custom.len());
    if req.cpu > 0 {
        out.push(("CPU".to_string(), req.cpu as f64 / UNIT as f64));
    }
    if req.gpu > 0 {
        out.push(("GPU".to_string(), req.gpu as f64 / UNIT as f64));
    }
    for (name, amount) in &req.custom {
        out.push((name.to_string(), *amount as f64 / UNIT as f64));
    }
    out
}

/// What the submitting side needs to send one task.
pub(crate) struct Outgoing<F: RemoteFunction> {
    pub task: TaskId,
    pub result: ObjectId,
    pub args: <F::Params as Params>::Args,
    pub options: Arc<ResolvedOptions>,
    pub target: NodeId,
    /// The node whose terminal shows what the task prints.
    pub log_to: NodeId,
}

/// A task listed as waiting here for its arguments while it lives.
struct AwaitingArgs<'a>(&'a ClusterNode, TaskId);

impl<'a> AwaitingArgs<'a> {
    fn new(node: &'a ClusterNode, task: TaskId, function: &'static str) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        node.awaiting_args
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(task, (function, now));
        AwaitingArgs(node, task)
    }
}

impl Drop for AwaitingArgs<'_> {
    fn drop(&mut self) {
        self.0
            .awaiting_args
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

/// The submitting side: runs on the node's event loop until the result is sealed or failed.
pub(crate) async fn send<F: RemoteFunction>(
    cluster: Arc<ClusterNode>,
    store: Store,
    out: Outgoing<F>,
) {
    let function = F::descriptor().id;
    let fail = |kind: TaskErrorKind, node: NodeId, message: String, attempts: u32| {
        store.fail(
            out.result,
            GetError::Task(TaskError {
                function: function.to_string(),
                task_id: out.task,
                node_id: node,
                kind,
                message,
                attempts,
            }),
        );
    };
    let mut deps = Vec::new();
    out.args.deps(&mut deps);
    let _awaiting = (!deps.is_empty()).then(|| AwaitingArgs::new(&cluster, out.task, function));
    let resolved = match out.args.resolve().await {
        Ok(resolved) => resolved,
        Err(e) => {
            store.fail(out.result, e);
            return;
        }
    };
    let mut args = match <<F::Params as Params>::Args as ArgList>::encode(&resolved) {
        Ok(args) => args,
        Err(e) => {
            let message = format!("an argument could not be encoded for another node: {e}");
            fail(TaskErrorKind::Failed, cluster.node_id, message, 0);
            return;
        }
    };
    drop(resolved);
    let request = match &out.options.request {
        Ok(req) => req.clone(),
        Err(e) => {
            store.fail(
                out.result,
                GetError::InvalidOptions {
                    function: function.to_string(),
                    task_id: out.task,
                    reason: e.clone(),
                },
            );
            return;
        }
    };
    // Arguments too large for a frame follow it on the stream.
    let (streamed, payloads) = link::split_large(&mut args);
    let message = Message::RunTask(RunTask {
        task: out.task,
        function: function.to_string(),
        args,
        streamed,
        resources: request_list(&request),
        max_retries: match out.options.retry.max_retries {
            crate::base::scheduling::retry::Retries::Unlimited => -1,
            crate::base::scheduling::retry::Retries::Limited(n) => i64::from(n),
        },
        retry_exceptions: out.options.retry.retry_exceptions,
        name: out.options.name.clone(),
        log_to: out.log_to,
    });
    // Encoded once, sent again as is on a retry.
    let frame = match wire::encode(&message) {
        Ok(frame) => frame,
        Err(e) => {
            let message = format!("the call could not be sent to another node: {e}");
            fail(TaskErrorKind::Failed, cluster.node_id, message, 0);
            return;
        }
    };
    drop(message);
    let frame: Arc<[u8]> = frame.into();
    let payloads = Arc::new(payloads);
    let mut target = out.target;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let sent = cluster.run_on(target, out.task, frame.clone(), payloads.clone());
        match sent.await {
            Ok(TaskOutcome::Value(bytes)) => {
                match codec::read_owned::<F::Output>(bytes) {
                    Ok(value) => store.seal(out.result, StoredValue::new(value)),
                    Err(e) => fail(
                        TaskErrorKind::ResultRejected,
                        target,
                        format!("the result does not decode: {e}"),
                        attempts,
                    ),
                }
                return;
            }
            // Too large to send along: it stays there until wanted; how to make it again is
            // kept in case that node goes first.
            Ok(TaskOutcome::Held { .. }) => {
                let lineage = Lineage {
                    task: out.task,
                    function: function.to_string(),
                    frame: frame.clone(),
                    payloads: payloads.clone(),
                    request: request.clone(),
                    strategy: out.options.strategy,
                    max_retries: out.options.retry.max_retries,
                    attempts,
                };
                cluster.lineage(|l| l.insert(out.result, lineage));
                let copy = RemoteCopy {
                    node: target,
                    key: RemoteKey::Task(out.task),
                };
                store.seal_remote(out.result, copy);
                return;
            }
            // `run_on` reads a streamed payload and answers with its value; never seen here.
            Ok(TaskOutcome::Streamed { .. }) => {
                let message = "a streamed result arrived without its payload".to_string();
                fail(TaskErrorKind::ResultRejected, target, message, attempts);
                return;
            }
            Ok(TaskOutcome::Failed { kind, message }) => {
                fail(kind, target, message, attempts);
                return;
            }
            Ok(TaskOutcome::DepFailed(message))
            | Ok(TaskOutcome::Refused(message))
            | Ok(TaskOutcome::ActorDied(message)) => {
                fail(TaskErrorKind::Failed, target, message, attempts);
                return;
            }
            Err(e) => {
                let lost = format!("node {target} was lost while running the task: {e}");
                cluster.suspect(target);
                if !out.options.retry.max_retries.allows(attempts - 1) {
                    fail(TaskErrorKind::WorkerDied, target, lost, attempts);
                    return;
                }
                match cluster.place_retry(&request, out.options.strategy) {
                    Ok(next) => {
                        tracing::warn!("{lost}; running it again on node {next}");
                        target = next;
                    }
                    Err(why) => {
                        fail(
                            TaskErrorKind::WorkerDied,
                            target,
                            format!("{lost}; no other node can run it: {why}"),
                            attempts,
                        );
                        return;
                    }
                }
            }
        }
    }
}
