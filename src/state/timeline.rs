//! Recent tasks as a Chrome trace (`chrome://tracing`, Perfetto): a process per node, a
//! thread lane per set of tasks that did not overlap, one complete event per task. Pure.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::types::TaskInfo;

/// The trace of `tasks` (those with a start; a running one ends at `now_us`).
pub fn chrome_trace(tasks: &[TaskInfo], now_us: u64) -> Json {
    let mut by_node: BTreeMap<String, Vec<&TaskInfo>> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.started_us.is_some()) {
        by_node.entry(t.node_id.to_string()).or_default().push(t);
    }
    let mut events = Vec::new();
    for (pid, (node, mut tasks)) in by_node.into_iter().enumerate() {
        events.push(json!({
            "name": "process_name", "ph": "M", "pid": pid,
            "args": {"name": format!("node {node}")},
        }));
        tasks.sort_by_key(|t| t.started_us);
        // Each task takes the first lane free at its start.
        let mut lanes: Vec<u64> = Vec::new();
        for t in tasks {
            let start = t.started_us.unwrap_or_default();
            let end = t.ended_us.unwrap_or(now_us).max(start);
            let lane = match lanes.iter().position(|&free_at| free_at <= start) {
                Some(i) => i,
                None => {
                    lanes.push(0);
                    lanes.len() - 1
                }
            };
            lanes[lane] = end;
            events.push(json!({
                "name": t.function,
                "cat": "task",
                "ph": "X",
                "ts": start,
                "dur": end - start,
                "pid": pid,
                "tid": lane,
                "args": {
                    "task_id": t.task_id.to_string(),
                    "state": t.state.name(),
                    "attempts": t.attempts,
                    "error": t.error,
                },
            }));
        }
    }
    json!({ "traceEvents": events, "displayTimeUnit": "ms" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::id::{NodeId, TaskId};
    use crate::base::rows::TaskState;

    fn task(node: NodeId, start: u64, end: Option<u64>) -> TaskInfo {
        TaskInfo {
            task_id: TaskId::NIL,
            function: "app::f".into(),
            state: if end.is_some() {
                TaskState::Finished
            } else {
                TaskState::Running
            },
            node_id: node,
            actor_id: None,
            attempts: 1,
            submitted_us: start,
            started_us: Some(start),
            ended_us: end,
            error: None,
        }
    }

    #[test]
    fn overlapping_tasks_take_separate_lanes_per_node() {
        let (a, b) = (NodeId::random(), NodeId::random());
        let tasks = vec![
            task(a, 0, Some(10)),
            task(a, 5, Some(8)),
            task(a, 10, Some(20)),
            task(b, 0, None),
        ];
        let trace = chrome_trace(&tasks, 50);
        let events = trace["traceEvents"].as_array().unwrap();
        let complete: Vec<&Json> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(complete.len(), 4);
        let lanes: Vec<(u64, u64, u64)> = complete
            .iter()
            .map(|e| {
                (
                    e["pid"].as_u64().unwrap(),
                    e["ts"].as_u64().unwrap(),
                    e["tid"].as_u64().unwrap(),
                )
            })
            .collect();
        let node_a = lanes.iter().find(|l| l.1 == 5).unwrap().0;
        // The one at 5 overlaps the one at 0; the one at 10 reuses the first lane.
        assert!(lanes.contains(&(node_a, 0, 0)));
        assert!(lanes.contains(&(node_a, 5, 1)));
        assert!(lanes.contains(&(node_a, 10, 0)));
        // The running task ends at "now".
        let running = complete
            .iter()
            .find(|e| e["args"]["state"] == "RUNNING")
            .unwrap();
        assert_eq!(running["dur"], 50);
        assert_eq!(events.iter().filter(|e| e["ph"] == "M").count(), 2);
    }
}
