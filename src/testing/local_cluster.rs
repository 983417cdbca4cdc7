//! Several nodes of one cluster inside one process, for tests (Ray's
//! `ray.cluster_utils.Cluster`).
//!
//! Each node is a whole node: its own event loop, task workers, actor threads, object store
//! and QUIC endpoint on 127.0.0.1, joined to the head with the token and the pinned CA exactly
//! as a separate process would be. Nodes talk to each other only over QUIC. The threads of a
//! node see that node as their runtime, so what a task or an actor does (`get`, `put`, a
//! nested `remote`) happens on the node it runs on.
//!
//! The process's own runtime (what [`init`](crate::init) starts) is the driver: start it with
//! [`LocalCluster::driver_config`] to join the cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::config::Config;
use crate::base::error::InitError;
use crate::base::id::NodeId;
use crate::cluster;
use crate::cluster::admin::{JoinInfo, join_info};
use crate::runtime::global::{Pin, Runtime};

/// A cluster of nodes inside this process: a head and any number of workers, each of which
/// can be killed (it goes silent, as a crashed machine does) or removed (it says it leaves).
///
/// ```no_run
/// # fn main() -> Result<(), mobula::InitError> {
/// use mobula::Config;
/// use mobula::testing::LocalCluster;
///
/// let mut cluster = LocalCluster::start(Config::default().num_cpus(0))?;
/// let worker = cluster.add_node(Config::default().num_cpus(2))?;
/// let _driver = mobula::init(cluster.driver_config())?;
/// // ... tasks run on `worker` ...
/// cluster.kill_node(worker);
/// # Ok(())
/// # }
/// ```
pub struct LocalCluster {
    dir: PathBuf,
    join: JoinInfo,
    head: NodeId,
    /// How the head was configured, to start it again.
    head_config: Config,
    /// Running nodes, the head first.
    nodes: Vec<Arc<Runtime>>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("address", &self.join.address)
            .field("nodes", &self.node_ids())
            .finish()
    }
}

impl LocalCluster {
    /// Starts the head, with the resources `head` gives it, listening on 127.0.0.1 and keeping
    /// its credentials in a fresh directory removed when the cluster is dropped. `head` must
    /// not name a cluster itself (no [`Config::head`] or [`Config::address`]).
    pub fn start(head: Config) -> Result<LocalCluster, InitError> {
        if head.names_a_cluster() {
            return Err(InitError::InvalidConfig(
                "LocalCluster::start makes the head itself: do not set Config::head or Config::address".into(),
            ));
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mobula-local-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let rt = start_node(head.clone().head("127.0.0.1:0").cluster_dir(&dir))?;
        let join = match join_info(&dir) {
            Ok(join) => join,
            Err(e) => {
                rt.stop(true);
                return Err(InitError::Cluster(e.to_string()));
            }
        };
        Ok(LocalCluster {
            dir,
            join,
            head: rt.node_id,
            head_config: head,
            nodes: vec![rt],
        })
    }

    /// Starts a worker node with the resources `node` gives it and joins it to the cluster;
    /// returns once the head has it. What `node` does not set of the cluster's address, join
    /// token and CA fingerprint is this cluster's (so a test can try a wrong token), and it
    /// listens on loopback. A node refused at join is stopped and the error returned.
    pub fn add_node(&mut self, node: Config) -> Result<NodeId, InitError> {
        if node.is_head() {
            return Err(InitError::InvalidConfig(
                "LocalCluster::add_node starts a worker: do not set Config::head".into(),
            ));
        }
        let rt = start_node(
            node.joining_by_default(&self.join, &self.dir)
                .joining_as_worker(),
        )?;
        let id = rt.node_id;
        self.nodes.push(rt);
        Ok(id)
    }

    /// The configuration for this process's runtime to join the cluster as a driver without
    /// CPUs of its own (so that its tasks run on the cluster's nodes):
    /// `mobula::init(cluster.driver_config())`.
    pub fn driver_config(&self) -> Config {
        Config::default()
            .num_cpus(0)
            .joining_by_default(&self.join, &self.dir)
    }

    /// The cluster directory (the CA, the join token, the head's address): what the
    /// `mobula` CLI takes as `--dir`.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Where the head listens, its token and CA fingerprint.
    pub fn join_info(&self) -> &JoinInfo {
        &self.join
    }

    /// The head's id.
    pub fn head(&self) -> NodeId {
        self.head
    }

    /// The nodes running, the head first (the driver is not one of them).
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|rt| rt.node_id).collect()
    }

    /// Where node `id` serves `/metrics` (started with
    /// [`Config::metrics_address`](crate::Config::metrics_address)).
    pub fn metrics_address(&self, id: NodeId) -> Option<std::net::SocketAddr> {
        let rt = self.nodes.iter().find(|rt| rt.node_id == id)?;
        crate::http::metrics_address(rt)
    }

    /// Where node `id` serves the dashboard and the token it asks for (started with
    /// [`Config::dashboard_address`](crate::Config::dashboard_address)).
    pub fn dashboard(&self, id: NodeId) -> Option<(std::net::SocketAddr, String)> {
        let rt = self.nodes.iter().find(|rt| rt.node_id == id)?;
        crate::http::dashboard_address(rt)
    }

    /// The cluster as node `id` last heard it (its view); empty if no such node runs here.
    pub fn view_of(&self, id: NodeId) -> Vec<crate::wire::NodeState> {
        self.nodes
            .iter()
            .find(|rt| rt.node_id == id)
            .and_then(|rt| cluster::node_of(rt))
            .map(|c| c.view().nodes)
            .unwrap_or_default()
    }

    /// Node `id`'s cluster tables and their sizes (see
    /// [`node::table_sizes`](crate::node::table_sizes)).
    pub fn table_sizes(&self, id: NodeId) -> Vec<(&'static str, usize)> {
        self.nodes
            .iter()
            .find(|rt| rt.node_id == id)
            .and_then(|rt| cluster::node_of(rt))
            .map(|c| c.table_sizes())
            .unwrap_or_default()
    }

    /// Closes every QUIC link node `id` has open, as a network fault would, while the node
    /// runs on: its peers see their streams to it break, and links are opened again on the
    /// next request. Returns false if no such node runs here.
    pub fn break_links(&self, id: NodeId) -> bool {
        let Some(rt) = self.nodes.iter().find(|rt| rt.node_id == id) else {
            return false;
        };
        match cluster::node_of(rt) {
            Some(node) => {
                node.endpoint.break_links();
                true
            }
            None => false,
        }
    }

    /// Stops node `id` without a word to the others, as a crashed machine or `kill -9` would:
    /// its endpoint goes silent and the others declare it dead when its heartbeats stop.
    /// Returns false if no such node runs here.
    pub fn kill_node(&mut self, id: NodeId) -> bool {
        self.stop_node(id, false)
    }

    /// Starts the head again on the cluster directory and address it had, as `mobula start
    /// --head` run again on the same machine does after a crash (kill it first with
    /// [`kill_node`](Self::kill_node)): it reads its tables back from its database, and the
    /// nodes and drivers reconnect to it. Returns the new head's id.
    pub fn restart_head(&mut self) -> Result<NodeId, InitError> {
        if self.nodes.iter().any(|rt| rt.node_id == self.head) {
            return Err(InitError::InvalidConfig(
                "the head still runs: kill it first".into(),
            ));
        }
        let rt = start_node(
            self.head_config
                .clone()
                .head(self.join.address.to_string())
                .cluster_dir(&self.dir),
        )?;
        self.head = rt.node_id;
        self.nodes.insert(0, rt);
        Ok(self.head)
    }

    /// Stops node `id` after it tells the head that it leaves. Returns false if no such node
    /// runs here.
    pub fn remove_node(&mut self, id: NodeId) -> bool {
        self.stop_node(id, true)
    }

    fn stop_node(&mut self, id: NodeId, leave: bool) -> bool {
        let Some(i) = self.nodes.iter().position(|rt| rt.node_id == id) else {
            return false;
        };
        let rt = self.nodes.remove(i);
        rt.stop(leave);
        true
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Workers first, so that the head sees them leave rather than die.
        while let Some(rt) = self.nodes.pop() {
            rt.stop(true);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a node beside the process's runtime, its threads pinned to it, and joins it to the
/// cluster its configuration names.
fn start_node(config: Config) -> Result<Arc<Runtime>, InitError> {
    let node = config.resolve()?;
    let (settings, totals) = (node.cluster.clone(), node.totals.clone());
    let http_settings = node.http_settings();
    let pin = Pin::default();
    let rt = Arc::new(crate::runtime::start::start(node, Some(pin.clone()))?);
    pin.fill(&rt);
    if let Some(settings) = settings
        && let Err(e) = cluster::join(&rt, settings, totals)
    {
        rt.stop(false);
        return Err(InitError::Cluster(e));
    }
    if let Err(e) = crate::http::start(&rt, http_settings) {
        rt.stop(false);
        return Err(e);
    }
    Ok(rt)
}
