//! Deciding where and when tasks run.
//!
//! - [`resources`]: amounts, requests and a node's accounting (pure).
//! - [`queue`]: the node's task queue: dependencies, classes, dispatch (pure).
//! - [`retry`]: whether a failed task runs again (pure).
//! - [`state`]: the queue plus what is known of each task; events in, actions out (pure).
//! - [`placement`]: which node of a cluster runs a task (pure).
//! - [`bundles`]: where a placement group's bundles go, and what they become (pure).
//! - [`history`]: the tasks that ended on the node, for the state API (pure).
//! - [`handle`]: the shared scheduler every thread calls into; carries out the actions.

pub(crate) mod bundles;
pub(crate) mod handle;
pub(crate) mod history;
pub(crate) mod placement;
pub(crate) mod queue;
pub(crate) mod resources;
pub(crate) mod retry;
pub(crate) mod state;
