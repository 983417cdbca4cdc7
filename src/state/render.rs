//! State rows as a text table or as JSON, for the CLI and the dashboard. Pure.

use serde_json::{Value as Json, json};

use super::merge::{Listed, Summary};
use crate::base::jobs::JobInfo;
use crate::base::log_line::LogLine;
use std::collections::BTreeMap;

use super::types::{
    ActorInfo, ActorState, NodeEntry, ObjectInfo, PlacementGroupInfo, TaskInfo, TaskState,
};

/// A row that renders as a table row and as a JSON object.
pub trait Render {
    /// The columns.
    const HEADERS: &'static [&'static str];
    /// The cells, one per column.
    fn cells(&self) -> Vec<String>;
    /// The row as JSON (ids as strings).
    fn json(&self) -> Json;
}

fn resources(list: &[(String, f64)]) -> String {
    list.iter()
        .map(|(n, a)| format!("{n}={a}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Render for TaskInfo {
    const HEADERS: &'static [&'static str] = &[
        "task_id",
        "function",
        "state",
        "node_id",
        "attempts",
        "submitted_us",
        "duration_us",
        "error",
    ];
    fn cells(&self) -> Vec<String> {
        let duration = match (self.started_us, self.ended_us) {
            (Some(s), Some(e)) => (e.saturating_sub(s)).to_string(),
            _ => "-".into(),
        };
        vec![
            self.task_id.to_string(),
            self.function.clone(),
            self.state.to_string(),
            self.node_id.to_string(),
            self.attempts.to_string(),
            self.submitted_us.to_string(),
            duration,
            self.error.clone().unwrap_or_default(),
        ]
    }
    fn json(&self) -> Json {
        json!({
            "task_id": self.task_id.to_string(),
            "function": self.function,
            "state": self.state.name(),
            "node_id": self.node_id.to_string(),
            "actor_id": self.actor_id.map(|a| a.to_string()),
            "attempts": self.attempts,
            "submitted_us": self.submitted_us,
            "started_us": self.started_us,
            "ended_us": self.ended_us,
            "error": self.error,
        })
    }
}

impl Render for ActorInfo {
    const HEADERS: &'static [&'static str] = &[
        "actor_id",
        "class",
        "name",
        "state",
        "node_id",
        "restarts",
        "calls",
        "death_cause",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.actor_id.to_string(),
            self.class.clone(),
            self.name.clone().unwrap_or_default(),
            self.state.to_string(),
            self.node_id.to_string(),
            self.restarts.to_string(),
            self.calls.to_string(),
            self.death_cause.clone().unwrap_or_default(),
        ]
    }
    fn json(&self) -> Json {
        json!({
            "actor_id": self.actor_id.to_string(),
            "class": self.class,
            "name": self.name,
            "state": self.state.name(),
            "node_id": self.node_id.to_string(),
            "restarts": self.restarts,
            "calls": self.calls,
            "death_cause": self.death_cause,
        })
    }
}

impl Render for ObjectInfo {
    const HEADERS: &'static [&'static str] = &[
        "object_id",
        "size",
        "state",
        "node_id",
        "ref_count",
        "contained_in",
        "spilled",
        "function",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.object_id.to_string(),
            self.size.to_string(),
            self.state.to_string(),
            self.node_id.to_string(),
            self.ref_count.to_string(),
            self.contained_in.to_string(),
            self.spilled.to_string(),
            self.function.clone().unwrap_or_else(|| "(put)".into()),
        ]
    }
    fn json(&self) -> Json {
        json!({
            "object_id": self.object_id.to_string(),
            "size": self.size,
            "state": self.state.name(),
            "node_id": self.node_id.to_string(),
            "ref_count": self.ref_count,
            "contained_in": self.contained_in,
            "spilled": self.spilled,
            "function": self.function,
        })
    }
}

impl Render for NodeEntry {
    const HEADERS: &'static [&'static str] = &[
        "node_id",
        "address",
        "head",
        "alive",
        "tasks",
        "actors",
        "objects",
        "store",
        "cpu%",
        "rss_mb",
        "resources",
        "available",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.node_id.to_string(),
            self.address.clone().unwrap_or_else(|| "-".into()),
            self.is_head.to_string(),
            self.alive.to_string(),
            format!("{}/{}", self.tasks_running, self.tasks_waiting),
            self.actors.to_string(),
            self.objects.to_string(),
            format!("{}/{}", self.store_used, self.store_limit),
            format!("{:.0}", self.cpu_percent),
            (self.memory_rss >> 20).to_string(),
            resources(&self.resources),
            resources(&self.available),
        ]
    }
    fn json(&self) -> Json {
        json!({
            "node_id": self.node_id.to_string(),
            "address": self.address,
            "is_head": self.is_head,
            "alive": self.alive,
            "resources": self.resources.iter().map(|(n, a)| (n.clone(), json!(a))).collect::<serde_json::Map<_, _>>(),
            "available": self.available.iter().map(|(n, a)| (n.clone(), json!(a))).collect::<serde_json::Map<_, _>>(),
            "tasks_waiting": self.tasks_waiting,
            "tasks_running": self.tasks_running,
            "actors": self.actors,
            "objects": self.objects,
            "store_used": self.store_used,
            "store_limit": self.store_limit,
            "spilled_bytes": self.spilled_bytes,
            "cpu_percent": self.cpu_percent,
            "memory_rss": self.memory_rss,
        })
    }
}

impl Render for LogLine {
    const HEADERS: &'static [&'static str] =
        &["time_us", "node_id", "id", "function", "stream", "text"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.time_us.to_string(),
            self.node_id.to_string(),
            self.owner_id(),
            self.function.clone(),
            self.stream.name().to_string(),
            self.text.clone(),
        ]
    }
    fn json(&self) -> Json {
        json!({
            "time_us": self.time_us,
            "node_id": self.node_id.to_string(),
            "task_id": self.task_id.to_string(),
            "actor_id": self.actor_id.map(|a| a.to_string()),
            "function": self.function,
            "stream": self.stream.name(),
            "text": self.text,
        })
    }
}

/// Log lines as a terminal shows them, each with its prefix, and a note on what the limit
/// left out and which nodes did not answer.
pub fn log_lines(listed: &Listed<LogLine>) -> (String, String) {
    let mut lines = String::new();
    for line in &listed.rows {
        lines += &line.render();
        lines.push('\n');
    }
    let mut notes = String::new();
    if listed.truncated > 0 {
        notes += &format!(
            "({} earlier lines left out by the limit: --limit N shows more)\n",
            listed.truncated
        );
    }
    for (node, why) in &listed.missing {
        notes += &format!("node {node} did not answer: {why}\n");
    }
    (lines, notes)
}

impl Render for PlacementGroupInfo {
    const HEADERS: &'static [&'static str] =
        &["id", "strategy", "state", "bundles", "nodes", "creator"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.strategy.clone(),
            self.state.to_string(),
            self.bundles.join("; "),
            self.nodes
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            self.creator.to_string(),
        ]
    }
    fn json(&self) -> Json {
        json!({
            "id": self.id,
            "strategy": self.strategy,
            "state": self.state.name(),
            "bundles": self.bundles,
            "nodes": self.nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            "creator": self.creator.to_string(),
        })
    }
}

impl Render for JobInfo {
    const HEADERS: &'static [&'static str] = &[
        "job_id",
        "status",
        "submitted",
        "driver",
        "build",
        "start",
        "end",
        "exit_code",
        "entrypoint",
        "message",
    ];
    fn cells(&self) -> Vec<String> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        vec![
            self.job_id.to_string(),
            self.status.to_string(),
            self.submitted.to_string(),
            opt(self.driver.map(|d| d.to_string())),
            opt(self.build.map(|b| b.short())),
            unix_ms_text(self.start_time),
            opt(self.end_time.map(unix_ms_text)),
            opt(self.exit_code.map(|c| c.to_string())),
            self.entrypoint.clone(),
            self.message.clone(),
        ]
    }
    fn json(&self) -> Json {
        json!({
            "job_id": self.job_id.to_string(),
            "status": self.status.name(),
            "submitted": self.submitted,
            "driver": self.driver.map(|d| d.to_string()),
            "build": self.build.map(|b| b.hex()),
            "start_time": self.start_time,
            "end_time": self.end_time,
            "exit_code": self.exit_code,
            "entrypoint": self.entrypoint,
            "message": self.message,
        })
    }
}

/// A Unix time in milliseconds as `HH:MM:SS` UTC of its day.
fn unix_ms_text(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// Lines of cells under a header, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// A list as a table, with a line on what was left out.
pub fn listed_table<T: Render>(listed: &Listed<T>) -> String {
    let rows: Vec<Vec<String>> = listed.rows.iter().map(Render::cells).collect();
    let mut out = table(T::HEADERS, &rows);
    out += &notes(listed.rows.len(), listed.truncated, &listed.missing);
    out
}

/// A list as JSON: `{"rows": [...], "truncated": n, "missing": [...]}`.
pub fn listed_json<T: Render>(listed: &Listed<T>) -> Json {
    json!({
        "rows": listed.rows.iter().map(Render::json).collect::<Vec<_>>(),
        "truncated": listed.truncated,
        "missing": listed.missing.iter().map(|(n, why)| json!({"node_id": n.to_string(), "why": why})).collect::<Vec<_>>(),
    })
}

fn notes(shown: usize, truncated: u64, missing: &[(crate::NodeId, String)]) -> String {
    let mut out = format!("({shown} shown");
    if truncated > 0 {
        out += &format!(", {truncated} more left out by the limit: --limit N shows more");
    }
    out += ")\n";
    for (node, why) in missing {
        out += &format!("node {node} did not answer: {why}\n");
    }
    out
}

/// Which part of a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryPart {
    /// Tasks by function and state.
    Tasks,
    /// Actors by class and state.
    Actors,
    /// Objects by state.
    Objects,
}

/// Counts by name and state as a table: a row per name, a column per state.
fn by_state_table<S: Ord + Copy>(
    first: &str,
    counts: &BTreeMap<String, BTreeMap<S, u64>>,
    states: &[S],
    name: fn(S) -> &'static str,
) -> String {
    let mut headers = vec![first];
    headers.extend(states.iter().map(|s| name(*s)));
    let rows: Vec<Vec<String>> = counts
        .iter()
        .map(|(key, by)| {
            let mut row = vec![key.clone()];
            row.extend(
                states
                    .iter()
                    .map(|s| by.get(s).copied().unwrap_or(0).to_string()),
            );
            row
        })
        .collect();
    table(&headers, &rows)
}

/// Counts by name and state as JSON: `{name: {STATE: n}}`.
fn by_state_json<S: Ord + Copy>(
    counts: &BTreeMap<String, BTreeMap<S, u64>>,
    name: fn(S) -> &'static str,
) -> Json {
    let named: BTreeMap<&str, BTreeMap<&str, u64>> = counts
        .iter()
        .map(|(k, by)| (k.as_str(), by.iter().map(|(s, n)| (name(*s), *n)).collect()))
        .collect();
    json!(named)
}

/// A part of a summary as a table: a row per function or class with a column per state.
pub fn summary_table(summary: &Summary, part: SummaryPart) -> String {
    let mut out = match part {
        SummaryPart::Tasks => {
            by_state_table("function", &summary.tasks, &TaskState::ALL, TaskState::name)
        }
        SummaryPart::Actors => {
            by_state_table("class", &summary.actors, &ActorState::ALL, ActorState::name)
        }
        SummaryPart::Objects => {
            let rows: Vec<Vec<String>> = summary
                .objects
                .iter()
                .map(|(s, (n, bytes))| vec![s.to_string(), n.to_string(), bytes.to_string()])
                .collect();
            table(&["state", "objects", "bytes"], &rows)
        }
    };
    for (node, why) in &summary.missing {
        out += &format!("node {node} did not answer: {why}\n");
    }
    out
}

/// A part of a summary as JSON.
pub fn summary_json(summary: &Summary, part: SummaryPart) -> Json {
    match part {
        SummaryPart::Tasks => by_state_json(&summary.tasks, TaskState::name),
        SummaryPart::Actors => by_state_json(&summary.actors, ActorState::name),
        SummaryPart::Objects => json!(
            summary
                .objects
                .iter()
                .map(|(s, (n, b))| (s.name().to_string(), json!({"objects": n, "bytes": b})))
                .collect::<serde_json::Map<_, _>>()
        ),
    }
}
