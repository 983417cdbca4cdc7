//! Log lines between nodes: a node sends the lines of tasks working for a driver elsewhere
//! to that driver, which prints them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::node::ClusterNode;
use crate::base::id::NodeId;
use crate::base::log_line::LogLine;
use crate::runtime::logs::NodeLogs;
use crate::wire::Message;

/// How long lines bound for another node gather before they go, so that a loop of prints
/// travels as a few messages rather than one per line.
const GATHER: Duration = Duration::from_millis(20);

/// Sends what gathered, driver by driver, until nothing is left. Lines for a driver this node
/// does not know yet (it joined a moment ago) wait for it, up to [`UNKNOWN_WAIT`].
pub(crate) async fn flush(cluster: Arc<ClusterNode>, logs: Arc<NodeLogs>) {
    let mut unknown_since: HashMap<NodeId, Instant> = HashMap::new();
    tokio::time::sleep(GATHER).await;
    loop {
        let Some(batch) = logs.take_pending() else {
            return;
        };
        let mut waiting = false;
        for (driver, lines) in batch {
            let count = lines.len() as u64;
            match send(&cluster, driver, lines).await {
                Ok(()) => {
                    unknown_since.remove(&driver);
                }
                Err(Undelivered::Unknown(lines))
                    if unknown_since
                        .entry(driver)
                        .or_insert_with(Instant::now)
                        .elapsed()
                        < UNKNOWN_WAIT =>
                {
                    // Back in the outbox before it counts as no longer on its way.
                    logs.put_back(vec![(driver, lines)]);
                    waiting = true;
                }
                Err(why) => {
                    unknown_since.remove(&driver);
                    logs.undelivered.fetch_add(count, Ordering::Relaxed);
                    tracing::debug!(%driver, "{count} log lines did not reach their driver: {why}");
                }
            }
            logs.sent(driver);
        }
        if waiting {
            tokio::time::sleep(GATHER * 5).await;
        }
    }
}

/// Delivers every line waiting for `driver`'s terminal, and waits for those on their way:
/// a task's result goes back only after what it printed, so a driver that exits as soon as
/// it has its results has shown every line of them.
pub(crate) async fn deliver_before_result(node: &Arc<ClusterNode>, driver: NodeId) {
    let Some(logs) = crate::runtime::global::with_runtime(|rt| rt.logs.clone()) else {
        return;
    };
    let mut deadline = None;
    loop {
        let Some(lines) = logs.take_for(driver) else {
            // Lines on their way already: they go first (for a node timeout at most).
            let until = *deadline.get_or_insert_with(|| Instant::now() + node.timeout);
            if Instant::now() > until {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        };
        if lines.is_empty() {
            return;
        }
        let count = lines.len() as u64;
        let mut sent = send(node, driver, lines).await;
        if let Err(Undelivered::Unknown(lines)) = sent {
            // A driver that joined since this node's last view: look again.
            node.refresh_view().await;
            sent = send(node, driver, lines).await;
        }
        match sent {
            Ok(()) => logs.sent(driver),
            Err(Undelivered::Unknown(lines)) => {
                // Still unknown: the flush waits for it, as for any line.
                logs.put_back(vec![(driver, lines)]);
                logs.sent(driver);
                if logs.claim_flush() {
                    actix_rt::spawn(flush(node.clone(), logs));
                }
                return;
            }
            Err(why) => {
                logs.sent(driver);
                logs.undelivered.fetch_add(count, Ordering::Relaxed);
                tracing::debug!(%driver, "{count} log lines did not reach their driver: {why}");
                return;
            }
        }
    }
}

/// How long lines wait for a driver this node has not heard of.
const UNKNOWN_WAIT: Duration = Duration::from_secs(10);

/// Why lines did not reach their driver.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Undelivered {
    /// The node is not (yet) a live member in this node's view; the lines come back.
    #[error("it is not a live member of the cluster")]
    Unknown(Vec<LogLine>),
    /// It could not be reached, or did not take them.
    #[error("{0}")]
    Failed(String),
}

/// Sends `lines` to the node `driver` and waits for its acknowledgement; hands them back
/// when this node does not know `driver` as a live member.
pub(crate) async fn send(
    node: &Arc<ClusterNode>,
    driver: NodeId,
    lines: Vec<LogLine>,
) -> Result<(), Undelivered> {
    let address = node
        .view()
        .nodes
        .iter()
        .find(|n| n.info.node_id == driver && n.alive)
        .map(|n| n.info.address);
    let Some(address) = address else {
        return Err(Undelivered::Unknown(lines));
    };
    let message = Message::Logs { lines };
    let asked = node.endpoint.request(address, &message);
    match tokio::time::timeout(node.timeout, asked).await {
        Ok(Ok((Message::Ack, _))) => Ok(()),
        Ok(Ok((other, _))) => Err(Undelivered::Failed(format!("it answered {}", other.name()))),
        Ok(Err(e)) => Err(Undelivered::Failed(e.to_string())),
        Err(_) => Err(Undelivered::Failed(format!(
            "no answer within {:?}",
            node.timeout
        ))),
    }
}

/// Lines that arrived for this node's terminal.
pub(crate) fn receive(lines: &[LogLine]) {
    crate::runtime::global::with_runtime(|rt| rt.logs.arrived(lines));
}
