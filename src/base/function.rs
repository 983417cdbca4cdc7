//! The vocabulary of remote functions: what `#[mobula::remote]` implements and what the
//! runtime knows of each function.

use std::fmt::Display;
use std::sync::{Arc, OnceLock};

use futures::future::LocalBoxFuture;

use super::args::Params;
use super::options::{ResolvedOptions, TaskOptions};
use super::value::Value;

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
