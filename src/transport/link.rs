//! Frames on QUIC streams: one request per bidirectional stream, its answer on the same
//! stream, and large payloads as raw bytes after a header frame (QUIC cuts them into packets
//! and its flow control is the back-pressure: a slow reader stops the writer).

use crate::wire::{self, Message, TaskOutcome, WireError};

/// Why a link operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Could not connect.
    #[error("connecting to {address}: {reason}")]
    Connect {
        /// Where.
        address: String,
        /// Why.
        reason: String,
    },
    /// The connection broke (the peer died, timed out or closed it).
    #[error("link lost: {0}")]
    Lost(String),
    /// The peer sent something that is not a valid frame.
    #[error("bad frame from peer: {0}")]
    Wire(#[from] WireError),
    /// The peer answered with something other than what the request calls for.
    #[error("unexpected answer {got} to {request}")]
    Unexpected {
        /// The request.
        request: &'static str,
        /// The answer.
        got: &'static str,
    },
    /// The peer refused the request.
    #[error("refused: {0}")]
    Refused(String),
    /// The peer finished the stream, between frames: it has nothing more to say.
    #[error("the peer finished the stream")]
    Finished,
    /// The node asked for is not a live member of the cluster (as the head says).
    #[error("node {0} is not a live member of the cluster")]
    NoSuchNode(String),
}

fn lost(e: impl std::fmt::Display) -> LinkError {
    LinkError::Lost(e.to_string())
}

/// Writes one frame.
pub async fn send(stream: &mut quinn::SendStream, message: &Message) -> Result<(), LinkError> {
    let frame = wire::encode(message)?;
    stream.write_all(&frame).await.map_err(lost)
}

/// Reads one frame; an oversized prefix is refused before its body is read.
pub async fn recv(stream: &mut quinn::RecvStream) -> Result<Message, LinkError> {
    recv_within(stream, wire::MAX_FRAME).await
}

/// [`recv`] with a lower frame limit.
pub async fn recv_within(
    stream: &mut quinn::RecvStream,
    limit: usize,
) -> Result<Message, LinkError> {
    let mut prefix = [0u8; 4];
    match stream.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Err(LinkError::Finished),
        Err(e) => return Err(lost(e)),
    }
    let len = wire::frame_len_within(prefix, limit)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(lost)?;
    Ok(wire::decode_body(&body)?)
}

/// Writes a payload after a header frame.
pub async fn send_bytes(stream: &mut quinn::SendStream, bytes: &[u8]) -> Result<(), LinkError> {
    stream.write_all(bytes).await.map_err(lost)
}

/// Reads a payload of `len` bytes written by [`send_bytes`], with `limit` as a ceiling.
pub async fn recv_bytes(
    stream: &mut quinn::RecvStream,
    len: u64,
    limit: u64,
) -> Result<Vec<u8>, LinkError> {
    if len > limit {
        return Err(LinkError::Wire(WireError::TooLarge {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }));
    }
    let len = usize::try_from(len).map_err(lost)?;
    // Reserved without being touched, and refused as an error if it cannot be: memory is
    // committed as the bytes arrive, not as they are announced.
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|e| {
        LinkError::Lost(format!(
            "cannot make room for a payload of {len} bytes: {e}"
        ))
    })?;
    while out.len() < len {
        match stream
            .read_chunk(len - out.len(), true)
            .await
            .map_err(lost)?
        {
            Some(chunk) => out.extend_from_slice(&chunk.bytes),
            None => {
                return Err(LinkError::Lost(format!(
                    "the stream ended after {} of {len} bytes",
                    out.len()
                )));
            }
        }
    }
    Ok(out)
}

/// Sends a request on a new stream and reads the one-frame answer; `Refused` becomes an
/// error. The stream is returned for a payload that may follow.
pub async fn request(
    connection: &quinn::Connection,
    message: &Message,
) -> Result<(Message, quinn::RecvStream), LinkError> {
    request_frame(connection, &wire::encode(message)?, &[]).await
}

/// [`request`] with the request already encoded (sent again on a retry without encoding it
/// again), and payloads that follow it on the stream.
pub async fn request_frame(
    connection: &quinn::Connection,
    frame: &[u8],
    payloads: &[&[u8]],
) -> Result<(Message, quinn::RecvStream), LinkError> {
    let (mut tx, mut rx) = connection.open_bi().await.map_err(lost)?;
    tx.write_all(frame).await.map_err(lost)?;
    for payload in payloads {
        send_bytes(&mut tx, payload).await?;
    }
    tx.finish().map_err(lost)?;
    match recv(&mut rx).await? {
        Message::Refused { reason } => Err(LinkError::Refused(reason)),
        answer => Ok((answer, rx)),
    }
}

/// Takes the values too large to travel inside a frame out of `values`, leaving their places
/// empty: returns their `(index, length)` for the frame and the values to send after it.
pub fn split_large(values: &mut [Vec<u8>]) -> (Vec<(u32, u64)>, Vec<Vec<u8>>) {
    let mut lengths = Vec::new();
    let mut payloads = Vec::new();
    for (index, value) in values.iter_mut().enumerate() {
        if value.len() > wire::INLINE_LIMIT {
            lengths.push((index as u32, value.len() as u64));
            payloads.push(std::mem::take(value));
        }
    }
    (lengths, payloads)
}

/// Reads the values [`split_large`] took out, sent after their frame, back into their places;
/// each is at most `limit` bytes.
pub async fn recv_large(
    stream: &mut quinn::RecvStream,
    values: &mut [Vec<u8>],
    lengths: Vec<(u32, u64)>,
    limit: u64,
) -> Result<(), LinkError> {
    for (index, len) in lengths {
        let bytes = recv_bytes(stream, len, limit).await?;
        match values.get_mut(index as usize) {
            Some(slot) => *slot = bytes,
            None => return Err(LinkError::Lost(format!("value {index} does not exist"))),
        }
    }
    Ok(())
}

/// The answering side of a channel: outcomes sent on the returned sender, keyed by what the
/// other side matches them with, are written in the order they come (`wrap` makes each
/// frame). The future ends, finishing the stream, when every sender is gone; or early, when
/// the other side went away. The caller spawns it.
pub fn answer_writer<K: 'static>(
    mut tx: quinn::SendStream,
    wrap: fn(K, TaskOutcome) -> Message,
) -> (
    tokio::sync::mpsc::UnboundedSender<(K, TaskOutcome)>,
    impl std::future::Future<Output = ()>,
) {
    let (done, mut answers) = tokio::sync::mpsc::unbounded_channel::<(K, TaskOutcome)>();
    let writer = async move {
        while let Some((key, outcome)) = answers.recv().await {
            if let Err(e) = send_outcome(&mut tx, outcome, |o| wrap(key, o)).await {
                tracing::debug!("a channel's other side went away: {e}");
                return;
            }
        }
        let _ = tx.finish();
    };
    (done, writer)
}

/// Writes the frame that tells how a task or call ended, `wrap` making the message from the
/// outcome; a value too large for a frame follows it on the stream.
pub async fn send_outcome(
    stream: &mut quinn::SendStream,
    outcome: TaskOutcome,
    wrap: impl FnOnce(TaskOutcome) -> Message,
) -> Result<(), LinkError> {
    match outcome {
        TaskOutcome::Value(bytes) if bytes.len() > wire::INLINE_LIMIT => {
            let len = bytes.len() as u64;
            send(stream, &wrap(TaskOutcome::Streamed { len })).await?;
            // Handed over, not copied: the stream sends from this buffer.
            stream
                .write_chunk(bytes::Bytes::from(bytes))
                .await
                .map_err(lost)
        }
        outcome => send(stream, &wrap(outcome)).await,
    }
}
