//! The cluster node as its runtime sees it: the runtime's [`ClusterPort`] implemented by
//! [`ClusterNode`], and the way back from the port to the node for the layers above.

use std::any::Any;
use std::sync::Arc;

use actix_rt::ArbiterHandle;
use futures::future::LocalBoxFuture;

use super::node::ClusterNode;
use crate::base::id::{ActorId, NodeId, ObjectId};
use crate::base::options::{ActorOptions, ActorSettings};
use crate::base::scheduling::placement::{Placement, SchedulingStrategy};
use crate::base::scheduling::resources::ResourceRequest;
use crate::runtime::cluster_port::{
    ClusterPort, EncodeArgs, ItemSender, RemoteActorPort, RemoteTask,
};
use crate::runtime::global::Runtime;
use crate::wire::Message;

/// This node's part in a cluster, if it joined one.
pub(crate) fn node_of(rt: &Runtime) -> Option<Arc<ClusterNode>> {
    let port = Arc::clone(rt.cluster.get()?);
    port.as_any().downcast::<ClusterNode>().ok()
}

impl ClusterPort for ClusterNode {
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn place(&self, request: &ResourceRequest, strategy: SchedulingStrategy) -> Placement {
        ClusterNode::place(self, request, strategy)
    }

    fn wait_to_place_blocking(
        self: Arc<Self>,
        rt: &Runtime,
        request: &ResourceRequest,
        strategy: SchedulingStrategy,
        what: String,
    ) -> Result<NodeId, String> {
        if crate::runtime::context::on_runtime_thread() {
            return Err(format!(
                "{what}: no live node can take it yet, and the node's own thread cannot wait"
            ));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let request = request.clone();
        rt.node_arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                let placed = self.wait_to_place(&request, strategy, &what).await;
                let _ = tx.send(placed);
            });
        });
        rx.recv().map_err(|_| "the node stopped".to_string())?
    }

    fn send_task(self: Arc<Self>, rt: &Runtime, task: RemoteTask) {
        let store = rt.store.clone();
        rt.node_arbiter.spawn_fn(move || {
            actix_rt::spawn(super::remote::send(self, store, task));
        });
    }

    fn owner_of(&self, prefix: u64) -> Option<NodeId> {
        ClusterNode::owner_of(self, prefix)
    }

    fn ask_head_blocking(
        self: Arc<Self>,
        arbiter: &ArbiterHandle,
        message: Message,
    ) -> Result<Message, String> {
        ClusterNode::ask_head_blocking(&self, arbiter, message)
    }

    fn create_actor(
        self: Arc<Self>,
        rt: &Runtime,
        class: &'static str,
        options: &ActorOptions,
        settings: ActorSettings,
        constructor_args: EncodeArgs,
        id: ActorId,
        target: NodeId,
    ) -> Arc<dyn RemoteActorPort> {
        super::actors::create(
            rt,
            &self,
            class,
            options,
            settings,
            constructor_args,
            id,
            target,
        )
    }

    fn attach_actor(
        self: Arc<Self>,
        rt: &Runtime,
        id: ActorId,
        class: &'static str,
        host: NodeId,
    ) -> Arc<dyn RemoteActorPort> {
        super::actors::attach(rt, &self, id, class, host)
    }

    fn open_items(self: Arc<Self>, rt: &Runtime, to: NodeId, generator: ObjectId) -> ItemSender {
        let (sender, pushes) = tokio::sync::mpsc::unbounded_channel();
        rt.node_arbiter.spawn_fn(move || {
            actix_rt::spawn(super::generators::send_items(self, to, generator, pushes));
        });
        sender
    }

    fn ship_logs(self: Arc<Self>, rt: &Runtime) {
        let logs = Arc::clone(&rt.logs);
        rt.node_arbiter.spawn_fn(move || {
            actix_rt::spawn(super::logs::flush(self, logs));
        });
    }

    fn send_mail(
        self: Arc<Self>,
        to: NodeId,
        letter: crate::wire::Letter,
        bytes: Vec<u8>,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        Box::pin(super::mail::send(self, to, letter, bytes))
    }

    fn mail_failed(
        self: Arc<Self>,
        to: NodeId,
        group: (String, u64),
        reason: String,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        Box::pin(super::mail::send_failed(self, to, group, reason))
    }

    fn leave(self: Arc<Self>) -> LocalBoxFuture<'static, ()> {
        Box::pin(ClusterNode::leave(self))
    }
}
