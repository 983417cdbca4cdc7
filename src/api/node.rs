//! Running this process as a node of a cluster, and looking at the cluster.

use crate::api::config::Config;
use crate::base::error::InitError;
use crate::runtime::global;

pub use crate::base::membership::HeadOutage;
pub use crate::cluster::admin::{
    AdminError, JoinInfo, job_output, join_info, status as cluster_status, stop as stop_cluster,
    stop_job, submit_job,
};
pub use crate::wire::{ClusterView, NodeInfo, NodeState};

pub use crate::base::node_config::{
    ENV_ADDRESS, ENV_BUILD_ID, ENV_CA_FINGERPRINT, ENV_JOB_ID, ENV_JOIN_TOKEN, ENV_NUM_CPUS,
    ENV_STARTED_BY, ENV_WORKER,
};

/// When this process was started as a worker node ([`ENV_WORKER`] set, with
/// [`ENV_ADDRESS`] and the credentials), runs it as one and ends the process when the cluster
/// stops; otherwise returns at once. `#[mobula::main]` calls it first thing in `main`, so one
/// binary is the driver and every worker.
// It ends the process: standard error is the only place left to say why.
#[allow(clippy::print_stderr)]
pub fn run_worker_if_asked() {
    let asked = std::env::var(ENV_WORKER).is_ok_and(|v| !v.is_empty() && v != "0");
    if !asked {
        return;
    }
    let mut config = Config::default();
    if let Ok(n) = std::env::var(ENV_NUM_CPUS) {
        match n.parse::<f64>() {
            Ok(n) => config = config.num_cpus(n),
            Err(_) => {
                eprintln!("mobula worker: {ENV_NUM_CPUS}={n:?} is not a number");
                std::process::exit(2);
            }
        }
    }
    if std::env::var_os(ENV_ADDRESS).is_none() {
        eprintln!(
            "mobula worker: {ENV_WORKER} is set but {ENV_ADDRESS} (the head's host:port) is not"
        );
        std::process::exit(2);
    }
    match run(config) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("mobula worker: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs this process as a worker node: joins the cluster that `config` names
/// ([`Config::address`]), runs the tasks the cluster sends it, and returns when the head
/// stops the cluster or stops answering. A worker runs this program's build: the driver's
/// tasks of the same build come to it. A program typically calls this from `main` when
/// started with a worker flag (`#[mobula::main]` does it for `MOBULA_WORKER`).
///
/// ```no_run
/// # fn main() -> Result<(), mobula::InitError> {
/// if let Some(head) = std::env::args().nth(1).filter(|a| a.contains(':')) {
///     return mobula::node::run(mobula::Config::default().address(head));
/// }
/// # Ok(())
/// # }
/// ```
pub fn run(config: Config) -> Result<(), InitError> {
    run_as(config.joining_as_worker(), "worker")
}

/// Runs this process as a node agent (what `mobula start --address HEAD:PORT` runs): it
/// holds no user code and runs no task itself; for every build of a program that a live
/// driver offers, it fetches the executable once (by hash, from the driver or a node that
/// has it; kept in the cluster directory's `builds/`) and runs a worker process of it on
/// this machine, sharing the machine's CPUs ([`Config::num_cpus`]) between the builds.
/// Returns when the head stops the cluster or stops answering.
pub fn run_agent(config: Config) -> Result<(), InitError> {
    run_as(config.joining_as_agent(), "node agent")
}

// Says on the node's terminal when it joined and as which node.
#[allow(clippy::print_stderr)]
fn run_as(config: Config, what: &str) -> Result<(), InitError> {
    let guard = crate::init(config)?;
    let cluster = global::with_runtime(crate::cluster::node_of).flatten();
    let Some(cluster) = cluster else {
        return Err(InitError::InvalidConfig(
            "mobula::node::run needs a cluster: set Config::address or Config::head".into(),
        ));
    };
    let cpus = cluster_resources_of(&cluster);
    eprintln!(
        "mobula: joined the cluster at {} as {what} {} ({cpus})",
        cluster.head, cluster.node_id
    );
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    global::with_runtime(|rt| {
        rt.node_arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                cluster.shutdown.notified().await;
                let _ = tx.send(());
            });
        });
    });
    let _ = rx.recv();
    drop(guard);
    Ok(())
}

/// What a node offers, as a line (`2 CPU`).
fn cluster_resources_of(cluster: &crate::cluster::node::ClusterNode) -> String {
    let view = cluster.view();
    let me = view
        .nodes
        .iter()
        .find(|n| n.info.node_id == cluster.node_id);
    me.map(|n| {
        n.info
            .resources
            .iter()
            .filter(|(_, amount)| *amount > 0.0)
            .map(|(name, amount)| format!("{amount} {name}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

/// The nodes of the cluster as this node last heard of them (Ray's `ray.nodes()`); empty
/// outside a cluster.
pub fn nodes() -> Vec<NodeState> {
    global::with_runtime(|rt| crate::cluster::node_of(rt).map(|c| c.view().nodes))
        .flatten()
        .unwrap_or_default()
}

/// How many entries each of this node's cluster tables that grow with use holds now (values
/// held for other nodes, lineage, bundles reserved for others, task channels, links,
/// suspected nodes, remote actor channels; on the head also members, dead members, actor
/// names and locations), by name; empty outside a cluster. The same figures are the metric
/// `mobula_cluster_table_entries`.
pub fn table_sizes() -> Vec<(&'static str, usize)> {
    global::with_runtime(|rt| crate::cluster::node_of(rt).map(|c| c.table_sizes()))
        .flatten()
        .unwrap_or_default()
}

/// Where this node serves `/metrics` (see [`Config::metrics_address`](crate::Config::metrics_address)),
/// if it does.
pub fn metrics_address() -> Option<std::net::SocketAddr> {
    global::with_runtime(crate::http::metrics_address).flatten()
}

/// Where this node serves the dashboard, and the token it asks for (see
/// [`Config::dashboard_address`](crate::Config::dashboard_address)), if it does.
pub fn dashboard() -> Option<(std::net::SocketAddr, String)> {
    global::with_runtime(crate::http::dashboard_address).flatten()
}

/// Where the cluster's head listens, in a cluster.
pub fn head_address() -> Option<std::net::SocketAddr> {
    global::with_runtime(|rt| crate::cluster::node_of(rt).map(|c| c.head)).flatten()
}

/// Why the cluster's head is not answering this node, while it is not (it is being waited
/// for, up to [`Config::head_timeout`](crate::Config::head_timeout), or was given up on);
/// `None` while it answers, and outside a cluster.
pub fn head_away() -> Option<String> {
    global::with_runtime(|rt| crate::cluster::node_of(rt).and_then(|c| c.head_lost())).flatten()
}

/// The resources of every live node that runs tasks, summed by name (Ray's
/// `ray.cluster_resources()`); outside a cluster, this node's. Empty when no runtime runs.
pub fn cluster_resources() -> std::collections::BTreeMap<String, f64> {
    let mut sum = std::collections::BTreeMap::new();
    let view = global::with_runtime(|rt| crate::cluster::node_of(rt).map(|c| c.view()));
    match view {
        None => {}
        Some(Some(view)) => {
            for node in view.nodes.iter().filter(|n| n.alive && n.info.runs_tasks) {
                for (name, amount) in &node.info.resources {
                    *sum.entry(name.clone()).or_insert(0.0) += amount;
                }
            }
        }
        Some(None) => {
            if let Some((cpu, gpu, custom)) = global::with_runtime(|rt| rt.scheduler.totals()) {
                let unit = crate::base::scheduling::resources::UNIT as f64;
                sum.insert("CPU".to_string(), cpu as f64 / unit);
                sum.insert("GPU".to_string(), gpu as f64 / unit);
                for (name, amount) in custom {
                    sum.insert(name.to_string(), amount as f64 / unit);
                }
            }
        }
    }
    sum
}
