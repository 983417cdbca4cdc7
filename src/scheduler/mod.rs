//! Deciding where and when tasks run.
//!
//! - [`resources`]: amounts, requests and a node's accounting (pure).
//! - [`queue`]: the node's task queue: dependencies, classes, dispatch (pure).
//! - [`retry`]: whether a failed task runs again (pure).
//! - [`actor`]: the scheduler actor that owns the queue and starts task actors.

pub(crate) mod actor;
pub(crate) mod queue;
pub(crate) mod resources;
pub(crate) mod retry;
