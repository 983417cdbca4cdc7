//! Actors: the traits `#[mobula::actor]` implements, actor options, typed handles, named
//! lookup and killing.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::args::IntoArg;
use super::object_ref::ObjectRef;
use super::placement_group::PlacementGroup;
use crate::base::args::Params;
use crate::base::error::{ActorError, GetError};
use crate::base::function::AppError;
use crate::base::id::{ActorId, NodeId};
use crate::base::options::{ActorOptions, DEFAULT_NAMESPACE};
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::base::value::Value;
use crate::cluster::actors::{ActorMethods, RemoteActor, attach};
use crate::runtime::actor as rt_actor;
use crate::runtime::actor::call::Invoke;
use crate::runtime::actor::core::ActorCore;
use crate::runtime::global;

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

/// Creating an actor with options: `Counter::options().name("c").remote(args...)`.
#[must_use = "no actor is created until .remote(...) is called"]
pub struct ActorBuilder<A, P> {
    options: ActorOptions,
    _marker: PhantomData<fn() -> (A, P)>,
}

impl<A: ActorClass, P> Default for ActorBuilder<A, P> {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! forward {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $($arg: $ty),*) -> Self {
            self.options = self.options.$name($($arg),*);
            self
        }
    )*};
}

impl<A: ActorClass, P> ActorBuilder<A, P> {
    /// Starts from the class's own options (those in its attribute).
    #[doc(hidden)]
    pub fn new() -> Self {
        ActorBuilder {
            options: A::default_options(),
            _marker: PhantomData,
        }
    }

    forward! {
        /// See [`ActorOptions::num_cpus`].
        num_cpus(n: impl Into<f64>);
        /// See [`ActorOptions::num_gpus`].
        num_gpus(n: impl Into<f64>);
        /// See [`ActorOptions::resource`].
        resource(name: impl Into<String>, amount: impl Into<f64>);
        /// See [`ActorOptions::name`].
        name(name: impl Into<String>);
        /// See [`ActorOptions::namespace`].
        namespace(namespace: impl Into<String>);
        /// See [`ActorOptions::get_if_exists`].
        get_if_exists(yes: bool);
        /// See [`ActorOptions::detached`].
        detached(yes: bool);
        /// See [`ActorOptions::max_restarts`].
        max_restarts(n: i64);
        /// See [`ActorOptions::max_task_retries`].
        max_task_retries(n: i64);
        /// See [`ActorOptions::max_pending_calls`].
        max_pending_calls(n: usize);
        /// See [`ActorOptions::max_concurrency`].
        max_concurrency(n: usize);
        /// See [`ActorOptions::scheduling_strategy`].
        scheduling_strategy(strategy: SchedulingStrategy);
        /// See [`ActorOptions::placement_group`].
        placement_group(group: &PlacementGroup, index: Option<usize>);
    }

    /// The options as set so far.
    pub fn actor_options(&self) -> &ActorOptions {
        &self.options
    }
}

macro_rules! remote_arities {
    ($( ($($t:ident $v:ident),*) )*) => {$(
        impl<Act, $($t: Value),*> ActorBuilder<Act, ($($t,)*)>
        where
            Act: ActorMethods<Params = ($($t,)*)>,
        {
            /// Creates the actor; its constructor runs on the node while this returns the
            /// handle at once. Calls made meanwhile wait for it.
            #[allow(clippy::too_many_arguments)]
            pub fn remote(self, $($v: impl IntoArg<$t>),*) -> Result<Act::Handle, ActorError> {
                rt_actor::spawn::<Act>(&self.options, ($($v.into_arg(),)*)).map(Act::Handle::from)
            }
        }
    )*};
}

remote_arities! {
    ()
    (A a)
    (A a, B b)
    (A a, B b, C c)
    (A a, B b, C c, D d)
    (A a, B b, C c, D d, E e)
    (A a, B b, C c, D d, E e, F f)
    (A a, B b, C c, D d, E e, F f, G g)
    (A a, B b, C c, D d, E e, F f, G g, H h)
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
    Remote(Arc<RemoteActor>),
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
    pub(crate) fn remote(remote: Arc<RemoteActor>) -> Self {
        ActorHandle {
            inner: Arc::new(HandleInner {
                id: remote.id,
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
            Target::Remote(remote) => remote.call::<P::Args, R>(label, args),
            Target::Unknown(node) => rt_actor::failed_call(GetError::ActorDied {
                actor: format!("{} {}", A::CLASS, self.inner.id),
                cause: format!(
                    "this process does not know the actor (it runs on node {node}, and this process is not in its cluster)"
                ),
            }),
        }
    }
}

/// Kills an actor for good (Ray's `ray.kill(actor)`); see [`ActorHandle::kill`].
pub fn kill<A: ActorClass>(handle: &ActorHandle<A>) {
    handle.kill(false);
}

/// The actor named `name` in the default namespace, as a typed handle (Ray's
/// `ray.get_actor`). A missing name or an actor of another class is an error.
pub fn get_actor<A: ActorMethods>(name: &str) -> Result<A::Handle, ActorError> {
    get_actor_in::<A>(DEFAULT_NAMESPACE, name)
}

/// As [`get_actor`], in the given namespace.
pub fn get_actor_in<A: ActorMethods>(namespace: &str, name: &str) -> Result<A::Handle, ActorError> {
    global::with_runtime(|rt| rt_actor::find::<A>(rt, namespace, name))
        .unwrap_or(Err(ActorError::NotInitialized))
        .map(A::Handle::from)
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
            Some(ActorHandle::remote(attach(rt, cluster, id, A::CLASS, node)))
        })
        .flatten();
        Ok(found.unwrap_or_else(|| ActorHandle::unknown(id, node)))
    }
}
