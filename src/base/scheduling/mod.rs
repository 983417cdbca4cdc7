//! Deciding where and when tasks run, as pure state machines.
//!
//! - [`resources`]: amounts, requests and a node's accounting.
//! - [`task_queue`]: the node's task queue: dependencies, classes, dispatch.
//! - [`retry`]: whether a failed task runs again.
//! - [`tasks`]: the queue plus what is known of each task; events in, actions out.
//! - [`placement`]: which node of a cluster runs a task.
//! - [`bundles`]: where a placement group's bundles go, and what they become.
//! - [`history`]: the tasks that ended on the node, for the state API.

pub(crate) mod bundles;
pub(crate) mod history;
pub(crate) mod placement;
pub(crate) mod resources;
pub(crate) mod retry;
pub(crate) mod task_queue;
pub(crate) mod tasks;
