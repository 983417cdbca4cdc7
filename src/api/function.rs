//! The builder behind `f.options()`.

use super::placement_group::PlacementGroup;
use std::marker::PhantomData;

use crate::base::function::RemoteFunction;
use crate::base::generator::Sink;
use crate::base::options::TaskOptions;
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::base::value::Value;
use crate::runtime::args::IntoArg;
use crate::runtime::generator::ObjectRefGenerator;
use crate::runtime::object_ref::ObjectRef;

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

/// The parameter types of a function that yields, for its builder: its calls give an
/// [`ObjectRefGenerator`] (the generator's sink is an argument the caller does not pass).
#[doc(hidden)]
pub struct Streaming<P>(PhantomData<fn() -> P>);

impl<F: RemoteFunction, P> TaskBuilder<F, Streaming<P>> {
    /// See [`TaskOptions::generator_backpressure`].
    pub fn generator_backpressure(mut self, items: u32) -> Self {
        self.options = self.options.generator_backpressure(items);
        self
    }
}

/// `remote` for a function of these parameters.
macro_rules! plain_remote {
    (($($t:ident $v:ident),*)) => {
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
    };
}

/// `remote` for a function of these parameters that yields (its sink one more parameter).
macro_rules! streaming_remote {
    (($($t:ident $v:ident),*)) => {
        impl<Fun, Item: Value, $($t: Value),*> TaskBuilder<Fun, Streaming<(Item, $($t,)*)>>
        where
            Fun: RemoteFunction<Params = ($($t,)* Sink,), Output = u64>,
        {
            /// Submits the task with these options; returns the generator of its items'
            /// refs at once.
            #[allow(clippy::too_many_arguments)]
            pub fn remote(self, $($v: impl IntoArg<$t>),*) -> ObjectRefGenerator<Item> {
                crate::runtime::submit::submit_generator::<Fun, Item>(Some(self.options), |sink| {
                    ($($v.into_arg(),)* sink.into_arg(),)
                })
            }
        }
    };
}

/// Both, for every arity up to 11 parameters (a function that yields has one hidden more).
macro_rules! remote_arities {
    ($( $params:tt )*) => {$(
        plain_remote!($params);
        streaming_remote!($params);
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
}
plain_remote!((A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l));
