//! The cluster's state for the state API: the head asks every live node for its rows and
//! answers with all of them; each node answers for itself.

use std::sync::Arc;

use super::node::ClusterNode;
use super::report;
use crate::base::rows::{NodeEntry, NodeReport, StateKind, StateQuery};
use crate::wire::Message;

/// This node's own report.
pub(super) fn own(node: &ClusterNode, query: &StateQuery) -> NodeReport {
    crate::runtime::global::with_runtime(|rt| report::report(rt, query))
        .unwrap_or_else(|| NodeReport::new(node.node_id))
}

/// On the head: every live node's report (its own read in place), the nodes that did not
/// answer in time, and for a node query the dead nodes too.
pub(super) async fn gather(node: &Arc<ClusterNode>, query: StateQuery) -> Message {
    if query.kind == StateKind::Jobs {
        return jobs(node, &query);
    }
    let view = node.view();
    let asks = view
        .nodes
        .iter()
        .filter(|n| n.alive && n.info.node_id != node.node_id)
        .map(|n| {
            let (id, address) = (n.info.node_id, n.info.address);
            let message = Message::NodeState(query.clone());
            async move {
                let asked = node.endpoint.request(address, &message);
                let answer = match tokio::time::timeout(node.timeout, asked).await {
                    Ok(Ok((Message::StateReports { mut reports, .. }, _)))
                        if reports.len() == 1 =>
                    {
                        Ok(reports.remove(0))
                    }
                    Ok(Ok((other, _))) => Err(format!("it answered {}", other.name())),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {:?}", node.timeout)),
                };
                (id, answer)
            }
        });
    let answers = futures::future::join_all(asks).await;
    let mut reports = vec![own(node, &query)];
    let mut missing = Vec::new();
    for (id, answer) in answers {
        match answer {
            Ok(report) => reports.push(report),
            Err(why) => missing.push((id, why)),
        }
    }
    if query.kind == StateKind::Nodes {
        for dead in view.nodes.iter().filter(|n| !n.alive) {
            let mut report = NodeReport::new(dead.info.node_id);
            let entry = NodeEntry {
                node_id: dead.info.node_id,
                address: Some(dead.info.address.to_string()),
                is_head: false,
                alive: false,
                resources: dead.info.resources.clone(),
                available: Vec::new(),
                tasks_waiting: 0,
                tasks_running: 0,
                actors: 0,
                objects: 0,
                store_used: 0,
                store_limit: 0,
                spilled_bytes: 0,
                cpu_percent: 0.0,
                memory_rss: 0,
            };
            if crate::base::filter::passes(&entry, &query.filters) {
                report.node = Some(entry);
            }
            reports.push(report);
        }
    }
    Message::StateReports { reports, missing }
}

/// On the head: the job table, filtered.
fn jobs(node: &ClusterNode, query: &StateQuery) -> Message {
    let mut report = NodeReport::new(node.node_id);
    if let Some(state) = &node.head_state {
        let jobs = state.lock().unwrap_or_else(|e| e.into_inner()).jobs.list();
        let mut rows = crate::base::filter::Capped::new(&query.filters, query.limit);
        // The newest first.
        rows.offer_all(jobs.into_iter().rev());
        (report.jobs, report.truncated) = rows.finish();
    }
    Message::StateReports {
        reports: vec![report],
        missing: Vec::new(),
    }
}
