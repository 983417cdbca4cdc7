//! Where a handle's calls go, as one trait: the actor's core on this node, a channel to it on
//! another node, or nowhere this process can reach. A handle holds one and never asks which.

use std::sync::Arc;

use super::core::Call;
use super::handle::ActorClass;
use crate::base::error::GetError;
use crate::base::id::{ActorId, NodeId, ObjectId, TaskId};
use crate::runtime::cluster_port::{RemoteActorPort, RemoteCall};
use crate::runtime::global;
use crate::runtime::object_ref::ObjectRef;
use crate::runtime::submit::begin;

/// Makes the call once its ids are known.
pub(crate) type MakeCall<'a, A> = &'a mut dyn FnMut(TaskId, ObjectId) -> Call<A>;

/// What a handle's calls and controls go to.
pub(crate) trait CallSink<A: ActorClass>: Send + Sync {
    /// The actor's name, if this process knows it.
    fn name(&self) -> Option<&str>;
    /// The node the actor runs on.
    fn node_id(&self) -> NodeId;
    /// Calls waiting or running (here), or sent and not yet answered (elsewhere).
    fn pending_calls(&self) -> usize;
    /// Stops the actor after the calls made before.
    fn terminate(&self);
    /// Kills the actor now.
    fn kill(&self, allow_restart: bool);
    /// One handle fewer.
    fn release_handle(&self) {}
    /// Begins a call labelled `label` (ids minted, its result pending) and queues or sends
    /// the call `make` builds; returns the ref to its result, untyped (the handle types it).
    fn call(&self, label: &'static str, make: MakeCall<'_, A>) -> ObjectRef<()>;
}

/// An actor on another node, reached through the cluster's channel to it.
pub(crate) struct Remote(pub Arc<dyn RemoteActorPort>);

impl<A: ActorClass> CallSink<A> for Remote {
    fn name(&self) -> Option<&str> {
        self.0.name()
    }

    fn node_id(&self) -> NodeId {
        self.0.host()
    }

    fn pending_calls(&self) -> usize {
        self.0.pending_calls()
    }

    fn terminate(&self) {
        self.0.control(false, false);
    }

    fn kill(&self, allow_restart: bool) {
        self.0.control(true, allow_restart);
    }

    fn call(&self, label: &'static str, make: MakeCall<'_, A>) -> ObjectRef<()> {
        // Sealed by the channel's driver in the store of the node that opened it.
        let store = self.0.store();
        let Some(call) = global::with_runtime(|rt| begin::<()>(&rt.ids, store, label)) else {
            return ObjectRef::detached();
        };
        let (args, decode) = make(call.task, call.result).into_remote(self.0.host());
        self.0.send(RemoteCall {
            label,
            task: call.task,
            result: call.result,
            args,
            decode,
        });
        call.out
    }
}

/// An actor this process cannot reach (a handle rebuilt from bytes outside its cluster, or
/// without a runtime): its calls fail saying so.
pub(crate) struct Unreachable {
    pub actor: ActorId,
    pub node: NodeId,
}

impl<A: ActorClass> CallSink<A> for Unreachable {
    fn name(&self) -> Option<&str> {
        None
    }

    fn node_id(&self) -> NodeId {
        self.node
    }

    fn pending_calls(&self) -> usize {
        0
    }

    fn terminate(&self) {}

    fn kill(&self, _allow_restart: bool) {}

    fn call(&self, label: &'static str, _make: MakeCall<'_, A>) -> ObjectRef<()> {
        let err = GetError::ActorDied {
            actor: format!("{} {}", A::CLASS, self.actor),
            cause: format!(
                "this process does not know the actor (it runs on node {}, and this process is not in its cluster)",
                self.node
            ),
        };
        global::with_runtime(|rt| {
            let call = begin::<()>(&rt.ids, &rt.store, label);
            rt.store.fail(call.result, err);
            call.out
        })
        .unwrap_or_else(ObjectRef::detached)
    }
}
