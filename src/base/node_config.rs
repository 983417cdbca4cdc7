//! A node's configuration once checked and completed with the machine's values: what
//! `Config` (in `api`) resolves to, and what the runtime and the cluster start from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::role::Role;
use super::scheduling::resources::NodeResources;

/// Environment variables a node or driver reads when its `Config` does not say otherwise
/// (Ray's `RAY_ADDRESS`): the head's `host:port`, the join token and the CA fingerprint, as
/// `mobula start --head` prints them.
pub const ENV_ADDRESS: &str = "MOBULA_ADDRESS";
/// See [`ENV_ADDRESS`].
pub const ENV_JOIN_TOKEN: &str = "MOBULA_JOIN_TOKEN";
/// See [`ENV_ADDRESS`].
pub const ENV_CA_FINGERPRINT: &str = "MOBULA_CA_FINGERPRINT";
/// Set (to anything but `0`) to start a program marked `#[mobula::main]` as a worker node.
pub const ENV_WORKER: &str = "MOBULA_WORKER";
/// The CPUs a worker started through [`ENV_WORKER`] offers (default: the machine's).
pub const ENV_NUM_CPUS: &str = "MOBULA_NUM_CPUS";
/// Set by a node agent on the processes it starts: the agent's node id.
pub const ENV_STARTED_BY: &str = "MOBULA_STARTED_BY";
/// Set by a node agent on the processes it starts: the hash and size of their build
/// (`HEX:SIZE`; the agent fetched the executable by that hash and checked it), so that they
/// need not hash themselves.
pub const ENV_BUILD_ID: &str = "MOBULA_BUILD_ID";
/// Set by the head on a program it runs for `mobula job submit`: the job's id.
pub const ENV_JOB_ID: &str = "MOBULA_JOB_ID";

/// How this process takes part in a cluster.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClusterRole {
    /// It is the head, listening here.
    Head { listen: SocketAddr },
    /// It joins the head at `head`, listening on `listen`.
    Join {
        head: SocketAddr,
        listen: SocketAddr,
        token: Option<String>,
        ca_fingerprint: Option<String>,
    },
}

/// The cluster settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClusterConfig {
    pub role: ClusterRole,
    pub dir: PathBuf,
    pub node_timeout: Duration,
    /// On a head: how long the certificates it signs live.
    pub certificate_lifetime: Duration,
    /// On a joining node: the role it asks for, a worker [`Role::Node`] or a
    /// [`Role::Driver`].
    pub member: Role,
    /// Whether this node is a node agent: it runs no task itself but starts processes of
    /// the drivers' builds on its machine.
    pub agent: bool,
    /// The agent that started this process, if one did.
    pub started_by: Option<super::id::NodeId>,
    /// How long work that no live node can take yet waits for one before it fails.
    pub placement_timeout: Duration,
    /// How long a node waits for a head that stopped answering to come back.
    pub head_timeout: Duration,
    /// For a driver the head started (`mobula job submit`): its job.
    pub job: Option<super::jobs::JobId>,
    /// The most bytes of builds this node keeps beyond those it runs.
    pub build_cache_limit: u64,
}

/// A configuration checked and completed with the machine's values.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    pub resources: NodeResources,
    /// What the node offers, by name (`CPU`, `GPU`, custom), as other nodes see it.
    pub totals: Vec<(String, f64)>,
    pub cluster: Option<ClusterConfig>,
    pub cpu_units: i64,
    pub object_store_memory: u64,
    pub spill_root: PathBuf,
    /// Where to serve `/metrics`, if anywhere.
    pub metrics_address: Option<SocketAddr>,
    /// Where to serve the dashboard, if anywhere.
    pub dashboard_address: Option<SocketAddr>,
    /// Whether the dashboard is served over HTTPS, under a certificate from the cluster CA.
    pub dashboard_https: bool,
    /// Whether lines for this node's terminal are printed.
    pub log_to_driver: bool,
}

/// What a node's HTTP servers need to start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpSettings {
    /// Where to serve `/metrics`, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Where to serve the dashboard, if anywhere.
    pub dashboard: Option<SocketAddr>,
    /// Whether the dashboard is served over HTTPS.
    pub dashboard_https: bool,
    /// The cluster directory (its dashboard token, and the CA for HTTPS), in a cluster.
    pub cluster_dir: Option<PathBuf>,
}

impl NodeConfig {
    /// What the HTTP servers need.
    pub fn http_settings(&self) -> HttpSettings {
        HttpSettings {
            metrics: self.metrics_address,
            dashboard: self.dashboard_address,
            dashboard_https: self.dashboard_https,
            cluster_dir: self.cluster.as_ref().map(|c| c.dir.clone()),
        }
    }
}
