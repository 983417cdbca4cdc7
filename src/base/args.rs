//! The arguments of a call, as the runtime sees them: a tuple whose ref arguments are
//! resolved before the body runs, and encoded when the call goes to another node. The tuples
//! of `Arg`s implement these (in `api::args`).

use futures::future::LocalBoxFuture;

use super::error::GetError;
use super::id::ObjectId;

/// The arguments of one call, as a tuple of `Arg`s.
#[doc(hidden)]
pub trait ArgList: Clone + Send + Sync + 'static {
    /// The tuple of `Resolved` arguments the body receives.
    type Resolved: Send + 'static;
    /// The ids of the ref arguments.
    fn deps(&self, out: &mut Vec<ObjectId>);
    /// Resolves on a thread that may block.
    fn resolve_blocking(&self) -> Result<Self::Resolved, GetError>;
    /// Resolves without blocking.
    fn resolve(&self) -> LocalBoxFuture<'static, Result<Self::Resolved, GetError>>;
    /// Encodes resolved arguments for another node, one buffer each.
    fn encode(resolved: &Self::Resolved) -> Result<Vec<Vec<u8>>, String>;
    /// Decodes arguments another node encoded, as values.
    fn decode(buffers: &[Vec<u8>]) -> Result<Self, String>;
}

/// The parameter types of a remote function, as a tuple.
#[doc(hidden)]
pub trait Params: 'static {
    /// The tuple of `Arg`s.
    type Args: ArgList<Resolved = Self::Resolved>;
    /// The tuple of `Resolved` arguments.
    type Resolved: Send + 'static;
}
