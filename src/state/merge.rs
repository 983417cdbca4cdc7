//! Putting nodes' reports together into one answer: rows in a stable order, the limit over
//! all nodes, counts summed. Pure.

use std::collections::BTreeMap;

use super::types::{
    ActorInfo, ActorState, NodeEntry, NodeReport, ObjectInfo, ObjectState, PlacementGroupInfo,
    TaskInfo, TaskState,
};
use crate::base::id::NodeId;
use crate::base::jobs::JobInfo;
use crate::base::log_line::LogLine;

/// Rows of one kind from every node that answered.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Listed<T> {
    /// The rows, at most the limit.
    pub rows: Vec<T>,
    /// Rows that matched but were left out by the limit.
    pub truncated: u64,
    /// Nodes that did not answer, and why.
    pub missing: Vec<(NodeId, String)>,
}

fn listed<T>(
    reports: Vec<NodeReport>,
    missing: Vec<(NodeId, String)>,
    limit: usize,
    rows: impl Fn(NodeReport) -> Vec<T>,
    order: impl FnMut(&T, &T) -> std::cmp::Ordering,
) -> Listed<T> {
    let mut truncated: u64 = reports.iter().map(|r| r.truncated).sum();
    let mut all: Vec<T> = reports.into_iter().flat_map(rows).collect();
    all.sort_by(order);
    if all.len() > limit {
        truncated += (all.len() - limit) as u64;
        all.truncate(limit);
    }
    Listed {
        rows: all,
        truncated,
        missing,
    }
}

/// Log lines: the newest `limit` of all nodes, oldest first (by time written, then node and
/// order on the node).
pub(crate) fn logs(
    reports: Vec<NodeReport>,
    missing: Vec<(NodeId, String)>,
    limit: usize,
) -> Listed<LogLine> {
    let mut truncated: u64 = reports.iter().map(|r| r.truncated).sum();
    let mut all: Vec<LogLine> = reports.into_iter().flat_map(|r| r.logs).collect();
    all.sort_by_key(|l| (l.time_us, l.node_id, l.seq));
    if all.len() > limit {
        let over = all.len() - limit;
        truncated += over as u64;
        all.drain(..over);
    }
    Listed {
        rows: all,
        truncated,
        missing,
    }
}

/// Tasks: the newest first.
pub(crate) fn tasks(
    reports: Vec<NodeReport>,
    missing: Vec<(NodeId, String)>,
    limit: usize,
) -> Listed<TaskInfo> {
    listed(
        reports,
        missing,
        limit,
        |r| r.tasks,
        |a, b| {
            (b.submitted_us, b.task_id.to_string()).cmp(&(a.submitted_us, a.task_id.to_string()))
        },
    )
}

/// Actors: by state (alive first), then class.
pub(crate) fn actors(
    reports: Vec<NodeReport>,
    missing: Vec<(NodeId, String)>,
    limit: usize,
) -> Listed<ActorInfo> {
    listed(
        reports,
        missing,
        limit,
        |r| r.actors,
        |a, b| {
            (
                a.state != ActorState::Alive,
                &a.class,
                a.actor_id.to_string(),
            )
                .cmp(&(
                    b.state != ActorState::Alive,
                    &b.class,
                    b.actor_id.to_string(),
                ))
        },
    )
}

/// Objects: the largest first.
pub(crate) fn objects(
    reports: Vec<NodeReport>,
    missing: Vec<(NodeId, String)>,
    limit: usize,
) -> Listed<ObjectInfo> {
    listed(
        reports,
        missing,
        limit,
        |r| r.objects,
        |a, b| (b.size, b.object_id.to_string()).cmp(&(a.size, a.object_id.to_string())),
    )
}

/// Nodes: the head first, then live ones, by id.
pub(crate) fn nodes(
    reports: Vec<NodeReport>,
    missing: Vec<(NodeId, String)>,
    limit: usize,
) -> Listed<NodeEntry> {
    listed(
        reports,
        missing,
        limit,
        |r| r.node.into_iter().collect(),
        |a, b| {
            (!a.is_head, !a.alive, a.node_id.to_string()).cmp(&(
                !b.is_head,
                !b.alive,
                b.node_id.to_string(),
            ))
        },
    )
}

/// Jobs: as the head listed them, the newest first.
pub(crate) fn jobs(
    reports: Vec<NodeReport>,
    missing: Vec<(NodeId, String)>,
    limit: usize,
) -> Listed<JobInfo> {
    listed(
        reports,
        missing,
        limit,
        |r| r.jobs,
        |a, b| b.job_id.cmp(&a.job_id),
    )
}

/// Placement groups: by id.
pub(crate) fn placement_groups(
    reports: Vec<NodeReport>,
    missing: Vec<(NodeId, String)>,
    limit: usize,
) -> Listed<PlacementGroupInfo> {
    listed(
        reports,
        missing,
        limit,
        |r| r.placement_groups,
        |a, b| a.id.cmp(&b.id),
    )
}

/// The cluster in counts (Ray's `ray summary`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Summary {
    /// Tasks by function, then by state (ended ones since their node started).
    pub tasks: BTreeMap<String, BTreeMap<TaskState, u64>>,
    /// Actors by class, then by state (dead ones since their node started).
    pub actors: BTreeMap<String, BTreeMap<ActorState, u64>>,
    /// Objects by state: how many, and their bytes.
    pub objects: BTreeMap<ObjectState, (u64, u64)>,
    /// Nodes that did not answer, and why.
    pub missing: Vec<(NodeId, String)>,
}

impl Summary {
    /// Tasks in `state`, over every function.
    pub fn tasks_in(&self, state: TaskState) -> u64 {
        self.tasks.values().filter_map(|m| m.get(&state)).sum()
    }

    /// Actors in `state`, over every class.
    pub fn actors_in(&self, state: ActorState) -> u64 {
        self.actors.values().filter_map(|m| m.get(&state)).sum()
    }
}

/// Sums nodes' counts.
pub(crate) fn summary(reports: Vec<NodeReport>, missing: Vec<(NodeId, String)>) -> Summary {
    let mut out = Summary {
        missing,
        ..Summary::default()
    };
    for r in reports {
        for (function, state, n) in r.task_counts {
            *out.tasks
                .entry(function)
                .or_default()
                .entry(state)
                .or_default() += n;
        }
        for (class, state, n) in r.actor_counts {
            *out.actors
                .entry(class)
                .or_default()
                .entry(state)
                .or_default() += n;
        }
        for (state, n, bytes) in r.object_counts {
            let c = out.objects.entry(state).or_default();
            c.0 += n;
            c.1 += bytes;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::id::TaskId;

    fn task(node: NodeId, submitted_us: u64) -> TaskInfo {
        TaskInfo {
            task_id: TaskId::NIL,
            function: "f".into(),
            state: TaskState::Finished,
            node_id: node,
            actor_id: None,
            attempts: 1,
            submitted_us,
            started_us: None,
            ended_us: None,
            error: None,
        }
    }

    #[test]
    fn rows_from_every_node_are_ordered_and_limited_over_all() {
        let (a, b) = (NodeId::random(), NodeId::random());
        let mut ra = NodeReport::new(a);
        ra.tasks = vec![task(a, 1), task(a, 5)];
        ra.truncated = 2;
        let mut rb = NodeReport::new(b);
        rb.tasks = vec![task(b, 3)];
        let listed = tasks(vec![ra, rb], vec![(b, "gone".into())], 2);
        let times: Vec<u64> = listed.rows.iter().map(|t| t.submitted_us).collect();
        assert_eq!(times, vec![5, 3], "newest first, over both nodes");
        assert_eq!(listed.truncated, 3, "two left out on a node, one here");
        assert_eq!(listed.missing.len(), 1);
    }

    #[test]
    fn summaries_add_up_over_nodes() {
        let (a, b) = (NodeId::random(), NodeId::random());
        let mut ra = NodeReport::new(a);
        ra.task_counts = vec![("f".into(), TaskState::Finished, 3)];
        ra.object_counts = vec![(ObjectState::InMemory, 2, 100)];
        let mut rb = NodeReport::new(b);
        rb.task_counts = vec![
            ("f".into(), TaskState::Finished, 4),
            ("g".into(), TaskState::Running, 1),
        ];
        rb.object_counts = vec![(ObjectState::InMemory, 1, 50)];
        let s = summary(vec![ra, rb], vec![]);
        assert_eq!(s.tasks["f"][&TaskState::Finished], 7);
        assert_eq!(s.tasks_in(TaskState::Running), 1);
        assert_eq!(s.objects[&ObjectState::InMemory], (3, 150));
    }
}
