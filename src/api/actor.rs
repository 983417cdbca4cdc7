//! Actors: the traits `#[mobula::actor]` implements, actor options, typed handles, named
//! lookup and killing.

use std::marker::PhantomData;

use super::placement_group::PlacementGroup;
use crate::base::error::ActorError;
use crate::base::options::{ActorOptions, DEFAULT_NAMESPACE};
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::base::value::Value;
use crate::runtime::actor as rt_actor;
use crate::runtime::actor::handle::{ActorClass, ActorHandle};
use crate::runtime::args::IntoArg;
use crate::runtime::global;
use crate::runtime::hosted::ActorMethods;

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

    /// Starts from these options instead of the class's (a library creating actors with
    /// options it computed).
    #[doc(hidden)]
    pub fn with_options(options: ActorOptions) -> Self {
        ActorBuilder {
            options,
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
