//! The node's runtime: starting and stopping it, running tasks.
//!
//! - [`node`]: the node thread and its supervision tree.
//! - [`global`]: the process's running node, found by every API call.
//! - [`submit`], [`task_spec`], [`task_actor`]: a task from `remote()` to its stored result.
//! - [`actor`]: user actors: hosts, call queues, the directory.
//! - [`worker_pool`]: the threads for blocking task bodies and actor calls.
//! - [`context`], [`panic`]: what the current task is; panics turned into errors.

pub(crate) mod actor;
pub(crate) mod args;
pub(crate) mod clock;
pub(crate) mod cluster_port;
pub(crate) mod context;
pub(crate) mod global;
pub(crate) mod hosted;
pub(crate) mod logs;
pub(crate) mod node;
pub(crate) mod object_ref;
pub(crate) mod panic;
pub mod registry;
pub(crate) mod scheduler;
pub(crate) mod submit;
pub(crate) mod task_actor;
pub(crate) mod task_spec;
pub(crate) mod worker_pool;
pub(crate) mod workers;
