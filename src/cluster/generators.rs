//! Streaming generators across nodes: a producer's items pushed to the node that consumes
//! them, each on its own stream (its frame, then its bytes), answered once the consumer's
//! window has room for it. The consumer's side of the rule lives in the runtime
//! (`runtime::generator`); this module only carries the items.

use std::sync::Arc;

use super::node::{ClusterNode, VALUE_LIMIT};
use crate::base::id::{NodeId, ObjectId};
use crate::transport::link::{self, LinkError};
use crate::wire::{self, Message};

/// Pushes item `index` of `generator` to node `to`; resolves when it is answered.
pub(crate) async fn push(
    node: Arc<ClusterNode>,
    to: NodeId,
    generator: ObjectId,
    index: u64,
    bytes: Vec<u8>,
) -> Result<(), String> {
    let address_of = |node: &ClusterNode| {
        node.view()
            .nodes
            .iter()
            .find(|n| n.info.node_id == to && n.alive)
            .map(|n| n.info.address)
    };
    let mut address = address_of(&node);
    if address.is_none() {
        // A consumer that joined since this node's last view: look again.
        node.refresh_view().await;
        address = address_of(&node);
    }
    let Some(address) = address else {
        return Err(format!("its consumer's node {to} is not a live member"));
    };
    let message = Message::GeneratorItem {
        generator,
        index,
        len: bytes.len() as u64,
    };
    let frame = wire::encode(&message).map_err(|e| e.to_string())?;
    let connection = node
        .endpoint
        .link(address)
        .await
        .map_err(|e| e.to_string())?;
    // No timeout: the answer is held while the consumer's window is full, as long as it
    // takes the consumer to make room. A dead consumer closes the link, and the answer
    // fails with it.
    match link::request_frame(&connection, &frame, &[&bytes]).await {
        Ok((Message::Ack, _)) => Ok(()),
        Ok((other, _)) => Err(format!("its consumer answered {}", other.name())),
        Err(LinkError::Refused(why)) => Err(why),
        Err(e) => Err(format!(
            "its consumer's node {to} could not be reached: {e}"
        )),
    }
}

/// Receives an item pushed here: its bytes (at most the value limit) read from the stream,
/// then kept by the generator; returns when the item is answered.
pub(crate) async fn receive(
    node: &ClusterNode,
    generator: ObjectId,
    index: u64,
    len: u64,
    rx: &mut quinn::RecvStream,
) -> Result<(), String> {
    let generators = &node.generators;
    // Refused before its bytes are read when no generator of that id is consumed here.
    if generators.decoder(generator).is_none() {
        return Err("the generator's consumer dropped it".into());
    }
    let bytes = link::recv_bytes(rx, len, VALUE_LIMIT)
        .await
        .map_err(|e| e.to_string())?;
    generators.arrive_encoded(generator, index, bytes).await
}
