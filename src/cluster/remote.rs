//! Tasks that run on another node, the submitting side (the executing side is
//! `runtime::hosted`, which hands the task to its node's scheduler as an ordinary local task,
//! so resources, retries of errors and panics work as on one node).
//!
//! The submitting node keeps the task's result ref pending, resolves the ref arguments where
//! they live, sends the function's id and the encoded arguments, and seals the result with
//! the value that comes back. A node that dies under a task makes it run again on another
//! node while `max_retries` allows.

use std::sync::Arc;

use super::node::ClusterNode;
use super::objects::Lineage;
use crate::base::error::{GetError, TaskError, TaskErrorKind};
use crate::base::id::{NodeId, TaskId};
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::object::store::Store;
use crate::object::table::{RemoteCopy, RemoteKey};
use crate::runtime::cluster_port::RemoteTask;
use crate::transport::link::{self, LinkError};
use crate::wire::{self, Message, RunTask, TaskOutcome};

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
pub(crate) async fn send(cluster: Arc<ClusterNode>, store: Store, out: RemoteTask) {
    let function = out.function;
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
    let _awaiting = out
        .has_deps
        .then(|| AwaitingArgs::new(&cluster, out.task, function));
    // The arguments as given live until the task ends: the other node may still fetch the
    // refs held inside them.
    let (mut args, _keep) = match (out.args)().await {
        Ok(encoded) => (encoded.buffers, encoded.keep),
        Err(e) => {
            store.fail(out.result, e);
            return;
        }
    };
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
        resources: request.to_list(),
        max_retries: match out.options.retry.max_retries {
            crate::base::scheduling::retry::Retries::Unlimited => -1,
            crate::base::scheduling::retry::Retries::Limited(n) => i64::from(n),
        },
        retry_exceptions: out.options.retry.retry_exceptions,
        name: out.options.name.clone(),
        log_to: out.log_to,
        // Work placed by policy may be passed on by a node that cannot start it; work
        // pinned to a node (by affinity or a placement group's bundle) may not.
        spill: (!matches!(
            out.options.strategy,
            SchedulingStrategy::NodeAffinity { .. }
        ))
        .then_some(0),
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
    let mut frame: Arc<[u8]> = frame.into();
    let payloads = Arc::new(payloads);
    let mut target = match out.target {
        Some(target) => target,
        None => {
            let what = format!("task {} ({function})", out.task);
            match cluster
                .wait_to_place(&request, out.options.strategy, &what)
                .await
            {
                Ok(target) => target,
                Err(reason) => {
                    store.fail(
                        out.result,
                        GetError::Unschedulable {
                            function: function.to_string(),
                            task_id: out.task,
                            reason,
                        },
                    );
                    return;
                }
            }
        }
    };
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let sent = cluster.run_on(target, out.task, frame.clone(), payloads.clone());
        match sent.await {
            Ok(TaskOutcome::Value(bytes)) => {
                match (out.decode)(bytes) {
                    Ok(value) => store.seal(out.result, value),
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
            // Spill-back: that node could not start it and passed it on; it did not run.
            Ok(TaskOutcome::Moved(next)) => match passed_on(&frame) {
                Ok(again) => {
                    frame = again;
                    target = next;
                    attempts -= 1;
                    cluster.placed_on(next, &request);
                }
                Err(e) => {
                    fail(TaskErrorKind::Failed, target, e, attempts);
                    return;
                }
            },
            Ok(TaskOutcome::DepFailed(message))
            | Ok(TaskOutcome::Refused(message))
            | Ok(TaskOutcome::ActorDied(message)) => {
                fail(TaskErrorKind::Failed, target, message, attempts);
                return;
            }
            // Pinned to a node that is not (or no longer) in the cluster: no retry can help.
            Err(LinkError::NoSuchNode(node)) if pinned_to(out.options.strategy, target) => {
                store.fail(
                    out.result,
                    GetError::Unschedulable {
                        function: function.to_string(),
                        task_id: out.task,
                        reason: format!(
                            "node {node} is not a live member of the cluster (hard node affinity)"
                        ),
                    },
                );
                return;
            }
            Err(e) => {
                let lost = format!("node {target} was lost while running the task: {e}");
                cluster.suspect(target);
                // If that node is alive after all and kept the value for an answer that was
                // lost on the way, it may let the value go: the task runs again.
                let (node, task) = (cluster.clone(), out.task);
                actix_rt::spawn(async move {
                    if let Ok(address) = node.find(target).await {
                        let message = Message::ReleaseObject { task };
                        let _ = node.endpoint.request(address, &message).await;
                    }
                });
                if !out.options.retry.max_retries.allows(attempts - 1) {
                    fail(TaskErrorKind::WorkerDied, target, lost, attempts);
                    return;
                }
                let what = format!("task {} ({function}), run again", out.task);
                match cluster
                    .place_retry(&request, out.options.strategy, &what)
                    .await
                {
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

/// Whether `strategy` pins work to `node` and nowhere else.
pub(super) fn pinned_to(strategy: SchedulingStrategy, node: NodeId) -> bool {
    matches!(strategy, SchedulingStrategy::NodeAffinity { node: n, soft: false } if n == node)
}

/// A task's frame as sent again after a node passed it on: its count of hops one higher.
pub(super) fn passed_on(frame: &[u8]) -> Result<Arc<[u8]>, String> {
    let bad = |e: wire::WireError| format!("the task could not be passed on: {e}");
    let Message::RunTask(mut task) = wire::decode(frame).map_err(bad)? else {
        return Err("the task could not be passed on: its frame holds no task".into());
    };
    task.spill = task.spill.map(|hops| hops.saturating_add(1));
    Ok(wire::encode(&Message::RunTask(task)).map_err(bad)?.into())
}
