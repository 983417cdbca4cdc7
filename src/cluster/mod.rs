//! The cluster: the head's control plane (membership, heartbeats, failure detection), each
//! node's agent (join, register, heartbeat, run tasks sent to it) and remote task dispatch.
//!
//! - `node`: this node's part: join, endpoint, view, heartbeat, the channels to peers.
//! - `placing`: which node runs a task or an actor, from this node's view.
//! - `placement_groups`: room for bundles on each node; reserving bundles on another.
//! - `serve`: the requests a node serves (on the head, the control plane's).
//! - `head`: the head's own state (membership, CA, token, actor names) and failure detection.
//! - `head_db`: the head's durable tables (an embedded database), read back when it restarts.
//! - `remote`: tasks sent to and run for other nodes.
//! - `tasks`: the task channel to each peer that carries them.
//! - `objects`: values left on the nodes that made them: fetched, let go, made again.
//! - `actors`: actors created on and called across nodes.
//! - `report`: this node's report for the state API, read from its runtime.
//! - `state`: the cluster's state for the state API, gathered by the head.
//! - `generators`: streaming generators' items pushed to the node that consumes them.
//! - `logs`: task and actor log lines sent to the terminal of the driver they work for.
//! - `port`: the node as its runtime uses it (the runtime's `ClusterPort`).
//! - `admin`: what the `mobula` CLI asks a running head (status, stop).
//! - `builds`: this process's build, the cache of builds fetched from peers, the chunks served.
//! - `agent`: a node agent: processes of every driver's build on its machine.
//! - `jobs`: on the head, the job table's events and the programs run for `mobula job submit`.

pub mod actors;
pub mod admin;
pub(crate) mod agent;
pub mod builds;
pub(crate) mod generators;
pub mod head;
pub mod head_db;
pub(crate) mod jobs;
pub(crate) mod logs;
pub(crate) mod mail;
pub mod node;
pub mod objects;
pub(crate) mod placement_groups;
pub(crate) mod placing;
pub(crate) mod port;
pub mod remote;
pub(crate) mod report;
pub mod serve;
pub(crate) mod state;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use crate::base::node_config::ClusterConfig;
use crate::runtime::global::Runtime;

pub(crate) use port::node_of;

/// Starts or joins the cluster for runtime `rt`; waits until this node is in.
pub(crate) fn join(
    rt: &Runtime,
    config: ClusterConfig,
    totals: Vec<(String, f64)>,
) -> Result<(), String> {
    let wait = config.node_timeout * 5 + Duration::from_secs(10);
    let (node_id, scheduler, ids) = (rt.node_id, rt.scheduler.clone(), rt.ids.clone());
    let (generators, mailbox) = (rt.generators.clone(), rt.mailbox.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    rt.node_arbiter.spawn_fn(move || {
        actix_rt::spawn(async move {
            let started = node::start(config, node_id, totals, scheduler, ids, generators, mailbox);
            let _ = tx.send(started.await);
        });
    });
    let node: Arc<node::ClusterNode> = rx
        .recv_timeout(wait)
        .map_err(|_| format!("no answer within {wait:?}"))??;
    // Values left on other nodes are fetched through the cluster. Held weakly, as below: the
    // store and the actors outlive nothing of the cluster's (the node holds the scheduler,
    // which holds the store; a strong hold back would keep a stopped node alive for good).
    rt.store.install_remote_objects(Arc::new(objects::Fetcher {
        cluster: Arc::downgrade(&node),
        arbiter: rt.node_arbiter.clone(),
    }));
    // A named actor that ends here frees its name cluster-wide.
    let (unnamer, arbiter) = (Arc::downgrade(&node), rt.node_arbiter.clone());
    rt.actors.on_name_freed(Box::new(move |key, actor| {
        if let Some(unnamer) = unnamer.upgrade() {
            unnamer.unname_actor(&arbiter, key, actor)
        }
    }));
    let port: Arc<dyn crate::runtime::cluster_port::ClusterPort> = node;
    rt.mailbox.connect(&port);
    rt.cluster.set(port).map_err(|_| "joined twice".to_string())
}
