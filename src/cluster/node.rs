//! A node's part in a cluster: joining, its endpoint, its view of the membership, the
//! heartbeat, placing work on peers and the channels to them. The requests it serves are in
//! `serve`, the head's own state in `head`. Everything here runs on the node's event loop;
//! other threads read the view and ask for placements.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::actors::{RemoteActor, RemoteActors};
use super::agent::{self, AgentSettings};
use super::builds::{self, BuildCache};
use super::head::{HeadState, watch_members};
use super::head_db::{Change, HeadDb};
use super::objects::Lineage;
use super::serve::handle;
use super::tasks::TaskChannel;
use crate::base::build::BuildId;
use crate::base::id::IdMint;
use crate::base::id::{ActorId, NodeId, ObjectId, TaskId};
use crate::base::jobs::Jobs;
use crate::base::membership::Membership;
use crate::base::node_config::{ClusterConfig, ClusterRole};
use crate::base::role::{Role, Standing};
use crate::base::scheduling::placement::Placed;
use crate::runtime::generator::Generators;
use crate::runtime::mailbox::Mailbox;
use crate::runtime::registry;
use crate::runtime::scheduler::Scheduler;
use crate::runtime::scheduler::bundles::LocalBundle;
use crate::transport::credentials::{
    ClusterDir, Grant, NODE_NAME, NodeIdentity, NodeKey, expiry_of, fingerprint,
};
use crate::transport::endpoint::{Endpoint, Joins};
use crate::transport::link::{self, LinkError};
use crate::transport::tls;
use crate::wire::{ClusterView, Message, NodeInfo, TaskOutcome};

/// The largest value (argument or result) accepted from another node.
pub(crate) const VALUE_LIMIT: u64 = 64 << 30;

/// This node in the cluster.
pub(crate) struct ClusterNode {
    pub node_id: NodeId,
    pub head: SocketAddr,
    pub endpoint: Endpoint,
    /// How this node announced itself (its resources change when its agent reshares).
    pub(super) info: Mutex<NodeInfo>,
    /// The build it runs, if it holds user code: its work goes only to nodes of this build.
    pub(super) build: Option<BuildId>,
    /// Builds fetched from peers, and the chunks this node serves to peers that fetch.
    pub(super) builds: Arc<BuildCache>,
    pub(super) view: RwLock<ClusterView>,
    /// Resources this node placed on each peer since the current view (which does not show
    /// them yet): subtracted from what the view says is free.
    pub(super) placed: Mutex<HashMap<NodeId, Placed>>,
    /// Tasks sent to each node and not yet answered.
    pub(super) sent: Mutex<HashMap<NodeId, u32>>,
    /// Nodes a link to which broke, and when: not chosen for `timeout` after that (by then
    /// the head has declared them dead, or they are fine).
    pub(super) suspects: Mutex<HashMap<NodeId, Instant>>,
    pub(super) cursor: AtomicUsize,
    /// Why the head is away, while it is (set when it stops answering, cleared when it
    /// answers again).
    pub(super) head_lost: Mutex<Option<String>>,
    /// Signalled when the head answers again, or this node gives up on it.
    head_back: tokio::sync::Notify,
    /// Set once the head stayed away for `head_timeout`: this node no longer waits for it.
    head_gave_up: AtomicBool,
    /// How long this node waits for a head that stopped answering.
    pub(super) head_timeout: Duration,
    pub(super) head_state: Option<Mutex<HeadState>>,
    pub(super) timeout: Duration,
    /// How long work waits for a node that can take it (see `wait_to_place`).
    pub(super) placement_timeout: Duration,
    pub(super) stopping: AtomicBool,
    /// Set once the node is asked to stop or leaves: it starts no more tasks sent to it (the
    /// channel that brings one is closed, so the sender runs it elsewhere).
    pub(super) draining: AtomicBool,
    /// Set when the cluster told this node to stop.
    pub shutdown: tokio::sync::Notify,
    pub(super) scheduler: Scheduler,
    /// This process's channels to actors on other nodes.
    pub(super) remote_actors: RemoteActors,
    /// This node's task channels, by peer.
    pub(super) task_channels: Mutex<HashMap<NodeId, Arc<TaskChannel>>>,
    /// Values of tasks other nodes sent here, kept until their owner fetches them.
    pub(super) held: Mutex<HashMap<(NodeId, TaskId), Vec<u8>>>,
    /// How to make again the values this node's tasks left on other nodes.
    pub(super) lineage: Mutex<HashMap<ObjectId, Lineage>>,
    /// Placement group bundles this node reserved for other nodes: by group, the node that
    /// asked (its owner, which alone may release them) and the bundles.
    pub(super) hosted_groups: Mutex<HashMap<String, (NodeId, Vec<LocalBundle>)>>,
    /// Tasks bound for another node that wait here for a ref argument: their function and
    /// when they were submitted (Unix µs), for the state API.
    pub(crate) awaiting_args: Mutex<HashMap<TaskId, (&'static str, u64)>>,
    pub(super) ids: Arc<IdMint>,
    /// Tasks other nodes sent that run here now, by the id they run under.
    running_remote: Mutex<std::collections::HashSet<TaskId>>,
    /// The streaming generators this node consumes (its runtime's table).
    pub(super) generators: Arc<Generators>,
    /// Letters for the members of collective groups here (its runtime's mailbox).
    pub(super) mailbox: Arc<Mailbox>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClusterNode({} at {})",
            self.node_id,
            self.info().address
        )
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Starts this node's part; runs on the node's event loop.
pub(crate) async fn start(
    config: ClusterConfig,
    node_id: NodeId,
    totals: Vec<(String, f64)>,
    scheduler: Scheduler,
    ids: Arc<IdMint>,
    generators: Arc<Generators>,
    mailbox: Arc<Mailbox>,
) -> Result<Arc<ClusterNode>, String> {
    let runs_tasks = !config.agent && totals.iter().any(|(n, a)| n == "CPU" && *a > 0.0);
    let dir = ClusterDir::new(&config.dir);
    let build = builds::find_this_build(dir.path()).cloned();
    let key = NodeKey::generate().map_err(err)?;
    let registry = registry::announced_fingerprint();
    let (identity, head, listen, head_state, secrets) = match &config.role {
        ClusterRole::Head { listen } => {
            let (ca, token) = dir.load_or_create().map_err(err)?;
            let grant = Grant::new(
                node_id,
                Role::Head,
                SystemTime::now(),
                config.certificate_lifetime,
            );
            let identity = ca.issue(&grant).map_err(err)?;
            let timeout_ms = config.node_timeout.as_millis() as u64;
            // A dead member stays listed (its certificate refused) while that certificate
            // can still be valid: its lifetime, and a clock running late by as much.
            let lifetime = config.certificate_lifetime;
            let forget_after = lifetime + lifetime.min(crate::transport::credentials::CLOCK_SKEW);
            // The tables a previous head left: a head that cannot open them does not start.
            let (db, restored) = HeadDb::open(dir.path(), super::jobs::unix_ms()).map_err(err)?;
            let mut membership = Membership::new(timeout_ms)
                .forget_dead_after(forget_after.as_millis() as u64)
                .continuing_from(restored.view_version + 1)
                .with_outages(restored.outages.clone());
            // The members it knew have the timeout and two more to reach this head.
            let grace = timeout_ms * 2;
            for info in restored.members {
                if info.role != Role::Head {
                    membership.restore(info, 0, grace);
                }
            }
            if let Some(last) = restored.outages.last() {
                tracing::warn!(
                    restarts = restored.outages.len(),
                    "the head restarts on its tables after {} ms down",
                    last.up_ms.saturating_sub(last.down_ms)
                );
            }
            let state = HeadState {
                membership,
                ca,
                token,
                started: Instant::now(),
                names: restored.names.into_iter().collect(),
                locations: restored.locations.into_iter().collect(),
                certificate_lifetime: config.certificate_lifetime,
                jobs: restored.jobs.map(Jobs::restored).unwrap_or_default(),
                job_processes: HashMap::new(),
                dir: dir.path().to_path_buf(),
                db,
                alive_recorded: Instant::now(),
                kv: crate::base::kv::Kv::from_entries(restored.kv),
                groups: restored
                    .groups
                    .into_iter()
                    .map(|g| (g.id.clone(), g))
                    .collect(),
            };
            let secrets = (state.token.clone(), fingerprint(state.ca.cert_der()));
            (identity, *listen, *listen, Some(state), secrets)
        }
        ClusterRole::Join {
            head,
            listen,
            token,
            ca_fingerprint,
        } => {
            let token = match token {
                Some(t) => t.clone(),
                None => dir
                    .read("token")
                    .map_err(err)?
                    .map(|t| String::from_utf8_lossy(&t).trim().to_string())
                    .ok_or_else(|| {
                        format!(
                            "no join token: set MOBULA_JOIN_TOKEN (or `mobula start --token`, Config::join_token) to the one `mobula start --head` printed, or run on the head's machine ({} has none)",
                            dir.path().display()
                        )
                    })?,
            };
            let pin = match ca_fingerprint {
                Some(p) => p.clone(),
                None => dir
                    .read("ca.der")
                    .map_err(err)?
                    .map(|der| fingerprint(&der))
                    .ok_or_else(|| {
                        "no CA fingerprint: set MOBULA_CA_FINGERPRINT (or `mobula start --ca-fingerprint`, Config::ca_fingerprint) to the one `mobula start --head` printed".to_string()
                    })?,
            };
            let asking = Asking {
                node_id,
                role: config.member,
                registry,
            };
            let identity = join(*head, &token, &pin, &key, asking, config.node_timeout).await?;
            (identity, *head, *listen, None, (token, pin))
        }
    };
    let joins = if head_state.is_some() {
        Joins::Accepted
    } else {
        Joins::Refused
    };
    let endpoint = Endpoint::bind(listen, &identity, config.node_timeout, joins).map_err(err)?;
    let address = endpoint.local_addr();
    let head = if head_state.is_some() { address } else { head };
    let info = NodeInfo {
        node_id,
        address,
        resources: totals.clone(),
        registry,
        runs_tasks,
        role: if head_state.is_some() {
            Role::Head
        } else {
            config.member
        },
        build: build.clone(),
        target: crate::base::build::this_target(),
        agent: config.agent,
        started_by: config.started_by,
        job: config.job,
        entrypoint: entrypoint(),
    };
    let cache = Arc::new(BuildCache::new(
        dir.path().join("builds"),
        config.build_cache_limit,
    ));
    let node = Arc::new(ClusterNode {
        node_id,
        head,
        endpoint,
        info: Mutex::new(info.clone()),
        build: build.map(|b| b.id),
        builds: cache.clone(),
        view: RwLock::default(),
        placed: Mutex::default(),
        sent: Mutex::default(),
        suspects: Mutex::default(),
        cursor: AtomicUsize::new(0),
        head_lost: Mutex::new(None),
        head_back: tokio::sync::Notify::new(),
        head_gave_up: AtomicBool::new(false),
        head_timeout: config.head_timeout,
        head_state: head_state.map(Mutex::new),
        timeout: config.node_timeout,
        placement_timeout: config.placement_timeout,
        stopping: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        shutdown: tokio::sync::Notify::new(),
        scheduler,
        remote_actors: RemoteActors::default(),
        task_channels: Mutex::default(),
        hosted_groups: Mutex::default(),
        awaiting_args: Mutex::default(),
        held: Mutex::default(),
        lineage: Mutex::default(),
        ids,
        running_remote: Mutex::default(),
        generators,
        mailbox,
    });
    if let Some(expiry) = expiry_of(&identity.cert_der) {
        actix_rt::spawn(renew_certificate(node.clone(), expiry));
    }
    let handler_node = node.clone();
    node.endpoint.serve(Rc::new(move |peer, message, tx, rx| {
        Box::pin(handle(handler_node.clone(), peer, message, tx, rx))
    }));
    if let Some(state) = &node.head_state {
        {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            let now = state.now_ms();
            state.membership.register(info.clone(), now).map_err(err)?;
            let version = state.membership.version();
            let change = Change::Member {
                info: info.clone(),
                version,
            };
            state.db.commit(vec![change]).map_err(err)?;
            *node.view.write().unwrap_or_else(|e| e.into_inner()) = state.membership.view();
        }
        dir.write_private("head.addr", address.to_string().as_bytes())
            .map_err(err)?;
        actix_rt::spawn(watch_members(node.clone()));
    } else {
        match node.endpoint.request(head, &Message::Register(info)).await {
            Ok((Message::View(view), _)) => node.set_view(view),
            Ok((other, _)) => {
                return Err(format!("the head answered {} to Register", other.name()));
            }
            Err(e) => return Err(format!("registering with the head at {head}: {e}")),
        }
        actix_rt::spawn(heartbeat(node.clone()));
    }
    if config.agent {
        let settings = AgentSettings {
            totals,
            token: secrets.0,
            pin: secrets.1,
            dir: dir.path().to_path_buf(),
        };
        actix_rt::spawn(agent::run(node.clone(), settings, cache));
    }
    Ok(node)
}

/// This process's command line, as a job's entrypoint (at most 200 characters).
fn entrypoint() -> String {
    let line = std::env::args().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

/// Who a joining node says it is.
struct Asking {
    node_id: NodeId,
    role: Role,
    registry: u64,
}

/// Joins through a one-off link that pins the CA and presents no certificate; returns the
/// node's signed identity.
async fn join(
    head: SocketAddr,
    token: &str,
    pin: &str,
    key: &NodeKey,
    asking: Asking,
    timeout: Duration,
) -> Result<NodeIdentity, String> {
    let node_id = asking.node_id;
    let bind: SocketAddr = if head.is_ipv6() {
        "[::]:0".parse().expect("an address")
    } else {
        "0.0.0.0:0".parse().expect("an address")
    };
    let endpoint =
        quinn::Endpoint::client(bind).map_err(|e| format!("cannot open a socket: {e}"))?;
    let client = tls::join_config(pin, timeout).map_err(err)?;
    let connecting = endpoint
        .connect_with(client, head, NODE_NAME)
        .map_err(|e| format!("joining {head}: {e}"))?;
    let connection = connecting.await.map_err(|e| match e {
        quinn::ConnectionError::TimedOut => format!(
            "no answer from {head}: is a head running there, and is the port right (MOBULA_ADDRESS)?"
        ),
        other => format!(
            "joining {head}: {other} (is the CA fingerprint right? MOBULA_CA_FINGERPRINT is {pin})"
        ),
    })?;
    let request = Message::Join {
        node_id,
        token: token.to_string(),
        csr_der: key.csr_der().map_err(err)?,
        registry: asking.registry,
        role: asking.role,
    };
    let answer = link::request(&connection, &request).await;
    connection.close(quinn::VarInt::from_u32(0), b"joined");
    endpoint.wait_idle().await;
    match answer {
        Ok((
            Message::JoinAccepted {
                node_id: id,
                cert_der,
                ca_der,
            },
            _,
        )) if id == node_id && fingerprint(&ca_der) == pin => Ok(NodeIdentity {
            node_id,
            cert_der,
            key_der: key.pkcs8_der(),
            ca_der,
        }),
        Ok((other, _)) => Err(format!("the head answered {} to Join", other.name())),
        Err(LinkError::Refused(reason)) => Err(format!(
            "the head at {head} refused to let this node join: {reason}"
        )),
        Err(e) => Err(format!("joining {head}: {e}")),
    }
}

impl ClusterNode {
    pub(super) fn set_view(&self, view: ClusterView) {
        let mut mine = self.view.write().unwrap_or_else(|e| e.into_inner());
        if view.version >= mine.version {
            let changed = view.version > mine.version;
            *mine = view;
            self.placed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            if changed {
                // A process whose agent is gone ends too: nothing would stop it or share the
                // machine with it any more.
                if let Some(agent) = self.info().started_by
                    && mine
                        .nodes
                        .iter()
                        .any(|n| n.info.node_id == agent && !n.alive)
                    && !self.stopping.load(Ordering::Acquire)
                {
                    tracing::warn!(%agent, "the node agent that started this process is gone: stopping");
                    self.shutdown.notify_one();
                }
                let dead: Vec<(NodeId, SocketAddr)> = mine
                    .nodes
                    .iter()
                    .filter(|n| !n.alive)
                    .map(|n| (n.info.node_id, n.info.address))
                    .collect();
                drop(mine);
                self.forget_dead(&dead);
            }
        }
    }

    /// Lets go of everything kept for or about nodes the head declared dead: values held for
    /// them, bundles they reserved here, the task channel and the link to them, and the
    /// suspicion. What a dead node asked for ends with it.
    fn forget_dead(&self, dead: &[(NodeId, SocketAddr)]) {
        if dead.is_empty() {
            return;
        }
        let is_dead = |id: &NodeId| dead.iter().any(|(d, _)| d == id);
        for (node, _) in dead {
            self.mailbox.node_gone(*node);
        }
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(owner, _), _| !is_dead(owner));
        let orphaned: Vec<(String, Vec<LocalBundle>)> = {
            let mut hosted = self.hosted_groups.lock().unwrap_or_else(|e| e.into_inner());
            let groups: Vec<String> = hosted
                .iter()
                .filter(|(_, (owner, _))| is_dead(owner))
                .map(|(group, _)| group.clone())
                .collect();
            groups
                .into_iter()
                .filter_map(|g| hosted.remove(&g).map(|(_, bundles)| (g, bundles)))
                .collect()
        };
        for (group, bundles) in orphaned {
            tracing::info!(%group, "released a placement group's bundles: its owner died");
            crate::runtime::scheduler::bundles::release_here(&self.scheduler, &group, &bundles);
        }
        self.task_channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|node, _| !is_dead(node));
        self.suspects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|node, _| !is_dead(node));
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|node, _| !is_dead(node));
        for (_, address) in dead {
            self.endpoint.forget(*address);
        }
    }

    /// How many entries each of this node's tables that grow with use holds now, by name:
    /// for the metrics, and for tests that check they come back down.
    pub fn table_sizes(&self) -> Vec<(&'static str, usize)> {
        let mut sizes = vec![
            ("generators", self.generators.len()),
            (
                "held_values",
                self.held.lock().unwrap_or_else(|e| e.into_inner()).len(),
            ),
            (
                "lineage",
                self.lineage.lock().unwrap_or_else(|e| e.into_inner()).len(),
            ),
            (
                "hosted_groups",
                self.hosted_groups
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .len(),
            ),
            (
                "task_channels",
                self.task_channels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .len(),
            ),
            (
                "suspects",
                self.suspects
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .len(),
            ),
            ("remote_actors", self.remote_actors.len()),
            ("running_remote", self.running_remote(|r| r.len())),
            ("links", self.endpoint.link_count()),
            (
                "awaiting_args",
                self.awaiting_args
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .len(),
            ),
        ];
        if let Some(state) = &self.head_state {
            let state = state.lock().unwrap_or_else(|e| e.into_inner());
            let (alive, dead) = state.membership.counts();
            sizes.push(("members", alive));
            sizes.push(("dead_members", dead));
            sizes.push(("actor_names", state.names.len()));
            sizes.push(("actor_locations", state.locations.len()));
            sizes.push(("jobs", state.jobs.len()));
            sizes.push(("kv_keys", state.kv.len()));
            sizes.push(("placement_groups", state.groups.len()));
            sizes.push(("job_processes", state.job_processes.len()));
            sizes.push(("head_db_waiting", state.db.waiting()));
        }
        sizes
    }

    /// Where this node is reached, as the membership lists it (the address it listens on,
    /// with the one others see it from when it listens on all interfaces), and whether it is
    /// the head.
    pub fn whereabouts(&self) -> (std::net::SocketAddr, bool) {
        let listed = self
            .view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .nodes
            .iter()
            .find(|n| n.info.node_id == self.node_id)
            .map(|n| n.info.address);
        let address = listed.unwrap_or_else(|| self.info().address);
        (address, self.head_state.is_some())
    }

    /// The tasks other nodes sent that run here now.
    pub(super) fn running_remote<R>(
        &self,
        f: impl FnOnce(&mut std::collections::HashSet<TaskId>) -> R,
    ) -> R {
        f(&mut self
            .running_remote
            .lock()
            .unwrap_or_else(|e| e.into_inner()))
    }

    /// How this node announced itself.
    pub(super) fn info(&self) -> NodeInfo {
        self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What this node's view says of `node`: a live member, dead, or not known.
    pub(super) fn standing_of(&self, node: NodeId) -> Standing {
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        match view.nodes.iter().find(|n| n.info.node_id == node) {
            Some(n) if n.alive => Standing::Member,
            Some(_) => Standing::Dead,
            None => Standing::Unknown,
        }
    }

    /// The membership as this node last heard it.
    pub fn view(&self) -> ClusterView {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Why the head is unreachable, if it is.
    pub fn head_lost(&self) -> Option<String> {
        self.head_lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where `node` listens, if it is a live member in this node's view.
    pub(super) fn address_of(&self, node: NodeId) -> Option<SocketAddr> {
        self.view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .nodes
            .iter()
            .find(|n| n.info.node_id == node && n.alive)
            .map(|n| n.info.address)
    }

    /// Runs a task on `node` over this node's task channel to it, and returns how it
    /// ended. `frame` is the encoded [`Message::RunTask`], `payloads` its streamed arguments.
    pub async fn run_on(
        &self,
        node: NodeId,
        task: TaskId,
        frame: Arc<[u8]>,
        payloads: Arc<Vec<Vec<u8>>>,
    ) -> Result<TaskOutcome, LinkError> {
        let channel = self.task_channel(node).await?;
        *self
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(node)
            .or_default() += 1;
        let outcome = channel.run(task, frame, payloads).await;
        if let Some(n) = self
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&node)
        {
            *n = n.saturating_sub(1);
        }
        outcome
    }

    /// This node's task channel to `node`, opened when there is none or the last one broke.
    async fn task_channel(&self, node: NodeId) -> Result<Arc<TaskChannel>, LinkError> {
        if let Some(channel) = self.channels(|c| c.get(&node).cloned())
            && channel.is_alive()
        {
            return Ok(channel);
        }
        let address = self.find(node).await?;
        let connection = self.endpoint.link(address).await?;
        // Another task may have opened one meanwhile: use it.
        if let Some(channel) = self.channels(|c| c.get(&node).cloned())
            && channel.is_alive()
        {
            return Ok(channel);
        }
        let channel = Arc::new(TaskChannel::open(&connection).await?);
        self.channels(|c| c.insert(node, channel.clone()));
        Ok(channel)
    }

    fn channels<R>(&self, f: impl FnOnce(&mut HashMap<NodeId, Arc<TaskChannel>>) -> R) -> R {
        f(&mut self.task_channels.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Where `node` listens; a node this one has not heard of yet (it joined since the last
    /// view) is looked up in the head's current view.
    pub(super) async fn find(&self, node: NodeId) -> Result<SocketAddr, LinkError> {
        if let Some(address) = self.address_of(node) {
            return Ok(address);
        }
        self.refresh_view().await;
        self.address_of(node)
            .ok_or_else(|| LinkError::NoSuchNode(node.to_string()))
    }

    /// Asks the head for its view now, rather than waiting for the next heartbeat.
    pub(super) async fn refresh_view(&self) {
        if self.head_state.is_some() {
            return; // the head's view is the membership itself
        }
        if let Ok((Message::View(view), _)) =
            self.endpoint.request(self.head, &Message::Status).await
        {
            self.set_view(view);
        }
    }

    /// Opens a stream to `node` for a long exchange (an actor channel).
    pub async fn open_stream(
        &self,
        node: NodeId,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), LinkError> {
        let address = self.find(node).await?;
        let connection = self.endpoint.link(address).await?;
        connection
            .open_bi()
            .await
            .map_err(|e| LinkError::Lost(e.to_string()))
    }

    /// This process's channel to actor `id`, if it has one.
    pub fn remote_actor(&self, id: ActorId) -> Option<Arc<RemoteActor>> {
        self.remote_actors.get(id)
    }

    pub(super) fn keep_remote_actor(&self, id: ActorId, remote: Weak<RemoteActor>) {
        self.remote_actors.keep(id, remote);
    }

    pub(super) fn forget_remote_actor(&self, id: ActorId) {
        self.remote_actors.forget(id);
    }

    /// The node that minted ids with this prefix (and owns their objects), if known.
    pub fn owner_of(&self, prefix: u64) -> Option<NodeId> {
        if self.node_id.prefix() == prefix {
            return None;
        }
        self.view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .nodes
            .iter()
            .map(|n| n.info.node_id)
            .find(|n| n.prefix() == prefix)
    }

    /// Asks the head and waits for the answer, from a thread that may block (not the node's
    /// event loop, which must run the request). As [`ClusterNode::ask_head_patiently`].
    pub fn ask_head_blocking(
        self: &Arc<Self>,
        arbiter: &actix_rt::ArbiterHandle,
        message: Message,
    ) -> Result<Message, String> {
        if crate::runtime::context::on_runtime_thread() {
            return Err("cannot wait for the head on the node's own thread".into());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        self.ask_head_then(arbiter, message, move |answer| {
            let _ = tx.send(answer);
        });
        rx.recv().map_err(|_| "the node stopped".to_string())?
    }

    /// Asks the head on the node's event loop and calls `done` with the answer there (it
    /// must not block). As [`ClusterNode::ask_head_patiently`].
    pub fn ask_head_then(
        self: &Arc<Self>,
        arbiter: &actix_rt::ArbiterHandle,
        message: Message,
        done: impl FnOnce(Result<Message, String>) + Send + 'static,
    ) {
        let node = self.clone();
        arbiter.spawn_fn(move || {
            actix_rt::spawn(async move { done(node.ask_head_patiently(message).await) });
        });
    }

    /// Asks the head and waits for its answer. While the head is away, waits for it to come
    /// back (up to `head_timeout`), failing naming it if this node gives up on it first. A
    /// link to a head that restarted since breaks at its first use, and a head that dies
    /// mid-request breaks it too: the request goes again on a new link, with backoff, until
    /// the head answers or `head_timeout` passes (every request to the head may be
    /// repeated: the head answers a repeat as it did the first).
    pub async fn ask_head_patiently(self: Arc<Self>, message: Message) -> Result<Message, String> {
        let deadline = Instant::now() + self.head_timeout;
        let mut backoff = Duration::from_millis(20);
        let wait = self.timeout * 2;
        loop {
            self.head_answering().await?;
            match tokio::time::timeout(wait, self.endpoint.request(self.head, &message)).await {
                Ok(Ok((answer, _))) => return Ok(answer),
                Ok(Err(LinkError::Refused(why))) => return Err(why),
                Ok(Err(e))
                    if Instant::now() >= deadline || self.head_gave_up.load(Ordering::Acquire) =>
                {
                    return Err(format!("the head at {}: {e}", self.head));
                }
                Ok(Err(e)) => {
                    tracing::debug!("asking the head again after: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(_) => {
                    return Err(format!(
                        "the head at {} did not answer within {wait:?}",
                        self.head
                    ));
                }
            }
        }
    }

    /// Returns at once while the head answers; while it is away, waits until it answers
    /// again (up to `head_timeout`), and fails naming it if this node gives up on it first.
    async fn head_answering(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.head_timeout;
        loop {
            // Listening before looking, so that a return in between is not missed.
            let back = self.head_back.notified();
            tokio::pin!(back);
            back.as_mut().enable();
            let Some(why) = self.head_lost() else {
                return Ok(());
            };
            if self.head_gave_up.load(Ordering::Acquire) {
                return Err(why);
            }
            if tokio::time::timeout_at(deadline, back).await.is_err() {
                return Err(why);
            }
        }
    }

    /// Whether this node gave up waiting for its head (why, if so).
    pub fn head_given_up(&self) -> Option<String> {
        if self.head_gave_up.load(Ordering::Acquire) {
            self.head_lost()
        } else {
            None
        }
    }

    /// Asks the head (on the node's event loop).
    pub async fn ask_head(&self, message: &Message) -> Result<Message, LinkError> {
        self.endpoint
            .request(self.head, message)
            .await
            .map(|(answer, _)| answer)
    }

    /// Tells the head that a named actor ended (without waiting).
    pub fn unname_actor(
        self: &Arc<Self>,
        arbiter: &actix_rt::ArbiterHandle,
        key: (String, String),
        actor: ActorId,
    ) {
        let node = self.clone();
        arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                let (namespace, name) = key;
                let message = Message::UnnameActor {
                    namespace,
                    name,
                    actor,
                };
                let _ = node.endpoint.request(node.head, &message).await;
            });
        });
    }

    /// This node's share of its machine changes (its agent started or ended another build's
    /// process there): its scheduler takes the new CPUs, and the head the new totals.
    pub(super) async fn set_resources(&self, resources: Vec<(String, f64)>) -> Message {
        let Some(cpus) = resources
            .iter()
            .find(|(name, _)| name == "CPU")
            .map(|(_, amount)| *amount)
        else {
            return Message::Refused {
                reason: "SetResources names no CPU amount".into(),
            };
        };
        let units = match crate::base::scheduling::resources::to_units("CPU", cpus) {
            Ok(units) if units >= 0 => units,
            _ => {
                return Message::Refused {
                    reason: format!("{cpus} is not an amount of CPUs"),
                };
            }
        };
        self.scheduler.set_cpu_total(units);
        let info = {
            let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner());
            crate::base::scheduling::resources::set_amount(&mut info.resources, "CPU".into(), cpus);
            info.runs_tasks = cpus > 0.0;
            info.clone()
        };
        tracing::info!(cpus, "this node's share of its machine changed");
        match self
            .endpoint
            .request(self.head, &Message::Register(info))
            .await
        {
            Ok((Message::View(view), _)) => self.set_view(view),
            Ok(_) | Err(_) => tracing::warn!("could not tell the head this node's new resources"),
        }
        Message::Ack
    }

    /// Leaves the cluster: the head tells every node to stop; a node tells the head it
    /// leaves (so that it is listed as gone, not dead) and closes its links.
    pub async fn leave(self: Arc<Self>) {
        self.draining.store(true, Ordering::Release);
        let was_stopping = self.stopping.swap(true, Ordering::AcqRel);
        if self.head_state.is_none() && !was_stopping && self.head_lost().is_none() {
            let told = self.endpoint.request(self.head, &Message::Leave);
            let _ = tokio::time::timeout(Duration::from_millis(500), told).await;
        }
        if let Some(state) = &self.head_state {
            // A stop on purpose: nothing carries over to the next head on this directory.
            let cleared = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .db
                .stop_cleanly();
            if let Err(e) = cleared {
                tracing::error!("{e}");
            }
            super::jobs::stop_all(&self);
            let view = self.view();
            for n in view
                .nodes
                .iter()
                .filter(|n| n.alive && n.info.node_id != self.node_id)
            {
                let message = Message::Shutdown {
                    reason: "the head is stopping".into(),
                };
                let request = self.endpoint.request(n.info.address, &message);
                let _ = tokio::time::timeout(Duration::from_millis(500), request).await;
            }
        }
        self.endpoint.close();
    }
}

/// A node: heartbeats to the head, takes newer views, notices when the head is away, keeps
/// trying while it is (a restarted head answers on the same address), and gives up after
/// `head_timeout`.
async fn heartbeat(node: Arc<ClusterNode>) {
    let period = (node.timeout / 4).max(Duration::from_millis(10));
    // After a heartbeat that got no answer, the next goes sooner, each attempt bounded
    // more tightly: a restarted head is heard within about this long.
    let retry = period.min(Duration::from_millis(100));
    let mut last_ok = Instant::now();
    let mut wait = period;
    while !node.stopping.load(Ordering::Acquire) {
        tokio::time::sleep(wait).await;
        let bound = if wait == period {
            node.timeout
        } else {
            node.timeout.min(retry * 4)
        };
        let (queued, running) = node.scheduler.counts();
        let message = Message::Heartbeat {
            node_id: node.node_id,
            available: node.scheduler.available(),
            load: (queued + running) as u32,
            view_version: node.view().version,
        };
        let answer = tokio::time::timeout(bound, node.endpoint.request(node.head, &message));
        let answered = match answer.await {
            Ok(Ok((Message::View(view), _))) => {
                node.set_view(view);
                true
            }
            Ok(Ok(_)) => true,
            Ok(Err(LinkError::Refused(reason))) => {
                let why = format!("the head at {} refused this node: {reason}", node.head);
                tracing::error!("{why}");
                node.give_up_on_head(why);
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!("heartbeat failed: {e}");
                false
            }
            Err(_) => {
                tracing::debug!("heartbeat timed out");
                false
            }
        };
        wait = if answered { period } else { retry };
        if answered {
            last_ok = Instant::now();
            let was_away = node
                .head_lost
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(why) = was_away {
                tracing::warn!(head = %node.head, "the head answers again (it was away: {why})");
                node.head_back.notify_waiters();
            }
            continue;
        }
        let silent = last_ok.elapsed();
        if silent > node.head_timeout {
            let why = format!(
                "the cluster's head at {} did not come back (no answer for {:?}, the head_timeout)",
                node.head, node.head_timeout
            );
            tracing::error!("{why}");
            node.give_up_on_head(why);
            node.shutdown.notify_one();
            return;
        }
        if silent > node.timeout {
            let mut lost = node.head_lost.lock().unwrap_or_else(|e| e.into_inner());
            if lost.is_none() {
                let why = format!(
                    "the cluster's head at {} is not answering (for {silent:?}); waiting up to {:?} for it to come back",
                    node.head, node.head_timeout
                );
                tracing::warn!("{why}");
                *lost = Some(why);
            }
        }
    }
}

impl ClusterNode {
    /// This node no longer waits for its head: what needed it fails with `why`.
    fn give_up_on_head(&self, why: String) {
        *self.head_lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        self.head_gave_up.store(true, Ordering::Release);
        self.head_back.notify_waiters();
    }
}

/// Keeps this node's certificate valid while it is a member: at half its remaining life, a new
/// key and a certificate for it (the head signs its own; a node asks the head, which signs
/// only for a live member). New links present the new one; links open already go on.
async fn renew_certificate(node: Arc<ClusterNode>, mut expiry: SystemTime) {
    let mut renew_at = halfway(expiry);
    while !node.stopping.load(Ordering::Acquire) {
        let wait = renew_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if !wait.is_zero() {
            tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
            continue;
        }
        match node.fresh_identity().await {
            Ok(identity) => match (
                node.endpoint.renew(&identity),
                expiry_of(&identity.cert_der),
            ) {
                (Ok(()), Some(new_expiry)) => {
                    tracing::debug!("renewed this node's certificate");
                    expiry = new_expiry;
                    renew_at = halfway(expiry);
                }
                (Err(e), _) => tracing::warn!("could not use the renewed certificate: {e}"),
                (_, None) => tracing::warn!("the renewed certificate has no expiry"),
            },
            Err(RenewError::Refused(why)) => {
                // Not a member any more: the heartbeat reports it; nothing to renew.
                tracing::warn!("the head refused to renew this node's certificate: {why}");
                return;
            }
            Err(RenewError::Failed(why)) => {
                tracing::warn!("renewing this node's certificate failed, trying again: {why}");
                renew_at = halfway(expiry).max(SystemTime::now() + Duration::from_millis(500));
            }
        }
    }
}

/// Halfway from now to `expiry`.
fn halfway(expiry: SystemTime) -> SystemTime {
    let now = SystemTime::now();
    now + expiry.duration_since(now).unwrap_or_default() / 2
}

enum RenewError {
    Refused(String),
    Failed(String),
}

impl ClusterNode {
    /// A new key and a certificate for it, as this node's grant stands.
    async fn fresh_identity(&self) -> Result<NodeIdentity, RenewError> {
        let failed = |e: &dyn std::fmt::Display| RenewError::Failed(e.to_string());
        if let Some(state) = &self.head_state {
            let state = state.lock().unwrap_or_else(|e| e.into_inner());
            let grant = Grant::new(
                self.node_id,
                Role::Head,
                SystemTime::now(),
                state.certificate_lifetime,
            );
            return state.ca.issue(&grant).map_err(|e| failed(&e));
        }
        let key = NodeKey::generate().map_err(|e| failed(&e))?;
        let csr_der = key.csr_der().map_err(|e| failed(&e))?;
        let answer = self
            .endpoint
            .request(self.head, &Message::Renew { csr_der })
            .await;
        match answer {
            Ok((
                Message::JoinAccepted {
                    node_id,
                    cert_der,
                    ca_der,
                },
                _,
            )) if node_id == self.node_id => Ok(NodeIdentity {
                node_id,
                cert_der,
                key_der: key.pkcs8_der(),
                ca_der,
            }),
            Ok((other, _)) => Err(RenewError::Failed(format!(
                "the head answered {} to Renew",
                other.name()
            ))),
            Err(LinkError::Refused(why)) => Err(RenewError::Refused(why)),
            Err(e) => Err(failed(&e)),
        }
    }
}
