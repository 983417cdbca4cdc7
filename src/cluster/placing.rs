//! Placing work on the cluster's nodes: the candidates this node knows of (its view, what
//! it sent and placed since the last heartbeat, the peers whose link broke) handed to the
//! pure decision in `base::scheduling::placement`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::node::ClusterNode;
use crate::base::id::NodeId;
use crate::base::scheduling::placement::{self, Candidate, FreeNow, Placement, SchedulingStrategy};
use crate::base::scheduling::resources::ResourceRequest;

impl ClusterNode {
    /// Marks a node whose link broke: it is not chosen for a node timeout. Only the
    /// membership declares a node dead; a broken link only keeps work away from it until the
    /// head has had time to decide.
    pub fn suspect(&self, node: NodeId) {
        self.suspects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node, Instant::now());
    }

    /// Nodes suspected within the last node timeout; older suspicions are dropped.
    fn suspects_now(&self) -> HashSet<NodeId> {
        let mut suspects = self.suspects.lock().unwrap_or_else(|e| e.into_inner());
        suspects.retain(|_, since| since.elapsed() < self.timeout);
        suspects.keys().copied().collect()
    }

    /// Whether `n` runs this node's build (so it can run this node's work).
    pub(super) fn same_build(&self, n: &crate::wire::NodeState) -> bool {
        n.info.build.as_ref().map(|b| b.id) == self.build
    }

    /// Where a task goes.
    pub fn place(&self, req: &ResourceRequest, strategy: SchedulingStrategy) -> Placement {
        if let SchedulingStrategy::NodeAffinity { node, .. } = strategy
            && node == self.node_id
        {
            return Placement::Local;
        }
        // While the head is away, work goes on among the nodes of the last view; once this
        // node gives up on the head, it places nothing elsewhere.
        if let Some(why) = self.head_given_up() {
            return Placement::Infeasible(why);
        }
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        // A node this one has not heard of yet (it joined since the last view): sending to it
        // looks it up in the head's view, and fails there if it is not in the cluster.
        if let SchedulingStrategy::NodeAffinity { node, soft: false } = strategy
            && !view.nodes.iter().any(|n| n.info.node_id == node)
        {
            return Placement::Remote(node);
        }
        let suspects = self.suspects_now();
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        let (queued, running) = self.scheduler.counts();
        let candidates: Vec<Candidate<'_>> = view
            .nodes
            .iter()
            .filter(|n| {
                n.alive
                    && n.info.runs_tasks
                    && self.same_build(n)
                    && !suspects.contains(&n.info.node_id)
            })
            .map(|n| {
                let local = n.info.node_id == self.node_id;
                Candidate {
                    id: n.info.node_id,
                    local,
                    total: &n.info.resources,
                    load: if local {
                        (queued + running) as u32
                    } else {
                        n.load + sent.get(&n.info.node_id).copied().unwrap_or(0)
                    },
                    // What its last heartbeat said is free, less what was placed there since
                    // (unknown if it never said).
                    free: (!local && !n.available.is_empty()).then(|| FreeNow {
                        reported: &n.available,
                        placed: placed.get(&n.info.node_id),
                    }),
                }
            })
            .collect();
        if candidates.is_empty()
            && !matches!(
                strategy,
                SchedulingStrategy::NodeAffinity { soft: false, .. }
            )
        {
            // Nothing of this build runs yet: nodes may be joining, an agent may be starting
            // a process of it.
            let why = match &self.info().build {
                Some(build) => crate::base::build::why_nothing_runs(build, &view.nodes),
                None => "no live node runs tasks yet".to_string(),
            };
            return Placement::Wait(why);
        }
        let cursor = self.cursor.fetch_add(1, Ordering::Relaxed);
        let placement = placement::place(req, strategy, &candidates, cursor);
        drop(candidates);
        if let Placement::Remote(node) = placement {
            placed.entry(node).or_default().add(req);
        }
        placement
    }

    /// Counts `req` as placed on `node` until the next view (work passed on to it).
    pub fn placed_on(&self, node: NodeId, req: &ResourceRequest) {
        self.placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(node)
            .or_default()
            .add(req);
    }

    /// Spill-back: where to pass work handed to this node that it cannot start now (a peer
    /// with room, as this node's view says), or `None` to start or queue it here. `hops`:
    /// how many times it was passed on already.
    pub fn spill_target(&self, req: &ResourceRequest, hops: u8) -> Option<NodeId> {
        // The common case, on every task that arrives: it starts here; nothing more to see.
        if !placement::may_spill(self.scheduler.would_start_now(req), hops) {
            return None;
        }
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        let peer = |n: &&crate::wire::NodeState| {
            n.alive && n.info.runs_tasks && self.same_build(n) && n.info.node_id != self.node_id
        };
        // No peer runs work at all: nothing to look at.
        if !view.nodes.iter().any(|n| peer(&n)) {
            return None;
        }
        let suspects = self.suspects_now();
        let placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        let peers: Vec<Candidate<'_>> = view
            .nodes
            .iter()
            .filter(|n| peer(n) && !suspects.contains(&n.info.node_id))
            .map(|n| Candidate {
                id: n.info.node_id,
                local: false,
                total: &n.info.resources,
                load: n.load,
                free: (!n.available.is_empty()).then(|| FreeNow {
                    reported: &n.available,
                    placed: placed.get(&n.info.node_id),
                }),
            })
            .collect();
        let target = placement::spill_back(req, &peers);
        drop(peers);
        drop(placed);
        if let Some(node) = target {
            self.placed_on(node, req);
        }
        target
    }

    /// A node for work whose node was lost: any that can run it, this one included (a soft
    /// affinity no longer holds). When none can take it now but one may (a node agent is
    /// starting its build's process again, or resources free up), it waits as work placed
    /// for the first time does, up to the placement timeout.
    pub async fn place_retry(
        &self,
        req: &ResourceRequest,
        strategy: SchedulingStrategy,
        what: &str,
    ) -> Result<NodeId, String> {
        let strategy = match strategy {
            SchedulingStrategy::NodeAffinity { soft: true, .. } => SchedulingStrategy::Default,
            s => s,
        };
        self.wait_to_place(req, strategy, what).await
    }

    /// Places work that no live node could take when it was submitted: asks again every
    /// 50 ms, with one warning naming what it waits for, until a node can or the placement
    /// timeout passes (then the error says what it waited for).
    pub async fn wait_to_place(
        &self,
        req: &ResourceRequest,
        strategy: SchedulingStrategy,
        what: &str,
    ) -> Result<NodeId, String> {
        let start = Instant::now();
        let mut warned = false;
        loop {
            match self.place(req, strategy) {
                Placement::Local => return Ok(self.node_id),
                Placement::Remote(node) => return Ok(node),
                Placement::Infeasible(why) => return Err(why),
                Placement::Wait(why) => {
                    if start.elapsed() >= self.placement_timeout {
                        return Err(format!(
                            "waited {:?} (the placement timeout) and no node could take {what}: {why}",
                            self.placement_timeout
                        ));
                    }
                    if !warned {
                        warned = true;
                        tracing::warn!("{what} waits: {why}");
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
