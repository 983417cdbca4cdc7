//! Looking at a running cluster: status, lists, summaries, memory, the timeline, logs.

use std::path::PathBuf;

use mobula::node::{self, ClusterView};
use mobula::state::render::{self, Render, SummaryPart};
use mobula::state::{self, ListOptions};

use crate::TIMEOUT;
use crate::args::{Options, dir_of};

pub fn status(o: &Options) -> Result<(), String> {
    let dir = dir_of(o);
    let view = node::cluster_status(&dir, TIMEOUT).map_err(|e| e.to_string())?;
    print!("{}", render_status(&view));
    Ok(())
}

/// What a node is, for the status table.
fn kind_of(n: &mobula::node::NodeState) -> &'static str {
    use mobula::wire::Role;
    match (n.info.role, n.info.agent, n.info.started_by.is_some()) {
        (Role::Head, true, _) => "head+agent",
        (Role::Head, false, _) => "head",
        (_, true, _) => "agent",
        (Role::Driver, _, _) => "driver",
        (_, _, true) => "build",
        _ => "worker",
    }
}

/// The head's restarts, and how long each outage lasted.
fn render_outages(outages: &[node::HeadOutage]) -> String {
    if outages.is_empty() {
        return String::new();
    }
    let each: Vec<String> = outages
        .iter()
        .map(|o| format!("{:.1} s", o.duration().as_secs_f64()))
        .collect();
    format!(
        "head restarted {} time(s) on its tables; outages: {}\n",
        outages.len(),
        each.join(", ")
    )
}

/// The status table.
fn render_status(view: &ClusterView) -> String {
    let alive = view.nodes.iter().filter(|n| n.alive).count();
    let left = view.nodes.iter().filter(|n| n.left).count();
    let mut out = format!(
        "{alive} node(s) alive, {} dead, {left} left (membership version {})\n",
        view.nodes.len() - alive - left,
        view.version
    );
    out += &render_outages(&view.head_outages);
    out += &format!(
        "{:<34} {:<22} {:<6} {:<10} {:<12} {:<6} {:>5}  resources\n",
        "node", "address", "state", "kind", "build", "tasks", "load"
    );
    let mut totals: Vec<(String, f64)> = Vec::new();
    for n in &view.nodes {
        let resources: Vec<String> = n
            .info
            .resources
            .iter()
            .map(|(name, amount)| format!("{name}={amount}"))
            .collect();
        // A process an agent started holds a share of the agent's machine, counted there.
        if n.alive && n.info.started_by.is_none() {
            for (name, amount) in &n.info.resources {
                match totals.iter_mut().find(|(t, _)| t == name) {
                    Some((_, total)) => *total += amount,
                    None => totals.push((name.clone(), *amount)),
                }
            }
        }
        let state = match (n.alive, n.left) {
            (true, _) => "alive",
            (false, true) => "left",
            (false, false) => "dead",
        };
        out += &format!(
            "{:<34} {:<22} {:<6} {:<10} {:<12} {:<6} {:>5}  {}\n",
            n.info.node_id.to_string(),
            n.info.address.to_string(),
            state,
            kind_of(n),
            n.info
                .build
                .as_ref()
                .map_or("-".to_string(), |b| b.id.short()),
            if n.info.runs_tasks { "yes" } else { "no" },
            n.load,
            resources.join(" ")
        );
    }
    let totals: Vec<String> = totals.iter().map(|(n, a)| format!("{n}={a}")).collect();
    out += &format!("total (alive): {}\n", totals.join(" "));
    out
}

fn state_source(o: &Options) -> state::Source {
    state::Source::ClusterDir(dir_of(o), TIMEOUT)
}

fn the_word<'a>(o: &'a Options, what: &str, choices: &[&str]) -> Result<&'a str, String> {
    match o.words.as_slice() {
        [word] if choices.contains(&word.as_str()) => Ok(word),
        [word] => Err(format!("{what} {word:?}? one of: {}", choices.join(", "))),
        [] => Err(format!("{what} what? one of: {}", choices.join(", "))),
        more => Err(format!("one {what} at a time, not {more:?}")),
    }
}

fn shown<T: Render>(listed: &state::Listed<T>, json: bool) -> String {
    if json {
        format!("{:#}\n", render::listed_json(listed))
    } else {
        render::listed_table(listed)
    }
}

/// `mobula list KIND`.
pub fn list(o: &Options) -> Result<(), String> {
    let kinds = [
        "tasks",
        "actors",
        "objects",
        "nodes",
        "placement-groups",
        "jobs",
    ];
    let kind = the_word(o, "list", &kinds)?;
    let mut options = ListOptions::new().limit(o.limit.unwrap_or(state::DEFAULT_LIMIT));
    for f in &o.filters {
        options = options.parse_filter(f).map_err(|e| e.to_string())?;
    }
    let source = state_source(o);
    let err = |e: state::StateError| e.to_string();
    let text = match kind {
        "tasks" => shown(&source.list_tasks(&options).map_err(err)?, o.json),
        "actors" => shown(&source.list_actors(&options).map_err(err)?, o.json),
        "objects" => shown(&source.list_objects(&options).map_err(err)?, o.json),
        "nodes" => shown(&source.list_nodes(&options).map_err(err)?, o.json),
        "jobs" => shown(&source.list_jobs(&options).map_err(err)?, o.json),
        _ => shown(
            &source.list_placement_groups(&options).map_err(err)?,
            o.json,
        ),
    };
    print!("{text}");
    Ok(())
}

/// `mobula summary KIND`.
pub fn summary(o: &Options) -> Result<(), String> {
    let part = match the_word(o, "summary", &["tasks", "actors", "objects"])? {
        "tasks" => SummaryPart::Tasks,
        "actors" => SummaryPart::Actors,
        _ => SummaryPart::Objects,
    };
    let summary = state_source(o).summary().map_err(|e| e.to_string())?;
    if o.json {
        println!("{:#}", render::summary_json(&summary, part));
    } else {
        print!("{}", render::summary_table(&summary, part));
    }
    Ok(())
}

/// `mobula memory` (Ray's `ray memory`): every node's objects, the largest first, with the
/// store's use per node.
pub fn memory(o: &Options) -> Result<(), String> {
    let source = state_source(o);
    let err = |e: state::StateError| e.to_string();
    let nodes = source
        .list_nodes(&ListOptions::new().limit(10_000))
        .map_err(err)?;
    let limit = o.limit.unwrap_or(state::DEFAULT_LIMIT);
    for node in nodes.rows.iter().filter(|n| n.alive) {
        println!(
            "node {} ({}): {} objects, {} of {} bytes in memory, {} bytes spilled",
            node.node_id,
            node.address.as_deref().unwrap_or("-"),
            node.objects,
            node.store_used,
            node.store_limit,
            node.spilled_bytes
        );
        let objects = source
            .list_objects(
                &ListOptions::new()
                    .filter("node_id", node.node_id)
                    .limit(limit),
            )
            .map_err(err)?;
        for line in render::listed_table(&objects).lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

/// `mobula timeline`.
pub fn timeline(o: &Options) -> Result<(), String> {
    let trace = state_source(o)
        .timeline(o.limit.unwrap_or(10_000))
        .map_err(|e| e.to_string())?;
    let path = o.output.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("mobula-timeline-{secs}.json"))
    });
    let tasks = trace["traceEvents"]
        .as_array()
        .map_or(0, |e| e.iter().filter(|e| e["ph"] == "X").count());
    std::fs::write(&path, trace.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "Wrote {tasks} tasks to {}: open it in chrome://tracing or https://ui.perfetto.dev",
        path.display()
    );
    Ok(())
}

/// `mobula logs [ID]` (Ray's `ray logs`).
pub fn logs(o: &Options) -> Result<(), String> {
    let mut options = ListOptions::new().limit(o.limit.unwrap_or(1000));
    match o.words.as_slice() {
        [] => {}
        [id] => options = options.filter("id", id),
        more => return Err(format!("one task or actor id at a time, not {more:?}")),
    }
    for f in &o.filters {
        options = options.parse_filter(f).map_err(|e| e.to_string())?;
    }
    let listed = state_source(o)
        .list_logs(&options)
        .map_err(|e| e.to_string())?;
    if o.json {
        println!("{:#}", render::listed_json(&listed));
        return Ok(());
    }
    let (lines, notes) = render::log_lines(&listed);
    print!("{lines}");
    eprint!("{notes}");
    if listed.rows.is_empty()
        && let [id] = o.words.as_slice()
    {
        return Err(format!(
            "no lines of {id}: no live node kept any (is it a task or actor id from \
             `mobula list` or a driver's prefix?)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_counted_and_timed() {
        assert_eq!(render_outages(&[]), "");
        let o = |down_ms, up_ms| node::HeadOutage { down_ms, up_ms };
        assert_eq!(
            render_outages(&[o(1_000, 3_500), o(10_000, 10_200)]),
            "head restarted 2 time(s) on its tables; outages: 2.5 s, 0.2 s\n"
        );
    }
}
