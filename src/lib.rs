//! # Mobula: Ray for Rust
//!
//! Remote functions, typed object refs and an object store that spills to disk, on an actor
//! runtime. A program calls [`init`], makes functions remote with [`remote`], calls them with
//! `.remote(args...)`, and gets the results with [`ObjectRef::get`] or `.await`.
//!
//! ```
//! use mobula::prelude::*;
//!
//! #[mobula::remote]
//! fn square(i: u64) -> u64 {
//!     i * i
//! }
//!
//! #[mobula::remote]
//! fn total(m: Vec<f64>) -> f64 {
//!     m.iter().sum()
//! }
//!
//! fn main() -> anyhow::Result<()> {
//!     let _mobula = mobula::init(Config::default().num_cpus(2))?;
//!     let squares = mobula::get_all(&(0..4).map(|i| square.remote(i)).collect::<Vec<_>>())?;
//!     assert_eq!(squares, vec![0, 1, 4, 9]);
//!     let matrix = mobula::put(vec![0.5f64; 1000])?;
//!     assert_eq!(total.remote(&matrix).get()?, 500.0); // a ref argument is resolved first
//!     Ok(())
//! }
//! ```
//!
//! What Mobula promises about ordering, delivery, freeing and failures is written down in
//! `docs/semantics.md`.

#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

// Lets the crate's own code use its macros, which name `::mobula`.
extern crate self as mobula;

mod api;
mod base;
pub(crate) mod cluster;
pub mod collective;
#[cfg(feature = "data")]
pub mod data;
mod http;
pub mod logs;
pub mod metrics;
mod object;
mod runtime;
pub mod serve;
pub mod state;
pub mod testing;
pub mod train;
pub mod transport;
pub mod tune;
pub mod util;
pub mod wire;

pub use api::actor::{ActorBuilder, get_actor, get_actor_in, kill};
pub use api::config::Config;
pub use api::context::{Context, context};
pub use api::function::TaskBuilder;
pub use api::kv;
pub use api::node;
pub use api::ops::{ReadyAndPending, cancel, get_all, put, wait, wait_anywhere};
pub use api::placement_group::{
    Bundle, PlacementGroup, PlacementStrategy, placement_group, remove_placement_group,
};
pub use base::error::{
    ActorError, CancelError, Error, GetError, InitError, KvError, PlacementGroupError, PutError,
    TaskError, TaskErrorKind, WaitError,
};
pub use base::id::{ActorId, NodeId, ObjectId, TaskId};
pub use base::options::{ActorOptions, DEFAULT_NAMESPACE, TaskOptions};
pub use base::scheduling::placement::SchedulingStrategy;
pub use base::value::Value;
pub use runtime::actor::handle::ActorHandle;
pub use runtime::args::{Arg, Gathered, IntoArg, RefItem, gather};
pub use runtime::generator::ObjectRefGenerator;
pub use runtime::object_ref::{GetFuture, ObjectRef};
pub use runtime::registry;
pub use runtime::split::Split;

/// Streaming generators: a remote function or actor method that yields (returns
/// `impl Iterator<Item = T>`, or an `async fn` returning `impl Stream<Item = T>`) gives an
/// [`ObjectRefGenerator`] at once, with a ref per item as each is made.
pub mod generator {
    pub use crate::base::generator::DEFAULT_WINDOW;
    pub use crate::runtime::generator::{ObjectRefGenerator, RefStream};
}

/// Makes a function remote. See the [crate documentation](crate) and [`TaskOptions`] for
/// the options it takes: `#[mobula::remote(num_cpus = 2, max_retries = 0)]`.
///
/// On `fn name(args...) -> R` it defines a unit value `name` with:
/// - `name.remote(args...) -> ObjectRef<R>` (each argument a value, an `ObjectRef` or a
///   `&ObjectRef` of the parameter's type; for `-> Result<T, E>`, an `ObjectRef<T>` whose get
///   returns the error);
/// - with `num_returns = N` (2 to 6) on a function returning an N-tuple (or a `Result` of
///   one), `name.remote(args...)` returns a tuple of N refs, one per element (Ray's
///   `num_returns`); [`Split::split`] does the same for any ref to a tuple;
/// - on a function that yields (`-> impl Iterator<Item = T>`, or an `async fn` returning
///   `impl Stream<Item = T>`), `name.remote(args...)` returns an [`ObjectRefGenerator<T>`]
///   at once: a ref per item, as each is made (Ray's generators); items typed
///   `Result<T, E>` end the task at the first `Err`; `generator_backpressure = N` bounds how
///   far the producer runs ahead of its consumer;
/// - `name.options()`, a [`TaskBuilder`] for per-call options;
/// - `name.call(args...)`, the original body as a plain Rust call on the current thread.
///
/// A parameter of type `&T` borrows a ref argument's value from the store without copying it.
/// Many refs may be passed as one `Vec<E>` argument with [`gather`], each resolved first
/// (Ray's `f.remote(*refs)`).
///
/// Because `name` becomes a unit value, a local variable of the same name cannot be declared
/// where the function is in scope (rustc error E0530): name locals differently.
pub use mobula_macros::remote;

/// Makes a struct an actor class (on the struct) and gives it remote methods (on its impl
/// block):
///
/// ```
/// use mobula::prelude::*;
///
/// #[mobula::actor]
/// struct Counter {
///     value: i64,
/// }
///
/// #[mobula::actor]
/// impl Counter {
///     fn new() -> Self {
///         Counter { value: 0 }
///     }
///
///     fn increment(&mut self) -> i64 {
///         self.value += 1;
///         self.value
///     }
/// }
///
/// # fn main() -> anyhow::Result<()> {
/// let _mobula = mobula::init(Config::default().num_cpus(1))?;
/// let counter = Counter::remote()?;                       // a CounterHandle
/// let values = mobula::get_all(&(0..5).map(|_| counter.increment()).collect::<Vec<_>>())?;
/// assert_eq!(values, vec![1, 2, 3, 4, 5]);
/// # Ok(()) }
/// ```
///
/// On the struct it defines `NameHandle` (cheap to clone, `Send`, serializable; dereferences
/// to [`ActorHandle`]). On the impl block, `fn new(...) -> Self` (or `-> Result<Self, E>`)
/// becomes `Name::remote(args...)` and `Name::options()` (an [`ActorBuilder`]); every `&self`
/// and `&mut self` method becomes a method of the handle returning an [`ObjectRef`] (for
/// `-> Result<T, E>`, an `ObjectRef<T>`). Arguments take values or refs, as for tasks. A
/// method returning `impl Iterator<Item = T>` (or an `async` one returning
/// `impl Stream<Item = T>`) yields: the handle's method returns an [`ObjectRefGenerator<T>`].
///
/// Class options go on the struct: `#[mobula::actor(max_restarts = 2, max_concurrency = 4)]`
/// (also `num_cpus`, `num_gpus`, `resources(...)`, `max_task_retries`, `max_pending_calls`,
/// `detached`). If any method is `async`, the actor is async: its calls run concurrently on
/// the runtime, up to `max_concurrency` (default 1000).
pub use mobula_macros::actor;

/// Declares a Serve deployment (Ray's `@serve.deployment`): on a struct, its options; on the
/// struct's impl block, its constructor (`new`) and methods. It makes `Name::bind(args...)`
/// (a bound deployment to pass to [`serve::run`] or to another `bind`) and `NameHandle`,
/// whose methods send each call to one of the deployment's replicas.
///
/// Options (all optional): `num_replicas`, `num_cpus`, `num_gpus`, `max_ongoing_requests`,
/// `max_queued_requests`, `health_check_period_ms`, `health_check_timeout_ms`,
/// `graceful_shutdown_timeout_ms`, and `autoscaling(min_replicas = .., max_replicas = ..,
/// target_ongoing_requests = .., upscale_delay_ms = .., downscale_delay_ms = ..)`.
///
/// In the impl block, methods take `&self` (a replica serves many requests at once):
/// - `#[http]` marks the one method the proxy calls: it takes a [`serve::Request`],
///   [`serve::Json<T>`], `String` or `Vec<u8>`, and returns a [`serve::Response`], `Json<T>`,
///   `String`, `Vec<u8>` or a `Result` of one (an error answers 500); a method returning
///   `impl Iterator<Item = T>` (or, async, `impl Stream<Item = T>`) streams its items.
/// - `#[batch(max_batch_size = N, batch_wait_timeout_ms = M)]` on a method taking `Vec<T>`
///   and returning `Vec<U>`: callers send one `T` and get one `U`.
/// - `fn reconfigure(&mut self, config: C)` gets the deployment's user config, at start and
///   whenever it changes; `fn check_health(&self) -> Result<(), E>` is the health check.
///
/// ```ignore
/// #[mobula::deployment(num_replicas = 2, max_ongoing_requests = 16)]
/// struct Model { weights: Vec<f32> }
///
/// #[mobula::deployment]
/// impl Model {
///     fn new(weights: Vec<f32>) -> Self { Model { weights } }
///
///     #[batch(max_batch_size = 8, batch_wait_timeout_ms = 5)]
///     async fn score(&self, xs: Vec<Vec<f32>>) -> Vec<f32> { /* one pass over the batch */ }
/// }
/// ```
pub use mobula_macros::deployment;

/// Marks the program's `main` so that one binary is the driver and every worker node: started
/// with `MOBULA_WORKER=1` and `MOBULA_ADDRESS` (plus `MOBULA_JOIN_TOKEN` and
/// `MOBULA_CA_FINGERPRINT`, as `mobula start --head` prints them), the process joins that
/// cluster as a worker and exits when it stops; otherwise `main` runs as written (and its
/// `mobula::init` joins the cluster in `MOBULA_ADDRESS` as a driver, if set). See
/// [`node::run_worker_if_asked`].
///
/// ```no_run
/// #[mobula::main]
/// fn main() -> anyhow::Result<()> {
///     let _mobula = mobula::init(mobula::Config::default())?;
///     Ok(())
/// }
/// ```
pub use mobula_macros::main;

/// Starts Mobula in this process (Ray's `ray.init`).
///
/// Returns a guard; dropping it (or calling [`shutdown`]) stops the runtime. Bind it for as
/// long as Mobula is used: `let _mobula = mobula::init(Config::default())?;`. Calling `init`
/// while a runtime runs is an error.
pub fn init(config: Config) -> Result<InitGuard, InitError> {
    // A process started as a build's worker (by a node agent, or by hand with MOBULA_WORKER)
    // whose `main` is not marked `#[mobula::main]` becomes the worker here.
    if !config.is_worker() {
        node::run_worker_if_asked();
    }
    let node = config.resolve()?;
    let cluster = node.cluster.clone();
    let totals = node.totals.clone();
    let http_settings = node.http_settings();
    let node_id = runtime::global::install(|| runtime::start::start(node, None))?;
    if let Some(cluster) = cluster {
        let joined = match runtime::global::current() {
            Some(rt) => cluster::join(&rt, cluster, totals),
            None => Err("the runtime stopped".into()),
        };
        if let Err(e) = joined {
            runtime::global::uninstall(Some(node_id));
            return Err(InitError::Cluster(e));
        }
    }
    let served = match runtime::global::current() {
        Some(rt) => http::start(&rt, http_settings),
        None => Ok(()),
    };
    if let Err(e) = served {
        runtime::global::uninstall(Some(node_id));
        return Err(e);
    }
    Ok(InitGuard { node_id })
}

/// Stops the runtime if one runs (Ray's `ray.shutdown`): objects not yet ready fail with
/// [`GetError::ShutDown`], memory and spill files are released. A blocking task still running
/// finishes on its thread, its result discarded.
pub fn shutdown() {
    runtime::global::uninstall(None);
}

/// Whether a runtime runs in this process (Ray's `ray.is_initialized`).
pub fn is_initialized() -> bool {
    runtime::global::is_running()
}

/// Keeps the runtime that [`init`] started running; dropping it shuts that runtime down.
#[must_use = "dropping the guard shuts Mobula down at once; bind it: `let _mobula = mobula::init(...)?;`"]
#[derive(Debug)]
pub struct InitGuard {
    node_id: NodeId,
}

impl InitGuard {
    /// The id of the node started.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Shuts the runtime down now.
    pub fn shutdown(self) {}
}

impl Drop for InitGuard {
    fn drop(&mut self) {
        runtime::global::uninstall(Some(self.node_id));
    }
}

/// What most programs need: `use mobula::prelude::*;`.
pub mod prelude {
    pub use crate::{
        ActorHandle, ActorOptions, Config, GetError, InitGuard, ObjectRef, ObjectRefGenerator,
        TaskOptions, Value, actor, cancel, context, get_actor, get_all, kill, put, remote, wait,
    };
    pub use std::time::Duration;
}

#[doc(hidden)]
pub mod __private {
    pub use crate::api::function::Streaming;
    pub use crate::base::args::{ArgList, Params};
    pub use crate::base::function::{
        AppError, Body, Fallible, FunctionDescriptor, FunctionKind, RemoteFunction,
    };
    pub use crate::base::generator::Sink;
    pub use crate::runtime::actor::call::Invoke;
    pub use crate::runtime::actor::handle::{ActorClass, ActorConstructor};
    pub use crate::runtime::args::Resolved;
    pub use crate::runtime::generator::{Yielder, drive_iter, drive_iter_async, drive_stream};
    pub use crate::runtime::hosted::run_remote;
    pub use crate::runtime::hosted::{ActorMethods, CallReply, open_hosted, serve_call};
    pub use crate::runtime::registry::{
        RegisteredActor, RegisteredFunction, call_here, call_typed,
    };
    pub use crate::runtime::submit::{call_generator, submit, submit_generator};
    pub use futures;
    pub use futures::StreamExt;
    pub use futures::executor::block_on;
    pub use inventory;
    pub use serde;
    pub use serde_json;
}
