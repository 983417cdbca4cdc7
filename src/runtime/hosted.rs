//! What this node runs for other nodes: a task another node placed here, and the calls of
//! actors this node hosts for them. Each registered function and actor class has an entry
//! point here (made by the macros, kept in the registry); the cluster layer reads the
//! requests off the network and hands them in.

use std::sync::Arc;

use futures::future::LocalBoxFuture;

use super::actor::call::Invoke;
use super::actor::core::ActorCore;
use super::actor::handle::{ActorClass, ActorConstructor, ActorHandle};
use super::{context, global, submit};
use crate::base::args::{ArgList, Params};
use crate::base::error::{GetError, TaskErrorKind};
use crate::base::function::RemoteFunction;
use crate::base::id::NodeId;
use crate::base::options::ResolvedOptions;
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::base::scheduling::resources::ResourceRequest;
use crate::base::scheduling::retry::{Retries, RetryPolicy};
use crate::base::value::Value;
use crate::object::codec;
use crate::wire::{OpenActor, RunTask, TaskOutcome};

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
    let options = Arc::new(options_of(&task, here));
    let result = context::on_behalf_of(task.log_to, || {
        submit::submit_here::<F>(task.task, options, args, task.log_to)
    });
    Box::pin(async move { outcome_of::<F::Output>(result.get_shared().await) })
}

/// The options of a task another node placed here, as its scheduler takes them: pinned to
/// this node, holding what the sender asked for.
fn options_of(task: &RunTask, here: NodeId) -> ResolvedOptions {
    ResolvedOptions {
        request: ResourceRequest::from_list(&task.resources),
        place_request: None,
        retry: RetryPolicy {
            max_retries: Retries::from_ray(task.max_retries),
            retry_exceptions: task.retry_exceptions,
        },
        name: task.name.clone(),
        strategy: SchedulingStrategy::NodeAffinity {
            node: here,
            soft: false,
        },
    }
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
    // A channel opened again after its link broke: the actor runs here already, and is
    // attached to rather than created twice.
    let running = || {
        global::with_runtime(|rt| rt.actors.acquire::<ActorCore<A>>(open.actor))
            .flatten()
            .map(|core| Box::new(ActorHandle::adopt(core)) as Box<dyn HostedActor>)
    };
    match open.create {
        Some(_) if let Some(attached) = running() => Ok(attached),
        Some(create) => {
            let args = <<A::Params as Params>::Args as ArgList>::decode(&create.args)
                .map_err(|e| format!("the constructor's arguments do not decode: {e}"))?;
            let options = create
                .options
                .scheduling_strategy(SchedulingStrategy::NodeAffinity {
                    node: here,
                    soft: false,
                });
            context::on_behalf_of(create.log_to, || {
                super::actor::spawn_as::<A>(&options, args, Some(open.actor))
            })
            .map(|handle| Box::new(handle) as Box<dyn HostedActor>)
            .map_err(|e| e.to_string())
        }
        None => running().ok_or_else(|| format!("actor {} is not on node {here}", open.actor)),
    }
}
