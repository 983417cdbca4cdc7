//! The link-time registry of remote functions.
//!
//! `#[mobula::remote]` registers each function under a stable id (`crate::module::name`)
//! when the program is linked; nothing is registered at run time. A node can list what it
//! can run and compute a fingerprint of it, so that nodes of one cluster can check that they
//! run the same binary.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::base::args::{ArgList, Params};
use crate::base::function::{AppError, Body, FunctionDescriptor, RemoteFunction};

/// One registered function. Made by `#[mobula::remote]`.
#[doc(hidden)]
pub struct RegisteredFunction {
    /// Returns the function's descriptor.
    pub descriptor: fn() -> &'static FunctionDescriptor,
    /// Runs a call that another node sent.
    pub run_remote: crate::runtime::hosted::RunRemote,
    /// Runs the function's body on this thread, arguments and result encoded.
    pub call_here: CallHere,
    /// Runs the function's body on this thread, arguments and result as they are.
    pub call_typed: CallTyped,
}

/// Runs a registered function's body on the calling thread: its arguments encoded as a
/// remote call carries them (values, no refs), its result encoded the same way.
pub type CallHere = fn(&[Vec<u8>]) -> Result<Vec<u8>, AppError>;

/// The body of `F` run on this thread (see [`CallHere`]); an async body is driven to its end
/// here. Made for each function by `#[mobula::remote]`, for callers that hold only the
/// function's id (a Tune trial actor on another node runs its trainable this way).
#[doc(hidden)]
pub fn call_here<F: RemoteFunction>(buffers: &[Vec<u8>]) -> Result<Vec<u8>, AppError> {
    let args = <<F::Params as Params>::Args as ArgList>::decode(buffers).map_err(|e| {
        AppError(format!(
            "the arguments of `{}` do not decode: {e}",
            F::descriptor().id
        ))
    })?;
    let resolved = args
        .resolve_blocking()
        .map_err(|e| AppError(e.to_string()))?;
    let output = match F::invoke(resolved) {
        Body::Done(result) => result?,
        Body::Future(future) => futures::executor::block_on(future)?,
    };
    let mut bytes = Vec::new();
    crate::object::codec::write::<F::Output>(&output, &mut bytes).map_err(|e| {
        AppError(format!(
            "the result of `{}` could not be encoded: {e}",
            F::descriptor().id
        ))
    })?;
    Ok(bytes)
}

/// Runs a registered function's body on the calling thread with its arguments as values (the
/// tuple of its parameters, boxed) and gives its result as a value (boxed): nothing is
/// encoded. Arguments of another type are an error. Libraries that run a user's function on
/// many values in one task (Data's `map_batches`) call it this way.
pub type CallTyped =
    fn(Box<dyn std::any::Any + Send>) -> Result<Box<dyn std::any::Any + Send>, AppError>;

/// The body of `F` run on this thread (see [`CallTyped`]); an async body is driven to its end
/// here. Made for each function by `#[mobula::remote]`.
#[doc(hidden)]
pub fn call_typed<F: RemoteFunction>(
    args: Box<dyn std::any::Any + Send>,
) -> Result<Box<dyn std::any::Any + Send>, AppError> {
    let args = args
        .downcast::<<F::Params as Params>::Resolved>()
        .map_err(|_| {
            AppError(format!(
                "`{}` was called with arguments of another type",
                F::descriptor().id
            ))
        })?;
    let output = match F::invoke(*args) {
        Body::Done(result) => result?,
        Body::Future(future) => futures::executor::block_on(future)?,
    };
    Ok(Box::new(output))
}

inventory::collect!(RegisteredFunction);

/// One registered actor class. Made by `#[mobula::actor]` on the impl block.
#[doc(hidden)]
pub struct RegisteredActor {
    /// The class's id (`crate::module::Name`).
    pub class: &'static str,
    /// Creates or finds an actor of the class for a channel from another node.
    pub open: crate::runtime::hosted::OpenHosted,
}

inventory::collect!(RegisteredActor);

/// The registered actor class with this id.
pub(crate) fn find_actor(class: &str) -> Option<&'static RegisteredActor> {
    static MAP: OnceLock<HashMap<&'static str, &'static RegisteredActor>> = OnceLock::new();
    MAP.get_or_init(|| {
        inventory::iter::<RegisteredActor>
            .into_iter()
            .map(|r| (r.class, r))
            .collect()
    })
    .get(class)
    .copied()
}

/// The ids of every remote function and actor class linked into this program, sorted.
pub fn function_ids() -> Vec<&'static str> {
    let mut ids: Vec<_> = inventory::iter::<RegisteredFunction>
        .into_iter()
        .map(|r| (r.descriptor)().id)
        .chain(
            inventory::iter::<RegisteredActor>
                .into_iter()
                .map(|r| r.class),
        )
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Every registered function by id, built once: a node looks up each call other nodes send.
fn by_id() -> &'static HashMap<&'static str, &'static RegisteredFunction> {
    static MAP: OnceLock<HashMap<&'static str, &'static RegisteredFunction>> = OnceLock::new();
    MAP.get_or_init(|| {
        inventory::iter::<RegisteredFunction>
            .into_iter()
            .map(|r| ((r.descriptor)().id, r))
            .collect()
    })
}

/// The registered function with this id.
pub(crate) fn find(id: &str) -> Option<&'static RegisteredFunction> {
    by_id().get(id).copied()
}

/// The fingerprint a node announces: 0 when it has no functions of its own, only the
/// library's (the CLI's head), so that it takes on the first user program's.
pub(crate) fn announced_fingerprint() -> u64 {
    if function_ids().iter().all(|id| id.starts_with("mobula::")) {
        0
    } else {
        fingerprint()
    }
}

/// Whether a function with this id is linked into this program.
pub fn contains(id: &str) -> bool {
    find(id).is_some()
}

/// A fingerprint of the registry (FNV-1a over the sorted ids): equal on nodes that run the
/// same set of remote functions.
pub fn fingerprint() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for id in function_ids() {
        for byte in id.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}
