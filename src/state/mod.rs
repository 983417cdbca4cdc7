//! The state of a running cluster (Ray's state API): every task, actor, object, node and
//! placement group, with filters and limits, and summaries in counts; plus quick figures of
//! the node this process runs.
//!
//! ```no_run
//! use mobula::state::{self, ListOptions, TaskState};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let _mobula = mobula::init(mobula::Config::default())?;
//! let running = state::list_tasks(&ListOptions::new().filter("state", "RUNNING"))?;
//! for task in &running.rows {
//!     println!("{} {} on {}", task.task_id, task.function, task.node_id);
//! }
//! let summary = state::summary()?;
//! println!("{} tasks finished", summary.tasks_in(TaskState::Finished));
//! # Ok(())
//! # }
//! ```
//!
//! In a cluster the answers come from the head, which asks every live node; each node keeps
//! its live tasks and actors and the latest 10,000 ended tasks and 1,000 dead actors in full,
//! and counts of all of them, so a long-running cluster does not grow.
//!
//! - `types`, `filter`: the rows and states, `key=value` filters (pure; from the bottom layer).
//! - `merge`: nodes' reports into one answer (pure).
//! - `render`: rows as text tables and JSON (pure).
//! - `timeline`: recent tasks as a Chrome trace (pure).
//! - `this_node`: quick figures of this process's node, read in place.

pub use crate::base::filter;
pub mod merge;
pub mod render;
mod this_node;
pub mod timeline;
pub use crate::base::rows as types;

pub use crate::base::jobs::{JobId, JobInfo, JobStatus};
pub use filter::{Filter, FilterError};
pub use merge::{Listed, Summary};
pub use this_node::{
    ObjectStoreStats, TaskCounts, actor_count, object_store, tasks, worker_threads,
};
pub use types::{
    ActorInfo, ActorState, NodeEntry, ObjectInfo, ObjectState, PlacementGroupInfo,
    PlacementGroupState, StateKind, StateQuery, TaskInfo, TaskState,
};

use crate::base::id::NodeId;
use crate::base::log_line::LogLine;
use crate::wire::Message;
use types::NodeReport;

/// Rows returned when no limit is given (as Ray's).
pub const DEFAULT_LIMIT: usize = 100;

/// Why the state could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// No runtime runs in this process.
    #[error("Mobula is not running: call mobula::init first")]
    NotInitialized,
    /// A filter does not apply.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The head could not be asked, or answered something else.
    #[error("the head: {0}")]
    Head(String),
}

/// Filters and a limit for a list (Ray's `filters=` and `limit=`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListOptions {
    filters: Vec<Filter>,
    limit: usize,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            filters: Vec::new(),
            limit: DEFAULT_LIMIT,
        }
    }
}

impl ListOptions {
    /// No filters, at most [`DEFAULT_LIMIT`] rows.
    pub fn new() -> Self {
        ListOptions::default()
    }

    /// Only rows whose `key` equals `value` (as text, case aside).
    pub fn filter(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.filters.push(Filter {
            key: key.into(),
            op: filter::Op::Eq,
            value: value.to_string(),
        });
        self
    }

    /// Only rows whose `key` differs from `value`.
    pub fn filter_ne(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.filters.push(Filter {
            key: key.into(),
            op: filter::Op::Ne,
            value: value.to_string(),
        });
        self
    }

    /// A filter written as text: `state=RUNNING`, `node_id!=...`.
    pub fn parse_filter(mut self, text: &str) -> Result<Self, FilterError> {
        self.filters.push(Filter::parse(text)?);
        Ok(self)
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }

    /// The query for rows of `kind`, its filters checked against their fields.
    pub fn query(&self, kind: StateKind) -> Result<StateQuery, FilterError> {
        filter::check(kind, &self.filters)?;
        Ok(StateQuery {
            kind,
            filters: self.filters.clone(),
            limit: self.limit,
        })
    }
}

/// Where state questions go: this process's runtime (and through it the head of its
/// cluster), or the head whose cluster directory is given (what the `mobula` CLI does).
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// This process's runtime.
    Here,
    /// The head named in this cluster directory, asked with its CA's credentials; waiting at
    /// most the given time.
    ClusterDir(std::path::PathBuf, std::time::Duration),
}

pub(crate) type Reports = (Vec<NodeReport>, Vec<(NodeId, String)>);

/// How nodes' rows of one kind become one list.
type Merge<T> = fn(Vec<NodeReport>, Vec<(NodeId, String)>, usize) -> Listed<T>;

fn answered(answer: Message) -> Result<Reports, StateError> {
    match answer {
        Message::StateReports { reports, missing } => Ok((reports, missing)),
        Message::Refused { reason } => Err(StateError::Head(reason)),
        other => Err(StateError::Head(format!("it answered {}", other.name()))),
    }
}

/// Every node's report for `query`, asked by the node of `rt`: the head's gathering in a
/// cluster, this node's alone otherwise. Blocks (not on the node's event loop).
pub(crate) fn gather(
    rt: &crate::runtime::global::Runtime,
    query: StateQuery,
) -> Result<Reports, StateError> {
    match crate::cluster::node_of(rt) {
        Some(cluster) => cluster
            .ask_head_blocking(&rt.node_arbiter, Message::State(query))
            .map_err(StateError::Head)
            .and_then(answered),
        None => Ok((vec![crate::cluster::report::report(rt, &query)], Vec::new())),
    }
}

impl Source {
    /// Every node's report for `query`: the head's gathering in a cluster, this node's
    /// alone otherwise.
    fn ask(&self, query: StateQuery) -> Result<Reports, StateError> {
        match self {
            Source::Here => crate::runtime::global::with_runtime(|rt| gather(rt, query))
                .unwrap_or(Err(StateError::NotInitialized)),
            Source::ClusterDir(dir, timeout) => {
                crate::cluster::admin::ask(dir, &Message::State(query), *timeout)
                    .map_err(|e| StateError::Head(e.to_string()))
                    .and_then(answered)
            }
        }
    }

    fn list<T>(
        &self,
        options: &ListOptions,
        kind: StateKind,
        merge: Merge<T>,
    ) -> Result<Listed<T>, StateError> {
        let query = options.query(kind)?;
        let limit = query.limit;
        let (reports, missing) = self.ask(query)?;
        Ok(merge(reports, missing, limit))
    }

    /// Tasks: see [`list_tasks`].
    pub fn list_tasks(&self, options: &ListOptions) -> Result<Listed<TaskInfo>, StateError> {
        self.list(options, StateKind::Tasks, merge::tasks)
    }

    /// Actors: see [`list_actors`].
    pub fn list_actors(&self, options: &ListOptions) -> Result<Listed<ActorInfo>, StateError> {
        self.list(options, StateKind::Actors, merge::actors)
    }

    /// Objects: see [`list_objects`].
    pub fn list_objects(&self, options: &ListOptions) -> Result<Listed<ObjectInfo>, StateError> {
        self.list(options, StateKind::Objects, merge::objects)
    }

    /// Nodes: see [`list_nodes`].
    pub fn list_nodes(&self, options: &ListOptions) -> Result<Listed<NodeEntry>, StateError> {
        self.list(options, StateKind::Nodes, merge::nodes)
    }

    /// Placement groups: see [`list_placement_groups`].
    pub fn list_placement_groups(
        &self,
        options: &ListOptions,
    ) -> Result<Listed<PlacementGroupInfo>, StateError> {
        self.list(options, StateKind::PlacementGroups, merge::placement_groups)
    }

    /// Jobs: see [`list_jobs`].
    pub fn list_jobs(&self, options: &ListOptions) -> Result<Listed<JobInfo>, StateError> {
        self.list(options, StateKind::Jobs, merge::jobs)
    }

    /// Recent tasks as a Chrome trace: see [`timeline()`].
    pub fn timeline(&self, limit: usize) -> Result<serde_json::Value, StateError> {
        let tasks = self.list_tasks(&ListOptions::new().limit(limit))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Ok(timeline::chrome_trace(&tasks.rows, now))
    }

    /// Log lines: see [`list_logs`].
    pub fn list_logs(&self, options: &ListOptions) -> Result<Listed<LogLine>, StateError> {
        self.list(options, StateKind::Logs, merge::logs)
    }

    /// Counts: see [`summary`].
    pub fn summary(&self) -> Result<Summary, StateError> {
        let query = ListOptions::new().query(StateKind::Summary)?;
        let (reports, missing) = self.ask(query)?;
        Ok(merge::summary(reports, missing))
    }
}

/// Tasks (Ray's `list_tasks`): live ones and the latest ended, newest first. An actor's
/// method calls are tasks too, with the actor's id in [`TaskInfo::actor_id`]; one waiting in
/// its actor's queue is [`TaskState::SubmittedToActor`].
pub fn list_tasks(options: &ListOptions) -> Result<Listed<TaskInfo>, StateError> {
    Source::Here.list_tasks(options)
}

/// Actors (Ray's `list_actors`): live ones, then the latest dead.
pub fn list_actors(options: &ListOptions) -> Result<Listed<ActorInfo>, StateError> {
    Source::Here.list_actors(options)
}

/// Objects in every node's store (Ray's `list_objects`), the largest first.
pub fn list_objects(options: &ListOptions) -> Result<Listed<ObjectInfo>, StateError> {
    Source::Here.list_objects(options)
}

/// Nodes (Ray's `list_nodes`), with their resources and use now.
pub fn list_nodes(options: &ListOptions) -> Result<Listed<NodeEntry>, StateError> {
    Source::Here.list_nodes(options)
}

/// Placement groups (Ray's `list_placement_groups`).
pub fn list_placement_groups(
    options: &ListOptions,
) -> Result<Listed<PlacementGroupInfo>, StateError> {
    Source::Here.list_placement_groups(options)
}

/// Jobs (Ray's `list_jobs`): every driver that connected to the cluster and every program
/// submitted with `mobula job submit`, the newest first, with its status (`RUNNING`,
/// `SUCCEEDED`, `FAILED`, `STOPPED`), build, start and end. Outside a cluster, none.
pub fn list_jobs(options: &ListOptions) -> Result<Listed<JobInfo>, StateError> {
    Source::Here.list_jobs(options)
}

/// The latest `limit` tasks of every node as a Chrome trace (Ray's `ray timeline`): write it
/// to a file and open it in `chrome://tracing` or Perfetto.
pub fn timeline(limit: usize) -> Result<serde_json::Value, StateError> {
    Source::Here.timeline(limit)
}

/// What tasks and actors printed with `mobula::println!` or logged with `tracing` (Ray's
/// `get_log`), the newest `limit` lines of every node, oldest first. Filter on `id` (an actor's
/// id, or a task's) for one task or actor, as `mobula logs <id>` does; each node keeps its
/// latest lines ([`logs::MAX_LINES`](crate::logs::MAX_LINES)).
pub fn list_logs(options: &ListOptions) -> Result<Listed<LogLine>, StateError> {
    Source::Here.list_logs(options)
}

/// The cluster in counts (Ray's `summarize_tasks`, `summarize_actors`, `summarize_objects`).
pub fn summary() -> Result<Summary, StateError> {
    Source::Here.summary()
}
