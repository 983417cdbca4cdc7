//! The calling side of actor channels: a process's channel to an actor on another node,
//! shared by its handles; the owner's restarts and the borrowers' following.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::mpsc;

use super::recovery::{self, AfterLoss, Settled};
use crate::base::error::{GetError, TaskError, TaskErrorKind};
use crate::base::id::{ActorId, NodeId, ObjectId, TaskId};
use crate::base::options::ActorOptions;
use crate::base::options::ActorSettings;
use crate::base::role::Standing;
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::cluster::node::{ClusterNode, VALUE_LIMIT};
use crate::object::store::Store;
use crate::object::value::StoredValue;
use crate::runtime::cluster_port::{EncodeArgs, RemoteActorPort, RemoteCall};
use crate::runtime::global::Runtime;
use crate::transport::link::{self, LinkError};
use crate::wire::{self, ActorCall, CreateActor, Message, OpenActor, TaskOutcome};

/// What a handle sends down a channel.
enum Outgoing {
    Call(Box<RemoteCall>),
    Control { kill: bool, allow_restart: bool },
}

/// What the driver gets, in the order handles sent it: a call with its arguments resolved
/// and encoded (or why they could not be), or a control.
enum Prepared {
    Call {
        label: &'static str,
        task: TaskId,
        result: ObjectId,
        decode: fn(Vec<u8>) -> Result<StoredValue, String>,
        args: Result<Vec<Vec<u8>>, GetError>,
    },
    Control {
        kill: bool,
        allow_restart: bool,
    },
}

/// Resolves each call's ref arguments and encodes them, one call after another, and passes
/// them on in order. Apart from the driver: an argument may be the answer to an earlier
/// call on this very channel, which only the driver, still settling answers meanwhile, can
/// deliver.
async fn prepare(
    mut outbox: mpsc::UnboundedReceiver<Outgoing>,
    ready: mpsc::UnboundedSender<Prepared>,
) {
    while let Some(item) = outbox.recv().await {
        let prepared = match item {
            Outgoing::Call(call) => {
                let RemoteCall {
                    label,
                    task,
                    result,
                    args,
                    decode,
                } = *call;
                Prepared::Call {
                    label,
                    task,
                    result,
                    decode,
                    args: args().await.map(|encoded| encoded.buffers),
                }
            }
            Outgoing::Control {
                kill,
                allow_restart,
            } => Prepared::Control {
                kill,
                allow_restart,
            },
        };
        if ready.send(prepared).is_err() {
            return;
        }
    }
}

/// A call about to be sent: what its answer needs.
struct Call {
    label: &'static str,
    task: TaskId,
    result: ObjectId,
    decode: fn(Vec<u8>) -> Result<StoredValue, String>,
}

/// A call sent and not yet answered.
struct Sent {
    label: &'static str,
    task: TaskId,
    result: ObjectId,
    /// The encoded [`Message::ActorCall`], written again as is if the call is resent.
    frame: Vec<u8>,
    /// Arguments too large for the frame, written after it.
    payloads: Vec<Vec<u8>>,
    decode: fn(Vec<u8>) -> Result<StoredValue, String>,
    attempts: u32,
}

/// This process's channel to an actor on another node; shared by all its handles to it.
pub(crate) struct RemoteActor {
    pub id: ActorId,
    name: Option<String>,
    /// Where the actor runs now (changes when its owner restarts it elsewhere).
    host: Arc<Mutex<NodeId>>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Calls made and not yet answered.
    pending: Arc<AtomicUsize>,
    store: Store,
}

impl std::fmt::Debug for RemoteActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteActor({} on {})", self.id, self.host())
    }
}

impl RemoteActor {
    /// The node the actor runs on.
    pub fn host(&self) -> NodeId {
        *self.host.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The actor's name, if its creator gave one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Calls made through this process's handles and not yet answered.
    pub fn pending_calls(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Sends a call; its result is sealed or failed when the answer comes.
    pub fn send(&self, call: RemoteCall) {
        let result = call.result;
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.outbox.send(Outgoing::Call(Box::new(call))).is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.store.fail(
                result,
                GetError::ActorDied {
                    actor: format!("actor {}", self.id),
                    cause: "its channel is closed (the runtime is stopping)".into(),
                },
            );
        }
    }

    /// Kills or terminates the actor (see [`ActorHandle::kill`]).
    pub fn control(&self, kill: bool, allow_restart: bool) {
        let _ = self.outbox.send(Outgoing::Control {
            kill,
            allow_restart,
        });
    }
}

/// What the owner of an actor needs to create it again elsewhere.
struct Ownership {
    create: CreateActor,
    settings: ActorSettings,
    strategy: SchedulingStrategy,
    restarts: u32,
}

/// Creates an actor of `class` on node `target`; the handle is usable at once, calls wait
/// for the actor.
#[allow(clippy::too_many_arguments)]
pub(crate) fn create(
    rt: &Runtime,
    cluster: &Arc<ClusterNode>,
    class: &'static str,
    options: &ActorOptions,
    settings: ActorSettings,
    ctor: EncodeArgs,
    id: ActorId,
    target: NodeId,
) -> Arc<RemoteActor> {
    let owner = (ctor, options.clone(), settings);
    start(
        rt,
        cluster,
        id,
        class,
        options.name_option(),
        target,
        Some(owner),
    )
}

/// A channel to an actor that already runs on node `host` (a handle that came from another
/// process); shared with this process's other handles to it.
pub(crate) fn attach(
    rt: &Runtime,
    cluster: &Arc<ClusterNode>,
    id: ActorId,
    class: &'static str,
    host: NodeId,
) -> Arc<RemoteActor> {
    if let Some(found) = cluster.remote_actor(id) {
        return found;
    }
    start(rt, cluster, id, class, None, host, None)
}

fn start(
    rt: &Runtime,
    cluster: &Arc<ClusterNode>,
    id: ActorId,
    class: &'static str,
    name: Option<&str>,
    host: NodeId,
    owner: Option<(EncodeArgs, ActorOptions, ActorSettings)>,
) -> Arc<RemoteActor> {
    let (outbox, inbox) = mpsc::unbounded_channel();
    let remote = Arc::new(RemoteActor {
        id,
        name: name.map(str::to_string),
        host: Arc::new(Mutex::new(host)),
        outbox,
        pending: Arc::new(AtomicUsize::new(0)),
        store: rt.store.clone(),
    });
    cluster.keep_remote_actor(id, Arc::downgrade(&remote));
    let driver = Driver {
        cluster: Arc::clone(cluster),
        store: rt.store.clone(),
        id,
        class,
        host: Arc::clone(&remote.host),
        pending: Arc::clone(&remote.pending),
        in_flight: BTreeMap::new(),
        next_seq: 0,
        dead: None,
        owner: None,
        announced: None,
    };
    rt.node_arbiter.spawn_fn(move || {
        actix_rt::spawn(driver.run(inbox, owner));
    });
    remote
}

/// What the membership says of an actor's node after a link to it broke.
enum Verdict {
    /// Still a member, and reachable again: a new channel to the actor there.
    Back(Channel),
    /// Declared dead, or no longer in the cluster.
    Dead,
    /// Still a member, but not reachable from here within the bound.
    Unreachable,
}

/// Something the channel's reader passes to its driver.
enum Inbound {
    Done(u64, TaskOutcome),
    /// The node could not start the actor and passed it on (spill-back).
    Moved(NodeId),
    Lost(String),
    Refused(String),
}

/// One open stream to the hosting node.
struct Channel {
    tx: quinn::SendStream,
    inbound: mpsc::UnboundedReceiver<Inbound>,
}

/// Runs a channel on the node's event loop: sends calls in order, settles their answers,
/// and on the owner's side creates the actor again when its node is lost.
struct Driver {
    cluster: Arc<ClusterNode>,
    store: Store,
    id: ActorId,
    class: &'static str,
    host: Arc<Mutex<NodeId>>,
    pending: Arc<AtomicUsize>,
    in_flight: BTreeMap<u64, Sent>,
    next_seq: u64,
    /// Set once the actor is gone for good: why.
    dead: Option<String>,
    owner: Option<Ownership>,
    /// The latest word to the head of where the actor runs (to be forgotten at the end,
    /// after that word has arrived).
    announced: Option<actix_rt::task::JoinHandle<()>>,
}

impl Driver {
    fn host(&self) -> NodeId {
        *self.host.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn actor(&self) -> String {
        let short = self.class.rsplit("::").next().unwrap_or(self.class);
        format!("{short} ({})", self.id)
    }

    async fn run(
        mut self,
        outbox: mpsc::UnboundedReceiver<Outgoing>,
        owner: Option<(EncodeArgs, ActorOptions, ActorSettings)>,
    ) {
        let (to_driver, mut ready) = mpsc::unbounded_channel();
        actix_rt::spawn(prepare(outbox, to_driver));
        if let Some((ctor, options, settings)) = owner {
            match ctor().await {
                Ok(encoded) => {
                    let args = encoded.buffers;
                    self.owner = Some(Ownership {
                        create: CreateActor {
                            args,
                            streamed: Vec::new(),
                            options: options.clone(),
                            log_to: settings.log_to.unwrap_or(self.cluster.node_id),
                            // Placed by policy: a node that cannot start it may pass it on.
                            spill: (!matches!(
                                options.strategy(),
                                SchedulingStrategy::NodeAffinity { .. }
                            ))
                            .then_some(0),
                        },
                        strategy: options.strategy(),
                        settings,
                        restarts: 0,
                    })
                }
                Err(e) => self.dead = Some(format!("an argument of its constructor failed: {e}")),
            }
        }
        let mut channel = if self.dead.is_none() {
            self.open().await
        } else {
            None
        };
        let mut closed = false;
        loop {
            if closed && self.in_flight.is_empty() {
                break;
            }
            tokio::select! {
                item = ready.recv(), if !closed => match item {
                    None => {
                        closed = true;
                        if let Some(channel) = &mut channel {
                            let _ = channel.tx.finish();
                        }
                    }
                    Some(Prepared::Call { label, task, result, decode, args }) => {
                        let call = Call { label, task, result, decode };
                        if let Err(why) = self.send(&mut channel, call, args).await {
                            channel = self.recover(why).await;
                        }
                    }
                    Some(Prepared::Control { kill, allow_restart }) => {
                        if let Some(ch) = &mut channel {
                            let message = Message::ActorControl { kill, allow_restart };
                            if let Err(e) = link::send(&mut ch.tx, &message).await {
                                channel = self.recover(e.to_string()).await;
                            }
                        }
                        if kill && !allow_restart {
                            // Killed for good: its owner does not bring it back.
                            self.owner = None;
                        }
                    }
                },
                inbound = next_inbound(&mut channel) => match inbound {
                    Inbound::Done(seq, outcome) => self.settle(seq, outcome),
                    Inbound::Moved(node) => channel = self.moved(node).await,
                    Inbound::Lost(why) => channel = self.recover(why).await,
                    Inbound::Refused(why) => {
                        channel = None;
                        self.owner = None;
                        self.die(why);
                    }
                },
            }
        }
        self.cluster.forget_remote_actor(self.id);
        if let Some(announced) = self.announced.take() {
            // The owner's last handle went: nothing will restart it, and the head may forget
            // where it ran (once it has heard where).
            let _ = announced.await;
            let _ = self
                .cluster
                .ask_head(&Message::ActorGone { actor: self.id })
                .await;
        }
    }

    /// Opens a stream to the host and writes the channel's first frame.
    async fn open(&mut self) -> Option<Channel> {
        let host = self.host();
        match self.try_open(host).await {
            Ok(channel) => Some(channel),
            // Created pinned to a node that is not in the cluster: it cannot start anywhere.
            Err(LinkError::NoSuchNode(node))
                if self.owner.as_ref().is_some_and(|o| {
                    o.restarts == 0 && crate::cluster::remote::pinned_to(o.strategy, host)
                }) =>
            {
                self.owner = None;
                self.die(format!(
                    "node {node} is not a live member of the cluster (hard node affinity)"
                ));
                None
            }
            Err(e) => {
                let why = format!("could not reach node {host}: {e}");
                Box::pin(self.recover(why)).await
            }
        }
    }

    /// Opens a stream to `host` and writes the channel's first frame: on the owner's side
    /// the actor's creation, which the host takes as attaching when the actor runs there
    /// already (a channel opened again after its link broke).
    async fn try_open(&mut self, host: NodeId) -> Result<Channel, LinkError> {
        let mut create = self.owner.as_ref().map(|o| o.create.clone());
        let (streamed, payloads) = match &mut create {
            Some(c) => link::split_large(&mut c.args),
            None => (Vec::new(), Vec::new()),
        };
        if let Some(c) = &mut create {
            c.streamed = streamed;
        }
        let open = Message::OpenActor(OpenActor {
            actor: self.id,
            class: self.class.to_string(),
            create,
        });
        let opened = async {
            let (mut tx, rx) = self.cluster.open_stream(host).await?;
            link::send(&mut tx, &open).await?;
            for payload in &payloads {
                link::send_bytes(&mut tx, payload).await?;
            }
            Ok::<_, LinkError>((tx, rx))
        };
        let (tx, rx) = opened.await?;
        {
            {
                if let Some(owner) = &self.owner {
                    // Where it runs now, for handles in other processes to follow; a named
                    // actor restarted elsewhere takes its name again (the head dropped it
                    // with the lost node).
                    let mut messages = vec![Message::ActorAt {
                        actor: self.id,
                        class: self.class.to_string(),
                        node: host,
                    }];
                    if owner.restarts > 0
                        && let Some((namespace, name)) = &owner.settings.name
                    {
                        messages.push(Message::NameActor {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            class: self.class.to_string(),
                            actor: self.id,
                            node: host,
                        });
                    }
                    let cluster = self.cluster.clone();
                    self.announced = Some(actix_rt::spawn(async move {
                        for message in &messages {
                            let _ = cluster.ask_head(message).await;
                        }
                    }));
                }
            }
        }
        let (to_driver, inbound) = mpsc::unbounded_channel();
        actix_rt::spawn(read_answers(rx, to_driver));
        Ok(Channel { tx, inbound })
    }

    /// The link to the actor's node broke: the membership decides what that means. While
    /// the head counts the node a member, the channel is opened to it again (the actor runs
    /// on there); once the head declares it dead, the caller goes on to restart or follow.
    /// Bounded: a member that stays unreachable from here for three node timeouts is given up.
    async fn verdict(&mut self, host: NodeId) -> Verdict {
        let deadline = tokio::time::Instant::now() + self.cluster.timeout * 3;
        let pause = (self.cluster.timeout / 8).max(std::time::Duration::from_millis(10));
        loop {
            self.cluster.refresh_view().await;
            if self.cluster.standing_of(host) != Standing::Member {
                return Verdict::Dead;
            }
            if tokio::time::Instant::now() >= deadline {
                return Verdict::Unreachable;
            }
            // A dead host's address takes up to a node timeout to give up on.
            let attempt = tokio::time::timeout(self.cluster.timeout, self.try_open(host));
            if let Ok(Ok(channel)) = attempt.await {
                return Verdict::Back(channel);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Back on a channel to the same actor after its link broke: calls caught in flight are
    /// sent again where `max_task_retries` allows (they may have run), and fail with
    /// [`GetError::ActorUnavailable`] otherwise.
    async fn resume(&mut self, channel: Channel, why: &str) -> Option<Channel> {
        let retries = self.owner.as_ref().map(|o| o.settings.max_task_retries);
        let caught = std::mem::take(&mut self.in_flight);
        let mut again = BTreeMap::new();
        for (seq, mut sent) in caught {
            if retries.is_some_and(|r| recovery::resend(r, sent.attempts)) {
                sent.attempts += 1;
                again.insert(seq, sent);
            } else {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                let err = GetError::ActorUnavailable {
                    actor: self.actor(),
                    cause: why.to_string(),
                };
                self.store.fail(sent.result, err);
            }
        }
        self.send_again(channel, again).await
    }

    /// Spill-back: the node asked to create the actor could not start it and named `node`,
    /// which has room. Nothing ran there: the actor is created on `node`, and the calls sent
    /// meanwhile go there, none counted as an attempt.
    async fn moved(&mut self, node: NodeId) -> Option<Channel> {
        let Some(owner) = &mut self.owner else {
            return Box::pin(self.recover(format!(
                "told to move to node {node} by a node it did not create the actor on"
            )))
            .await;
        };
        owner.create.spill = owner.create.spill.map(|hops| hops.saturating_add(1));
        let from = self.host();
        tracing::debug!(
            "actor {} passed on from node {from} to node {node}",
            self.actor()
        );
        *self.host.lock().unwrap_or_else(|e| e.into_inner()) = node;
        let channel = Box::pin(self.open()).await?;
        let waiting = std::mem::take(&mut self.in_flight);
        self.send_again(channel, waiting).await
    }

    /// Writes `calls` (sent before, not answered) on a new channel, in order; they are in
    /// flight again. A write that fails is a loss like any other.
    async fn send_again(
        &mut self,
        mut channel: Channel,
        calls: BTreeMap<u64, Sent>,
    ) -> Option<Channel> {
        for sent in calls.values() {
            if let Err(e) = write_call(&mut channel.tx, sent).await {
                self.in_flight = calls;
                return Box::pin(self.recover(e.to_string())).await;
            }
        }
        self.in_flight = calls;
        Some(channel)
    }

    /// Writes one call whose arguments are ready.
    async fn send(
        &mut self,
        channel: &mut Option<Channel>,
        call: Call,
        args: Result<Vec<Vec<u8>>, GetError>,
    ) -> Result<(), String> {
        if let Some(why) = &self.dead {
            let err = GetError::ActorDied {
                actor: self.actor(),
                cause: why.clone(),
            };
            self.store.fail(call.result, err);
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut args = match args {
            Ok(buffers) => buffers,
            Err(e) => {
                self.store.fail(call.result, e);
                self.pending.fetch_sub(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        // Encoded once, here: a call too large for a frame fails alone, not as a lost node.
        let seq = self.next_seq;
        let (streamed, payloads) = link::split_large(&mut args);
        let message = Message::ActorCall(ActorCall {
            seq,
            method: call.label.to_string(),
            args,
            streamed,
        });
        let frame = match wire::encode(&message) {
            Ok(frame) => frame,
            Err(e) => {
                let err = GetError::Task(TaskError {
                    function: call.label.to_string(),
                    task_id: call.task,
                    node_id: self.host(),
                    kind: TaskErrorKind::Failed,
                    message: format!("the call could not be sent to another node: {e}"),
                    attempts: 0,
                });
                self.store.fail(call.result, err);
                self.pending.fetch_sub(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        drop(message);
        self.next_seq += 1;
        let sent = Sent {
            label: call.label,
            task: call.task,
            result: call.result,
            frame,
            payloads,
            decode: call.decode,
            attempts: 1,
        };
        let written = match channel {
            Some(ch) => write_call(&mut ch.tx, &sent)
                .await
                .map_err(|e| e.to_string()),
            None => Err("no channel".to_string()),
        };
        self.in_flight.insert(seq, sent);
        written
    }

    /// Settles the answer to call `seq`.
    fn settle(&mut self, seq: u64, outcome: TaskOutcome) {
        let Some(sent) = self.in_flight.remove(&seq) else {
            return;
        };
        self.pending.fetch_sub(1, Ordering::Relaxed);
        let host = self.host();
        let task_error = |kind, message| {
            GetError::Task(TaskError {
                function: sent.label.to_string(),
                task_id: sent.task,
                node_id: host,
                kind,
                message,
                attempts: sent.attempts,
            })
        };
        let error = match recovery::settle(outcome) {
            Settled::Value(bytes) => match (sent.decode)(bytes) {
                Ok(value) => {
                    self.store.seal(sent.result, value);
                    return;
                }
                Err(e) => task_error(
                    TaskErrorKind::ResultRejected,
                    format!("the result does not decode: {e}"),
                ),
            },
            Settled::Failed(kind, message) => task_error(kind, message),
            Settled::ActorDied(cause) => GetError::ActorDied {
                actor: self.actor(),
                cause,
            },
        };
        self.store.fail(sent.result, error);
    }

    /// Fails every call in flight and every later one.
    fn die(&mut self, why: String) {
        for (_, sent) in std::mem::take(&mut self.in_flight) {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            let err = GetError::ActorDied {
                actor: self.actor(),
                cause: why.clone(),
            };
            self.store.fail(sent.result, err);
        }
        self.dead = Some(why);
    }

    /// The hosting node was lost: the owner creates the actor on another node if
    /// `max_restarts` allows and sends again the calls `max_task_retries` allows; otherwise
    /// the actor is dead.
    async fn recover(&mut self, why: String) -> Option<Channel> {
        if self.dead.is_some() {
            return None;
        }
        let lost = self.host();
        self.cluster.suspect(lost);
        match self.verdict(lost).await {
            Verdict::Back(channel) => {
                tracing::warn!(
                    "the link to node {lost} broke ({why}); node {lost} is still a member, reconnected to actor {}",
                    self.actor()
                );
                let why = format!("the link to node {lost} broke: {why}");
                return self.resume(channel, &why).await;
            }
            Verdict::Unreachable => {
                // Not restarted elsewhere: it may well run on there, and one instance at a
                // time is the promise.
                self.owner = None;
                let bound = self.cluster.timeout * 3;
                self.die(format!(
                    "node {lost} stayed a member of the cluster but could not be reached from node {} for {bound:?}: {why}",
                    self.cluster.node_id
                ));
                return None;
            }
            Verdict::Dead => {}
        }
        let why = format!("node {lost} was lost: {why}");
        let actor = self.actor();
        let Some(owner) = &mut self.owner else {
            return self.follow(lost, why).await;
        };
        let strategy =
            match recovery::after_loss(owner.settings.max_restarts, owner.restarts, owner.strategy)
            {
                AfterLoss::Restart(strategy) => strategy,
                AfterLoss::Die(reason) => {
                    self.die(format!("{why}; {reason}"));
                    return None;
                }
            };
        owner.restarts += 1;
        let what = format!("actor {actor}, restarted");
        let next = match self
            .cluster
            .place_retry(&owner.settings.place, strategy, &what)
            .await
        {
            Ok(next) => next,
            Err(e) => {
                self.die(format!("{why}; no other node can host it: {e}"));
                return None;
            }
        };
        tracing::warn!("{why}; restarting actor {actor} on node {next}");
        *self.host.lock().unwrap_or_else(|e| e.into_inner()) = next;
        let retries = owner.settings.max_task_retries;
        // Calls caught by the loss run again on the new actor if their retries allow.
        let caught = std::mem::take(&mut self.in_flight);
        let mut again = BTreeMap::new();
        for (seq, mut sent) in caught {
            if recovery::resend(retries, sent.attempts) {
                sent.attempts += 1;
                again.insert(seq, sent);
            } else {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                let err = GetError::ActorDied {
                    actor: self.actor(),
                    cause: format!(
                        "{why}; the call was running there (max_task_retries: {retries:?})"
                    ),
                };
                self.store.fail(sent.result, err);
            }
        }
        let channel = Box::pin(self.open()).await?;
        self.send_again(channel, again).await
    }
}

impl Driver {
    /// A handle from another process lost the actor's node: waits (a few node timeouts) for
    /// its owner to restart it elsewhere, as the head reports, and follows it there. Calls
    /// caught by the loss fail; later ones go to the new actor.
    async fn follow(&mut self, lost: NodeId, why: String) -> Option<Channel> {
        let deadline = tokio::time::Instant::now() + self.cluster.timeout * 3;
        let ask = Message::LocateActor { actor: self.id };
        let moved_to = loop {
            match self.cluster.ask_head(&ask).await {
                Ok(Message::ActorFound { node, .. }) if node != lost => break Some(node),
                _ if tokio::time::Instant::now() >= deadline => break None,
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        let Some(next) = moved_to else {
            self.die(format!("{why}; its owner did not restart it elsewhere"));
            return None;
        };
        let caught = std::mem::take(&mut self.in_flight);
        for (_, sent) in caught {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            let err = GetError::ActorDied {
                actor: self.actor(),
                cause: format!(
                    "{why}; the call was in flight (the actor restarted on node {next})"
                ),
            };
            self.store.fail(sent.result, err);
        }
        tracing::warn!("{why}; following actor {} to node {next}", self.actor());
        *self.host.lock().unwrap_or_else(|e| e.into_inner()) = next;
        Box::pin(self.open()).await
    }
}

/// The next thing the reader passed on; never, without a channel.
async fn next_inbound(channel: &mut Option<Channel>) -> Inbound {
    match channel {
        Some(ch) => ch
            .inbound
            .recv()
            .await
            .unwrap_or_else(|| Inbound::Lost("the channel's reader stopped".into())),
        None => std::future::pending().await,
    }
}

async fn write_call(tx: &mut quinn::SendStream, sent: &Sent) -> Result<(), LinkError> {
    tx.write_all(&sent.frame)
        .await
        .map_err(|e| LinkError::Lost(e.to_string()))?;
    for payload in &sent.payloads {
        link::send_bytes(tx, payload).await?;
    }
    Ok(())
}

/// Reads a channel's answers and passes them to its driver.
async fn read_answers(mut rx: quinn::RecvStream, to_driver: mpsc::UnboundedSender<Inbound>) {
    loop {
        let inbound = match link::recv(&mut rx).await {
            Ok(Message::CallDone {
                seq,
                outcome: TaskOutcome::Streamed { len },
            }) => match link::recv_bytes(&mut rx, len, VALUE_LIMIT).await {
                Ok(bytes) => Inbound::Done(seq, TaskOutcome::Value(bytes)),
                Err(e) => Inbound::Lost(e.to_string()),
            },
            Ok(Message::CallDone { seq, outcome }) => Inbound::Done(seq, outcome),
            Ok(Message::Refused { reason }) => Inbound::Refused(reason),
            Ok(Message::ActorMoved { node }) => Inbound::Moved(node),
            Ok(other) => Inbound::Lost(format!("the host sent {}", other.name())),
            Err(e) => Inbound::Lost(e.to_string()),
        };
        let last = !matches!(inbound, Inbound::Done(..));
        if to_driver.send(inbound).is_err() || last {
            return;
        }
    }
}

/// This process's channels to actors on other nodes, by actor.
#[derive(Default)]
pub(crate) struct RemoteActors(Mutex<HashMap<ActorId, Weak<RemoteActor>>>);

impl RemoteActors {
    pub fn get(&self, id: ActorId) -> Option<Arc<RemoteActor>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .and_then(Weak::upgrade)
    }

    pub fn keep(&self, id: ActorId, remote: Weak<RemoteActor>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, remote);
    }

    /// Channels listed (some may be going).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn forget(&self, id: ActorId) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&id).is_some_and(|w| w.strong_count() == 0) {
            map.remove(&id);
        }
    }
}

impl RemoteActorPort for RemoteActor {
    fn id(&self) -> ActorId {
        self.id
    }

    fn name(&self) -> Option<&str> {
        RemoteActor::name(self)
    }

    fn host(&self) -> NodeId {
        RemoteActor::host(self)
    }

    fn pending_calls(&self) -> usize {
        RemoteActor::pending_calls(self)
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn send(&self, call: RemoteCall) {
        RemoteActor::send(self, call);
    }

    fn control(&self, kill: bool, allow_restart: bool) {
        RemoteActor::control(self, kill, allow_restart);
    }
}
