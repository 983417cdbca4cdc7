//! Values left on the nodes that made them.
//!
//! A task run for another node whose value is larger than a frame keeps it on its node and
//! answers `Held`; the submitting node's store marks the object as "on node N" and fetches
//! it the first time somebody wants it (the node gives its copy up then), or tells the node
//! to let it go when nobody wants it any more. If the node is gone when the value is wanted,
//! the submitting node runs the task that made it again, on another node, while the task's
//! `max_retries` allows (lineage reconstruction); otherwise the object is lost, and its
//! error says why.

use std::collections::HashMap;
use std::sync::Arc;

use super::node::{ClusterNode, VALUE_LIMIT};
use crate::base::error::{GetError, TaskError, TaskErrorKind};
use crate::base::id::{NodeId, ObjectId, TaskId};
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::base::scheduling::resources::ResourceRequest;
use crate::base::scheduling::retry::Retries;
use crate::object::shard::Restored;
use crate::object::store::RemoteObjects;
use crate::object::table::{Probe, Ready};
use crate::object::table::{RemoteCopy, RemoteKey};
use crate::object::waiter::Waiter;
use crate::transport::link::{self, LinkError};
use crate::wire::{Message, TaskOutcome};

/// How to make a value again: the task as it was sent.
pub(crate) struct Lineage {
    pub task: TaskId,
    pub function: String,
    pub frame: Arc<[u8]>,
    pub payloads: Arc<Vec<Vec<u8>>>,
    pub request: ResourceRequest,
    pub strategy: SchedulingStrategy,
    pub max_retries: Retries,
    /// Runs so far.
    pub attempts: u32,
}

/// The store's way to the values on other nodes.
pub(crate) struct Fetcher {
    pub cluster: std::sync::Weak<ClusterNode>,
    pub arbiter: actix_rt::ArbiterHandle,
}

impl RemoteObjects for Fetcher {
    fn fetch(&self, id: ObjectId, copy: RemoteCopy, reply: actix::Recipient<Restored>) {
        let Some(cluster) = self.cluster.upgrade() else {
            let result = Err(GetError::ObjectLost {
                object_id: id,
                reason: format!(
                    "it is on node {}, and this node has left the cluster",
                    copy.node
                ),
            });
            reply.do_send(Restored { id, result });
            return;
        };
        self.arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                let result = fetch(&cluster, id, copy).await.map(Arc::new);
                reply.do_send(Restored { id, result });
            });
        });
    }

    fn release(&self, id: ObjectId, copy: RemoteCopy) {
        let Some(cluster) = self.cluster.upgrade() else {
            return; // this node left the cluster: nothing to tell anyone
        };
        // Nobody wants it any more: nor how to make it again.
        drop(cluster.lineage(|l| l.remove(&id)));
        // Objects in another node's store are that node's to free.
        let RemoteKey::Task(task) = copy.key else {
            return;
        };
        self.arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                if let Ok(address) = cluster.find(copy.node).await {
                    let message = Message::ReleaseObject { task };
                    let _ = cluster.endpoint.request(address, &message).await;
                }
            });
        });
    }
}

/// The encoded value of an object in this node's store, for a node that got a ref to it;
/// waits while it is being made (or read back from disk).
pub(crate) async fn stored_bytes(id: ObjectId) -> Result<Vec<u8>, String> {
    let Some(store) = crate::runtime::global::current_store() else {
        return Err("this node is stopping".into());
    };
    loop {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut waiter = Some(Waiter::Call(Box::new(move || {
            let _ = tx.send(());
        })));
        match store.probe(id, &mut waiter) {
            Probe::Ready(Ready::Value(value)) => {
                let mut out = Vec::new();
                return (value.vtable.write)(&*value.data, &mut out)
                    .map(|_| out)
                    .map_err(|e| format!("its value could not be encoded: {e}"));
            }
            Probe::Ready(Ready::Bytes(bytes)) => return Ok(bytes.as_ref().clone()),
            Probe::Ready(Ready::Failed(e)) => return Err(format!("it failed: {e}")),
            Probe::Missing => {
                return Err(format!(
                    "object {id} is no longer in the store of the node that minted it (freed there)"
                ));
            }
            Probe::NotReady { .. } => {
                if rx.await.is_err() {
                    return Err("the store stopped".into());
                }
            }
        }
    }
}

/// The value's bytes, from the node that holds them.
async fn fetch_from(cluster: &ClusterNode, copy: RemoteCopy) -> Result<Vec<u8>, LinkError> {
    let address = cluster.find(copy.node).await?;
    let message = match copy.key {
        RemoteKey::Task(task) => Message::FetchObject { task },
        RemoteKey::Object(object) => Message::FetchStored { object },
    };
    match cluster.endpoint.request(address, &message).await? {
        (
            Message::TaskDone {
                outcome: TaskOutcome::Streamed { len },
                ..
            },
            mut rx,
        ) => link::recv_bytes(&mut rx, len, VALUE_LIMIT).await,
        (
            Message::TaskDone {
                outcome: TaskOutcome::Value(bytes),
                ..
            },
            _,
        ) => Ok(bytes),
        (other, _) => Err(LinkError::Unexpected {
            request: "FetchObject or FetchStored",
            got: other.name(),
        }),
    }
}

/// Fetches object `id`, making it again by its lineage when the node that held it is gone.
pub(crate) async fn fetch(
    cluster: &ClusterNode,
    id: ObjectId,
    copy: RemoteCopy,
) -> Result<Vec<u8>, GetError> {
    let lost = |reason: String| GetError::ObjectLost {
        object_id: id,
        reason,
    };
    let mut copy = copy;
    loop {
        let why = match fetch_from(cluster, copy).await {
            Ok(bytes) => {
                cluster.lineage(|l| l.remove(&id));
                return Ok(bytes);
            }
            Err(e) => match copy.key {
                RemoteKey::Task(_) => {
                    format!("node {} held its only copy and is lost ({e})", copy.node)
                }
                RemoteKey::Object(_) => {
                    return Err(lost(format!(
                        "it lives on node {}, which minted the ref, and could not be fetched from there: {e}",
                        copy.node
                    )));
                }
            },
        };
        cluster.suspect(copy.node);
        let Some(mut lineage) = cluster.lineage(|l| l.remove(&id)) else {
            return Err(lost(format!(
                "{why}; no task of this node made it, so it cannot be made again"
            )));
        };
        if !lineage.max_retries.allows(lineage.attempts) {
            return Err(lost(format!(
                "{why}; the task that made it (`{}`) has no retries left ({} runs)",
                lineage.function, lineage.attempts
            )));
        }
        let what = format!("`{}`, run again to remake an object", lineage.function);
        let node = match cluster
            .place_retry(&lineage.request, lineage.strategy, &what)
            .await
        {
            Ok(node) => node,
            Err(e) => {
                return Err(lost(format!(
                    "{why}; no node can run `{}` again: {e}",
                    lineage.function
                )));
            }
        };
        lineage.attempts += 1;
        tracing::warn!(
            "{why}; running `{}` again on node {node} to make it",
            lineage.function
        );
        let mut node = node;
        let outcome = loop {
            let outcome = cluster
                .run_on(
                    node,
                    lineage.task,
                    lineage.frame.clone(),
                    lineage.payloads.clone(),
                )
                .await;
            // Passed on by a node that could not start it (a bounded number of times).
            let Ok(TaskOutcome::Moved(next)) = outcome else {
                break outcome;
            };
            match super::remote::passed_on(&lineage.frame) {
                Ok(frame) => lineage.frame = frame,
                Err(e) => return Err(lost(format!("{why}; {e}"))),
            }
            node = next;
        };
        let failed = |kind, message| {
            GetError::Task(TaskError {
                function: lineage.function.clone(),
                task_id: lineage.task,
                node_id: node,
                kind,
                message,
                attempts: lineage.attempts,
            })
        };
        match outcome {
            Ok(TaskOutcome::Value(bytes)) => return Ok(bytes),
            Ok(TaskOutcome::Failed { kind, message }) => return Err(failed(kind, message)),
            Ok(
                TaskOutcome::DepFailed(message)
                | TaskOutcome::Refused(message)
                | TaskOutcome::ActorDied(message),
            ) => return Err(failed(TaskErrorKind::Failed, message)),
            // Held there now (or the node went too): fetch from it, or try again.
            Ok(TaskOutcome::Held { .. } | TaskOutcome::Streamed { .. } | TaskOutcome::Moved(_))
            | Err(_) => {
                copy = RemoteCopy {
                    node,
                    key: RemoteKey::Task(lineage.task),
                };
                cluster.lineage(|l| l.insert(id, lineage));
            }
        }
    }
}

impl ClusterNode {
    /// Works on the lineage of values this node's tasks left elsewhere.
    pub(super) fn lineage<R>(&self, f: impl FnOnce(&mut HashMap<ObjectId, Lineage>) -> R) -> R {
        f(&mut self.lineage.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Keeps the encoded value of task `task` that node `owner` sent here.
    pub fn hold(&self, owner: NodeId, task: TaskId, bytes: Vec<u8>) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((owner, task), bytes);
    }

    /// Gives up a held value (to send it, or because its owner let it go).
    pub fn take_held(&self, owner: NodeId, task: TaskId) -> Option<Vec<u8>> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(owner, task))
    }
}
