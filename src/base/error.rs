//! The errors the library returns: one enum per operation, each message saying what failed,
//! where, and what to do about it. [`Error`] gathers them for code that wants a single type.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::base::id::{NodeId, ObjectId, TaskId};

/// How a task attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// The function panicked.
    Panicked,
    /// The function returned `Err`.
    Failed,
    /// The worker running the task died before the task finished (a system failure).
    WorkerDied,
    /// The task finished but its result could not be stored or encoded.
    ResultRejected,
}

impl fmt::Display for TaskErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskErrorKind::Panicked => "panicked",
            TaskErrorKind::Failed => "returned an error",
            TaskErrorKind::WorkerDied => "lost its worker",
            TaskErrorKind::ResultRejected => "produced a result that could not be stored",
        })
    }
}

/// A task that did not produce a value: which function, which task, on which node, how it
/// failed, and after how many attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// The function's registered id (`crate::module::name`).
    pub function: String,
    /// The task that failed.
    pub task_id: TaskId,
    /// The node it ran on.
    pub node_id: NodeId,
    /// How the last attempt failed.
    pub kind: TaskErrorKind,
    /// The panic message or the error's text (with its causes), and for a panic its location.
    pub message: String,
    /// How many times the task ran in all (1 when it was not retried).
    pub attempts: u32,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tries = if self.attempts == 1 {
            "attempt"
        } else {
            "attempts"
        };
        write!(
            f,
            "task {} of `{}` on node {} {} after {} {tries}: {}",
            self.task_id, self.function, self.node_id, self.kind, self.attempts, self.message
        )
    }
}

impl std::error::Error for TaskError {}

/// `1 time`, `2 times`: a count of times as a sentence says it.
pub(crate) fn times(n: u64) -> String {
    if n == 1 {
        "once".to_string()
    } else {
        format!("{n} times")
    }
}

/// Why a value could not be had from an [`ObjectRef`](crate::ObjectRef).
///
/// Its `Debug` is its sentence too, so that `r.get().expect("...")` and `main` returning
/// the error print what happened, not the enum's fields.
#[derive(Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// The task that makes the object failed (or a task it depended on failed).
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The task was cancelled with [`cancel`](crate::cancel).
    #[error("task {task_id} of `{function}` was cancelled")]
    Cancelled {
        /// The cancelled function.
        function: String,
        /// The cancelled task.
        task_id: TaskId,
    },
    /// The task asks for resources the node does not have at all, so it can never run.
    #[error(
        "task {task_id} of `{function}` can never run here: it asks for {requested} but the node has {total} in all; lower the task's resource options or start the node with more (Config::num_cpus, num_gpus, resource)"
    )]
    Infeasible {
        /// The function.
        function: String,
        /// The task.
        task_id: TaskId,
        /// What the task asked for.
        requested: String,
        /// What the node has.
        total: String,
    },
    /// No node of the cluster can take the task (none has the resources, a hard node
    /// affinity names a dead node, or the head is gone).
    #[error("task {task_id} of `{function}` cannot be placed in the cluster: {reason}")]
    Unschedulable {
        /// The function.
        function: String,
        /// The task.
        task_id: TaskId,
        /// Why.
        reason: String,
    },
    /// The task's options are invalid (a negative CPU count, say).
    #[error("task {task_id} of `{function}` has invalid options: {reason}")]
    InvalidOptions {
        /// The function.
        function: String,
        /// The task.
        task_id: TaskId,
        /// What is wrong.
        reason: String,
    },
    /// The object did not become ready in time; it may still do so later.
    #[error("object {object_id} was not ready after {timeout:?}; get it again to keep waiting")]
    Timeout {
        /// The object waited for.
        object_id: ObjectId,
        /// How long was waited.
        timeout: Duration,
    },
    /// The object is gone from the store.
    #[error("object {object_id} is no longer available: {reason}")]
    ObjectLost {
        /// The object.
        object_id: ObjectId,
        /// Why it is gone.
        reason: String,
    },
    /// The value was spilled to disk and could not be read back.
    #[error("object {object_id} was spilled to {path} and could not be restored: {reason}")]
    RestoreFailed {
        /// The object.
        object_id: ObjectId,
        /// The spill file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The ref was made for another type than the value stored (possible only for refs
    /// rebuilt from raw ids).
    #[error("object {object_id} holds a `{stored}`, not the `{expected}` this ObjectRef expects")]
    TypeMismatch {
        /// The object.
        object_id: ObjectId,
        /// The type stored.
        stored: String,
        /// The type asked for.
        expected: String,
    },
    /// No runtime is running in this process.
    #[error("{}", NOT_INITIALIZED)]
    NotInitialized,
    /// The runtime was shut down before the object was ready.
    #[error("the Mobula runtime was shut down before object {object_id} was ready")]
    ShutDown {
        /// The object.
        object_id: ObjectId,
    },
    /// The actor is dead (it failed past its restarts, was killed or terminated, or can never
    /// be placed); the call did not run.
    #[error("actor {actor} is dead: {cause}; create a new one")]
    ActorDied {
        /// The actor: class, name and id.
        actor: String,
        /// Why it died.
        cause: String,
    },
    /// The call was in flight when its actor failed; the actor restarts, and the call is not
    /// retried (its `max_task_retries` is used up).
    #[error(
        "actor {actor} failed while this call was in flight and is restarting: {cause}; raise max_task_retries to retry such calls"
    )]
    ActorRestarting {
        /// The actor.
        actor: String,
        /// Why it failed.
        cause: String,
    },
    /// The call was in flight when the link to its actor's node broke; the node stayed a
    /// member and the actor runs on, but whether the call ran is unknown (Ray's
    /// `ActorUnavailableError`).
    #[error(
        "actor {actor} could not be reached while this call was in flight ({cause}); the actor runs on, and the call may or may not have run; raise max_task_retries to send such calls again"
    )]
    ActorUnavailable {
        /// The actor.
        actor: String,
        /// What broke.
        cause: String,
    },
    /// The actor already had `max_pending_calls` calls waiting or running; this one was
    /// refused without running.
    #[error(
        "actor {actor} already has {limit} pending calls (its max_pending_calls): wait for some results before calling again"
    )]
    Backpressure {
        /// The actor.
        actor: String,
        /// Its `max_pending_calls`.
        limit: usize,
    },
    /// A blocking get was called on a runtime thread, where it would stall every task.
    #[error(
        "ObjectRef::get() would block a Mobula runtime thread (object {object_id} is not ready); inside an async task use `.await` instead"
    )]
    WouldBlock {
        /// The object.
        object_id: ObjectId,
    },
}

impl std::fmt::Debug for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

pub(crate) const NOT_INITIALIZED: &str =
    "Mobula is not running in this process: call mobula::init(Config::default()) first";

/// Why [`init`](crate::init) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A runtime is already running in this process.
    #[error(
        "Mobula is already running in this process (node {node_id}); use it as it is, or call mobula::shutdown() before init again"
    )]
    AlreadyInitialized {
        /// The running node.
        node_id: NodeId,
    },
    /// A configuration value is out of range.
    #[error("invalid Mobula configuration: {0}")]
    InvalidConfig(String),
    /// The spill directory cannot be created or written.
    #[error(
        "cannot use {path} as the spill directory: {source}; choose another with Config::spill_dir"
    )]
    SpillDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A runtime thread could not be started.
    #[error("could not start the Mobula runtime: {0}")]
    Start(String),
    /// Starting or joining the cluster failed (wrong token, unknown CA, unreachable head,
    /// different binary, ...).
    #[error("could not join the cluster: {0}")]
    Cluster(String),
}

/// Why [`put`](crate::put) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// No runtime is running in this process.
    #[error("{}", NOT_INITIALIZED)]
    NotInitialized,
}

/// Why [`wait`](crate::wait) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// No runtime is running in this process.
    #[error("{}", NOT_INITIALIZED)]
    NotInitialized,
    /// More returns were asked for than refs were given.
    #[error("wait asked for {num_returns} ready refs out of only {given}")]
    TooManyReturns {
        /// How many were asked for.
        num_returns: usize,
        /// How many refs were given.
        given: usize,
    },
    /// A blocking wait was called on a runtime thread.
    #[error(
        "mobula::wait would block a Mobula runtime thread; inside an async task await the refs instead"
    )]
    WouldBlock,
}

/// Why [`cancel`](crate::cancel) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CancelError {
    /// No runtime is running in this process.
    #[error("{}", NOT_INITIALIZED)]
    NotInitialized,
    /// The object was made by `put`, not by a task, so there is nothing to cancel.
    #[error("object {object_id} was made by put, not by a task: there is nothing to cancel")]
    NotATask {
        /// The object.
        object_id: ObjectId,
    },
}

/// Why an actor could not be created or found.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// No runtime is running in this process.
    #[error("{}", NOT_INITIALIZED)]
    NotInitialized,
    /// The actor's options are invalid.
    #[error("invalid options for actor class `{class}`: {reason}")]
    InvalidOptions {
        /// The class.
        class: String,
        /// What is wrong.
        reason: String,
    },
    /// Another actor has the name (and `get_if_exists` was not set).
    #[error(
        "an actor named \"{name}\" already exists in namespace \"{namespace}\" (class `{class}`); pick another name or set get_if_exists(true) to use it"
    )]
    NameTaken {
        /// The name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The class of the actor holding it.
        class: String,
    },
    /// No node of the cluster can host the actor.
    #[error("no node can host an actor of class `{class}`: {reason}")]
    Unschedulable {
        /// The class.
        class: String,
        /// Why.
        reason: String,
    },
    /// The head could not record the name (it did not come back within the head timeout,
    /// or it could not make the name durable): no actor was made, and the name is free.
    #[error(
        "the name \"{name}\" in namespace \"{namespace}\" could not be taken cluster-wide: {reason}"
    )]
    NameNotTaken {
        /// The name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// Why, naming the head.
        reason: String,
    },
    /// No actor has the name.
    #[error("no actor is named \"{name}\" in namespace \"{namespace}\"")]
    NotFound {
        /// The name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// The named actor is of another class than asked for.
    #[error(
        "the actor named \"{name}\" in namespace \"{namespace}\" is a `{found}`, not a `{expected}`"
    )]
    WrongClass {
        /// The name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The class asked for.
        expected: String,
        /// The class it is.
        found: String,
    },
}

/// Why a placement group could not be made or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementGroupError {
    /// No runtime is running in this process.
    #[error("{}", NOT_INITIALIZED)]
    NotInitialized,
    /// A bundle is malformed (a negative amount, nothing in it, none at all).
    #[error("invalid placement group: {0}")]
    Invalid(String),
    /// The bundles can never be placed with the strategy asked for, or a reservation failed.
    #[error("the placement group cannot be placed: {0}")]
    Failed(String),
    /// The group was removed.
    #[error("placement group {0} was removed")]
    Removed(String),
}

/// Any error of the Mobula API, for code that wants one error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From [`init`](crate::init).
    #[error(transparent)]
    Init(#[from] InitError),
    /// From getting a value.
    #[error(transparent)]
    Get(#[from] GetError),
    /// From [`put`](crate::put).
    #[error(transparent)]
    Put(#[from] PutError),
    /// From [`wait`](crate::wait).
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// From [`cancel`](crate::cancel).
    #[error(transparent)]
    Cancel(#[from] CancelError),
    /// From creating or looking up an actor.
    #[error(transparent)]
    Actor(#[from] ActorError),
}

impl From<TaskError> for Error {
    fn from(e: TaskError) -> Self {
        Error::Get(GetError::Task(e))
    }
}

/// Why the key-value store (`mobula::kv`) could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// No runtime is running in this process.
    #[error("{}", NOT_INITIALIZED)]
    NotInitialized,
    /// The store refused the request (a bound, or the head could not make it durable).
    #[error("the key-value store refused: {0}")]
    Refused(String),
    /// The head could not be asked (it did not come back within the head timeout).
    #[error("the key-value store's head could not be asked: {0}")]
    Head(String),
}
