//! Log lines between nodes: a node sends the lines of tasks working for a driver elsewhere
//! to that driver, which prints them.

use std::sync::Arc;

use super::node::ClusterNode;
use crate::base::id::NodeId;
use crate::base::log_line::LogLine;
use crate::logs::ship::Undelivered;
use crate::wire::Message;

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
