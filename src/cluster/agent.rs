//! A node agent: a node that holds no user code (`mobula start --address ...`, or the CLI's
//! head given CPUs) and runs, on its machine, one process of every build a live driver
//! offers. Each process joins the cluster as a node of its own, so tasks go from the driver
//! straight to it; the agent only fetches the build (once, by hash), starts and stops the
//! processes, and shares the machine's CPUs between them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::builds::BuildCache;
use super::node::ClusterNode;
use crate::base::build::{self, Build, BuildId};
use crate::base::id::NodeId;
use crate::base::node_config::{
    ENV_ADDRESS, ENV_BUILD_ID, ENV_CA_FINGERPRINT, ENV_JOIN_TOKEN, ENV_NUM_CPUS, ENV_STARTED_BY,
    ENV_WORKER,
};
use crate::wire::Message;

/// How many times a build's process may exit on its own within [`RESTART_WINDOW`] before
/// the agent stops starting it.
const MAX_RESTARTS: u32 = 3;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How long a process asked to stop has before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// What an agent needs to start processes that join its cluster.
pub(crate) struct AgentSettings {
    /// The machine's resources it shares between builds (CPUs, by name).
    pub totals: Vec<(String, f64)>,
    /// The join token and the CA's fingerprint, handed to its processes.
    pub token: String,
    pub pin: String,
    /// Where it keeps builds and the processes' output.
    pub dir: PathBuf,
}

struct Process {
    build: Build,
    child: Child,
    /// The CPUs it was last told it has (at its start, or by [`Message::SetResources`]).
    cpus: f64,
    /// Whether the last share was delivered (its node answered).
    told: bool,
    /// Whether it holds the machine's GPUs (one process at a time does).
    gpus: bool,
}

/// Runs the agent of `node` until the node stops: every quarter node timeout, it compares
/// the builds live drivers offer with the processes it runs and starts, stops or reshares.
pub(crate) async fn run(node: Arc<ClusterNode>, settings: AgentSettings, cache: Arc<BuildCache>) {
    let period = (node.timeout / 4).max(Duration::from_millis(20));
    let target = build::this_target();
    let mut processes: HashMap<BuildId, Process> = HashMap::new();
    let mut given_up: HashSet<BuildId> = HashSet::new();
    let mut refused: HashSet<BuildId> = HashSet::new();
    // When each build's process was started lately, to stop restarting one that keeps exiting.
    let mut starts: HashMap<BuildId, Vec<Instant>> = HashMap::new();
    // What ran when the cache was last trimmed.
    let mut last_running: HashSet<BuildId> = HashSet::new();
    let mut ticks = tokio::time::interval(period);
    while !node.stopping.load(Ordering::Acquire) {
        ticks.tick().await;
        let view = node.view();
        let (wanted, wrong) = build::wanted(&view.nodes, &target);
        for (why, driver) in wrong {
            if refused.insert(why.build) {
                tracing::warn!(%driver, "not starting a process: {why}");
            }
        }
        // Processes that ended on their own (started again below while their build is wanted).
        processes.retain(|id, p| match p.child.try_wait() {
            Ok(Some(status)) => {
                tracing::warn!(build = %id, "the process of build {id} exited ({status})");
                false
            }
            _ => true,
        });
        // Builds no live driver offers any more.
        let wanted_ids: Vec<BuildId> = wanted.iter().map(|w| w.build.id).collect();
        let unwanted: Vec<BuildId> = processes
            .keys()
            .filter(|id| !wanted_ids.contains(id))
            .copied()
            .collect();
        for id in unwanted {
            if let Some(p) = processes.remove(&id) {
                stop(&node, &view, p).await;
            }
        }
        given_up.retain(|id| wanted_ids.contains(id));
        starts.retain(|id, _| wanted_ids.contains(id));
        // The builds to run now, in a fixed order for their shares.
        let mut running: Vec<BuildId> = wanted
            .iter()
            .map(|w| w.build.id)
            .filter(|id| !given_up.contains(id))
            .collect();
        running.sort_unstable();
        let k = running.len();
        let share_of = |id: &BuildId| {
            let index = running.iter().position(|r| r == id).unwrap_or(0);
            cpus_of(&build::share(&settings.totals, k, index))
        };
        // Shrink or grow the ones that run before starting new ones, so that the machine's
        // CPUs are never offered twice.
        for (id, p) in processes.iter_mut() {
            let cpus = share_of(id);
            if (cpus - p.cpus).abs() > 1e-9 || !p.told {
                p.told = tell(&node, &view, *id, cpus).await;
                if p.told {
                    p.cpus = cpus;
                }
            }
        }
        // A process that has not taken its smaller share yet still holds its old one: start
        // no other until it has.
        let shared = processes.values().all(|p| p.told);
        for w in &wanted {
            let id = w.build.id;
            if processes.contains_key(&id) || given_up.contains(&id) || !shared {
                continue;
            }
            let addresses: Vec<(NodeId, SocketAddr)> = w
                .holders
                .iter()
                .filter_map(|h| {
                    view.nodes
                        .iter()
                        .find(|n| n.info.node_id == *h && n.alive)
                        .map(|n| (*h, n.info.address))
                })
                .collect();
            let path = match cache.get(&node.endpoint, &addresses, &w.build).await {
                Ok(path) => path,
                Err(e) => {
                    tracing::warn!("{e}");
                    continue;
                }
            };
            let started = starts.entry(id).or_default();
            started.retain(|t| t.elapsed() < RESTART_WINDOW);
            if started.len() as u32 > MAX_RESTARTS {
                tracing::error!(build = %id, "the process of build {id} keeps exiting: not starting it again while its driver lives");
                given_up.insert(id);
                continue;
            }
            let cpus = share_of(&id);
            // The GPUs go whole to one process: the first started while none holds them.
            let gpus = !processes.values().any(|p| p.gpus);
            match spawn(&node, &settings, &path, &w.build, cpus, gpus) {
                Ok(child) => {
                    started.push(Instant::now());
                    tracing::info!(build = %id, pid = child.id(), cpus, "started a process of build {id}");
                    processes.insert(
                        id,
                        Process {
                            build: w.build.clone(),
                            child,
                            cpus,
                            told: true,
                            gpus,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(build = %id, "cannot start a process of build {id}: {e}");
                    given_up.insert(id);
                }
            }
        }
        // The cache changes only when a build is fetched; what runs, when a process stops.
        let running_now: HashSet<BuildId> = processes.keys().copied().collect();
        if running_now != last_running {
            let in_use: Vec<BuildId> = running_now.iter().copied().collect();
            cache.evict(&in_use);
            last_running = running_now;
        }
    }
    let view = node.view();
    for (_, p) in processes.drain() {
        stop(&node, &view, p).await;
    }
}

/// The CPUs in a list of resources.
fn cpus_of(resources: &[(String, f64)]) -> f64 {
    resources
        .iter()
        .find(|(name, _)| name == "CPU")
        .map_or(0.0, |(_, amount)| *amount)
}

/// The node of build `id` this agent started, as the view shows it.
fn node_of_process(
    node: &ClusterNode,
    view: &crate::wire::ClusterView,
    id: BuildId,
) -> Option<SocketAddr> {
    view.nodes
        .iter()
        .find(|n| {
            n.alive
                && n.info.started_by == Some(node.node_id)
                && n.info.build.as_ref().is_some_and(|b| b.id == id)
        })
        .map(|n| n.info.address)
}

/// Tells the process of build `id` its share of the machine; whether it answered.
async fn tell(node: &ClusterNode, view: &crate::wire::ClusterView, id: BuildId, cpus: f64) -> bool {
    let Some(address) = node_of_process(node, view, id) else {
        return false; // not registered yet: told at its next tick
    };
    let message = Message::SetResources(vec![("CPU".to_string(), cpus)]);
    let asked = node.endpoint.request(address, &message);
    match tokio::time::timeout(node.timeout, asked).await {
        Ok(Ok((Message::Ack, _))) => true,
        Ok(Ok((other, _))) => {
            tracing::warn!(build = %id, "the process answered {} to SetResources", other.name());
            false
        }
        Ok(Err(e)) => {
            tracing::debug!(build = %id, "could not reach the process: {e}");
            false
        }
        Err(_) => false,
    }
}

/// Asks a process to leave the cluster, and kills it if it has not within the grace time.
async fn stop(node: &ClusterNode, view: &crate::wire::ClusterView, mut p: Process) {
    let id = p.build.id;
    if let Some(address) = node_of_process(node, view, id) {
        let message = Message::Shutdown {
            reason: "its build's last driver left".into(),
        };
        let _ = tokio::time::timeout(STOP_GRACE, node.endpoint.request(address, &message)).await;
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = p.child.try_wait() {
            tracing::info!(build = %id, "the process of build {id} stopped");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = p.child.kill();
    let _ = p.child.wait();
    tracing::info!(build = %id, "killed the process of build {id}: it did not stop in time");
}

/// Starts a process of a build: a worker node of it, joining this agent's cluster with
/// `cpus` CPUs, and the machine's GPUs (`CUDA_VISIBLE_DEVICES` as the agent has it) if
/// `gpus`, else none. Its output goes to a file of the agent's directory.
fn spawn(
    node: &ClusterNode,
    settings: &AgentSettings,
    path: &std::path::Path,
    build: &Build,
    cpus: f64,
    gpus: bool,
) -> std::io::Result<Child> {
    let logs = settings.dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(format!("build-{}.log", build.id.short())))?;
    let mut command = Command::new(path);
    if !gpus {
        command.env("CUDA_VISIBLE_DEVICES", "");
    }
    command
        .env(ENV_WORKER, "1")
        .env(ENV_ADDRESS, node.head.to_string())
        .env(ENV_JOIN_TOKEN, &settings.token)
        .env(ENV_CA_FINGERPRINT, &settings.pin)
        .env(ENV_NUM_CPUS, cpus.to_string())
        .env(ENV_STARTED_BY, node.node_id.to_string())
        .env(ENV_BUILD_ID, format!("{}:{}", build.id.hex(), build.size))
        .env("MOBULA_DIR", settings.dir.join("worker"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}
