//! Remote functions: the trait `#[mobula::remote]` implements, task options and the builder
//! behind `f.options()`.

use super::placement_group::{BundleRef, PlacementGroup};
use std::fmt::Display;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use futures::future::LocalBoxFuture;

use super::args::{IntoArg, Params};
use super::object_ref::ObjectRef;
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::base::scheduling::resources::{ResourceRequest, set_amount};
use crate::base::scheduling::retry::{Retries, RetryPolicy};
use crate::object::value::Value;

/// Whether a function body blocks (runs on a worker thread) or is async (runs on the runtime).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    /// A plain `fn`.
    Blocking,
    /// An `async fn`.
    Async,
}

/// What the runtime knows about a remote function; one static per function.
#[doc(hidden)]
pub struct FunctionDescriptor {
    /// The stable id: `crate::module::name`.
    pub id: &'static str,
    /// Blocking or async.
    pub kind: FunctionKind,
    /// The options given in the attribute.
    pub defaults: fn() -> TaskOptions,
    resolved: OnceLock<Arc<ResolvedOptions>>,
}

impl FunctionDescriptor {
    /// Describes a function.
    pub const fn new(id: &'static str, kind: FunctionKind, defaults: fn() -> TaskOptions) -> Self {
        FunctionDescriptor {
            id,
            kind,
            defaults,
            resolved: OnceLock::new(),
        }
    }

    /// The attribute's options, checked once.
    pub(crate) fn default_options(&self) -> &Arc<ResolvedOptions> {
        self.resolved
            .get_or_init(|| Arc::new((self.defaults)().resolve()))
    }
}

impl std::fmt::Debug for FunctionDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FunctionDescriptor({}, {:?})", self.id, self.kind)
    }
}

/// A function made remote by `#[mobula::remote]`. Implemented by the macro, not by hand.
#[doc(hidden)]
pub trait RemoteFunction: Send + Sync + 'static {
    /// The parameter types, as a tuple.
    type Params: Params;
    /// What an `ObjectRef` to the result holds (the `Ok` type for a function returning
    /// `Result`).
    type Output: Value;
    /// The function's descriptor.
    fn descriptor() -> &'static FunctionDescriptor;
    /// Runs the body (a blocking function) or makes its future (an async one).
    fn invoke(args: <Self::Params as Params>::Resolved) -> Body<Self::Output>;
}

/// An error a task body returned, as text.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError(pub String);

impl AppError {
    /// Captures an error's text, with its causes (`{:#}`, as anyhow prints them).
    pub fn from_display<E: Display>(e: E) -> Self {
        AppError(format!("{e:#}"))
    }
}

/// What a body produced: a result, or a future of one.
#[doc(hidden)]
pub enum Body<T> {
    /// A blocking body ran.
    Done(Result<T, AppError>),
    /// An async body, not yet run.
    Future(LocalBoxFuture<'static, Result<T, AppError>>),
}

/// A return type that the macro treats as fallible: `Result<T, E>` with a displayable `E`.
#[doc(hidden)]
pub trait Fallible {
    /// The success type.
    type Ok;
    /// Splits into the value or the error's text.
    fn into_result(self) -> Result<Self::Ok, AppError>;
}

impl<T, E: Display> Fallible for Result<T, E> {
    type Ok = T;
    fn into_result(self) -> Result<T, AppError> {
        self.map_err(AppError::from_display)
    }
}

/// Options of a task: what it needs to run and how it is retried. Ray's `@ray.remote(...)`
/// and `.options(...)` arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOptions {
    num_cpus: f64,
    num_gpus: f64,
    resources: Vec<(String, f64)>,
    max_retries: i64,
    retry_exceptions: bool,
    name: Option<String>,
    strategy: SchedulingStrategy,
    placement: Option<BundleRef>,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            num_cpus: 1.0,
            num_gpus: 0.0,
            resources: Vec::new(),
            max_retries: 3,
            retry_exceptions: false,
            name: None,
            strategy: SchedulingStrategy::Default,
            placement: None,
        }
    }
}

impl TaskOptions {
    /// Ray's defaults: 1 CPU, no GPU, 3 retries on system failures, errors not retried.
    pub fn new() -> Self {
        Self::default()
    }

    /// CPUs the task holds while it runs (fractions allowed; 0 runs it regardless of load).
    pub fn num_cpus(mut self, n: impl Into<f64>) -> Self {
        self.num_cpus = n.into();
        self
    }

    /// GPUs the task holds while it runs (a fraction shares one GPU; above 1, whole GPUs).
    pub fn num_gpus(mut self, n: impl Into<f64>) -> Self {
        self.num_gpus = n.into();
        self
    }

    /// An amount of a custom resource the task holds while it runs.
    pub fn resource(mut self, name: impl Into<String>, amount: impl Into<f64>) -> Self {
        set_amount(&mut self.resources, name.into(), amount.into());
        self
    }

    /// How many times the task runs again when its worker dies; negative for no limit.
    /// With [`retry_exceptions`](Self::retry_exceptions), panics and errors count too.
    pub fn max_retries(mut self, n: i64) -> Self {
        self.max_retries = n;
        self
    }

    /// Also retry the task when it panics or returns `Err`.
    pub fn retry_exceptions(mut self, yes: bool) -> Self {
        self.retry_exceptions = yes;
        self
    }

    /// A name for the task, shown in errors and logs instead of the function's id.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where in a cluster the task may run (Ray's `scheduling_strategy`). Outside a cluster
    /// every strategy runs it on the one node.
    pub fn scheduling_strategy(mut self, strategy: SchedulingStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Runs the task in bundle `index` of a placement group (any bundle: `None`), on the
    /// resources reserved there (Ray's `PlacementGroupSchedulingStrategy`). Its resources
    /// must fit the bundle; it waits while the group is not ready.
    pub fn placement_group(mut self, group: &PlacementGroup, index: Option<usize>) -> Self {
        self.placement = Some(group.bundle_ref(index));
        self
    }

    pub(crate) fn resolve(&self) -> ResolvedOptions {
        let mut strategy = self.strategy;
        let mut request = ResourceRequest::new(self.num_cpus, self.num_gpus, &self.resources);
        let mut place_request = None;
        if let (Some(bundle), Ok(req)) = (&self.placement, &request) {
            let plain = req.clone();
            request = bundle.resolve(req).map(|(req, node)| {
                strategy = SchedulingStrategy::NodeAffinity { node, soft: false };
                place_request = Some(plain);
                req
            });
        }
        ResolvedOptions {
            request,
            place_request,
            retry: RetryPolicy {
                max_retries: Retries::from_ray(self.max_retries),
                retry_exceptions: self.retry_exceptions,
            },
            name: self.name.clone(),
            strategy,
        }
    }
}

/// Task options checked and converted for the scheduler.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedOptions {
    /// What the node's scheduler acquires.
    pub request: Result<ResourceRequest, String>,
    /// What a node must have to be chosen in a cluster, when it differs from `request` (a
    /// task in a placement group's bundle asks its node for the bundle's resources).
    pub place_request: Option<ResourceRequest>,
    pub retry: RetryPolicy,
    pub name: Option<String>,
    pub strategy: SchedulingStrategy,
}

/// A remote call with options: `f.options().num_cpus(2).remote(args...)`.
#[must_use = "nothing runs until .remote(...) is called"]
pub struct TaskBuilder<F, P> {
    options: TaskOptions,
    _marker: PhantomData<fn() -> (F, P)>,
}

impl<F: RemoteFunction, P> Default for TaskBuilder<F, P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: RemoteFunction, P> TaskBuilder<F, P> {
    /// Starts from the function's own options (those in its attribute).
    #[doc(hidden)]
    pub fn new() -> Self {
        TaskBuilder {
            options: (F::descriptor().defaults)(),
            _marker: PhantomData,
        }
    }

    /// See [`TaskOptions::num_cpus`].
    pub fn num_cpus(mut self, n: impl Into<f64>) -> Self {
        self.options = self.options.num_cpus(n);
        self
    }

    /// See [`TaskOptions::num_gpus`].
    pub fn num_gpus(mut self, n: impl Into<f64>) -> Self {
        self.options = self.options.num_gpus(n);
        self
    }

    /// See [`TaskOptions::resource`].
    pub fn resource(mut self, name: impl Into<String>, amount: impl Into<f64>) -> Self {
        self.options = self.options.resource(name, amount);
        self
    }

    /// See [`TaskOptions::max_retries`].
    pub fn max_retries(mut self, n: i64) -> Self {
        self.options = self.options.max_retries(n);
        self
    }

    /// See [`TaskOptions::retry_exceptions`].
    pub fn retry_exceptions(mut self, yes: bool) -> Self {
        self.options = self.options.retry_exceptions(yes);
        self
    }

    /// See [`TaskOptions::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options = self.options.name(name);
        self
    }

    /// See [`TaskOptions::scheduling_strategy`].
    pub fn scheduling_strategy(mut self, strategy: SchedulingStrategy) -> Self {
        self.options = self.options.scheduling_strategy(strategy);
        self
    }

    /// See [`TaskOptions::placement_group`].
    pub fn placement_group(mut self, group: &PlacementGroup, index: Option<usize>) -> Self {
        self.options = self.options.placement_group(group, index);
        self
    }

    /// The options as set so far.
    pub fn task_options(&self) -> &TaskOptions {
        &self.options
    }
}

macro_rules! remote_arities {
    ($( ($($t:ident $v:ident),*) )*) => {$(
        impl<Fun, $($t: Value),*> TaskBuilder<Fun, ($($t,)*)>
        where
            Fun: RemoteFunction<Params = ($($t,)*)>,
        {
            /// Submits the task with these options; returns a ref to its result at once.
            #[allow(clippy::too_many_arguments)]
            pub fn remote(self, $($v: impl IntoArg<$t>),*) -> ObjectRef<Fun::Output> {
                crate::runtime::submit::submit::<Fun>(Some(self.options), ($($v.into_arg(),)*))
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
    (A a, B b, C c, D d, E e, F f, G g, H h, I i)
    (A a, B b, C c, D d, E e, F f, G g, H h, I i, J j)
    (A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k)
    (A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l)
}
