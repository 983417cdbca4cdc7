//! The traits `#[mobula::actor]` implements, and the typed handle every call goes through.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::call::Invoke;
use super::core::ActorCore;
use crate::base::args::{ArgList, Params};
use crate::base::error::{GetError, TaskError, TaskErrorKind};
use crate::base::function::AppError;
use crate::base::id::{ActorId, NodeId};
use crate::base::options::ActorOptions;
use crate::base::value::Value;
use crate::object::codec;
use crate::object::table::Producer;
use crate::object::value::StoredValue;
use crate::runtime::cluster_port::{EncodeArgs, Encoded, RemoteActorPort, RemoteCall};
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
    target: Target<A>,
}

/// Where a handle's calls go.
enum Target<A: ActorClass> {
    /// An actor on this node.
    Local(Arc<ActorCore<A>>),
    /// An actor on another node of the cluster.
    Remote(Arc<dyn RemoteActorPort>),
    /// An actor not known here (rebuilt from bytes without a runtime or a cluster, on the
    /// node it names): its calls fail.
    Unknown(NodeId),
}

impl<A: ActorClass> Drop for HandleInner<A> {
    fn drop(&mut self) {
        if let Target::Local(core) = &self.target {
            core.release_handle();
        }
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
        ActorHandle {
            inner: Arc::new(HandleInner {
                id: core.id,
                target: Target::Local(core),
            }),
        }
    }

    /// A handle to an actor on another node.
    pub(crate) fn remote(remote: Arc<dyn RemoteActorPort>) -> Self {
        ActorHandle {
            inner: Arc::new(HandleInner {
                id: remote.id(),
                target: Target::Remote(remote),
            }),
        }
    }

    fn unknown(id: ActorId, node: NodeId) -> Self {
        ActorHandle {
            inner: Arc::new(HandleInner {
                id,
                target: Target::Unknown(node),
            }),
        }
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.inner.id
    }

    /// The actor's name, if it has one (known to the process that created it and on its
    /// node).
    pub fn name(&self) -> Option<&str> {
        match &self.inner.target {
            Target::Local(c) => c.settings.name.as_ref().map(|(_, n)| n.as_str()),
            Target::Remote(r) => r.name(),
            Target::Unknown(_) => None,
        }
    }

    /// The node the actor runs on.
    pub fn node_id(&self) -> NodeId {
        match &self.inner.target {
            Target::Local(c) => c.node_id,
            Target::Remote(r) => r.host(),
            Target::Unknown(node) => *node,
        }
    }

    /// Calls waiting or running on the actor now; for an actor on another node, the calls
    /// made through this process's handles and not yet answered.
    pub fn pending_calls(&self) -> usize {
        match &self.inner.target {
            Target::Local(c) => c.pending_calls(),
            Target::Remote(r) => r.pending_calls(),
            Target::Unknown(_) => 0,
        }
    }

    /// Stops the actor gracefully: the calls made before this one run, later ones fail with
    /// [`GetError::ActorDied`] (Ray's `actor.__ray_terminate__`).
    pub fn terminate(&self) {
        match &self.inner.target {
            Target::Local(core) => core.terminate(),
            Target::Remote(r) => r.control(false, false),
            Target::Unknown(_) => {}
        }
    }

    /// Kills the actor now: queued calls fail with [`GetError::ActorDied`]; a blocking method
    /// that is running finishes on its thread but its result is discarded; running async
    /// methods are dropped. With `allow_restart`, this counts as a failure and the actor is
    /// restarted if its `max_restarts` allows (Ray's `ray.kill(actor, no_restart=False)`).
    pub fn kill(&self, allow_restart: bool) {
        match &self.inner.target {
            Target::Local(core) => core.kill(allow_restart),
            Target::Remote(r) => r.control(true, allow_restart),
            Target::Unknown(_) => {}
        }
    }

    /// Calls a method. Used by generated handles.
    #[doc(hidden)]
    pub fn __call<P: Params, R: Value>(
        &self,
        label: &'static str,
        invoke: Invoke<A, P::Resolved, R>,
        args: P::Args,
    ) -> ObjectRef<R> {
        match &self.inner.target {
            Target::Local(core) => core.call::<P::Args, R>(label, invoke, args),
            Target::Remote(remote) => call_remote::<P::Args, R>(&**remote, label, args),
            Target::Unknown(node) => super::failed_call(GetError::ActorDied {
                actor: format!("{} {}", A::CLASS, self.inner.id),
                cause: format!(
                    "this process does not know the actor (it runs on node {node}, and this process is not in its cluster)"
                ),
            }),
        }
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
        Ok(found.unwrap_or_else(|| ActorHandle::unknown(id, node)))
    }
}

/// Sends a call to an actor on another node; returns the ref to its result at once. The
/// arguments are resolved and encoded on the node's event loop, the answer decoded as `R`.
fn call_remote<L: ArgList, R: Value>(
    remote: &dyn RemoteActorPort,
    label: &'static str,
    args: L,
) -> ObjectRef<R> {
    let Some((task, result, store)) =
        global::with_runtime(|rt| (rt.ids.task(), rt.ids.object(), rt.store.clone()))
    else {
        return ObjectRef::detached();
    };
    store.create_pending(
        result,
        Producer {
            task,
            function: label,
        },
    );
    let out = ObjectRef::adopt(result, store);
    let node = remote.host();
    let encode: EncodeArgs = Box::new(move || {
        Box::pin(async move {
            let resolved = args.resolve().await?;
            let encoded = L::encode(&resolved);
            drop(resolved);
            encoded
                .map(|buffers| Encoded {
                    buffers,
                    keep: Box::new(args),
                })
                .map_err(|e| {
                    GetError::Task(TaskError {
                        function: label.to_string(),
                        task_id: task,
                        node_id: node,
                        kind: TaskErrorKind::Failed,
                        message: format!("an argument could not be encoded for another node: {e}"),
                        attempts: 0,
                    })
                })
        })
    });
    remote.send(RemoteCall {
        label,
        task,
        result,
        args: encode,
        decode: decode_value::<R>,
    });
    out
}

/// Decodes a value another node sent as `R`.
pub(crate) fn decode_value<R: Value>(bytes: Vec<u8>) -> Result<StoredValue, String> {
    codec::read_owned::<R>(bytes).map(StoredValue::new)
}
