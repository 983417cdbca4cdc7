//! Streaming generators across nodes: a producer's items go to the node that consumes them
//! on one QUIC stream per generator (a frame, then the item's bytes, in order), and each is
//! answered on the same stream once the consumer's window has room for it. The consumer's
//! side of the rule lives in the runtime (`runtime::generator`); this module carries items.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;
use tokio::sync::mpsc;

use super::node::{ClusterNode, VALUE_LIMIT};
use crate::base::id::{NodeId, ObjectId};
use crate::runtime::cluster_port::ItemPush;
use crate::transport::link;
use crate::wire::Message;

type Answer = oneshot::Sender<Result<(), String>>;

/// Answers not yet heard, by index; `alive` turns false when the stream broke (every answer
/// then fails with `why`).
#[derive(Default)]
struct Waiting {
    answers: RefCell<HashMap<u64, Answer>>,
    alive: Cell<bool>,
    why: RefCell<String>,
}

impl Waiting {
    fn fail_all(&self, why: &str) {
        self.alive.set(false);
        *self.why.borrow_mut() = why.to_string();
        for (_, answer) in self.answers.borrow_mut().drain() {
            let _ = answer.send(Err(why.to_string()));
        }
    }
}

/// Opens the stream to the consumer's node `to` for `generator`.
async fn open(
    node: &ClusterNode,
    to: NodeId,
    generator: ObjectId,
) -> Result<(quinn::SendStream, quinn::RecvStream), String> {
    let mut address = node.address_of(to);
    if address.is_none() {
        // A consumer that joined since this node's last view: look again.
        node.refresh_view().await;
        address = node.address_of(to);
    }
    let Some(address) = address else {
        return Err(format!("its consumer's node {to} is not a live member"));
    };
    let unreachable =
        |e: &dyn std::fmt::Display| format!("its consumer's node {to} could not be reached: {e}");
    let connection = node
        .endpoint
        .link(address)
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut tx, rx) = connection.open_bi().await.map_err(|e| unreachable(&e))?;
    link::send(&mut tx, &Message::OpenGenerator { generator })
        .await
        .map_err(|e| unreachable(&e))?;
    Ok((tx, rx))
}

/// The producer's side: sends the items pushed on `pushes` to node `to`, in order, and
/// resolves each one's answer as it comes back; ends when `pushes` closes and every item
/// sent is answered (or the stream broke).
pub(crate) async fn send_items(
    node: Arc<ClusterNode>,
    to: NodeId,
    generator: ObjectId,
    mut pushes: mpsc::UnboundedReceiver<ItemPush>,
) {
    let (mut tx, rx) = match open(&node, to, generator).await {
        Ok(streams) => streams,
        Err(why) => {
            while let Some(push) = pushes.recv().await {
                let _ = push.answer.send(Err(why.clone()));
            }
            return;
        }
    };
    let waiting = Rc::new(Waiting::default());
    waiting.alive.set(true);
    let reader = actix_rt::spawn(read_answers(rx, waiting.clone()));
    while let Some(push) = pushes.recv().await {
        if !waiting.alive.get() {
            let _ = push.answer.send(Err(waiting.why.borrow().clone()));
            continue;
        }
        waiting.answers.borrow_mut().insert(push.index, push.answer);
        let frame = Message::GeneratorItem {
            generator,
            index: push.index,
            len: push.bytes.len() as u64,
        };
        let mut sent = link::send(&mut tx, &frame).await;
        if sent.is_ok() {
            sent = link::send_bytes(&mut tx, &push.bytes).await;
        }
        if let Err(e) = sent {
            waiting.fail_all(&format!(
                "its consumer's node {to} could not be reached: {e}"
            ));
        }
    }
    let _ = tx.finish();
    let _ = reader.await;
}

/// Reads the consumer's answers until it closes the stream.
async fn read_answers(mut rx: quinn::RecvStream, waiting: Rc<Waiting>) {
    loop {
        match link::recv(&mut rx).await {
            Ok(Message::ItemAnswered { index, refused }) => {
                if let Some(answer) = waiting.answers.borrow_mut().remove(&index) {
                    let _ = answer.send(refused.map_or(Ok(()), Err));
                }
            }
            Ok(Message::Refused { reason }) => return waiting.fail_all(&reason),
            Ok(other) => {
                return waiting.fail_all(&format!(
                    "its consumer sent {} on a generator's stream",
                    other.name()
                ));
            }
            Err(e) => {
                return waiting.fail_all(&format!("its consumer's stream closed: {e}"));
            }
        }
    }
}

/// The consumer's side of a generator's stream from node `from`: each item read is kept by
/// the generator and answered when it fits, while later items are read on; ends when the
/// producer finishes the stream (or it breaks) and every item read is answered.
pub(crate) async fn receive_items(
    node: Arc<ClusterNode>,
    from: NodeId,
    generator: ObjectId,
    mut tx: quinn::SendStream,
    mut rx: quinn::RecvStream,
) {
    let generators = node.generators.clone();
    if generators.decoder(generator).is_none() {
        let refused = Message::Refused {
            reason: "the generator's consumer dropped it".into(),
        };
        let _ = link::send(&mut tx, &refused).await;
        let _ = tx.finish();
        return;
    }
    let (answers, mut to_write) = mpsc::unbounded_channel::<(u64, Result<(), String>)>();
    let writer = actix_rt::spawn(async move {
        while let Some((index, answer)) = to_write.recv().await {
            let frame = Message::ItemAnswered {
                index,
                refused: answer.err(),
            };
            if link::send(&mut tx, &frame).await.is_err() {
                return;
            }
        }
        let _ = tx.finish();
    });
    loop {
        match link::recv(&mut rx).await {
            Ok(Message::GeneratorItem {
                generator: of,
                index,
                len,
            }) if of == generator => {
                let bytes = match link::recv_bytes(&mut rx, len, VALUE_LIMIT).await {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        tracing::debug!(%from, %generator, "a generator's stream broke: {e}");
                        break;
                    }
                };
                let (generators, answers) = (generators.clone(), answers.clone());
                actix_rt::spawn(async move {
                    let answer = generators.arrive_encoded(generator, index, bytes).await;
                    let _ = answers.send((index, answer));
                });
            }
            Ok(other) => {
                tracing::warn!(%from, "closed a generator's stream: it sent {}", other.name());
                break;
            }
            // The producer finished the stream, or its link broke.
            Err(_) => break,
        }
    }
    drop(answers);
    let _ = writer.await;
}
