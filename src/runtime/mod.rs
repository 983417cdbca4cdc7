//! The node's runtime: starting and stopping it, running tasks and actors.
//!
//! - [`start`]: the node thread and its supervision tree.
//! - [`global`]: the process's running node, found by every API call.
//! - [`submit`], [`task_spec`], [`task_actor`], [`scheduler`]: a task from `remote()` to its
//!   stored result; [`task_threads`]: the threads that run blocking task bodies.
//! - [`actor`]: user actors: handles, cores, hosts, the directory; [`actor_threads`]: the
//!   threads that run blocking actor calls and constructors.
//! - [`object_ref`], [`args`], [`split`]: typed refs, call arguments, and a tuple's ref
//!   split into a ref per element (`num_returns`); [`generator`]: streaming generators.
//! - [`hosted`], [`registry`]: work other nodes send here, and the functions it names.
//! - [`cluster_port`]: what the runtime needs from the cluster layer above it.
//! - [`logs`]: task logs on this node; [`clock`]: the node's clock for task times.
//! - [`context`], [`panic`]: what the current task is; panics turned into errors.

pub(crate) mod actor;
pub(crate) mod actor_threads;
pub(crate) mod args;
pub(crate) mod clock;
pub(crate) mod cluster_port;
pub(crate) mod context;
pub(crate) mod generator;
pub(crate) mod global;
pub(crate) mod hosted;
pub(crate) mod logs;
pub(crate) mod mailbox;
pub(crate) mod object_ref;
pub(crate) mod panic;
pub(crate) mod promise;
pub mod registry;
pub(crate) mod scheduler;
pub(crate) mod split;
pub(crate) mod start;
pub(crate) mod submit;
pub(crate) mod task_actor;
pub(crate) mod task_spec;
pub(crate) mod task_threads;
