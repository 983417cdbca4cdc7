//! Actors across nodes: the hosting side in `host`, the calling (and owning) side in
//! `owner`, the owner's pure decisions in `recovery`. (What `#[mobula::actor]` implements so
//! that a node can open and call its actors for others is in `runtime::hosted`.)
//!
//! A handle to an actor on another node holds a [`RemoteActor`]: a channel to the node that
//! hosts it, one QUIC stream carrying this process's calls in the order they were made and
//! their answers in any order. All handles to one actor in a process share the channel, so
//! calls through them keep Ray's per-caller order.
//!
//! The hosting node serves each channel ([`serve`]): it holds a handle to the actor while the
//! channel is open, queues each call on the actor as it reads it (so in the caller's order),
//! and writes each answer when its call ends. When the caller's node dies, its stream
//! breaks and its handle goes, as in Ray, where an actor dies with its owner.
//!
//! The process that created the actor on another node owns it: when the hosting node is
//! lost it creates the actor again elsewhere while `max_restarts` allows, and sends the calls
//! that were not answered again while `max_task_retries` allows, and tells the head where the
//! actor now runs. Handles other processes hold (borrowers) ask the head and follow it; their
//! calls caught by the loss fail with [`crate::GetError::ActorDied`].

mod host;
mod owner;
mod recovery;

pub(crate) use host::serve;
pub(crate) use owner::{RemoteActor, RemoteActors, attach, create};
