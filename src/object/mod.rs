//! The object store: ids, stored values and the store's actor tree.
//!
//! - [`value`], [`size`]: what can be stored, type-erased values, size estimates (pure).
//! - [`table`], [`eviction`]: the per-shard object table and the choice of spill victims,
//!   state machines with no I/O (pure).
//! - [`waiter`]: how a waiting get, task or `wait` is woken.
//! - [`store`]: the shared hot paths (put, seal, get, reference counts) over the tables.
//! - [`supervisor`], [`shard`], [`spiller`]: the actors (store supervisor -> shards ->
//!   spillers) that own lifecycle: dropping freed values, spilling, restoring, deleting files.

pub(crate) mod codec;
pub(crate) mod eviction;
pub(crate) mod shard;
pub(crate) mod size;
pub(crate) mod spiller;
pub(crate) mod store;
pub(crate) mod supervisor;
pub(crate) mod table;
pub(crate) mod value;
pub(crate) mod waiter;
