//! A node's answer to a state query, read from its runtime: the scheduler's tasks, the
//! actor directory, the store's objects, the placement groups it made, and the node itself
//! (with its process's CPU and memory use from `/proc`).

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::base::filter::{Capped, passes};
use crate::base::rows::{
    NodeEntry, NodeReport, PlacementGroupInfo, StateKind, StateQuery, TaskInfo, TaskState,
};
use crate::base::scheduling::resources::UNIT;
use crate::runtime::global::Runtime;

/// This node's rows for `query`.
pub(crate) fn report(rt: &Runtime, query: &StateQuery) -> NodeReport {
    let mut out = NodeReport::new(rt.node_id);
    let (filters, limit) = (&query.filters[..], query.limit);
    match query.kind {
        StateKind::Tasks => {
            // Tasks bound for another node, waiting here for an argument, come first.
            let mut rows = Capped::new(filters, limit);
            rows.offer_all(awaiting_args(rt));
            rt.scheduler.list_tasks(&mut rows);
            rt.actors.list_calls(rt.node_id, &mut rows);
            (out.tasks, out.truncated) = rows.finish();
        }
        StateKind::Actors => {
            let mut rows = Capped::new(filters, limit);
            rt.actors.list(&mut rows);
            (out.actors, out.truncated) = rows.finish();
        }
        StateKind::Objects => {
            let mut rows = Capped::new(filters, limit);
            rt.store.list(&mut rows);
            (out.objects, out.truncated) = rows.finish();
        }
        StateKind::Nodes => {
            let node = node_entry(rt);
            if passes(&node, filters) {
                out.node = Some(node);
            }
        }
        StateKind::PlacementGroups => {
            let groups: Vec<PlacementGroupInfo> = {
                let made = rt
                    .placement_groups
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                made.iter()
                    .filter_map(|g| g.upgrade())
                    .map(|g| g.describe())
                    .collect()
            };
            let mut rows = Capped::new(filters, limit);
            rows.offer_all(groups);
            (out.placement_groups, out.truncated) = rows.finish();
        }
        StateKind::Logs => {
            (out.logs, out.truncated) = rt.logs.book.latest(limit, |line| passes(line, filters));
        }
        // The head's table; no node has rows of its own.
        StateKind::Jobs => {}
        StateKind::Summary => {
            out.task_counts = rt.scheduler.task_counts();
            out.task_counts.extend(rt.actors.call_counts());
            for task in awaiting_args(rt) {
                out.task_counts
                    .push((task.function, TaskState::PendingArgs, 1));
            }
            out.actor_counts = rt.actors.counts();
            out.object_counts = rt.store.counts();
        }
    }
    out
}

/// Tasks bound for another node that wait here for a ref argument.
fn awaiting_args(rt: &Runtime) -> Vec<TaskInfo> {
    let Some(cluster) = super::node_of(rt) else {
        return Vec::new();
    };
    let awaiting = cluster
        .awaiting_args
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    awaiting
        .iter()
        .map(|(task, (function, submitted))| TaskInfo {
            task_id: *task,
            function: function.to_string(),
            state: TaskState::PendingArgs,
            node_id: rt.node_id,
            actor_id: None,
            attempts: 0,
            submitted_us: *submitted,
            started_us: None,
            ended_us: None,
            error: None,
        })
        .collect()
}

/// The node itself, now.
pub(crate) fn node_entry(rt: &Runtime) -> NodeEntry {
    let (cpu, gpu, custom) = rt.scheduler.totals();
    let unit = UNIT as f64;
    let mut resources = vec![
        ("CPU".to_string(), cpu as f64 / unit),
        ("GPU".to_string(), gpu as f64 / unit),
    ];
    resources.extend(
        custom
            .iter()
            .map(|(n, a)| (n.to_string(), *a as f64 / unit)),
    );
    let (waiting, running) = rt.scheduler.counts();
    let (address, is_head) = match super::node_of(rt) {
        Some(c) => {
            let (address, is_head) = c.whereabouts();
            (Some(address.to_string()), is_head)
        }
        None => (None, true),
    };
    let (cpu_percent, memory_rss) = process_use();
    NodeEntry {
        node_id: rt.node_id,
        address,
        is_head,
        alive: true,
        resources,
        available: rt.scheduler.available(),
        tasks_waiting: waiting as u64,
        tasks_running: running as u64,
        actors: rt.actors.len() as u64,
        objects: rt.store.len() as u64,
        store_used: rt.store.memory_used(),
        store_limit: rt.store.memory_limit,
        spilled_bytes: rt.store.counters.spilled_bytes.load(Ordering::Relaxed),
        cpu_percent,
        memory_rss,
    }
}

/// The process's CPU use since it was last asked (percent of one core) and its resident
/// memory in bytes; zeros where `/proc` cannot be read.
fn process_use() -> (f64, u64) {
    static LAST: Mutex<Option<(Instant, u64)>> = Mutex::new(None);
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let page = 4096;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let cpu = ticks(11) + ticks(12);
    let rss = ticks(21) * page;
    let now = Instant::now();
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let percent = match *last {
        Some((then, before)) if now > then => {
            let seconds = now.duration_since(then).as_secs_f64();
            (cpu.saturating_sub(before) as f64 / ticks_per_s) / seconds * 100.0
        }
        _ => 0.0,
    };
    *last = Some((now, cpu));
    (percent, rss)
}
