//! The traits `#[mobula::actor]` implements, and the typed handle every call goes through.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::call::{Invoke, TypedCall};
use super::core::{ActorCore, Call};
use super::sink::{CallSink, Remote, Unreachable};
use crate::base::args::Params;
use crate::base::function::AppError;
use crate::base::id::{ActorId, NodeId};
use crate::base::options::ActorOptions;
use crate::base::value::Value;
use crate::runtime::cluster_port::RemoteActorPort;
use crate::runtime::global;
use crate::runtime::object_ref::ObjectRef;

/// An actor class: a struct marked `#[mobula::actor]`. Implemented by the macro.
#[doc(hidden)]
pub trait ActorClass: Send + Sync + Sized + 'static {
    /// The class's stable id: `crate::module::Name`.
    const CLASS: &'static str;
    /// The typed handle (`NameHandle`).
    type Handle: From<ActorHandle<Self>>;
    /// The options given in the struct's attribute.
    fn default_options() -> ActorOptions;
}

/// How an actor class is built and run. Implemented by `#[mobula::actor]` on the impl block.
#[doc(hidden)]
pub trait ActorConstructor: ActorClass {
    /// The parameters of `new`.
    type Params: Params;
    /// True when some method is async: calls then run on the runtime, concurrently.
    const ASYNC: bool;
    /// Runs `new`.
    fn construct(args: <Self::Params as Params>::Resolved) -> Result<Self, AppError>;
}

/// A handle to an actor of class `A`. Generated handles (`CounterHandle`) wrap one and
/// dereference to it, adding a method per actor method.
///
/// Handles are cheap to clone, `Send`, and serializable: pass them to tasks and to other
/// actors; every copy reaches the same actor. Unless the actor is detached, it stops (after
/// its pending calls) when the last handle is dropped.
pub struct ActorHandle<A: ActorClass> {
    inner: Arc<HandleInner<A>>,
}

pub(crate) struct HandleInner<A: ActorClass> {
    id: ActorId,
    /// Where its calls go.
    sink: Arc<dyn CallSink<A>>,
}

impl<A: ActorClass> Drop for HandleInner<A> {
    fn drop(&mut self) {
        self.sink.release_handle();
    }
}

impl<A: ActorClass> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        ActorHandle {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A: ActorClass> fmt::Debug for ActorHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorHandle<{}>({})", A::CLASS, self.inner.id)
    }
}

impl<A: ActorClass> PartialEq for ActorHandle<A> {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl<A: ActorClass> Eq for ActorHandle<A> {}

impl<A: ActorClass> ActorHandle<A> {
    /// A new handle to `core` (its handle count was already taken).
    pub(crate) fn adopt(core: Arc<ActorCore<A>>) -> Self {
        let id = core.id;
        Self::with_sink(id, Arc::new(core))
    }

    /// A handle to an actor on another node.
    pub(crate) fn remote(remote: Arc<dyn RemoteActorPort>) -> Self {
        Self::with_sink(remote.id(), Arc::new(Remote(remote)))
    }

    fn unknown(actor: ActorId, node: NodeId) -> Self {
        Self::with_sink(actor, Arc::new(Unreachable { actor, node }))
    }

    fn with_sink(id: ActorId, sink: Arc<dyn CallSink<A>>) -> Self {
        ActorHandle {
            inner: Arc::new(HandleInner { id, sink }),
        }
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.inner.id
    }

    /// The actor's name, if it has one (known to the process that created it and on its
    /// node).
    pub fn name(&self) -> Option<&str> {
        self.inner.sink.name()
    }

    /// The node the actor runs on.
    pub fn node_id(&self) -> NodeId {
        self.inner.sink.node_id()
    }

    /// Calls waiting or running on the actor now; for an actor on another node, the calls
    /// made through this process's handles and not yet answered.
    pub fn pending_calls(&self) -> usize {
        self.inner.sink.pending_calls()
    }

    /// Stops the actor gracefully: the calls made before this one run, later ones fail with
    /// [`GetError::ActorDied`](crate::GetError::ActorDied) (Ray's `actor.__ray_terminate__`).
    pub fn terminate(&self) {
        self.inner.sink.terminate();
    }

    /// Kills the actor now: queued calls fail with [`GetError::ActorDied`](crate::GetError::ActorDied); a blocking method
    /// that is running finishes on its thread but its result is discarded; running async
    /// methods are dropped. With `allow_restart`, this counts as a failure and the actor is
    /// restarted if its `max_restarts` allows (Ray's `ray.kill(actor, no_restart=False)`).
    pub fn kill(&self, allow_restart: bool) {
        self.inner.sink.kill(allow_restart);
    }

    /// Calls a method. Used by generated handles.
    #[doc(hidden)]
    pub fn __call<P: Params, R: Value>(
        &self,
        label: &'static str,
        invoke: Invoke<A, P::Resolved, R>,
        args: P::Args,
    ) -> ObjectRef<R> {
        let mut args = Some(args);
        let mut make = |id, return_id| -> Call<A> {
            Box::new(TypedCall {
                id,
                return_id,
                label,
                attempt: 1,
                args: args.take().expect("a call is made once"),
                invoke,
            })
        };
        self.inner.sink.call(label, &mut make).cast()
    }
}

/// The name under which a handle is serialized.
const WIRE_NAME: &str = "mobula::ActorHandle";

impl<A: ActorClass> Serialize for ActorHandle<A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::object::value::note_serialized_actor(self.inner.id);
        serializer.serialize_newtype_struct(WIRE_NAME, &(self.inner.id, self.node_id()))
    }
}

impl<'de, A: ActorClass> Deserialize<'de> for ActorHandle<A> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "mobula::ActorHandle")]
        struct Wire((ActorId, NodeId));
        let Wire((id, node)) = Wire::deserialize(deserializer)?;
        Ok(ActorHandle::attach(id, node))
    }
}

impl<A: ActorClass> ActorHandle<A> {
    /// A handle to the actor `id` on `node`, as a serialized handle becomes one on arrival:
    /// for libraries that keep actors by id (Serve's controller hands replicas to routers).
    pub(crate) fn attach(id: ActorId, node: NodeId) -> Self {
        let found = global::with_runtime(|rt| {
            if node == rt.node_id {
                return rt
                    .actors
                    .acquire::<ActorCore<A>>(id)
                    .map(ActorHandle::adopt);
            }
            let cluster = rt.cluster.get()?;
            Some(ActorHandle::remote(Arc::clone(cluster).attach_actor(
                rt,
                id,
                A::CLASS,
                node,
            )))
        })
        .flatten();
        found.unwrap_or_else(|| ActorHandle::unknown(id, node))
    }
}
