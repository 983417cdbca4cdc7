//! The node's task queue: which task runs next, a pure state machine.
//!
//! A task enters waiting for its ref arguments, moves to the queue of its scheduling class
//! (tasks asking for the same resources) when they are all ready, and is dispatched when its
//! resources are free. Within a class tasks start in submission order. A task blocked in `get`
//! lends its CPUs to others (as Ray does), so nested tasks cannot deadlock a full node.
//! Inputs are events; outputs are [`Decision`]s for the scheduler actor to carry out.

use crate::base::rows::TaskState;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::resources::{Grant, NodeResources, ResourceRequest};
use crate::base::id::{IdHash, ObjectId, TaskId};

/// What the scheduler actor must do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Start the task with these resources.
    Dispatch { task: TaskId, grant: Grant },
    /// The task can never run on this node.
    Infeasible { task: TaskId },
}

/// Where a cancelled task was.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    /// It had not started; it never will.
    Dropped,
    /// It is running; it keeps its resources until it ends.
    Running,
    /// Unknown or finished.
    Unknown,
}

#[derive(Debug)]
enum Slot {
    Waiting { missing: usize, class: usize },
    Queued,
    Running { grant: Grant, blocked: bool },
}

#[derive(Debug)]
struct Class {
    request: ResourceRequest,
    queue: VecDeque<TaskId>,
}

#[derive(Debug)]
pub(crate) struct LocalQueue {
    node: NodeResources,
    tasks: HashMap<TaskId, Slot, IdHash>,
    waiting_on: HashMap<ObjectId, Vec<TaskId>, IdHash>,
    classes: Vec<Class>,
    class_of: HashMap<ResourceRequest, usize, IdHash>,
}

impl LocalQueue {
    pub fn new(node: NodeResources) -> Self {
        LocalQueue {
            node,
            tasks: HashMap::default(),
            waiting_on: HashMap::default(),
            classes: Vec::new(),
            class_of: HashMap::default(),
        }
    }

    pub fn resources(&self) -> &NodeResources {
        &self.node
    }

    fn class(&mut self, request: &ResourceRequest) -> usize {
        if let Some(&c) = self.class_of.get(request) {
            return c;
        }
        self.classes.push(Class {
            request: request.clone(),
            queue: VecDeque::new(),
        });
        self.class_of
            .insert(request.clone(), self.classes.len() - 1);
        self.classes.len() - 1
    }

    /// A new task, with the ids of its ref arguments that are not ready yet (no repeats).
    pub fn submit(
        &mut self,
        task: TaskId,
        request: &ResourceRequest,
        missing: &[ObjectId],
    ) -> Vec<Decision> {
        if !self.node.feasible(request) {
            return vec![Decision::Infeasible { task }];
        }
        let class = self.class(request);
        if missing.is_empty() {
            self.tasks.insert(task, Slot::Queued);
            self.classes[class].queue.push_back(task);
            return self.dispatch();
        }
        self.tasks.insert(
            task,
            Slot::Waiting {
                missing: missing.len(),
                class,
            },
        );
        for &dep in missing {
            self.waiting_on.entry(dep).or_default().push(task);
        }
        Vec::new()
    }

    /// An argument became ready (or failed: the task then fails when it starts).
    pub fn dep_ready(&mut self, object: ObjectId) -> Vec<Decision> {
        let Some(tasks) = self.waiting_on.remove(&object) else {
            return Vec::new();
        };
        let mut any = false;
        for task in tasks {
            if let Some(slot) = self.tasks.get_mut(&task)
                && let Slot::Waiting { missing, class } = slot
            {
                *missing -= 1;
                if *missing == 0 {
                    let class = *class;
                    *slot = Slot::Queued;
                    self.classes[class].queue.push_back(task);
                    any = true;
                }
            }
        }
        if any { self.dispatch() } else { Vec::new() }
    }

    /// A running task ended (finished, failed or aborted); its resources come back.
    pub fn finished(&mut self, task: TaskId) -> Vec<Decision> {
        match self.tasks.remove(&task) {
            Some(Slot::Running { grant, blocked }) => {
                self.node.release(&grant);
                if blocked {
                    // Its CPUs were already lent out and counted as free.
                    self.node.reclaim_cpu(grant.cpu);
                }
                self.dispatch()
            }
            Some(other) => {
                self.tasks.insert(task, other);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// A running task blocked in `get`: lend its CPUs.
    pub fn blocked(&mut self, task: TaskId) -> Vec<Decision> {
        if let Some(Slot::Running { grant, blocked }) = self.tasks.get_mut(&task)
            && !*blocked
        {
            *blocked = true;
            let cpu = grant.cpu;
            self.node.lend_cpu(cpu);
            return self.dispatch();
        }
        Vec::new()
    }

    /// The blocked task resumes and takes its CPUs back.
    pub fn unblocked(&mut self, task: TaskId) {
        if let Some(Slot::Running { grant, blocked }) = self.tasks.get_mut(&task)
            && *blocked
        {
            *blocked = false;
            let cpu = grant.cpu;
            self.node.reclaim_cpu(cpu);
        }
    }

    /// Cancels a task that has not finished.
    pub fn cancel(&mut self, task: TaskId) -> CancelOutcome {
        match self.tasks.get(&task) {
            // Left in the class queue and in `waiting_on`; skipped when met there.
            Some(Slot::Waiting { .. } | Slot::Queued) => {
                self.tasks.remove(&task);
                CancelOutcome::Dropped
            }
            Some(Slot::Running { .. }) => CancelOutcome::Running,
            None => CancelOutcome::Unknown,
        }
    }

    /// Custom resources are announced (`free: false`: tasks for them queue) or become free
    /// (`free: true`: tasks waiting for them may start): a placement group's bundles.
    pub fn add_resources(&mut self, amounts: &[(Arc<str>, i64)], free: bool) -> Vec<Decision> {
        for (name, units) in amounts {
            if free {
                self.node.add_custom(name, 0, *units);
            } else {
                self.node.add_custom(name, *units, 0);
            }
        }
        self.dispatch()
    }

    /// The node's CPUs become `cpu` units; what now fits starts. Work queued stays queued
    /// when they shrink (it waits for running tasks to give theirs back).
    pub fn set_cpu_total(&mut self, cpu: i64) -> Vec<Decision> {
        self.node.set_cpu_total(cpu);
        self.dispatch()
    }

    /// Custom resources go away (a removed placement group): tasks that can now never run
    /// here, waiting or queued, are infeasible. Running ones keep what they hold.
    pub fn remove_resources(&mut self, amounts: &[(Arc<str>, i64)]) -> Vec<Decision> {
        for (name, units) in amounts {
            self.node.remove_custom(name, *units);
        }
        let mut out = Vec::new();
        for c in 0..self.classes.len() {
            if self.node.feasible(&self.classes[c].request) {
                continue;
            }
            for task in std::mem::take(&mut self.classes[c].queue) {
                if matches!(self.tasks.get(&task), Some(Slot::Queued)) {
                    self.tasks.remove(&task);
                    out.push(Decision::Infeasible { task });
                }
            }
            let waiting: Vec<TaskId> = self
                .tasks
                .iter()
                .filter(|(_, slot)| matches!(slot, Slot::Waiting { class, .. } if *class == c))
                .map(|(task, _)| *task)
                .collect();
            for task in waiting {
                self.tasks.remove(&task);
                out.push(Decision::Infeasible { task });
            }
        }
        out.extend(self.dispatch());
        out
    }

    /// Where a task is: waiting for arguments or resources, or running.
    pub fn phase(&self, task: TaskId) -> Option<TaskState> {
        self.tasks.get(&task).map(|slot| match slot {
            Slot::Waiting { .. } => TaskState::PendingArgs,
            Slot::Queued => TaskState::PendingResources,
            Slot::Running { .. } => TaskState::Running,
        })
    }

    /// Tasks waiting for arguments or resources, and tasks running.
    pub fn counts(&self) -> (usize, usize) {
        let running = self
            .tasks
            .values()
            .filter(|s| matches!(s, Slot::Running { .. }))
            .count();
        (self.tasks.len() - running, running)
    }

    fn dispatch(&mut self) -> Vec<Decision> {
        let mut out = Vec::new();
        for class in &mut self.classes {
            while let Some(&task) = class.queue.front() {
                let Some(slot @ Slot::Queued) = self.tasks.get_mut(&task) else {
                    class.queue.pop_front(); // cancelled
                    continue;
                };
                let Some(grant) = self.node.try_acquire(&class.request) else {
                    break;
                };
                class.queue.pop_front();
                *slot = Slot::Running {
                    grant: grant.clone(),
                    blocked: false,
                };
                out.push(Decision::Dispatch { task, grant });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::scheduling::resources::UNIT;

    fn task(n: u64) -> TaskId {
        TaskId::from_parts(9, n)
    }

    fn obj(n: u64) -> ObjectId {
        ObjectId::from_parts(9, n)
    }

    fn cpus(n: f64) -> ResourceRequest {
        ResourceRequest::new(n, 0.0, &[]).unwrap()
    }

    fn dispatched(ds: &[Decision]) -> Vec<u64> {
        ds.iter()
            .filter_map(|d| match d {
                Decision::Dispatch { task, .. } => Some(task.sequence()),
                _ => None,
            })
            .collect()
    }

    fn queue(cpu: i64) -> LocalQueue {
        LocalQueue::new(NodeResources::new(cpu * UNIT, &[], &[]).unwrap())
    }

    #[test]
    fn runs_as_many_as_fit_in_submission_order() {
        let mut q = queue(2);
        assert_eq!(dispatched(&q.submit(task(1), &cpus(1.0), &[])), vec![1]);
        assert_eq!(dispatched(&q.submit(task(2), &cpus(1.0), &[])), vec![2]);
        assert!(dispatched(&q.submit(task(3), &cpus(1.0), &[])).is_empty());
        assert!(dispatched(&q.submit(task(4), &cpus(1.0), &[])).is_empty());
        assert_eq!(q.counts(), (2, 2));
        assert_eq!(dispatched(&q.finished(task(2))), vec![3]);
        assert_eq!(dispatched(&q.finished(task(1))), vec![4]);
    }

    #[test]
    fn added_resources_start_waiting_tasks_and_removed_ones_fail_them() {
        let mut q = LocalQueue::new(NodeResources::new(4 * UNIT, &[], &[]).unwrap());
        let group: Arc<str> = Arc::from("CPU_group_0_pg");
        let in_group = ResourceRequest::new(0.0, 0.0, &[("CPU_group_0_pg".into(), 1.0)]).unwrap();
        // Unknown resource: infeasible at once.
        assert_eq!(
            q.submit(task(1), &in_group, &[]),
            vec![Decision::Infeasible { task: task(1) }]
        );
        // Announced: a task for it waits instead of failing; freed: it starts.
        assert!(q.add_resources(&[(group.clone(), UNIT)], false).is_empty());
        assert!(q.submit(task(5), &in_group, &[]).is_empty());
        assert!(matches!(
            q.add_resources(&[(group.clone(), UNIT)], true)[..],
            [Decision::Dispatch { .. }]
        ));
        assert!(q.finished(task(5)).is_empty());
        // Two tasks for one unit: one runs, one queues; a third waits on an argument.
        assert!(matches!(
            q.submit(task(2), &in_group, &[])[..],
            [Decision::Dispatch { .. }]
        ));
        assert!(q.submit(task(3), &in_group, &[]).is_empty());
        assert!(q.submit(task(4), &in_group, &[obj(1)]).is_empty());
        // The group goes: the queued and the waiting task fail, the running one keeps going.
        let mut failed = q.remove_resources(&[(group, UNIT)]);
        failed.sort_by_key(|d| match d {
            Decision::Infeasible { task } => *task,
            Decision::Dispatch { task, .. } => *task,
        });
        assert_eq!(
            failed,
            vec![
                Decision::Infeasible { task: task(3) },
                Decision::Infeasible { task: task(4) }
            ]
        );
        assert_eq!(q.counts(), (0, 1));
        assert!(q.dep_ready(obj(1)).is_empty());
        assert!(q.finished(task(2)).is_empty());
    }

    #[test]
    fn infeasible_is_decided_at_once() {
        let mut q = queue(2);
        assert_eq!(
            q.submit(task(1), &cpus(3.0), &[]),
            vec![Decision::Infeasible { task: task(1) }]
        );
        assert_eq!(q.counts(), (0, 0));
    }

    #[test]
    fn waits_for_every_argument() {
        let mut q = queue(1);
        assert!(q.submit(task(1), &cpus(1.0), &[obj(1), obj(2)]).is_empty());
        assert!(q.dep_ready(obj(1)).is_empty());
        assert!(
            q.dep_ready(obj(1)).is_empty(),
            "a repeated notice is ignored"
        );
        assert_eq!(dispatched(&q.dep_ready(obj(2))), vec![1]);
    }

    #[test]
    fn a_bigger_task_does_not_block_smaller_classes() {
        let mut q = queue(2);
        let _ = q.submit(task(1), &cpus(1.0), &[]);
        assert!(
            q.submit(task(2), &cpus(2.0), &[]).is_empty(),
            "needs both CPUs"
        );
        assert_eq!(dispatched(&q.submit(task(3), &cpus(1.0), &[])), vec![3]);
        let _ = q.finished(task(1));
        assert_eq!(dispatched(&q.finished(task(3))), vec![2]);
    }

    #[test]
    fn cancelled_tasks_never_start() {
        let mut q = queue(1);
        let _ = q.submit(task(1), &cpus(1.0), &[]);
        let _ = q.submit(task(2), &cpus(1.0), &[]);
        let _ = q.submit(task(3), &cpus(1.0), &[obj(1)]);
        assert_eq!(q.cancel(task(2)), CancelOutcome::Dropped);
        assert_eq!(q.cancel(task(3)), CancelOutcome::Dropped);
        assert_eq!(q.cancel(task(1)), CancelOutcome::Running);
        assert!(q.dep_ready(obj(1)).is_empty());
        assert!(dispatched(&q.finished(task(1))).is_empty());
        assert_eq!(q.cancel(task(1)), CancelOutcome::Unknown);
        assert_eq!(q.counts(), (0, 0));
    }

    #[test]
    fn a_blocked_task_lends_its_cpu_and_takes_it_back() {
        let mut q = queue(1);
        let _ = q.submit(task(1), &cpus(1.0), &[]);
        let _ = q.submit(task(2), &cpus(1.0), &[]);
        assert_eq!(dispatched(&q.blocked(task(1))), vec![2]);
        q.unblocked(task(1));
        let _ = q.submit(task(3), &cpus(1.0), &[]);
        assert!(
            dispatched(&q.finished(task(2))).is_empty(),
            "oversubscribed until both end"
        );
        assert_eq!(dispatched(&q.finished(task(1))), vec![3]);
    }

    #[test]
    fn a_task_that_ends_while_blocked_returns_everything_once() {
        let mut q = queue(1);
        let _ = q.submit(task(1), &cpus(1.0), &[]);
        let _ = q.blocked(task(1));
        let _ = q.finished(task(1));
        assert_eq!(q.resources().free_cpu(), UNIT);
    }

    #[test]
    fn fractional_requests_share_a_cpu() {
        let mut q = queue(1);
        let quarter = cpus(0.25);
        let started: usize = (0..6)
            .map(|i| dispatched(&q.submit(task(i), &quarter, &[])).len())
            .sum();
        assert_eq!(started, 4);
    }

    #[test]
    fn zero_cpu_tasks_always_start() {
        let mut q = queue(1);
        let _ = q.submit(task(1), &cpus(1.0), &[]);
        assert_eq!(dispatched(&q.submit(task(2), &cpus(0.0), &[])), vec![2]);
    }
}
