//! The link-time registry of remote functions.
//!
//! `#[mobula::remote]` registers each function under a stable id (`crate::module::name`)
//! when the program is linked; nothing is registered at run time. A node can list what it
//! can run and compute a fingerprint of it, so that nodes of one cluster can check that they
//! run the same binary.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::api::function::FunctionDescriptor;

/// One registered function. Made by `#[mobula::remote]`.
#[doc(hidden)]
pub struct RegisteredFunction {
    /// Returns the function's descriptor.
    pub descriptor: fn() -> &'static FunctionDescriptor,
    /// Runs a call that another node sent.
    pub run_remote: crate::cluster::remote::RunRemote,
}

inventory::collect!(RegisteredFunction);

/// One registered actor class. Made by `#[mobula::actor]` on the impl block.
#[doc(hidden)]
pub struct RegisteredActor {
    /// The class's id (`crate::module::Name`).
    pub class: &'static str,
    /// Creates or finds an actor of the class for a channel from another node.
    pub open: crate::cluster::actors::OpenHosted,
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

/// The fingerprint a node announces: 0 when it has no functions (the CLI's head).
pub(crate) fn announced_fingerprint() -> u64 {
    if function_ids().is_empty() {
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
