//! What the state API reports: one row type per kind of thing (tasks, actors, objects,
//! nodes, placement groups), and what a node sends the head when asked.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::base::id::{ActorId, NodeId, ObjectId, TaskId};

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TaskState {
    /// Waiting for a ref argument to be ready.
    PendingArgs,
    /// Its arguments are ready; waiting for resources.
    PendingResources,
    /// An actor's method call, queued at its actor until the calls before it have run (Ray's
    /// `SUBMITTED_TO_WORKER`).
    SubmittedToActor,
    /// Running (or blocked in a get).
    Running,
    /// Returned a value.
    Finished,
    /// Failed for good: its error is in [`TaskInfo::error`].
    Failed,
    /// Cancelled.
    Cancelled,
}

impl TaskState {
    /// Every state, in the order of a task's life.
    pub const ALL: [TaskState; 7] = [
        TaskState::PendingArgs,
        TaskState::PendingResources,
        TaskState::SubmittedToActor,
        TaskState::Running,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    /// The state's name as filters and tables write it (`RUNNING`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TaskState::PendingArgs => "PENDING_ARGS",
            TaskState::PendingResources => "PENDING_RESOURCES",
            TaskState::SubmittedToActor => "SUBMITTED_TO_ACTOR",
            TaskState::Running => "RUNNING",
            TaskState::Finished => "FINISHED",
            TaskState::Failed => "FAILED",
            TaskState::Cancelled => "CANCELLED",
        }
    }

    /// Whether the task has ended.
    pub fn is_ended(self) -> bool {
        matches!(
            self,
            TaskState::Finished | TaskState::Failed | TaskState::Cancelled
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A task, as the node that runs it knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task.
    pub task_id: TaskId,
    /// Its function's id (`crate::module::name`), with its name option if it has one.
    pub function: String,
    /// Where it is.
    pub state: TaskState,
    /// The node it runs (or ran) on.
    pub node_id: NodeId,
    /// For an actor's method call: the actor.
    pub actor_id: Option<ActorId>,
    /// Attempts so far: 1, then one more per retry.
    pub attempts: u32,
    /// When it was submitted to its node, in microseconds since the Unix epoch.
    pub submitted_us: u64,
    /// When its latest attempt started.
    pub started_us: Option<u64>,
    /// When it ended.
    pub ended_us: Option<u64>,
    /// Why it failed (for a failed or cancelled task).
    pub error: Option<String>,
}

/// Where an actor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ActorState {
    /// Waiting for resources, or its constructor runs.
    PendingCreation,
    /// Serving calls.
    Alive,
    /// Its constructor runs again after a failure.
    Restarting,
    /// Gone: killed, out of restarts, or its last handle dropped.
    Dead,
}

impl ActorState {
    /// Every state, in the order of an actor's life.
    pub const ALL: [ActorState; 4] = [
        ActorState::PendingCreation,
        ActorState::Alive,
        ActorState::Restarting,
        ActorState::Dead,
    ];

    /// The state's name as filters and tables write it (`ALIVE`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ActorState::PendingCreation => "PENDING_CREATION",
            ActorState::Alive => "ALIVE",
            ActorState::Restarting => "RESTARTING",
            ActorState::Dead => "DEAD",
        }
    }
}

impl fmt::Display for ActorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An actor, as the node that hosts it knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActorInfo {
    /// The actor.
    pub actor_id: ActorId,
    /// Its class's id (`crate::module::Name`).
    pub class: String,
    /// Its name (`namespace/name` outside the default namespace), if it has one.
    pub name: Option<String>,
    /// Where it is.
    pub state: ActorState,
    /// The node hosting it.
    pub node_id: NodeId,
    /// Times it was restarted.
    pub restarts: u32,
    /// Method calls it has run to their end.
    pub calls: u64,
    /// For a dead actor: why.
    pub death_cause: Option<String>,
}

/// Where an object's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ObjectState {
    /// Its task has not finished.
    Pending,
    /// In this node's memory.
    InMemory,
    /// Written to this node's disk (and out of memory).
    Spilled,
    /// Held by another node, fetched when read.
    Remote,
    /// Will never have a value.
    Failed,
}

impl ObjectState {
    /// Every state.
    pub const ALL: [ObjectState; 5] = [
        ObjectState::Pending,
        ObjectState::InMemory,
        ObjectState::Spilled,
        ObjectState::Remote,
        ObjectState::Failed,
    ];

    /// The state's name as filters and tables write it (`IN_MEMORY`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ObjectState::Pending => "PENDING",
            ObjectState::InMemory => "IN_MEMORY",
            ObjectState::Spilled => "SPILLED",
            ObjectState::Remote => "REMOTE",
            ObjectState::Failed => "FAILED",
        }
    }
}

impl fmt::Display for ObjectState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An object, as the store of one node knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object.
    pub object_id: ObjectId,
    /// Its estimated size in bytes (0 until it has a value).
    pub size: u64,
    /// Where its value is.
    pub state: ObjectState,
    /// The node whose store holds this entry.
    pub node_id: NodeId,
    /// Live `ObjectRef` handles to it on that node.
    pub ref_count: u32,
    /// Spilled objects on that node that hold a ref to it.
    pub contained_in: u32,
    /// Whether a copy is on disk (also true while one is in memory again).
    pub spilled: bool,
    /// The function of the task that makes it; `None` for a put.
    pub function: Option<String>,
}

/// A node of the cluster (or the one node), with what it has and does now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeEntry {
    /// The node.
    pub node_id: NodeId,
    /// Where its endpoint listens (`None` for a node outside a cluster).
    pub address: Option<String>,
    /// Whether it is the head.
    pub is_head: bool,
    /// Whether it is alive (false once the head declared it dead).
    pub alive: bool,
    /// Total resources by name.
    pub resources: Vec<(String, f64)>,
    /// Free resources by name.
    pub available: Vec<(String, f64)>,
    /// Tasks waiting (for arguments or resources) and running.
    pub tasks_waiting: u64,
    /// Tasks running.
    pub tasks_running: u64,
    /// Actors it hosts (alive, starting or restarting).
    pub actors: u64,
    /// Objects in its store, and the bytes of those in memory.
    pub objects: u64,
    /// Bytes of objects in memory.
    pub store_used: u64,
    /// The store's memory limit.
    pub store_limit: u64,
    /// Bytes spilled to disk since it started.
    pub spilled_bytes: u64,
    /// The process's CPU use since the previous report, in percent of one core.
    pub cpu_percent: f64,
    /// The process's resident memory in bytes.
    pub memory_rss: u64,
}

/// Where a placement group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PlacementGroupState {
    /// Some bundles are not reserved yet.
    Pending,
    /// Every bundle is reserved.
    Created,
    /// A bundle could not be reserved.
    Failed,
    /// Removed.
    Removed,
}

impl PlacementGroupState {
    /// The state's name as filters and tables write it (`CREATED`, ...).
    pub fn name(self) -> &'static str {
        match self {
            PlacementGroupState::Pending => "PENDING",
            PlacementGroupState::Created => "CREATED",
            PlacementGroupState::Failed => "FAILED",
            PlacementGroupState::Removed => "REMOVED",
        }
    }
}

impl fmt::Display for PlacementGroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A placement group, as the node that made it knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlacementGroupInfo {
    /// The group's id.
    pub id: String,
    /// How its bundles are spread (`PACK`, `SPREAD`, ...).
    pub strategy: String,
    /// Where it is.
    pub state: PlacementGroupState,
    /// Each bundle's resources, as text (`CPU: 1`).
    pub bundles: Vec<String>,
    /// The node of each bundle.
    pub nodes: Vec<NodeId>,
    /// The node that made it.
    pub creator: NodeId,
}

/// Tasks of one function that ended, counted by how they ended (kept for the node's whole
/// life, unlike the tasks themselves).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedCounts {
    /// Finished.
    pub finished: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

/// Which kind of row a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateKind {
    /// Tasks.
    Tasks,
    /// Actors.
    Actors,
    /// Objects.
    Objects,
    /// Nodes.
    Nodes,
    /// Placement groups.
    PlacementGroups,
    /// Counts only: tasks by function and state, actors by class and state, objects by state.
    Summary,
    /// Lines tasks and actors printed or logged: the newest, up to the limit.
    Logs,
    /// Jobs: every driver that connected, every program submitted (the head's table).
    Jobs,
}

/// A state query: which rows, filtered how, at most how many (per node, and in all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateQuery {
    /// The kind of rows.
    pub kind: StateKind,
    /// Conditions every row must meet.
    pub filters: Vec<super::filter::Filter>,
    /// At most this many rows.
    pub limit: usize,
}

/// What one node answers a state query with: the rows of the kind asked for (filtered, at
/// most the limit), and its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node.
    pub node_id: NodeId,
    /// Tasks, for [`StateKind::Tasks`].
    pub tasks: Vec<TaskInfo>,
    /// Actors, for [`StateKind::Actors`].
    pub actors: Vec<ActorInfo>,
    /// Objects, for [`StateKind::Objects`].
    pub objects: Vec<ObjectInfo>,
    /// The node itself, for [`StateKind::Nodes`].
    pub node: Option<NodeEntry>,
    /// Placement groups it made, for [`StateKind::PlacementGroups`].
    pub placement_groups: Vec<PlacementGroupInfo>,
    /// Log lines, oldest first, for [`StateKind::Logs`].
    pub logs: Vec<crate::base::log_line::LogLine>,
    /// Jobs, from the head only, for [`StateKind::Jobs`].
    pub jobs: Vec<crate::base::jobs::JobInfo>,
    /// Rows that matched but were left out by the limit.
    pub truncated: u64,
    /// For [`StateKind::Summary`]: tasks by function and state, ended ones counted since
    /// the node started.
    pub task_counts: Vec<(String, TaskState, u64)>,
    /// For [`StateKind::Summary`]: actors by class and state.
    pub actor_counts: Vec<(String, ActorState, u64)>,
    /// For [`StateKind::Summary`]: objects by state, and their bytes.
    pub object_counts: Vec<(ObjectState, u64, u64)>,
}

impl NodeReport {
    /// An empty report of `node_id`.
    pub fn new(node_id: NodeId) -> Self {
        NodeReport {
            node_id,
            tasks: Vec::new(),
            actors: Vec::new(),
            objects: Vec::new(),
            node: None,
            placement_groups: Vec::new(),
            logs: Vec::new(),
            jobs: Vec::new(),
            truncated: 0,
            task_counts: Vec::new(),
            actor_counts: Vec::new(),
            object_counts: Vec::new(),
        }
    }
}
