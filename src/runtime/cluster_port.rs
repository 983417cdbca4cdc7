//! What the runtime needs from the cluster layer above it, declared here and handed in when
//! the node joins (as the object store is handed `RemoteObjects`): placing work on peers,
//! sending tasks and actor calls there, asking the head. The runtime never names the
//! cluster's types; `cluster::node_of` gives the layers above the concrete node.

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;

use actix_rt::ArbiterHandle;
use futures::future::LocalBoxFuture;

use super::global::Runtime;
use crate::base::args::ArgList;
use crate::base::error::{GetError, TaskError, TaskErrorKind};
use crate::base::id::{ActorId, NodeId, ObjectId, TaskId};
use crate::base::options::{ActorOptions, ActorSettings, ResolvedOptions};
use crate::base::scheduling::placement::{Placement, SchedulingStrategy};
use crate::base::scheduling::resources::ResourceRequest;
use crate::object::store::Store;
use crate::object::value::StoredValue;
use crate::wire::Message;

/// Resolves and encodes a call's arguments, on the node's event loop.
pub(crate) type EncodeArgs =
    Box<dyn FnOnce() -> LocalBoxFuture<'static, Result<Encoded, GetError>> + Send>;

/// A call's arguments encoded for another node.
pub(crate) struct Encoded {
    /// One buffer per argument.
    pub buffers: Vec<Vec<u8>>,
    /// The arguments as given: refs held inside values are kept alive while this lives (a
    /// task's sender keeps it until the task ends, since the other node may still fetch
    /// them).
    pub keep: Box<dyn Any + Send>,
}

/// Resolves `args` and encodes them for another node, keeping them as given beside the
/// bytes; an argument that does not encode fails the call, named `function` (task `task`,
/// made on node `node`).
pub(crate) fn encoder<L: ArgList>(
    args: L,
    function: Cow<'static, str>,
    task: TaskId,
    node: NodeId,
) -> EncodeArgs {
    Box::new(move || {
        Box::pin(async move {
            let resolved = args.resolve().await?;
            let encoded = L::encode(&resolved);
            drop(resolved);
            match encoded {
                Ok(buffers) => Ok(Encoded {
                    buffers,
                    keep: Box::new(args),
                }),
                Err(e) => Err(GetError::Task(TaskError {
                    function: function.into_owned(),
                    task_id: task,
                    node_id: node,
                    kind: TaskErrorKind::Failed,
                    message: format!("an argument could not be encoded for another node: {e}"),
                    attempts: 0,
                })),
            }
        })
    })
}

/// Decodes a result that came back from another node into a stored value.
pub(crate) type DecodeValue = fn(Vec<u8>) -> Result<StoredValue, String>;

/// A task placed on another node; its result is pending in this node's store.
pub(crate) struct RemoteTask {
    pub task: TaskId,
    pub result: ObjectId,
    /// The function's registered id.
    pub function: &'static str,
    /// Whether some argument is a ref (the task is listed as waiting for it meanwhile).
    pub has_deps: bool,
    pub args: EncodeArgs,
    pub decode: DecodeValue,
    pub options: Arc<ResolvedOptions>,
    /// The node it goes to; `None` while no live node can take it (it waits for one).
    pub target: Option<NodeId>,
    /// The node whose terminal shows what the task prints.
    pub log_to: NodeId,
}

/// A method call on an actor on another node; its result is pending in this node's store.
pub(crate) struct RemoteCall {
    /// `Class.method`.
    pub label: &'static str,
    pub task: TaskId,
    pub result: ObjectId,
    pub args: EncodeArgs,
    pub decode: DecodeValue,
}

/// One item of a generator on its way to the consumer's node: its index, its encoded bytes,
/// and where its answer goes.
pub(crate) struct ItemPush {
    pub index: u64,
    pub bytes: Vec<u8>,
    pub answer: futures::channel::oneshot::Sender<Result<(), String>>,
}

/// The producer's end of a generator's item channel to another node.
pub(crate) type ItemSender = tokio::sync::mpsc::UnboundedSender<ItemPush>;

/// A node's part in a cluster, as its runtime uses it.
pub(crate) trait ClusterPort: Send + Sync + 'static {
    /// The concrete node, for the layers above the runtime.
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// Where work asking `request` with `strategy` runs.
    fn place(&self, request: &ResourceRequest, strategy: SchedulingStrategy) -> Placement;
    /// Waits (blocking this thread, never the node's event loop) until a node can take work
    /// that none could when asked, up to the placement timeout; `what` names the work.
    fn wait_to_place_blocking(
        self: Arc<Self>,
        rt: &Runtime,
        request: &ResourceRequest,
        strategy: SchedulingStrategy,
        what: String,
    ) -> Result<NodeId, String>;
    /// Sends a task placed on another node; its result is sealed or failed when it ends.
    fn send_task(self: Arc<Self>, rt: &Runtime, task: RemoteTask);
    /// The node that minted ids with this prefix, if it is another member.
    fn owner_of(&self, prefix: u64) -> Option<NodeId>;
    /// Asks the head, blocking this thread (never the node's event loop) for the answer.
    fn ask_head_blocking(
        self: Arc<Self>,
        arbiter: &ArbiterHandle,
        message: Message,
    ) -> Result<Message, String>;
    /// Creates an actor of `class` on node `target`; this process owns it.
    #[allow(clippy::too_many_arguments)]
    fn create_actor(
        self: Arc<Self>,
        rt: &Runtime,
        class: &'static str,
        options: &ActorOptions,
        settings: ActorSettings,
        constructor_args: EncodeArgs,
        id: ActorId,
        target: NodeId,
    ) -> Arc<dyn RemoteActorPort>;
    /// A channel to actor `id` of `class`, running on node `host`.
    fn attach_actor(
        self: Arc<Self>,
        rt: &Runtime,
        id: ActorId,
        class: &'static str,
        host: NodeId,
    ) -> Arc<dyn RemoteActorPort>;
    /// Opens a channel for the items of a generator consumed on node `to`: each item sent
    /// on it is answered once the consumer took it into its window (or with why not). The
    /// channel closes when the returned sender is dropped.
    fn open_items(self: Arc<Self>, rt: &Runtime, to: NodeId, generator: ObjectId) -> ItemSender;
    /// Starts sending the log lines waiting in the node's outbox to their drivers.
    fn ship_logs(self: Arc<Self>, rt: &Runtime);
    /// Says this node leaves the cluster.
    fn leave(self: Arc<Self>) -> LocalBoxFuture<'static, ()>;
    /// Sends a letter for a collective group's member on node `to`; done once it is in that
    /// node's mailbox. Runs on the node's event loop.
    fn send_mail(
        self: Arc<Self>,
        to: NodeId,
        letter: crate::wire::Letter,
        bytes: Vec<u8>,
    ) -> LocalBoxFuture<'static, Result<(), String>>;
    /// Tells node `to` that a collective group failed, and why. Runs on the event loop.
    fn mail_failed(
        self: Arc<Self>,
        to: NodeId,
        group: (String, u64),
        reason: String,
    ) -> LocalBoxFuture<'static, Result<(), String>>;
}

/// An actor on another node, as a handle reaches it.
pub(crate) trait RemoteActorPort: Send + Sync {
    /// The actor's id.
    fn id(&self) -> ActorId;
    /// Its name, if this process named it.
    fn name(&self) -> Option<&str>;
    /// The node that hosts it now.
    fn host(&self) -> NodeId;
    /// Calls sent through this process's handles and not yet answered.
    fn pending_calls(&self) -> usize;
    /// The store its calls' results are sealed in.
    fn store(&self) -> &Store;
    /// Sends a call; its result is sealed or failed when the answer comes.
    fn send(&self, call: RemoteCall);
    /// Kills (`kill`) or terminates the actor.
    fn control(&self, kill: bool, allow_restart: bool);
}
