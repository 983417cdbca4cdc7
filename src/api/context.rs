//! `mobula::context()`: what the running task knows about itself.

use std::sync::Arc;

use crate::base::id::{ActorId, NodeId, TaskId};
use crate::runtime::context::{TaskContext, current_task};
use crate::runtime::global;

/// The runtime context of the caller: inside a task, which task it is, on which node, with
/// which GPUs; outside any task, only the node.
#[derive(Debug, Clone)]
pub struct Context {
    task: Option<Arc<TaskContext>>,
    node_id: Option<NodeId>,
}

/// The runtime context of the caller (Ray's `ray.get_runtime_context()`).
pub fn context() -> Context {
    let task = current_task();
    let node_id = task
        .as_ref()
        .map(|t| t.node_id)
        .or_else(global::current_node_id);
    Context { task, node_id }
}

impl Context {
    /// The task running, or `None` outside a task (in the driver).
    pub fn task_id(&self) -> Option<TaskId> {
        self.task.as_ref().map(|t| t.task_id)
    }

    /// The node this code runs on, or `None` when no runtime runs.
    pub fn node_id(&self) -> Option<NodeId> {
        self.node_id
    }

    /// The id of the remote function running, or `None` outside a task.
    pub fn function(&self) -> Option<&'static str> {
        self.task.as_ref().map(|t| t.function)
    }

    /// The actor whose method is running, or `None` outside an actor call (Ray's
    /// `get_actor_id()`).
    pub fn actor_id(&self) -> Option<ActorId> {
        self.task.as_ref().and_then(|t| t.actor_id)
    }

    /// Which attempt this is: 1 for the first run, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.task.as_ref().map_or(0, |t| t.attempt)
    }

    /// The GPUs assigned to this task (empty when it asked for none).
    pub fn gpu_ids(&self) -> &[u32] {
        self.task.as_ref().map_or(&[], |t| &t.gpu_ids)
    }

    /// True once the task has been cancelled. A blocking task cannot be interrupted; a
    /// long-running one can check this and return early.
    pub fn is_cancelled(&self) -> bool {
        self.task.as_ref().is_some_and(|t| t.is_cancelled())
    }
}
