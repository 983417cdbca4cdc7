//! Task channels: one long-lived QUIC stream from a node to each peer carries every task the
//! node sends there, and their outcomes back as they end.
//!
//! A stream per task would cost a stream's setup, bookkeeping and teardown on both sides for
//! each task; one stream costs one frame per task each way, and tasks sent together travel
//! together. The submitting side ([`TaskChannel`]) matches outcomes to tasks by task id; the
//! executing side ([`serve`]) submits each task as it reads it, so tasks from one node start
//! in the order they were sent, and answers each when it ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::node::{ClusterNode, VALUE_LIMIT};
use crate::base::id::{NodeId, TaskId};
use crate::base::scheduling::resources::ResourceRequest;
use crate::runtime::registry;
use crate::transport::link::{self, LinkError};
use crate::wire::{INLINE_LIMIT, Message, TaskOutcome};

type Reply = oneshot::Sender<Result<TaskOutcome, LinkError>>;

/// A task to write: its encoded [`Message::RunTask`] frame and the arguments that follow it.
struct Outgoing {
    task: TaskId,
    frame: Arc<[u8]>,
    payloads: Arc<Vec<Vec<u8>>>,
    reply: Reply,
}

/// The sending side of a channel to one peer; usable from the node's event loop.
pub(crate) struct TaskChannel {
    outbox: mpsc::UnboundedSender<Outgoing>,
    alive: Arc<AtomicBool>,
}

/// Tasks written and not yet answered, by id.
type Pending = Rc<RefCell<HashMap<TaskId, Reply>>>;

impl TaskChannel {
    /// Opens a channel on `connection`; must run on the node's event loop.
    pub async fn open(connection: &quinn::Connection) -> Result<Self, LinkError> {
        let (mut tx, rx) = connection
            .open_bi()
            .await
            .map_err(|e| LinkError::Lost(e.to_string()))?;
        link::send(&mut tx, &Message::OpenTasks).await?;
        let pending: Pending = Rc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let (outbox, inbox) = mpsc::unbounded_channel();
        actix_rt::spawn(write_tasks(tx, inbox, pending.clone(), alive.clone()));
        actix_rt::spawn(read_outcomes(rx, pending, alive.clone()));
        Ok(TaskChannel { outbox, alive })
    }

    /// False once the channel broke: a new one must be opened.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire) && !self.outbox.is_closed()
    }

    /// Sends a task and waits for how it ended.
    pub async fn run(
        &self,
        task: TaskId,
        frame: Arc<[u8]>,
        payloads: Arc<Vec<Vec<u8>>>,
    ) -> Result<TaskOutcome, LinkError> {
        let closed = || LinkError::Lost("the task channel closed".into());
        let (reply, answer) = oneshot::channel();
        self.outbox
            .send(Outgoing {
                task,
                frame,
                payloads,
                reply,
            })
            .map_err(|_| closed())?;
        answer.await.unwrap_or_else(|_| Err(closed()))
    }
}

/// Fails every pending task with `why` and marks the channel dead.
fn fail_all(pending: &Pending, alive: &AtomicBool, why: &str) {
    alive.store(false, Ordering::Release);
    for (_, reply) in pending.borrow_mut().drain() {
        let _ = reply.send(Err(LinkError::Lost(why.to_string())));
    }
}

async fn write_tasks(
    mut tx: quinn::SendStream,
    mut inbox: mpsc::UnboundedReceiver<Outgoing>,
    pending: Pending,
    alive: Arc<AtomicBool>,
) {
    while let Some(out) = inbox.recv().await {
        if !alive.load(Ordering::Acquire) {
            let _ = out
                .reply
                .send(Err(LinkError::Lost("the task channel broke".into())));
            continue;
        }
        // Registered before it is written, so that a fast answer finds it.
        pending.borrow_mut().insert(out.task, out.reply);
        let mut written = tx
            .write_all(&out.frame)
            .await
            .map_err(|e| LinkError::Lost(e.to_string()));
        for payload in out.payloads.iter() {
            if written.is_ok() {
                written = link::send_bytes(&mut tx, payload).await;
            }
        }
        if let Err(e) = written {
            fail_all(&pending, &alive, &e.to_string());
        }
    }
    let _ = tx.finish();
}

async fn read_outcomes(mut rx: quinn::RecvStream, pending: Pending, alive: Arc<AtomicBool>) {
    loop {
        let (task, outcome) = match link::recv(&mut rx).await {
            Ok(Message::TaskDone {
                task,
                outcome: TaskOutcome::Streamed { len },
            }) => match link::recv_bytes(&mut rx, len, VALUE_LIMIT).await {
                Ok(bytes) => (task, TaskOutcome::Value(bytes)),
                Err(e) => return fail_all(&pending, &alive, &e.to_string()),
            },
            Ok(Message::TaskDone { task, outcome }) => (task, outcome),
            Ok(Message::Refused { reason }) => {
                return fail_all(&pending, &alive, &format!("refused: {reason}"));
            }
            Ok(other) => {
                let why = format!("the peer sent {} on a task channel", other.name());
                return fail_all(&pending, &alive, &why);
            }
            Err(e) => return fail_all(&pending, &alive, &e.to_string()),
        };
        if let Some(reply) = pending.borrow_mut().remove(&task) {
            let _ = reply.send(Ok(outcome));
        }
    }
}

/// The executing side of a channel: runs each task as it arrives, answers each as it ends,
/// until the sender closes the channel or its link breaks.
pub(crate) async fn serve(
    node: Arc<ClusterNode>,
    from: NodeId,
    tx: quinn::SendStream,
    mut rx: quinn::RecvStream,
) {
    let here = node.node_id;
    let (done, writer) =
        link::answer_writer(tx, |task, outcome| Message::TaskDone { task, outcome });
    let writer = actix_rt::spawn(writer);
    loop {
        match link::recv(&mut rx).await {
            // Stopping: the channel closes, and the tasks sent on it that did not start here
            // are run again elsewhere by their sender (as after a lost node). Those running
            // still answer.
            Ok(Message::RunTask(_)) if node.draining.load(Ordering::Acquire) => {
                tracing::info!(from = %from, "closed a task channel: this node is stopping");
                break;
            }
            Ok(Message::RunTask(mut task)) => {
                let streamed = std::mem::take(&mut task.streamed);
                if let Err(e) =
                    link::recv_large(&mut rx, &mut task.args, streamed, VALUE_LIMIT).await
                {
                    tracing::warn!(from = %from, "a task channel broke: {e}");
                    break;
                }
                let id = task.task;
                // Spill-back: it cannot start here now and a peer has room.
                if let Some(hops) = task.spill
                    && let Ok(req) = ResourceRequest::from_list(&task.resources)
                    && let Some(peer) = node.spill_target(&req, hops)
                {
                    let _ = done.send((id, TaskOutcome::Moved(peer)));
                    continue;
                }
                match registry::find(&task.function) {
                    None => {
                        let why = format!(
                            "node {here} has no function `{}`: it runs another build of the program",
                            task.function
                        );
                        let _ = done.send((id, TaskOutcome::Refused(why)));
                    }
                    Some(f) => {
                        let log_to = task.log_to;
                        // It runs under the submitter's id; one sent again while it still
                        // runs here (after a reconnect) under an id of this node's.
                        if !node.running_remote(|r| r.insert(id)) {
                            task.task = node.ids.task();
                        }
                        let runs_as = task.task;
                        // Submitted here, in the order the tasks arrived.
                        let outcome = (f.run_remote)(task, here);
                        let (done, node) = (done.clone(), node.clone());
                        actix_rt::spawn(async move {
                            // A large value stays here until its owner fetches it.
                            let outcome = match outcome.await {
                                TaskOutcome::Value(bytes) if bytes.len() > INLINE_LIMIT => {
                                    let len = bytes.len() as u64;
                                    node.hold(from, id, bytes);
                                    TaskOutcome::Held { len }
                                }
                                outcome => outcome,
                            };
                            node.running_remote(|r| r.remove(&runs_as));
                            // What it printed reaches its driver before its result.
                            if log_to != here {
                                super::logs::deliver_before_result(&node, log_to).await;
                            }
                            let _ = done.send((id, outcome));
                        });
                    }
                }
            }
            Ok(other) => {
                tracing::warn!(from = %from, "closed a task channel: it sent {}", other.name());
                break;
            }
            // The sender finished the stream or its link broke.
            Err(_) => break,
        }
    }
    drop(done);
    let _ = writer.await;
}
