//! The head's own state: the membership table, the cluster's CA and join token, and the
//! names of actors cluster-wide; and the loop that declares silent nodes dead.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::path::PathBuf;

use super::jobs::JobProcess;
use super::node::ClusterNode;
use crate::base::id::{ActorId, NodeId};
use crate::base::jobs::{JobId, Jobs};
use crate::base::membership::Membership;
use crate::transport::credentials::ClusterCa;

/// The head's own state.
pub(crate) struct HeadState {
    pub membership: Membership,
    pub ca: ClusterCa,
    pub token: String,
    pub started: Instant,
    /// Named actors, cluster-wide: (namespace, name) to (actor, class, node).
    pub names: HashMap<(String, String), (ActorId, String, NodeId)>,
    /// Where actors created on other nodes than their owner's run: actor to (class, node).
    pub locations: HashMap<ActorId, (String, NodeId)>,
    /// How long the certificates the head signs live.
    pub certificate_lifetime: Duration,
    /// Every driver that connected and every program submitted.
    pub jobs: Jobs,
    /// The programs it runs for submitted jobs.
    pub job_processes: HashMap<JobId, JobProcess>,
    /// The cluster directory.
    pub dir: PathBuf,
}

impl HeadState {
    /// A node died or left: actors on it no longer hold their names or locations.
    pub fn forget_node(&mut self, gone: NodeId) {
        self.names.retain(|_, (_, _, node)| *node != gone);
        self.locations.retain(|_, (_, node)| *node != gone);
    }

    /// The membership's clock: milliseconds since the head started.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// The head: declares silent nodes dead.
pub(super) async fn watch_members(node: Arc<ClusterNode>) {
    let period = (node.timeout / 8).max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval(period);
    while !node.stopping.load(Ordering::Acquire) {
        ticks.tick().await;
        let Some(state) = &node.head_state else {
            return;
        };
        let view = {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            let now = state.now_ms();
            // The head hears itself.
            let (queued, running) = node.scheduler.counts();
            let _ = state.membership.heartbeat(
                node.node_id,
                Vec::new(),
                (queued + running) as u32,
                u64::MAX,
                now,
            );
            let dead = state.membership.tick(now);
            for id in &dead {
                tracing::warn!(node = %id, "node declared dead: no heartbeat within {:?}", node.timeout);
            }
            for id in &dead {
                state.forget_node(*id);
                state.jobs.driver_gone(*id, true, super::jobs::unix_ms());
            }
            state.membership.view()
        };
        node.set_view(view);
    }
}
