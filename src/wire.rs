//! Every message that crosses a node boundary, and how it is framed.
//!
//! A frame is a 4-byte little-endian length, then a postcard-encoded [`Envelope`]: the
//! protocol version and one [`Message`]. Frames larger than [`MAX_FRAME`] are refused before
//! any of them is read. Values larger than [`INLINE_LIMIT`] (task arguments and results)
//! follow their frame on the same QUIC stream as raw bytes, their lengths in the frame (see
//! `transport::link`). Nothing else in Mobula writes to a socket.
//!
//! This module is pure: bytes in, messages out, no I/O.

use crate::base::rows::{NodeReport, StateQuery};

use serde::{Deserialize, Serialize};

pub use crate::base::build::{Build, BuildId, this_target};
use crate::base::error::TaskErrorKind;
use crate::base::id::{ActorId, NodeId, ObjectId, TaskId};
pub use crate::base::jobs::JobId;
use crate::base::options::ActorOptions;
pub use crate::base::role::Role;
/// How many times a task or an actor may be passed on (see [`RunTask::spill`]).
pub use crate::base::scheduling::placement::MAX_SPILL_HOPS;

/// The protocol version this build speaks. A peer with another version is refused.
pub const VERSION: u16 = 6;

/// The largest frame accepted, length prefix excluded.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The largest frame a peer without a certificate may send: its one request, a
/// [`Message::Join`] (a token, a certificate request, a fingerprint).
pub const JOIN_FRAME_LIMIT: usize = 8 * 1024;

/// Values up to this size travel inside a frame; larger ones follow it on its stream.
pub const INLINE_LIMIT: usize = 1024 * 1024;

/// What every frame carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender's protocol version.
    pub version: u16,
    /// The message.
    pub message: Message,
}

pub use crate::base::membership::{ClusterView, NodeInfo, NodeState};

/// How a task is to run on the node it was sent to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunTask {
    /// The submitter's task id (for logs and errors).
    pub task: TaskId,
    /// The function's registry id.
    pub function: String,
    /// Each argument, encoded by the object codec; empty for one that is streamed.
    pub args: Vec<Vec<u8>>,
    /// Lengths of the arguments that follow the frame on its stream, in order (those too
    /// large to travel inside it); their places in `args` are empty.
    pub streamed: Vec<(u32, u64)>,
    /// CPUs, GPUs and custom resources the task needs.
    pub resources: Vec<(String, f64)>,
    /// Retries on the executing node (Ray's `max_retries`; negative: no limit).
    pub max_retries: i64,
    /// Whether application errors are retried (on the executing node).
    pub retry_exceptions: bool,
    /// The task's name option.
    pub name: Option<String>,
    /// The node whose terminal shows what the task prints: its driver's.
    pub log_to: NodeId,
    /// How many times nodes that could not start it passed it on; `None` when it is pinned
    /// to the receiving node and may not be passed on.
    pub spill: Option<u8>,
}

/// How a task sent to another node ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// Its value, encoded by the object codec.
    Value(Vec<u8>),
    /// Its value is larger than a frame and follows on this stream in chunks.
    Streamed {
        /// Total bytes that follow.
        len: u64,
    },
    /// The body failed.
    Failed {
        /// How.
        kind: TaskErrorKind,
        /// The error or panic message.
        message: String,
    },
    /// An argument's object failed; its error, as text.
    DepFailed(String),
    /// The node would not run it (unknown function, bad arguments, shutting down).
    Refused(String),
    /// The actor the call went to died; why.
    ActorDied(String),
    /// The value is larger than [`INLINE_LIMIT`] and stays on the node that made it until
    /// the sender fetches it ([`Message::FetchObject`]).
    Held {
        /// Its encoded size.
        len: u64,
    },
    /// The node could not start it now and a peer has room: send it there instead
    /// (spill-back). It did not run.
    Moved(NodeId),
}

/// Opens a call channel to an actor on the receiving node. It is the first frame of a
/// stream that then carries [`Message::ActorCall`]s (and [`Message::ActorControl`]s) from the
/// caller, in the caller's order, and [`Message::CallDone`]s back. The actor holds one handle
/// per open channel: when the caller's node goes, so does its handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenActor {
    /// The actor.
    pub actor: ActorId,
    /// Its class's id (`crate::module::Name`).
    pub class: String,
    /// Set to create the actor here; unset to reach one that already runs here.
    pub create: Option<CreateActor>,
}

/// What creating an actor on another node takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateActor {
    /// The constructor's arguments, encoded; empty for one that is streamed.
    pub args: Vec<Vec<u8>>,
    /// Lengths of the arguments that follow the frame, as in [`RunTask::streamed`].
    pub streamed: Vec<(u32, u64)>,
    /// The actor's options as the caller gave them.
    pub options: ActorOptions,
    /// The node whose terminal shows what the actor prints: its creator's driver's.
    pub log_to: NodeId,
    /// How many times nodes that could not start it passed it on; `None` when it is pinned.
    pub spill: Option<u8>,
}

/// One method call on a channel opened by [`OpenActor`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorCall {
    /// The call's number on its channel, from 0; the answer carries it.
    pub seq: u64,
    /// `Class.method`.
    pub method: String,
    /// The arguments, encoded; empty for one that is streamed.
    pub args: Vec<Vec<u8>>,
    /// Lengths of the arguments that follow the frame, as in [`RunTask::streamed`].
    pub streamed: Vec<(u32, u64)>,
}

/// Where one letter between members of a collective group goes (`runtime::mailbox`): the
/// group (its name and the generation that tells a remade group from the last), the sending
/// and receiving ranks, and the letter's number between the two.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Letter {
    /// The group's name.
    pub group: String,
    /// Which making of the group.
    pub generation: u64,
    /// The sender's rank.
    pub from: u32,
    /// The receiver's rank.
    pub to: u32,
    /// The letter's number from `from` to `to`, from 0.
    pub seq: u64,
}

/// A placement group's bundle as the wire carries it: its index in the group and its
/// resources (`CPU`, `GPU`, custom).
pub type WireBundle = (u32, Vec<(String, f64)>);

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// A node asks to join (on a link without a client certificate): the join token, a
    /// certificate signing request for its key, and its registry's fingerprint.
    Join {
        /// The id the node goes by.
        node_id: NodeId,
        /// The cluster's join secret.
        token: String,
        /// DER of a CSR for the node's own key pair.
        csr_der: Vec<u8>,
        /// The node's registry fingerprint.
        registry: u64,
        /// What it joins as: a worker node or a driver (the token grants nothing more).
        role: Role,
    },
    /// A member renews its certificate before it expires (on its mutual-TLS link to the
    /// head): a request for a new key; answered with [`Message::JoinAccepted`].
    Renew {
        /// DER of a CSR for the node's new key pair.
        csr_der: Vec<u8>,
    },
    /// The join was accepted: the node's id and certificate, signed by the cluster CA.
    JoinAccepted {
        /// The id the node goes by.
        node_id: NodeId,
        /// DER of its certificate.
        cert_der: Vec<u8>,
        /// DER of the cluster CA's certificate.
        ca_der: Vec<u8>,
    },
    /// A request was refused; the reason is for the operator.
    Refused {
        /// Why.
        reason: String,
    },
    /// A joined node (on its mutual-TLS link) announces itself to the head.
    Register(NodeInfo),
    /// The head's answer to a register or a heartbeat: the current membership.
    View(ClusterView),
    /// A node is alive and reports what it has free.
    Heartbeat {
        /// The reporting node.
        node_id: NodeId,
        /// Free resources.
        available: Vec<(String, f64)>,
        /// Tasks running or queued.
        load: u32,
        /// The newest view version the node has.
        view_version: u64,
    },
    /// The head's answer to a heartbeat when the node's view is current.
    Current,
    /// To the head: this member leaves the cluster on purpose (a driver that ends, a node
    /// stopped by its agent). It is listed as gone, not dead; answered with [`Message::Ack`].
    Leave,
    /// Send build `build`'s executable from `offset` to its end: answered with
    /// [`Message::BuildBytes`] and the bytes raw on the same stream, or refused by a node
    /// that has no copy.
    FetchBuild {
        /// The build.
        build: BuildId,
        /// Where to start (0 for the whole file).
        offset: u64,
    },
    /// The bytes of a build's executable follow this frame: `len` of them.
    BuildBytes {
        /// How many.
        len: u64,
    },
    /// To the head, from the CLI: run this build as a job's driver with these arguments.
    /// Answered with [`Message::JobSubmitted`], or [`Message::SendBuild`] when the head has
    /// no copy of the build yet.
    SubmitJob {
        /// The program's build.
        build: Build,
        /// Its arguments.
        args: Vec<String>,
    },
    /// The head has no copy of the build: upload it first ([`Message::UploadBuild`]).
    SendBuild,
    /// To the head, from the CLI: the build's executable follows this frame, raw
    /// (`build.size` bytes); answered with [`Message::Ack`] once it is verified and kept.
    UploadBuild(Build),
    /// A submitted job's id.
    JobSubmitted(JobId),
    /// To the head: the output of a submitted job from byte `offset`; answered with
    /// [`Message::JobOutput`].
    JobLogs {
        /// The job.
        job: JobId,
        /// Where to start reading.
        offset: u64,
    },
    /// A submitted job's output from the offset asked (at most 1 MiB), and whether the job
    /// has ended (so that no more will come).
    JobOutput {
        /// The bytes.
        bytes: Vec<u8>,
        /// Whether the job ended.
        ended: bool,
    },
    /// To the head: stop a submitted job (its process is killed); answered with
    /// [`Message::Ack`].
    StopJob(JobId),
    /// From the agent that started this process: its share of the machine is now these
    /// resources (another build started or ended there); answered with [`Message::Ack`].
    SetResources(Vec<(String, f64)>),
    /// Ask the head for the membership (the CLI's `status`).
    Status,
    /// Stop: the head tells its nodes, the CLI tells the head.
    Shutdown {
        /// Why, for logs.
        reason: String,
    },
    /// Acknowledges a request that has no other answer.
    Ack,
    /// Opens a task channel: the first frame of a stream that then carries
    /// [`Message::RunTask`]s from the sender and [`Message::TaskDone`]s back, in any order.
    OpenTasks,
    /// Run a task here (on a task channel) and answer with a [`Message::TaskDone`].
    RunTask(RunTask),
    /// How the task sent as `task` ended.
    TaskDone {
        /// The sender's id of the task.
        task: TaskId,
        /// How it ended.
        outcome: TaskOutcome,
    },
    /// Opens a channel of calls to an actor (see [`OpenActor`]).
    OpenActor(OpenActor),
    /// A method call on an actor's channel.
    ActorCall(ActorCall),
    /// How the call numbered `seq` on this channel ended.
    CallDone {
        /// The call's number.
        seq: u64,
        /// How it ended.
        outcome: TaskOutcome,
    },
    /// To the head: the actor takes this name, cluster-wide. Answered with
    /// [`Message::Ack`], or with [`Message::ActorFound`] naming the actor that holds it.
    NameActor {
        /// The name's namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The actor's class id.
        class: String,
        /// The actor.
        actor: ActorId,
        /// The node it runs on.
        node: NodeId,
    },
    /// To the head: the named actor ended; its name is free.
    UnnameActor {
        /// The name's namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The actor that held it.
        actor: ActorId,
    },
    /// To the head: which actor has this name? Answered with [`Message::ActorFound`] or
    /// refused.
    FindActor {
        /// The name's namespace.
        namespace: String,
        /// The name.
        name: String,
    },
    /// To the head, from an actor's owner: the actor now runs on `node` (created or restarted
    /// there), so that handles in other processes can follow it.
    ActorAt {
        /// The actor.
        actor: ActorId,
        /// Its class id.
        class: String,
        /// Its node.
        node: NodeId,
    },
    /// On an actor channel, from the node asked to create the actor: it cannot start it now
    /// and `node` has room; open the channel there instead (spill-back). Nothing ran.
    ActorMoved {
        /// Where to create it.
        node: NodeId,
    },
    /// To the head, from an actor's owner: the owner's last handle went, nothing will restart
    /// the actor; its location may be forgotten.
    ActorGone {
        /// The actor.
        actor: ActorId,
    },
    /// To the head: where does this actor run now? Answered with [`Message::ActorFound`] or
    /// refused.
    LocateActor {
        /// The actor.
        actor: ActorId,
    },
    /// A named or located actor, where it runs.
    ActorFound {
        /// The actor.
        actor: ActorId,
        /// Its class id.
        class: String,
        /// Its node.
        node: NodeId,
    },
    /// Send the value of task `task` that this node holds for the asking node (answered with
    /// a [`Message::TaskDone`], its value following the frame), and let it go.
    FetchObject {
        /// The asking node's id of the task that made it.
        task: TaskId,
    },
    /// Send the value of object `object` in this node's store (a ref minted here reached the
    /// asking node inside a value); answered like [`Message::FetchObject`].
    FetchStored {
        /// The object.
        object: ObjectId,
    },
    /// The asking node no longer wants the value of task `task`: let it go.
    ReleaseObject {
        /// The asking node's id of the task that made it.
        task: TaskId,
    },
    /// Reserve these bundles of a placement group here; answered with [`Message::Ack`] once
    /// all are reserved, or refused.
    ReserveBundles {
        /// The group's id.
        group: String,
        /// Each bundle's index in the group and its resources.
        bundles: Vec<WireBundle>,
    },
    /// Give back what this node reserved for a placement group.
    ReleaseBundles {
        /// The group's id.
        group: String,
    },
    /// Stops the channel's actor: kill (`kill: true`, restarting if allowed and asked) or
    /// terminate after the calls sent before this.
    ActorControl {
        /// Kill now rather than terminate after the pending calls.
        kill: bool,
        /// With `kill`: count it as a failure, so the actor may restart.
        allow_restart: bool,
    },
    /// Ask the head for the cluster's state: it asks every live node
    /// ([`Message::NodeState`]) and answers with [`Message::StateReports`].
    State(StateQuery),
    /// Ask one node for its own state.
    NodeState(StateQuery),
    /// Nodes' answers to a state query, and the nodes that did not answer (with why).
    StateReports {
        /// One report per node that answered.
        reports: Vec<NodeReport>,
        /// Nodes that did not answer.
        missing: Vec<(NodeId, String)>,
    },
    /// Lines that tasks or actors working for the receiving node wrote elsewhere, for its
    /// terminal; answered with [`Message::Ack`].
    Logs {
        /// The lines, oldest first.
        lines: Vec<crate::base::log_line::LogLine>,
    },
    /// Opens a stream to the node that consumes a streaming generator, for that generator's
    /// items ([`Message::GeneratorItem`] frames); the consumer answers each with
    /// [`Message::ItemAnswered`] on the same stream, or sends [`Message::Refused`] and closes
    /// it when it has no such generator.
    OpenGenerator {
        /// The generator's id on the receiving node.
        generator: ObjectId,
    },
    /// One item on a generator's stream: `len` bytes encoded by the object codec follow the
    /// frame.
    GeneratorItem {
        /// The generator's id on the receiving node.
        generator: ObjectId,
        /// The item's place in the sequence, from 0.
        index: u64,
        /// The encoded item's length.
        len: u64,
    },
    /// The answer to item `index` on a generator's stream, sent once the item fits in the
    /// generator's window (so the answer is the producer's back-pressure), or with why it
    /// was refused.
    ItemAnswered {
        /// The item's index.
        index: u64,
        /// Why it was not taken, if it was not.
        refused: Option<String>,
    },
    /// A letter for a member of a collective group on the receiving node; its `len` bytes
    /// follow the frame on the stream. Answered with [`Message::Ack`] once it is in the
    /// receiving node's mailbox, or refused.
    Mail {
        /// Where it goes.
        letter: Letter,
        /// The length of its bytes.
        len: u64,
    },
    /// A collective group failed (a member died, a letter was lost): every member on the
    /// receiving node stops waiting with `reason`.
    MailFailed {
        /// The group's name.
        group: String,
        /// Which making of it.
        generation: u64,
        /// Why, naming the member.
        reason: String,
    },
    /// To the head: sets `key` of the key-value store for libraries (Ray's internal KV) to
    /// `value`, unless it has one and `overwrite` is false. Answered, once durable, with
    /// [`Message::KvDone`] (whether the key had a value), or refused.
    KvPut {
        /// The key's namespace.
        namespace: String,
        /// The key.
        key: String,
        /// The value (at most [`crate::base::kv::VALUE_MAX`] bytes).
        value: Vec<u8>,
        /// Whether an existing value is replaced.
        overwrite: bool,
    },
    /// To the head: the value of `key`. Answered with [`Message::KvValue`].
    KvGet {
        /// The key's namespace.
        namespace: String,
        /// The key.
        key: String,
    },
    /// To the head: deletes `key` (every key starting with it, with `by_prefix`). Answered,
    /// once durable, with [`Message::KvDone`] (whether any key had a value).
    KvDelete {
        /// The keys' namespace.
        namespace: String,
        /// The key, or the prefix.
        key: String,
        /// Whether `key` is a prefix.
        by_prefix: bool,
    },
    /// To the head: the keys of a namespace starting with `prefix`, in order. Answered with
    /// [`Message::KvKeys`].
    KvList {
        /// The keys' namespace.
        namespace: String,
        /// The prefix.
        prefix: String,
    },
    /// From the head: a put or delete is durable; whether the key (or a key of the prefix)
    /// had a value before.
    KvDone {
        /// Whether it had.
        existed: bool,
    },
    /// From the head: a key's value, if it has one.
    KvValue {
        /// The value.
        value: Option<Vec<u8>>,
    },
    /// To the head, from the node that made it: a placement group and its bundles' nodes.
    /// Answered with [`Message::Ack`] once durable.
    RecordGroup(crate::base::rows::PlacementGroupInfo),
    /// To the head, from the node that made it: the placement group was removed.
    ForgetGroup {
        /// The group's id.
        group: String,
    },
    /// From the head: keys, in order (at most [`crate::base::kv::LIST_MAX`]; `more` when
    /// there are).
    KvKeys {
        /// The keys.
        keys: Vec<String>,
        /// Whether more keys start with the prefix.
        more: bool,
    },
}

impl Message {
    /// The message's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Join { .. } => "Join",
            Message::JoinAccepted { .. } => "JoinAccepted",
            Message::Renew { .. } => "Renew",
            Message::ActorGone { .. } => "ActorGone",
            Message::ActorMoved { .. } => "ActorMoved",
            Message::Refused { .. } => "Refused",
            Message::Register(_) => "Register",
            Message::View(_) => "View",
            Message::Heartbeat { .. } => "Heartbeat",
            Message::Current => "Current",
            Message::Leave => "Leave",
            Message::FetchBuild { .. } => "FetchBuild",
            Message::BuildBytes { .. } => "BuildBytes",
            Message::SetResources(_) => "SetResources",
            Message::SubmitJob { .. } => "SubmitJob",
            Message::SendBuild => "SendBuild",
            Message::UploadBuild(_) => "UploadBuild",
            Message::JobSubmitted(_) => "JobSubmitted",
            Message::JobLogs { .. } => "JobLogs",
            Message::JobOutput { .. } => "JobOutput",
            Message::StopJob(_) => "StopJob",
            Message::Status => "Status",
            Message::Shutdown { .. } => "Shutdown",
            Message::Ack => "Ack",
            Message::KvPut { .. } => "KvPut",
            Message::KvGet { .. } => "KvGet",
            Message::KvDelete { .. } => "KvDelete",
            Message::KvList { .. } => "KvList",
            Message::KvDone { .. } => "KvDone",
            Message::KvValue { .. } => "KvValue",
            Message::KvKeys { .. } => "KvKeys",
            Message::RecordGroup(_) => "RecordGroup",
            Message::ForgetGroup { .. } => "ForgetGroup",
            Message::OpenTasks => "OpenTasks",
            Message::RunTask(_) => "RunTask",
            Message::TaskDone { .. } => "TaskDone",
            Message::OpenActor(_) => "OpenActor",
            Message::ActorCall(_) => "ActorCall",
            Message::CallDone { .. } => "CallDone",
            Message::ActorControl { .. } => "ActorControl",
            Message::ReserveBundles { .. } => "ReserveBundles",
            Message::NameActor { .. } => "NameActor",
            Message::UnnameActor { .. } => "UnnameActor",
            Message::FindActor { .. } => "FindActor",
            Message::ActorFound { .. } => "ActorFound",
            Message::ActorAt { .. } => "ActorAt",
            Message::FetchObject { .. } => "FetchObject",
            Message::FetchStored { .. } => "FetchStored",
            Message::ReleaseObject { .. } => "ReleaseObject",
            Message::LocateActor { .. } => "LocateActor",
            Message::ReleaseBundles { .. } => "ReleaseBundles",
            Message::State(_) => "State",
            Message::NodeState(_) => "NodeState",
            Message::StateReports { .. } => "StateReports",
            Message::Logs { .. } => "Logs",
            Message::OpenGenerator { .. } => "OpenGenerator",
            Message::GeneratorItem { .. } => "GeneratorItem",
            Message::ItemAnswered { .. } => "ItemAnswered",
            Message::Mail { .. } => "Mail",
            Message::MailFailed { .. } => "MailFailed",
        }
    }
}

/// Why bytes could not become a message (or a message bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The length prefix announces more than [`MAX_FRAME`].
    #[error("frame of {len} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a postcard envelope.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {theirs}, this node speaks {ours}")]
    Version {
        /// The peer's.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// The frame ended early.
    #[error("frame cut short: {have} of {need} bytes")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes announced.
        need: usize,
    },
}

/// An [`Envelope`] that borrows its message, so that encoding copies nothing twice; it
/// encodes to the same bytes.
#[derive(Serialize)]
struct EnvelopeRef<'a> {
    version: u16,
    message: &'a Message,
}

/// Encodes a message as one frame: length prefix, then the envelope.
pub fn encode(message: &Message) -> Result<Vec<u8>, WireError> {
    encode_frame(&EnvelopeRef {
        version: VERSION,
        message,
    })
}

fn encode_frame(envelope: &impl Serialize) -> Result<Vec<u8>, WireError> {
    let mut out = postcard::to_extend(envelope, vec![0u8; 4])
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge {
            len,
            limit: MAX_FRAME,
        });
    }
    out[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(out)
}

/// Reads a length prefix: how many bytes of envelope follow. Refuses oversized frames.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, WireError> {
    frame_len_within(prefix, MAX_FRAME)
}

/// [`frame_len`] with a lower limit (a peer without a certificate gets
/// [`JOIN_FRAME_LIMIT`]).
pub fn frame_len_within(prefix: [u8; 4], limit: usize) -> Result<usize, WireError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > limit {
        return Err(WireError::TooLarge { len, limit });
    }
    Ok(len)
}

/// Decodes the envelope of one frame (the bytes after its length prefix).
/// The version is read first: a peer speaking another version is refused as such, before
/// anything else of its frame is decoded.
pub fn decode_body(body: &[u8]) -> Result<Message, WireError> {
    let (version, rest) =
        postcard::take_from_bytes::<u16>(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if version != VERSION {
        return Err(WireError::Version {
            theirs: version,
            ours: VERSION,
        });
    }
    postcard::from_bytes(rest).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Decodes one whole frame, prefix included.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    let Some(prefix) = frame.get(..4) else {
        return Err(WireError::Truncated {
            have: frame.len(),
            need: 4,
        });
    };
    let len = frame_len(prefix.try_into().expect("four bytes"))?;
    let body = &frame[4..];
    if body.len() < len {
        return Err(WireError::Truncated {
            have: body.len(),
            need: len,
        });
    }
    decode_body(&body[..len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn node(n: u8) -> NodeInfo {
        NodeInfo {
            node_id: NodeId::random(),
            address: SocketAddr::from(([127, 0, 0, n], 4000 + u16::from(n))),
            resources: vec![("CPU".into(), 2.0)],
            registry: 7,
            runs_tasks: true,
            role: Role::Node,
            build: Some(crate::base::build::Build {
                id: crate::base::build::BuildId([n; 32]),
                size: 20 << 20,
                target: "x86_64-linux".into(),
            }),
            target: "x86_64-linux".into(),
            agent: false,
            started_by: None,
            job: None,
            entrypoint: String::new(),
        }
    }

    #[test]
    fn every_message_round_trips() {
        let messages = vec![
            Message::Join {
                node_id: NodeId::random(),
                token: "t".into(),
                csr_der: vec![1, 2, 3],
                registry: 9,
                role: Role::Driver,
            },
            Message::Renew {
                csr_der: vec![6, 7],
            },
            Message::JoinAccepted {
                node_id: NodeId::random(),
                cert_der: vec![4],
                ca_der: vec![5],
            },
            Message::Refused {
                reason: "no".into(),
            },
            Message::Register(node(1)),
            Message::View(ClusterView {
                version: 3,
                nodes: vec![NodeState {
                    info: node(2),
                    available: vec![("CPU".into(), 1.5)],
                    load: 4,
                    alive: true,
                    left: false,
                }],
                head_outages: vec![crate::base::membership::HeadOutage {
                    down_ms: 5,
                    up_ms: 9,
                }],
            }),
            Message::Heartbeat {
                node_id: NodeId::random(),
                available: vec![],
                load: 0,
                view_version: 2,
            },
            Message::Current,
            Message::Leave,
            Message::FetchBuild {
                build: BuildId([9; 32]),
                offset: 8 << 20,
            },
            Message::BuildBytes { len: 20 << 20 },
            Message::SetResources(vec![("CPU".into(), 1.5)]),
            Message::SubmitJob {
                build: node(3).build.unwrap(),
                args: vec!["--fast".into()],
            },
            Message::SendBuild,
            Message::UploadBuild(node(4).build.unwrap()),
            Message::JobSubmitted(JobId(3)),
            Message::JobLogs {
                job: JobId(3),
                offset: 10,
            },
            Message::JobOutput {
                bytes: b"hello".to_vec(),
                ended: true,
            },
            Message::StopJob(JobId(3)),
            Message::Logs { lines: Vec::new() },
            Message::OpenGenerator {
                generator: ObjectId::from_parts(3, 4),
            },
            Message::GeneratorItem {
                generator: ObjectId::from_parts(3, 4),
                index: 7,
                len: 9,
            },
            Message::ItemAnswered {
                index: 7,
                refused: Some("gone".into()),
            },
            Message::Status,
            Message::KvPut {
                namespace: "tune".into(),
                key: "exp/1".into(),
                value: vec![1, 2],
                overwrite: false,
            },
            Message::KvGet {
                namespace: String::new(),
                key: "k".into(),
            },
            Message::KvDelete {
                namespace: "n".into(),
                key: "exp/".into(),
                by_prefix: true,
            },
            Message::KvList {
                namespace: "n".into(),
                prefix: "e".into(),
            },
            Message::RecordGroup(crate::base::rows::PlacementGroupInfo {
                id: "g".into(),
                strategy: "PACK".into(),
                state: crate::base::rows::PlacementGroupState::Created,
                bundles: vec!["CPU=1".into()],
                nodes: vec![NodeId::random()],
                creator: NodeId::random(),
            }),
            Message::ForgetGroup { group: "g".into() },
            Message::KvDone { existed: true },
            Message::KvValue {
                value: Some(vec![3]),
            },
            Message::KvValue { value: None },
            Message::KvKeys {
                keys: vec!["a".into()],
                more: false,
            },
            Message::Shutdown { reason: "r".into() },
            Message::Ack,
            Message::RunTask(RunTask {
                task: TaskId::from_parts(1, 5),
                function: "app::f".into(),
                args: vec![vec![1], vec![]],
                streamed: vec![(1, 1 << 30)],
                resources: vec![("CPU".into(), 1.0)],
                max_retries: 3,
                retry_exceptions: false,
                name: Some("n".into()),
                log_to: NodeId::random(),
                spill: Some(1),
            }),
            Message::TaskDone {
                task: TaskId::NIL,
                outcome: TaskOutcome::Value(vec![9, 9]),
            },
            Message::TaskDone {
                task: TaskId::NIL,
                outcome: TaskOutcome::Moved(NodeId::random()),
            },
            Message::ActorMoved {
                node: NodeId::random(),
            },
            Message::ActorGone {
                actor: ActorId::from_parts(2, 3),
            },
            Message::TaskDone {
                task: TaskId::NIL,
                outcome: TaskOutcome::Streamed { len: 1 << 30 },
            },
            Message::TaskDone {
                task: TaskId::from_parts(1, 6),
                outcome: TaskOutcome::Failed {
                    kind: TaskErrorKind::Panicked,
                    message: "boom".into(),
                },
            },
            Message::OpenTasks,
            Message::ActorCall(ActorCall {
                seq: 7,
                method: "Counter.add".into(),
                args: vec![vec![1, 2]],
                streamed: vec![],
            }),
            Message::CallDone {
                seq: 7,
                outcome: TaskOutcome::ActorDied("gone".into()),
            },
            Message::ActorControl {
                kill: true,
                allow_restart: false,
            },
            Message::TaskDone {
                task: TaskId::NIL,
                outcome: TaskOutcome::DepFailed("lost".into()),
            },
            Message::TaskDone {
                task: TaskId::NIL,
                outcome: TaskOutcome::Refused("unknown".into()),
            },
        ];
        for m in messages {
            let frame = encode(&m).unwrap();
            assert_eq!(
                frame_len(frame[..4].try_into().unwrap()).unwrap(),
                frame.len() - 4
            );
            assert_eq!(decode(&frame).unwrap(), m, "{}", m.name());
        }
    }

    #[test]
    fn oversized_frames_are_refused_by_their_prefix() {
        let prefix = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert_eq!(
            frame_len(prefix),
            Err(WireError::TooLarge {
                len: MAX_FRAME + 1,
                limit: MAX_FRAME
            })
        );
        let big = Message::TaskDone {
            task: TaskId::NIL,
            outcome: TaskOutcome::Value(vec![0; MAX_FRAME]),
        };
        assert!(matches!(encode(&big), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn garbage_short_frames_and_other_versions_are_errors() {
        assert!(matches!(
            decode(&[1, 2]),
            Err(WireError::Truncated { have: 2, need: 4 })
        ));
        let mut frame = encode(&Message::Ack).unwrap();
        frame.pop();
        assert!(matches!(decode(&frame), Err(WireError::Truncated { .. })));
        assert!(matches!(
            decode(&[3, 0, 0, 0, 0xff, 0xff, 0xff]),
            Err(WireError::Malformed(_))
        ));
        let other = encode_frame(&Envelope {
            version: VERSION + 1,
            message: Message::Ack,
        })
        .unwrap();
        assert_eq!(
            decode(&other),
            Err(WireError::Version {
                theirs: VERSION + 1,
                ours: VERSION
            })
        );
        // Another version is named as such even when the rest is not a message of this one.
        let mut later = postcard::to_allocvec(&(VERSION + 1)).unwrap();
        later.extend_from_slice(&[0xff; 7]);
        assert_eq!(
            decode_body(&later),
            Err(WireError::Version {
                theirs: VERSION + 1,
                ours: VERSION
            })
        );
        // Every prefix of a valid frame is an error, never a panic or a wrong message.
        let frame = encode(&Message::Register(node(3))).unwrap();
        for cut in 0..frame.len() {
            assert!(decode(&frame[..cut]).is_err());
        }
    }
}
