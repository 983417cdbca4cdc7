//! The bottom layer: the vocabulary every other layer speaks, and the pure decisions.
//!
//! Nothing here does I/O, reads a clock, starts a thread or names actix, tokio or quinn
//! (`tests/layers.rs` checks it); time comes in as a number. Every other module may import
//! from here; nothing here imports from them.
//!
//! - [`id`]: node, task, actor and object ids.
//! - [`build`]: builds of a user's program: what agents run, how a machine is shared.
//! - [`jobs`]: the head's job table: every driver, every submitted program.
//! - [`kv`]: the head's key-value store for libraries (Ray's internal KV), bounded.
//! - [`error`]: the library's typed errors.
//! - [`rows`], [`filter`]: the state API's rows and `key=value` filters.
//! - [`value`], [`args`], [`function`], [`options`]: what a remote function is, takes and
//!   returns, and the options of tasks and actors as plain data.
//! - [`node_config`]: a node's configuration, checked.
//! - [`log_line`]: one captured log line and its prefix.
//! - [`generator`]: streaming generators: the consumer's items and the producer's window.
//! - [`panic`]: a panic's message.
//! - [`call_queue`]: an actor's call queue and phase.
//! - [`membership`]: who is in the cluster and who died, as the head decides it.
//! - [`role`]: the roles certificates carry and who may ask what.
//! - [`scheduling`]: resources, the task queue, retries, placement, bundles, task history.

pub(crate) mod args;
pub mod build;
pub(crate) mod call_queue;
pub mod error;
pub mod filter;
pub(crate) mod function;
pub mod generator;
pub mod id;
pub mod jobs;
pub(crate) mod kv;
pub mod log_line;
pub mod membership;
pub(crate) mod node_config;
pub(crate) mod options;
pub(crate) mod panic;
pub mod role;
pub mod rows;
pub(crate) mod scheduling;
pub(crate) mod value;
