//! Running this process as a node of a cluster, and looking at the cluster.

use crate::api::config::Config;
use crate::error::InitError;
use crate::runtime::global;

pub use crate::wire::{NodeInfo, NodeState};

/// Runs this process as a worker node: joins the cluster that `config` names
/// ([`Config::address`]), runs the tasks the cluster sends it, and returns when the head
/// stops the cluster or stops answering. Every node runs the same binary as the driver: a
/// program typically calls this from `main` when started with a worker flag.
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
    let guard = crate::init(config)?;
    let cluster = global::with_runtime(|rt| rt.cluster.get().cloned()).flatten();
    let Some(cluster) = cluster else {
        return Err(InitError::InvalidConfig(
            "mobula::node::run needs a cluster: set Config::address or Config::head".into(),
        ));
    };
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

/// The nodes of the cluster as this node last heard of them (Ray's `ray.nodes()`); empty
/// outside a cluster.
pub fn nodes() -> Vec<NodeState> {
    global::with_runtime(|rt| rt.cluster.get().map(|c| c.view().nodes))
        .flatten()
        .unwrap_or_default()
}

/// Where the cluster's head listens, in a cluster.
pub fn head_address() -> Option<std::net::SocketAddr> {
    global::with_runtime(|rt| rt.cluster.get().map(|c| c.head)).flatten()
}
