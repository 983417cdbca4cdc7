//! Letters between the members of collective groups on different nodes: one stream per
//! letter, its bytes raw after the frame, answered once they are in the receiving node's
//! mailbox (`runtime::mailbox`); and word that a group failed.

use std::sync::Arc;

use super::node::ClusterNode;
use crate::base::id::NodeId;
use crate::runtime::mailbox::MAILBOX_LIMIT;
use crate::transport::link::{self, LinkError};
use crate::wire::{self, Letter, Message};

/// Sends `bytes` as `letter` to the mailbox of node `to`.
pub(crate) async fn send(
    node: Arc<ClusterNode>,
    to: NodeId,
    letter: Letter,
    bytes: Vec<u8>,
) -> Result<(), String> {
    let frame = wire::encode(&Message::Mail {
        letter,
        len: bytes.len() as u64,
    })
    .map_err(|e| e.to_string())?;
    let address = node.find(to).await.map_err(|e| e.to_string())?;
    let connection = node
        .endpoint
        .link(address)
        .await
        .map_err(|e| e.to_string())?;
    match link::request_frame(&connection, &frame, &[&bytes]).await {
        Ok((Message::Ack, _)) => Ok(()),
        Ok((other, _)) => Err(LinkError::Unexpected {
            request: "Mail",
            got: other.name(),
        }
        .to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Tells node `to` that group `group` failed.
pub(crate) async fn send_failed(
    node: Arc<ClusterNode>,
    to: NodeId,
    group: (String, u64),
    reason: String,
) -> Result<(), String> {
    let address = node.find(to).await.map_err(|e| e.to_string())?;
    let message = Message::MailFailed {
        group: group.0,
        generation: group.1,
        reason,
    };
    node.endpoint
        .request(address, &message)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Reads a letter's bytes (at most the mailbox's limit) and puts it in this node's mailbox.
pub(super) async fn receive(
    node: &ClusterNode,
    letter: Letter,
    len: u64,
    rx: &mut quinn::RecvStream,
) -> Message {
    match link::recv_bytes(rx, len, MAILBOX_LIMIT).await {
        Ok(bytes) => match node.mailbox.deposit(letter, bytes) {
            Ok(()) => Message::Ack,
            Err(reason) => Message::Refused { reason },
        },
        Err(e) => Message::Refused {
            reason: format!("the letter did not arrive whole: {e}"),
        },
    }
}

/// Word from another node that a group failed.
pub(super) fn failed(
    node: &ClusterNode,
    group: String,
    generation: u64,
    reason: String,
) -> Message {
    node.mailbox.fail(&(group, generation), reason);
    Message::Ack
}
