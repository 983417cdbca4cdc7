//! What the dashboard shows, gathered from the whole cluster through the head: nodes,
//! actors, task counts, failing tasks, recent tasks for the timeline, objects, placement
//! groups and jobs, and the head's restarts, as one JSON document.

use serde_json::{Value as Json, json};

use crate::runtime::global::Runtime;
use crate::state::render::{Render, SummaryPart, summary_json};
use crate::state::{self, ListOptions, StateError, StateKind, merge};

fn query(kind: StateKind, options: ListOptions) -> Result<state::StateQuery, StateError> {
    Ok(options.query(kind)?)
}

fn rows<T: Render>(listed: &state::Listed<T>) -> Json {
    Json::Array(listed.rows.iter().map(Render::json).collect())
}

/// The cluster now, as the node of `rt` sees it. Blocks while the head asks the nodes.
pub(super) fn snapshot(rt: &Runtime) -> Result<Json, StateError> {
    let ask = |kind, options: ListOptions| {
        let q = query(kind, options)?;
        let limit = q.limit;
        state::gather(rt, q).map(|r| (r, limit))
    };
    let ((reports, missing), limit) = ask(StateKind::Nodes, ListOptions::new().limit(1000))?;
    let nodes = merge::nodes(reports, missing, limit);
    let ((reports, missing), limit) = ask(StateKind::Actors, ListOptions::new().limit(200))?;
    let actors = merge::actors(reports, missing, limit);
    let ((reports, missing), limit) = ask(
        StateKind::Tasks,
        ListOptions::new().filter("state", "FAILED").limit(20),
    )?;
    let failing = merge::tasks(reports, missing, limit);
    let ((reports, missing), limit) = ask(StateKind::Tasks, ListOptions::new().limit(300))?;
    let recent = merge::tasks(reports, missing, limit);
    let ((reports, missing), limit) =
        ask(StateKind::PlacementGroups, ListOptions::new().limit(100))?;
    let groups = merge::placement_groups(reports, missing, limit);
    let ((reports, missing), limit) = ask(StateKind::Jobs, ListOptions::new().limit(50))?;
    let jobs = merge::jobs(reports, missing, limit);
    let ((reports, missing), _) = ask(StateKind::Summary, ListOptions::new())?;
    let summary = merge::summary(reports, missing);
    let mut task_states = serde_json::Map::new();
    for s in state::TaskState::ALL {
        task_states.insert(s.name().to_string(), json!(summary.tasks_in(s)));
    }
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let panels = rt
        .extension::<super::Panels>()
        .map(|p| p.documents())
        .unwrap_or_default();
    // The head's restarts, as this node's view has them.
    let outages: Vec<Json> = crate::cluster::node_of(rt)
        .map(|c| c.view().head_outages)
        .unwrap_or_default()
        .iter()
        .map(|o| {
            json!({
                "down_ms": o.down_ms,
                "up_ms": o.up_ms,
                "seconds": o.duration().as_secs_f64(),
            })
        })
        .collect();
    Ok(json!({
        "now_us": now_us,
        "head_outages": outages,
        "panels": panels,
        "nodes": rows(&nodes),
        "actors": rows(&actors),
        "actors_truncated": actors.truncated,
        "task_states": task_states,
        "tasks_by_function": summary_json(&summary, SummaryPart::Tasks),
        "objects": summary_json(&summary, SummaryPart::Objects),
        "failing": rows(&failing),
        "recent": rows(&recent),
        "placement_groups": rows(&groups),
        "jobs": rows(&jobs),
        "missing": summary.missing.iter().map(|(n, why)| json!({"node_id": n.to_string(), "why": why})).collect::<Vec<_>>(),
    }))
}
