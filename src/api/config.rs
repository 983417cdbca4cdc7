//! `Config`: what [`init`](crate::init) starts.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::base::error::InitError;
use crate::base::node_config::{ClusterConfig, ClusterRole, NodeConfig};
use crate::base::role::Role;
use crate::base::scheduling::resources::{
    NodeResources, UNIT, check_custom_name, set_amount, to_units,
};

/// Settings of the node [`init`](crate::init) starts, built with chained setters:
///
/// ```
/// use mobula::Config;
/// let config = Config::default().num_cpus(4).resource("fpga", 2).object_store_memory(1 << 30);
/// ```
///
/// Anything not set takes the machine's value: CPUs from the available parallelism, GPUs from
/// `CUDA_VISIBLE_DEVICES` (none when unset), 30 % of the machine's memory for the object
/// store (as Ray), spilling under the system's temporary directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    num_cpus: Option<f64>,
    num_gpus: Option<f64>,
    resources: Vec<(String, f64)>,
    object_store_memory: Option<u64>,
    spill_dir: Option<PathBuf>,
    metrics_address: Option<String>,
    dashboard_address: Option<String>,
    dashboard_https: bool,
    quiet_logs: bool,
    cluster: ClusterSettings,
}

/// The cluster part of a [`Config`].
#[derive(Debug, Clone, Default, PartialEq)]
struct ClusterSettings {
    head: Option<String>,
    address: Option<String>,
    listen: Option<String>,
    token: Option<String>,
    ca_fingerprint: Option<String>,
    dir: Option<PathBuf>,
    node_timeout: Option<Duration>,
    certificate_lifetime: Option<Duration>,
    placement_timeout: Option<Duration>,
    head_timeout: Option<Duration>,
    build_cache_limit: Option<u64>,
    /// Joins as a worker node rather than a driver (the role its certificate carries).
    worker: bool,
    /// Runs as a node agent (the CLI's `mobula start`): no task here, processes of the
    /// drivers' builds instead.
    agent: bool,
}

fn socket_addr(what: &str, text: &str) -> Result<SocketAddr, InitError> {
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            InitError::InvalidConfig(format!("{what} `{text}` is not a host:port address"))
        })
}

impl Config {
    /// A configuration with every value taken from the machine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves the node's metrics at `http://ADDRESS/metrics` in Prometheus' text format
    /// (`127.0.0.1:0` picks a free port: [`node::metrics_address`](crate::node::metrics_address)
    /// says which). Off unless set; bind to a public address only on a trusted network.
    pub fn metrics_address(mut self, address: impl Into<String>) -> Self {
        self.metrics_address = Some(address.into());
        self
    }

    /// Serves the dashboard at `http://ADDRESS/` (Ray's is `127.0.0.1:8265`): nodes, actors,
    /// tasks, objects and placement groups of the whole cluster, updated live. It asks for a
    /// read-only token of its own, never the join token: in a cluster the one kept in the
    /// cluster directory (`dashboard-token`), outside one a token made at start;
    /// [`node::dashboard`](crate::node::dashboard) gives the address and the token. It
    /// serves no endpoint that runs code or changes anything. Beyond loopback, serve it over
    /// HTTPS ([`dashboard_https`](Self::dashboard_https)).
    pub fn dashboard_address(mut self, address: impl Into<String>) -> Self {
        self.dashboard_address = Some(address.into());
        self
    }

    /// Serves the dashboard over HTTPS, under a certificate the cluster CA signs (for
    /// `localhost` and the address it listens on; renewed before it expires), and marks its
    /// login cookie `Secure`. Needs the CA in the cluster directory: the head's machine.
    /// Browsers trust it once `ca.pem` from the cluster directory is imported.
    pub fn dashboard_https(mut self, on: bool) -> Self {
        self.dashboard_https = on;
        self
    }

    /// Whether this node's terminal shows what the tasks and actors it started print (with
    /// `mobula::println!`) or log (with `tracing`), wherever they run, each line prefixed with
    /// its function or class, id and node; Ray's `log_to_driver`. On by default. Off, the
    /// lines are still kept on their nodes for `mobula logs`.
    pub fn log_to_driver(mut self, on: bool) -> Self {
        self.quiet_logs = !on;
        self
    }

    /// CPUs the node offers to tasks. Tasks ask for 1 by default, so this many run at once.
    /// Default: the machine's; but a driver joining a cluster offers none unless this is set
    /// (as Ray's), so its work goes to the cluster's nodes.
    pub fn num_cpus(mut self, n: impl Into<f64>) -> Self {
        self.num_cpus = Some(n.into());
        self
    }

    /// GPUs the node offers (a whole number). Their ids are taken from
    /// `CUDA_VISIBLE_DEVICES` when it lists enough of them, else 0, 1, ...
    pub fn num_gpus(mut self, n: impl Into<f64>) -> Self {
        self.num_gpus = Some(n.into());
        self
    }

    /// An amount of a custom resource the node offers (`"fpga"`, `"ssd"`, ...). Tasks that ask
    /// for it run only while enough is free.
    pub fn resource(mut self, name: impl Into<String>, amount: impl Into<f64>) -> Self {
        set_amount(&mut self.resources, name.into(), amount.into());
        self
    }

    /// Bytes of objects kept in memory; beyond this the least recently used objects that no
    /// task is reading spill to disk.
    pub fn object_store_memory(mut self, bytes: u64) -> Self {
        self.object_store_memory = Some(bytes);
        self
    }

    /// Where spilled objects go (a per-node directory is made inside it and removed at
    /// shutdown).
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// Makes this process the head of a new cluster, listening on `listen` (`"0.0.0.0:6380"`;
    /// port 0 picks one). The first start makes the cluster's CA and join token in the
    /// cluster directory, and the address it listens on in `head.addr` there.
    pub fn head(mut self, listen: impl Into<String>) -> Self {
        self.cluster.head = Some(listen.into());
        self
    }

    /// Joins the cluster whose head listens at `host:port` (Ray's `ray.init(address=...)`).
    /// The join token and CA fingerprint come from [`join_token`](Self::join_token) and
    /// [`ca_fingerprint`](Self::ca_fingerprint), else from the cluster directory (on the head's
    /// machine).
    pub fn address(mut self, head: impl Into<String>) -> Self {
        self.cluster.address = Some(head.into());
        self
    }

    /// Where a joining node listens for its peers (default `0.0.0.0:0`: any port).
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.cluster.listen = Some(address.into());
        self
    }

    /// The cluster's join token, as `mobula start --head` printed it.
    pub fn join_token(mut self, token: impl Into<String>) -> Self {
        self.cluster.token = Some(token.into());
        self
    }

    /// The fingerprint of the cluster's CA (`sha256:...`), as `mobula start --head` printed
    /// it: the head must prove it holds that CA.
    pub fn ca_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.cluster.ca_fingerprint = Some(fingerprint.into());
        self
    }

    /// The cluster directory: the head keeps its CA and token there (default `$MOBULA_DIR`,
    /// else `~/.mobula/cluster`).
    pub fn cluster_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cluster.dir = Some(dir.into());
        self
    }

    /// How long a node may stay silent before the head declares it dead (default 2 s).
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.cluster.node_timeout = Some(timeout);
        self
    }

    /// On a head: how long the certificates it signs live (default 24 h, at least 2 s).
    /// Nodes renew theirs at half its life while they are members; a dead or removed node's
    /// certificate is refused at once, and expires by then.
    pub fn certificate_lifetime(mut self, lifetime: Duration) -> Self {
        self.cluster.certificate_lifetime = Some(lifetime);
        self
    }

    /// How long a task or actor that no live node of the cluster can take yet waits for one
    /// (nodes still joining, an agent still starting this build) before it fails with
    /// `Unschedulable`, saying what it waited for (default 60 s). It warns once as it starts
    /// waiting. Work that no node could ever take (it asks for more than any node has) fails
    /// at once.
    pub fn placement_timeout(mut self, timeout: Duration) -> Self {
        self.cluster.placement_timeout = Some(timeout);
        self
    }

    /// How long a node or driver whose head stops answering waits for it to come back
    /// (restarted on the same cluster directory) before it gives up: a worker node stops, a
    /// driver's work that needs the head fails (default 60 s, Ray's
    /// `gcs_rpc_server_reconnect_timeout_s`). Meanwhile work goes on among the nodes it
    /// knows, and what needs the head waits for it.
    pub fn head_timeout(mut self, timeout: Duration) -> Self {
        self.cluster.head_timeout = Some(timeout);
        self
    }

    /// On a node agent (`mobula start --address`): the most bytes of builds it keeps in its
    /// cache (the cluster directory's `builds/`) beyond those it runs, the least recently
    /// used evicted first (default 4 GiB).
    pub fn build_cache_limit(mut self, bytes: u64) -> Self {
        self.cluster.build_cache_limit = Some(bytes);
        self
    }

    /// Joins as a worker node (its certificate says so) rather than as a driver.
    pub(crate) fn joining_as_worker(mut self) -> Self {
        self.cluster.worker = true;
        self
    }

    /// Runs as a node agent: a worker node that holds no user code and starts processes of
    /// the drivers' builds on this machine, sharing its CPUs between them.
    pub(crate) fn joining_as_agent(mut self) -> Self {
        self.cluster.worker = true;
        self.cluster.agent = true;
        self
    }

    /// Whether the settings make this process a worker node or an agent.
    pub(crate) fn is_worker(&self) -> bool {
        self.cluster.worker
    }

    /// Whether the settings name a head or a cluster to join.
    pub(crate) fn names_a_cluster(&self) -> bool {
        self.cluster.head.is_some() || self.cluster.address.is_some()
    }

    /// Whether the settings make this node a head.
    pub(crate) fn is_head(&self) -> bool {
        self.cluster.head.is_some()
    }

    /// Joins the head at `join` (listening on loopback, keeping files in `dir`), wherever the
    /// settings do not say otherwise.
    pub(crate) fn joining_by_default(
        mut self,
        join: &crate::cluster::admin::JoinInfo,
        dir: &std::path::Path,
    ) -> Self {
        let c = &mut self.cluster;
        c.address.get_or_insert_with(|| join.address.to_string());
        c.token.get_or_insert_with(|| join.token.clone());
        c.ca_fingerprint
            .get_or_insert_with(|| join.ca_fingerprint.clone());
        c.listen.get_or_insert_with(|| "127.0.0.1:0".into());
        c.dir.get_or_insert_with(|| dir.into());
        self
    }

    fn resolve_cluster(&self) -> Result<Option<ClusterConfig>, InitError> {
        let c = &self.cluster;
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        // As Ray reads RAY_ADDRESS: a program run with MOBULA_ADDRESS joins that cluster.
        let address = match (&c.head, &c.address) {
            (None, None) => env(crate::node::ENV_ADDRESS),
            (_, address) => address.clone(),
        };
        let role = match (&c.head, &address) {
            (Some(_), Some(_)) => {
                return Err(InitError::InvalidConfig(
                    "a node is either the head (Config::head) or joins one (Config::address), not both"
                        .into(),
                ));
            }
            (Some(listen), None) => ClusterRole::Head {
                listen: socket_addr("head", listen)?,
            },
            (None, Some(head)) => ClusterRole::Join {
                head: socket_addr("address", head)?,
                listen: socket_addr("listen", c.listen.as_deref().unwrap_or("0.0.0.0:0"))?,
                token: c.token.clone().or_else(|| env(crate::node::ENV_JOIN_TOKEN)),
                ca_fingerprint: c
                    .ca_fingerprint
                    .clone()
                    .or_else(|| env(crate::node::ENV_CA_FINGERPRINT)),
            },
            (None, None) => return Ok(None),
        };
        let node_timeout = c.node_timeout.unwrap_or(Duration::from_secs(2));
        if node_timeout < Duration::from_millis(100) {
            return Err(InitError::InvalidConfig(format!(
                "node_timeout must be at least 100 ms, got {node_timeout:?}"
            )));
        }
        let certificate_lifetime = c
            .certificate_lifetime
            .unwrap_or(crate::transport::credentials::NODE_CERT_LIFETIME);
        if certificate_lifetime < Duration::from_secs(2) {
            return Err(InitError::InvalidConfig(format!(
                "certificate_lifetime must be at least 2 s, got {certificate_lifetime:?}"
            )));
        }
        Ok(Some(ClusterConfig {
            role,
            certificate_lifetime,
            member: if c.worker { Role::Node } else { Role::Driver },
            agent: c.agent,
            placement_timeout: c.placement_timeout.unwrap_or(Duration::from_secs(60)),
            head_timeout: c
                .head_timeout
                .unwrap_or(Duration::from_secs(60))
                .max(node_timeout),
            build_cache_limit: c.build_cache_limit.unwrap_or(4 << 30),
            job: match env(crate::node::ENV_JOB_ID) {
                None => None,
                Some(id) => Some(id.parse().map_err(|e: String| {
                    InitError::InvalidConfig(format!("{}: {e}", crate::node::ENV_JOB_ID))
                })?),
            },
            started_by: match env(crate::node::ENV_STARTED_BY) {
                None => None,
                Some(id) => Some(id.parse().map_err(|_| {
                    InitError::InvalidConfig(format!(
                        "{}={id:?} is not a node id",
                        crate::node::ENV_STARTED_BY
                    ))
                })?),
            },
            dir: c
                .dir
                .clone()
                .unwrap_or_else(crate::transport::credentials::ClusterDir::default_path),
            node_timeout,
        }))
    }

    /// Checks the settings and fills in the machine's values.
    pub(crate) fn resolve(&self) -> Result<NodeConfig, InitError> {
        let invalid = InitError::InvalidConfig;
        let cluster = self.resolve_cluster()?;
        // As Ray's: a driver joining a cluster offers no CPUs unless asked to.
        let driver = cluster.as_ref().is_some_and(|c| {
            matches!(c.role, ClusterRole::Join { .. }) && c.member == Role::Driver
        });
        let cpus = match self.num_cpus {
            Some(n) => to_units("num_cpus", n).map_err(invalid)?,
            None if driver => 0,
            None => {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1) as i64
                    * UNIT
            }
        };
        let visible = visible_gpus(std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref());
        let gpu_ids = match self.num_gpus {
            None => visible,
            Some(n) => {
                let units = to_units("num_gpus", n).map_err(invalid)?;
                if units % UNIT != 0 {
                    return Err(InitError::InvalidConfig(format!(
                        "num_gpus must be a whole number, got {n}"
                    )));
                }
                let n = (units / UNIT) as usize;
                if visible.len() >= n {
                    visible[..n].to_vec()
                } else {
                    (0..n as u32).collect()
                }
            }
        };
        for (name, _) in &self.resources {
            check_custom_name(name).map_err(invalid)?;
        }
        let resources = NodeResources::new(cpus, &gpu_ids, &self.resources).map_err(invalid)?;
        let mut totals = vec![
            ("CPU".to_string(), cpus as f64 / UNIT as f64),
            ("GPU".to_string(), gpu_ids.len() as f64),
        ];
        totals.extend(self.resources.iter().cloned());
        Ok(NodeConfig {
            cluster,
            totals,
            resources,
            cpu_units: cpus,
            object_store_memory: self
                .object_store_memory
                .unwrap_or_else(default_store_memory),
            spill_root: self
                .spill_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("mobula-spill")),
            metrics_address: self
                .metrics_address
                .as_deref()
                .map(|a| socket_addr("the metrics address", a))
                .transpose()?,
            dashboard_address: self
                .dashboard_address
                .as_deref()
                .map(|a| socket_addr("the dashboard address", a))
                .transpose()?,
            dashboard_https: self.dashboard_https,
            log_to_driver: !self.quiet_logs,
        })
    }
}

/// The GPU ids `CUDA_VISIBLE_DEVICES` lists: numbers as given, anything else (UUIDs) by
/// position. Unset or empty means none.
pub(crate) fn visible_gpus(var: Option<&str>) -> Vec<u32> {
    let Some(var) = var.map(str::trim).filter(|v| !v.is_empty()) else {
        return Vec::new();
    };
    let entries: Vec<&str> = var
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    // CUDA stops at the first invalid index; "-1" is the usual way to hide every GPU.
    let entries: Vec<&str> = entries
        .into_iter()
        .take_while(|e| !e.starts_with('-'))
        .collect();
    if entries.iter().all(|e| e.parse::<u32>().is_ok()) {
        entries
            .iter()
            .map(|e| e.parse().expect("checked above"))
            .collect()
    } else {
        (0..entries.len() as u32).collect()
    }
}

/// 30 % of the machine's memory, as Ray's default object store size.
fn default_store_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    total.map(|t| t / 10 * 3).unwrap_or(4 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_ids_come_from_cuda_visible_devices() {
        assert_eq!(visible_gpus(None), Vec::<u32>::new());
        assert_eq!(visible_gpus(Some("")), Vec::<u32>::new());
        assert_eq!(visible_gpus(Some("2,3")), vec![2, 3]);
        assert_eq!(visible_gpus(Some("0,-1,2")), vec![0]);
        assert_eq!(visible_gpus(Some("GPU-a1,GPU-b2")), vec![0, 1]);
    }

    #[test]
    fn invalid_settings_are_explained() {
        let err = Config::default()
            .num_cpus(-2)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("num_cpus must be a non-negative number"),
            "{err}"
        );
        let err = Config::default()
            .num_gpus(1.5)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("whole number"), "{err}");
        let err = Config::default()
            .resource("GPU", 1)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("num_gpus"), "{err}");
    }

    #[test]
    fn explicit_values_win() {
        let c = Config::default()
            .num_cpus(3)
            .num_gpus(2)
            .object_store_memory(10)
            .resolve()
            .unwrap();
        assert_eq!(c.cpu_units, 3 * UNIT);
        assert!(c.resources.describe_total().contains("2 GPU"));
        assert_eq!(c.object_store_memory, 10);
        assert!(default_store_memory() > 0);
    }
}
