//! The hosting side of actor channels: queues each call as it is read (so in the caller's
//! order) and answers each when it ends.

use std::sync::Arc;

use crate::base::id::NodeId;
use crate::cluster::node::ClusterNode;
use crate::transport::endpoint::reply;
use crate::transport::link::{self, LinkError};
use crate::wire::{Message, OpenActor, TaskOutcome};

use crate::cluster::node::VALUE_LIMIT;

/// How long a channel to an actor not (yet) on this node waits for it: tries and pause.
const ATTACH_TRIES: u32 = 100;
const ATTACH_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// The hosting side of a channel: runs until the caller closes it or its link breaks. When
/// the link breaks, the channel's hold on the actor is kept for `grace` (a few node timeouts):
/// the caller reconnects if its node is alive, and only the membership decides it is not
/// (the grace: three node timeouts).
pub(crate) async fn serve(
    node: Arc<ClusterNode>,
    from: NodeId,
    mut open: OpenActor,
    tx: quinn::SendStream,
    mut rx: quinn::RecvStream,
) {
    let here = node.node_id;
    let grace = node.timeout * 3;
    if let Some(create) = &mut open.create {
        let streamed = std::mem::take(&mut create.streamed);
        if let Err(e) = link::recv_large(&mut rx, &mut create.args, streamed, VALUE_LIMIT).await {
            tracing::warn!(from = %from, "dropped an actor whose arguments did not arrive: {e}");
            return;
        }
    }
    // Spill-back: an actor placed by policy that cannot start here now goes to a peer with
    // room (never one that runs here already: a channel opened again attaches to it).
    if let Some(create) = &open.create
        && let Some(hops) = create.spill
        && !crate::runtime::global::with_runtime(|rt| rt.actors.contains(open.actor))
            .unwrap_or(false)
        && let Ok(settings) = create.options.resolve(false)
        && let Some(peer) = node.spill_target(&settings.hold, hops)
    {
        reply(tx, &Message::ActorMoved { node: peer }).await;
        return;
    }
    let class = open.class.clone();
    let hosted = match crate::runtime::registry::find_actor(&class) {
        None => Err(format!(
            "node {here} has no actor class `{class}`: every node must run the same binary"
        )),
        Some(found) if open.create.is_none() => {
            // A handle can reach this node before its owner's request to create the actor
            // does (both leave the owner at once): give that request a moment.
            let mut tries = 0;
            loop {
                match (found.open)(open.clone(), here) {
                    Err(_) if tries < ATTACH_TRIES => {
                        tries += 1;
                        tokio::time::sleep(ATTACH_WAIT).await;
                    }
                    result => break result,
                }
            }
        }
        Some(found) => (found.open)(open, here),
    };
    let hosted = match hosted {
        Ok(hosted) => hosted,
        Err(reason) => {
            tracing::warn!(from = %from, "refused an actor channel: {reason}");
            reply(tx, &Message::Refused { reason }).await;
            return;
        }
    };
    // Answers go out through one writer, in the order the calls end.
    let (done, writer) = link::answer_writer(tx, |seq, outcome| Message::CallDone { seq, outcome });
    let writer = actix_rt::spawn(writer);
    let mut broke = false;
    loop {
        match link::recv(&mut rx).await {
            Ok(Message::ActorCall(mut call)) => {
                let streamed = std::mem::take(&mut call.streamed);
                if let Err(e) =
                    link::recv_large(&mut rx, &mut call.args, streamed, VALUE_LIMIT).await
                {
                    tracing::warn!(from = %from, "an actor channel broke: {e}");
                    broke = true;
                    break;
                }
                let seq = call.seq;
                match hosted.call(&call.method, &call.args) {
                    Ok(reply) => {
                        let (done, node) = (done.clone(), node.clone());
                        actix_rt::spawn(async move {
                            let outcome = reply.await;
                            // What the actor printed for the caller reaches it first.
                            crate::cluster::logs::deliver_before_result(&node, from).await;
                            let _ = done.send((seq, outcome));
                        });
                    }
                    Err(why) => {
                        let _ = done.send((seq, TaskOutcome::Refused(why)));
                    }
                }
            }
            Ok(Message::ActorControl {
                kill,
                allow_restart,
            }) => hosted.control(kill, allow_restart),
            Ok(other) => {
                tracing::warn!(from = %from, "closed an actor channel: it sent {}", other.name());
                break;
            }
            // The caller finished the stream: its last handle went.
            Err(LinkError::Finished) => break,
            // Its link broke: it may come back.
            Err(e) => {
                tracing::debug!(from = %from, "an actor channel broke: {e}");
                broke = true;
                break;
            }
        }
    }
    // The handle goes (after the grace, if the link broke); calls already queued still run
    // and are answered.
    if broke {
        actix_rt::spawn(async move {
            tokio::time::sleep(grace).await;
            drop(hosted);
        });
    } else {
        drop(hosted);
    }
    drop(done);
    let _ = writer.await;
}
