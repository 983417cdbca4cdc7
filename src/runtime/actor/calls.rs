//! An actor's method calls as the state API lists them (Ray lists them as tasks): those
//! queued or running, kept by each actor; the latest ended ones, and counts by method of
//! every one, kept by the node.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::base::filter::Capped;
use crate::base::id::{ActorId, IdHash, NodeId, ObjectId, TaskId};
use crate::base::rows::{TaskInfo, TaskState};
use crate::base::scheduling::history::{TaskHistory, TaskLog, Wall};
use crate::runtime::clock::Clock;

/// Ended calls kept in full per node.
pub(crate) const KEEP_ENDED_CALLS: usize = 10_000;

/// One actor's calls that have not ended: each one's record, and for a running one the
/// object its result goes to (failed at once if the actor is killed while it runs).
#[derive(Debug, Default)]
pub(crate) struct LiveCalls(Mutex<HashMap<TaskId, (TaskLog, Option<ObjectId>), IdHash>>);

impl LiveCalls {
    fn lock(&self) -> MutexGuard<'_, HashMap<TaskId, (TaskLog, Option<ObjectId>), IdHash>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call was queued.
    pub fn submitted(&self, clock: &Clock, id: TaskId, label: &'static str, actor: ActorId) {
        let log = TaskLog {
            task_id: id,
            function: label,
            name: None,
            actor_id: Some(actor),
            attempts: 1,
            submitted: clock.now(),
            started: None,
            ended: None,
            error: None,
        };
        self.lock().insert(id, (log, None));
    }

    /// A call (attempt `attempt`) started running; its result goes to `result`.
    pub fn started(&self, clock: &Clock, id: TaskId, attempt: u32, result: ObjectId) {
        if let Some((log, running)) = self.lock().get_mut(&id) {
            log.attempts = attempt;
            log.started = Some(clock.now());
            *running = Some(result);
        }
    }

    /// The calls running now, with the objects their results go to.
    pub fn running(&self) -> Vec<(TaskId, ObjectId)> {
        self.lock()
            .iter()
            .filter_map(|(id, (_, result))| result.map(|r| (*id, r)))
            .collect()
    }

    /// A call that runs again after its actor restarted waits in the queue again.
    pub fn requeued(&self, id: TaskId) {
        if let Some((log, running)) = self.lock().get_mut(&id) {
            log.started = None;
            *running = None;
        }
    }

    /// A call ended; its record, if it was listed.
    pub fn take(&self, id: TaskId) -> Option<TaskLog> {
        self.lock().remove(&id).map(|(log, _)| log)
    }

    /// The calls as rows: running, or waiting in the actor's queue.
    pub fn rows(&self, node: NodeId, wall: &Wall) -> Vec<TaskInfo> {
        self.lock()
            .values()
            .map(|(log, _)| log.info(state_of(log), node, wall))
            .collect()
    }

    /// How many are in each state, by method.
    pub fn count(&self, counts: &mut HashMap<(&'static str, TaskState), u64>) {
        for (log, _) in self.lock().values() {
            *counts.entry((log.function, state_of(log))).or_default() += 1;
        }
    }
}

fn state_of(log: &TaskLog) -> TaskState {
    if log.started.is_some() {
        TaskState::Running
    } else {
        TaskState::SubmittedToActor
    }
}

/// The node's ended actor calls, and the clock all its actors time their calls by.
#[derive(Debug)]
pub(crate) struct EndedCalls {
    pub clock: Clock,
    history: Mutex<TaskHistory>,
}

impl Default for EndedCalls {
    fn default() -> Self {
        EndedCalls {
            clock: Clock::new(),
            history: Mutex::new(TaskHistory::new(KEEP_ENDED_CALLS)),
        }
    }
}

impl EndedCalls {
    fn lock(&self) -> MutexGuard<'_, TaskHistory> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call ended (`state` finished, failed or cancelled), with `error` if it failed.
    pub fn ended(&self, mut log: TaskLog, state: TaskState, error: Option<String>) {
        log.ended = Some(self.clock.now());
        log.error = error;
        self.lock().ended(log, state);
    }

    /// Offers the ended calls kept to `rows`, newest first.
    pub fn offer(&self, node: NodeId, wall: &Wall, rows: &mut Capped<'_, TaskInfo>) {
        let history = self.lock();
        rows.offer_all(
            history
                .recent()
                .rev()
                .map(|(log, state)| log.info(*state, node, wall)),
        );
    }

    /// Every ended call counted, by method and how it ended.
    pub fn count(&self, counts: &mut HashMap<(&'static str, TaskState), u64>) {
        for (function, ended) in self.lock().counts() {
            for (state, n) in [
                (TaskState::Finished, ended.finished),
                (TaskState::Failed, ended.failed),
                (TaskState::Cancelled, ended.cancelled),
            ] {
                if n > 0 {
                    *counts.entry((function, state)).or_default() += n;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_queued_then_running_then_ended_and_counted() {
        let (live, ended) = (LiveCalls::default(), EndedCalls::default());
        let (node, actor) = (NodeId::random(), ActorId::from_parts(1, 1));
        let (a, b) = (TaskId::from_parts(1, 1), TaskId::from_parts(1, 2));
        live.submitted(&ended.clock, a, "C.f", actor);
        live.submitted(&ended.clock, b, "C.f", actor);
        live.started(&ended.clock, a, 1, ObjectId::from_parts(1, 7));
        assert_eq!(live.running(), vec![(a, ObjectId::from_parts(1, 7))]);
        let wall = ended.clock.wall();
        let mut rows = live.rows(node, &wall);
        rows.sort_by_key(|r| r.task_id);
        let states: Vec<TaskState> = rows.iter().map(|r| r.state).collect();
        assert_eq!(states, [TaskState::Running, TaskState::SubmittedToActor]);
        assert!(
            rows.iter()
                .all(|r| r.actor_id == Some(actor) && r.node_id == node)
        );

        ended.ended(live.take(a).unwrap(), TaskState::Finished, None);
        ended.ended(
            live.take(b).unwrap(),
            TaskState::Failed,
            Some("it was killed".into()),
        );
        assert!(live.take(a).is_none(), "ended once");
        assert!(live.rows(node, &wall).is_empty());
        let mut capped = Capped::new(&[], 10);
        ended.offer(node, &ended.clock.wall(), &mut capped);
        let (rows, more) = capped.finish();
        assert_eq!(more, 0);
        assert_eq!(rows[0].task_id, b, "newest first");
        assert_eq!(rows[0].error.as_deref(), Some("it was killed"));
        assert!(rows[1].ended_us >= rows[1].started_us);
        let mut counts = HashMap::new();
        ended.count(&mut counts);
        assert_eq!(counts[&("C.f", TaskState::Finished)], 1);
        assert_eq!(counts[&("C.f", TaskState::Failed)], 1);
    }
}
