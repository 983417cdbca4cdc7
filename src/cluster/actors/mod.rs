//! Actors across nodes: the traits `#[mobula::actor]` implements for them here; the
//! hosting side in `host`, the calling (and owning) side in `owner`.
//!
//! A handle to an actor on another node holds a [`RemoteActor`]: a channel to the node that
//! hosts it, one QUIC stream carrying this process's calls in the order they were made and
//! their answers in any order. All handles to one actor in a process share the channel, so
//! calls through them keep Ray's per-caller order.
//!
//! The hosting node serves each channel ([`serve`]): it holds a handle to the actor while the
//! channel is open, queues each call on the actor as it reads it (so in the caller's order),
//! and writes each answer when its call ends. When the caller's node dies, its stream
//! breaks and its handle goes, as in Ray, where an actor dies with its owner.
//!
//! The process that created the actor on another node owns it: when the hosting node is
//! lost it creates the actor again elsewhere while `max_restarts` allows, and sends the calls
//! that were not answered again while `max_task_retries` allows, and tells the head where the
//! actor now runs. Handles other processes hold (borrowers) ask the head and follow it; their
//! calls caught by the loss fail with [`crate::GetError::ActorDied`].

mod host;
mod owner;

pub(crate) use host::serve;
pub(crate) use owner::{RemoteActor, RemoteActors, attach, create};

use futures::future::LocalBoxFuture;

use super::remote::outcome_of;
use crate::api::actor::{ActorClass, ActorConstructor, ActorHandle};
use crate::base::args::{ArgList, Params};
use crate::base::id::NodeId;
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::base::value::Value;
use crate::runtime::actor::call::Invoke;
use crate::runtime::actor::core::ActorCore;
use crate::runtime::global;
use crate::wire::{OpenActor, TaskOutcome};

/// How a call that another node sent ends: the outcome to send back.
pub type CallReply = LocalBoxFuture<'static, TaskOutcome>;

/// The methods of an actor class, callable by name for calls that come from other nodes.
/// Implemented by `#[mobula::actor]` on the impl block.
#[doc(hidden)]
pub trait ActorMethods: ActorConstructor {
    /// Queues the call of `method` (`Class.method`) with `args` encoded; its outcome comes
    /// when the call ends. An unknown method or arguments that do not decode are an error.
    fn dispatch(
        handle: &ActorHandle<Self>,
        method: &str,
        args: &[Vec<u8>],
    ) -> Result<CallReply, String>;
}

/// Queues one call that came from another node on a local actor. Used by the code
/// `#[mobula::actor]` generates for [`ActorMethods::dispatch`].
#[doc(hidden)]
pub fn serve_call<A: ActorClass, P: Params, R: Value>(
    handle: &ActorHandle<A>,
    label: &'static str,
    invoke: Invoke<A, P::Resolved, R>,
    args: &[Vec<u8>],
) -> Result<CallReply, String> {
    let args = <P::Args as ArgList>::decode(args)
        .map_err(|e| format!("the arguments of `{label}` do not decode: {e}"))?;
    let result = handle.__call::<P, R>(label, invoke, args);
    Ok(Box::pin(async move {
        outcome_of::<R>(result.get_shared().await)
    }))
}

/// An actor this node hosts for a channel from another node.
pub trait HostedActor {
    /// Queues a call.
    fn call(&self, method: &str, args: &[Vec<u8>]) -> Result<CallReply, String>;
    /// Kills (`kill`) or terminates the actor.
    fn control(&self, kill: bool, allow_restart: bool);
}

impl<A: ActorMethods> HostedActor for ActorHandle<A> {
    fn call(&self, method: &str, args: &[Vec<u8>]) -> Result<CallReply, String> {
        A::dispatch(self, method, args)
    }

    fn control(&self, kill: bool, allow_restart: bool) {
        if kill {
            self.kill(allow_restart);
        } else {
            self.terminate();
        }
    }
}

/// Opens the actor a channel names on this node: creates it, or finds it. Registered for
/// each class by `#[mobula::actor]`.
pub type OpenHosted = fn(OpenActor, NodeId) -> Result<Box<dyn HostedActor>, String>;

/// [`OpenHosted`] for class `A`.
#[doc(hidden)]
pub fn open_hosted<A: ActorMethods>(
    open: OpenActor,
    here: NodeId,
) -> Result<Box<dyn HostedActor>, String> {
    match open.create {
        Some(create) => {
            let args = <<A::Params as Params>::Args as ArgList>::decode(&create.args)
                .map_err(|e| format!("the constructor's arguments do not decode: {e}"))?;
            let options = create
                .options
                .scheduling_strategy(SchedulingStrategy::NodeAffinity {
                    node: here,
                    soft: false,
                });
            crate::runtime::context::on_behalf_of(create.log_to, || {
                crate::runtime::actor::spawn_as::<A>(&options, args, Some(open.actor))
            })
            .map(|handle| Box::new(handle) as Box<dyn HostedActor>)
            .map_err(|e| e.to_string())
        }
        None => global::with_runtime(|rt| rt.actors.acquire::<ActorCore<A>>(open.actor))
            .flatten()
            .map(|core| Box::new(ActorHandle::adopt(core)) as Box<dyn HostedActor>)
            .ok_or_else(|| format!("actor {} is not on node {here}", open.actor)),
    }
}
