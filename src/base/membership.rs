//! Who is in the cluster: the head's pure membership state.
//!
//! Inputs are joins, registrations, heartbeats and ticks, each with the time as milliseconds
//! from any fixed origin; outputs are decisions (accepted or refused, which nodes died) and
//! the versioned view that nodes receive. No clock, socket or thread inside.

use std::collections::BTreeMap;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::base::build::Build;
use crate::base::id::NodeId;
use crate::base::jobs::JobId;
use crate::base::role::Role;

/// A node as the control plane knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id, as in its certificate.
    pub node_id: NodeId,
    /// Where its QUIC endpoint listens.
    pub address: SocketAddr,
    /// Total resources: `CPU`, `GPU`, `memory` and custom ones.
    pub resources: Vec<(String, f64)>,
    /// Fingerprint of the node's function registry (0 for a node without functions).
    pub registry: u64,
    /// Whether the node runs tasks (a driver or a head started without CPUs does not).
    pub runs_tasks: bool,
    /// What it joined as (the head sets it from the node's certificate).
    pub role: Role,
    /// The build of the user's program it runs; `None` for a node that holds no user code
    /// (the CLI's head, a node agent).
    pub build: Option<Build>,
    /// Its platform ([`this_target`](crate::base::build::this_target)).
    pub target: String,
    /// Whether it is a node agent: it runs no task itself but starts processes of the
    /// drivers' builds on its machine, which it shares between them.
    pub agent: bool,
    /// The agent that started this process, if one did (its resources are that machine's
    /// share for this build).
    pub started_by: Option<NodeId>,
    /// For a driver the head started (`mobula job submit`): its job.
    pub job: Option<JobId>,
    /// The command line it runs (for a driver, its job's entrypoint).
    pub entrypoint: String,
}

/// A node and what it has free, as last reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// The node.
    pub info: NodeInfo,
    /// Resources free at its last heartbeat.
    pub available: Vec<(String, f64)>,
    /// Tasks running or queued there at its last heartbeat.
    pub load: u32,
    /// False once the head declared it dead, or it left.
    pub alive: bool,
    /// Whether it left on purpose ([`Membership::leave`]): gone, not dead (a driver that
    /// ended, a process its agent stopped).
    pub left: bool,
}

/// The cluster's membership, versioned: a newer version replaces an older one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Bumped on every change of membership.
    pub version: u64,
    /// Every node that joined, dead ones included (marked).
    pub nodes: Vec<NodeState>,
    /// The head's outages: each time it died and was started again on its tables.
    pub head_outages: Vec<HeadOutage>,
}

/// One outage of the head: from when it was last known alive to when it started again on
/// its tables (Unix ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadOutage {
    /// The last moment the head before was known alive.
    pub down_ms: u64,
    /// When the head started again.
    pub up_ms: u64,
}

impl HeadOutage {
    /// How long the head was away.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.up_ms.saturating_sub(self.down_ms))
    }
}

/// Why a node may not join or register.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A live node already has this id.
    #[error("node id {0} is already in the cluster")]
    DuplicateId(NodeId),
    /// The node was declared dead; it must join again under a new id.
    #[error("node {0} was declared dead; restart it to join again")]
    Dead(NodeId),
    /// The node never registered.
    #[error("node {0} is not registered")]
    Unknown(NodeId),
}

struct Member {
    state: NodeState,
    last_seen_ms: u64,
    /// When it was declared dead.
    dead_since_ms: Option<u64>,
}

impl Member {
    /// A live member, all its resources free, last heard from at `last_seen_ms`.
    fn live(info: NodeInfo, last_seen_ms: u64) -> Self {
        let available = info.resources.clone();
        Member {
            state: NodeState {
                info,
                available,
                load: 0,
                alive: true,
                left: false,
            },
            last_seen_ms,
            dead_since_ms: None,
        }
    }
}

/// The membership table.
pub struct Membership {
    version: u64,
    members: BTreeMap<NodeId, Member>,
    timeout_ms: u64,
    /// How long a dead member stays listed (as dead, so that its certificate is refused):
    /// as long as that certificate can still be valid.
    forget_after_ms: u64,
    outages: Vec<HeadOutage>,
}

impl Membership {
    /// A table whose nodes die after `timeout_ms` without a heartbeat. Nodes of any build
    /// may join: work of one build goes only to nodes of that build.
    pub fn new(timeout_ms: u64) -> Self {
        Membership {
            version: 0,
            members: BTreeMap::new(),
            timeout_ms,
            forget_after_ms: u64::MAX,
            outages: Vec::new(),
        }
    }

    /// The head's outages so far, shown in every view.
    pub fn with_outages(mut self, outages: Vec<HeadOutage>) -> Self {
        self.outages = outages;
        self
    }

    /// Dead members are forgotten `ms` after they died (when their certificates have expired).
    pub fn forget_dead_after(mut self, ms: u64) -> Self {
        self.forget_after_ms = ms;
        self
    }

    /// Numbers the next versions after `version` (a restarted head's views must be newer
    /// than any a node already has).
    pub fn continuing_from(mut self, version: u64) -> Self {
        self.version = self.version.max(version);
        self
    }

    /// Lists again a member a restarted head knew: alive, heard from `grace_ms` past `now_ms`
    /// (so it has the timeout and that grace to reach the new head).
    pub fn restore(&mut self, info: NodeInfo, now_ms: u64, grace_ms: u64) {
        self.members
            .insert(info.node_id, Member::live(info, now_ms + grace_ms));
        self.version += 1;
    }

    /// Live and dead members listed now.
    pub fn counts(&self) -> (usize, usize) {
        let alive = self.members.values().filter(|m| m.state.alive).count();
        (alive, self.members.len() - alive)
    }

    /// Whether a node with this id may join.
    pub fn check_join(&self, node_id: NodeId) -> Result<(), Refusal> {
        match self.members.get(&node_id) {
            Some(m) if m.state.alive => Err(Refusal::DuplicateId(node_id)),
            Some(_) => Err(Refusal::Dead(node_id)),
            None => Ok(()),
        }
    }

    /// Adds a joined node (or refreshes one that registers again, after a reconnect).
    pub fn register(&mut self, info: NodeInfo, now_ms: u64) -> Result<(), Refusal> {
        let id = info.node_id;
        match self.members.get(&id) {
            Some(m) if !m.state.alive => return Err(Refusal::Dead(id)),
            Some(_) => {}
            None => self.check_join(id)?,
        }
        self.members.insert(id, Member::live(info, now_ms));
        self.version += 1;
        Ok(())
    }

    /// Records a heartbeat. Returns whether the node's view is stale (`view_version` older
    /// than the table's).
    pub fn heartbeat(
        &mut self,
        node_id: NodeId,
        available: Vec<(String, f64)>,
        load: u32,
        view_version: u64,
        now_ms: u64,
    ) -> Result<bool, Refusal> {
        let member = self
            .members
            .get_mut(&node_id)
            .ok_or(Refusal::Unknown(node_id))?;
        if !member.state.alive {
            return Err(Refusal::Dead(node_id));
        }
        member.last_seen_ms = now_ms;
        member.state.available = available;
        member.state.load = load;
        Ok(view_version < self.version)
    }

    /// Declares dead every live node not heard from within the timeout, and forgets those
    /// dead for longer than [`forget_dead_after`](Self::forget_dead_after); returns the newly
    /// dead.
    pub fn tick(&mut self, now_ms: u64) -> Vec<NodeId> {
        let mut dead = Vec::new();
        for (id, m) in &mut self.members {
            if m.state.alive && now_ms.saturating_sub(m.last_seen_ms) > self.timeout_ms {
                m.state.alive = false;
                m.dead_since_ms = Some(now_ms);
                dead.push(*id);
            }
        }
        let listed = self.members.len();
        let forget_after = self.forget_after_ms;
        self.members.retain(|_, m| {
            m.dead_since_ms
                .is_none_or(|since| now_ms.saturating_sub(since) < forget_after)
        });
        if !dead.is_empty() || self.members.len() != listed {
            self.version += 1;
        }
        dead
    }

    /// A member leaves on purpose: it is no longer alive (its certificate is refused, as a
    /// dead one's) but listed as gone, and forgotten as the dead are. Whether it was live.
    pub fn leave(&mut self, node_id: NodeId, now_ms: u64) -> bool {
        match self.members.get_mut(&node_id) {
            Some(m) if m.state.alive => {
                m.state.alive = false;
                m.state.left = true;
                m.dead_since_ms = Some(now_ms);
                self.version += 1;
                true
            }
            _ => false,
        }
    }

    /// The current view, resources as last reported.
    pub fn view(&self) -> ClusterView {
        ClusterView {
            version: self.version,
            nodes: self.members.values().map(|m| m.state.clone()).collect(),
            head_outages: self.outages.clone(),
        }
    }

    /// The table's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The live nodes.
    #[cfg(test)]
    pub fn alive(&self) -> impl Iterator<Item = &NodeInfo> {
        self.members
            .values()
            .filter(|m| m.state.alive)
            .map(|m| &m.state.info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_member_has_the_grace_then_dies_unheard() {
        let mut m = Membership::new(100).continuing_from(41);
        let node = info(1);
        let id = node.node_id;
        m.restore(node, 0, 200);
        let view = m.view();
        assert!(
            view.version > 41,
            "a view newer than any before the restart"
        );
        assert!(view.nodes.iter().any(|n| n.info.node_id == id && n.alive));
        assert!(m.tick(300).is_empty(), "within the timeout and the grace");
        assert_eq!(m.tick(301), vec![id]);
        // Heard from in time, it stays.
        let mut m = Membership::new(100);
        let node = info(1);
        let id = node.node_id;
        m.restore(node, 0, 200);
        m.heartbeat(id, Vec::new(), 0, 0, 250).unwrap();
        assert!(m.tick(340).is_empty());
    }

    fn info(registry: u64) -> NodeInfo {
        NodeInfo {
            node_id: NodeId::random(),
            address: "127.0.0.1:1".parse().unwrap(),
            resources: vec![("CPU".into(), 2.0)],
            registry,
            runs_tasks: true,
            role: Role::Node,
            build: None,
            target: "x86_64-linux".into(),
            agent: false,
            started_by: None,
            job: None,
            entrypoint: String::new(),
        }
    }

    #[test]
    fn nodes_of_different_builds_join_side_by_side() {
        let mut m = Membership::new(2000);
        assert!(m.register(info(7), 0).is_ok());
        assert!(m.register(info(8), 0).is_ok());
        assert!(m.register(info(0), 0).is_ok(), "a node without functions");
        assert_eq!(m.counts(), (3, 0));
    }

    #[test]
    fn silence_past_the_timeout_kills_and_heartbeats_keep_alive() {
        let mut m = Membership::new(2000);
        let (a, b) = (info(1), info(1));
        let (ida, idb) = (a.node_id, b.node_id);
        m.register(a, 0).unwrap();
        m.register(b, 0).unwrap();
        let v = m.version();
        assert_eq!(m.heartbeat(ida, vec![], 3, v, 1500), Ok(false));
        assert!(m.tick(2000).is_empty(), "exactly at the timeout: alive");
        assert_eq!(m.tick(2001), vec![idb]);
        assert!(m.version() > v);
        assert_eq!(
            m.heartbeat(ida, vec![], 0, v, 2100),
            Ok(true),
            "a stale view"
        );
        assert_eq!(
            m.heartbeat(idb, vec![], 0, v, 2100),
            Err(Refusal::Dead(idb))
        );
        assert_eq!(m.check_join(idb), Err(Refusal::Dead(idb)));
        assert_eq!(m.alive().map(|n| n.node_id).collect::<Vec<_>>(), vec![ida]);
        assert!(m.tick(4100).is_empty(), "last heard at 2100");
        assert_eq!(m.tick(4101), vec![ida]);
        let view = m.view();
        assert!(view.nodes.iter().all(|n| !n.alive));
    }

    #[test]
    fn duplicates_and_strangers_are_refused() {
        let mut m = Membership::new(2000);
        let a = info(1);
        let id = a.node_id;
        m.register(a.clone(), 0).unwrap();
        assert_eq!(m.check_join(id), Err(Refusal::DuplicateId(id)));
        assert!(m.register(a, 10).is_ok(), "registering again refreshes");
        let stranger = NodeId::random();
        assert_eq!(
            m.heartbeat(stranger, vec![], 0, 0, 0),
            Err(Refusal::Unknown(stranger))
        );
        assert!(m.leave(id, 20));
        assert!(!m.leave(id, 30));
    }

    #[test]
    fn a_member_that_leaves_is_gone_not_dead_refused_and_then_forgotten() {
        let mut m = Membership::new(1000).forget_dead_after(5_000);
        let a = info(1);
        let id = a.node_id;
        m.register(a.clone(), 0).unwrap();
        let before = m.view().version;
        assert!(m.leave(id, 100));
        let view = m.view();
        assert!(view.version > before);
        assert!(!view.nodes[0].alive && view.nodes[0].left);
        assert_eq!(m.register(a, 200), Err(Refusal::Dead(id)));
        assert!(m.tick(1_000).is_empty(), "not declared dead again");
        m.tick(5_100);
        assert_eq!(m.counts(), (0, 0));
    }

    #[test]
    fn dead_members_are_listed_until_their_certificates_expire_then_forgotten() {
        let mut m = Membership::new(1000).forget_dead_after(60_000);
        let (a, b) = (info(0), info(0));
        let (silent, alive) = (a.node_id, b.node_id);
        m.register(a, 0).unwrap();
        m.register(b, 0).unwrap();
        m.heartbeat(alive, Vec::new(), 0, 0, 1_400).unwrap();
        assert_eq!(m.tick(1_500), vec![silent]);
        assert_eq!(m.counts(), (1, 1));
        // Listed as dead (its certificate refused) while the certificate can be valid.
        for now in [2_000, 30_000, 61_499] {
            m.heartbeat(alive, Vec::new(), 0, 0, now).unwrap();
            assert!(m.tick(now).is_empty());
            assert_eq!(m.counts(), (1, 1), "at {now}");
        }
        let before = m.version();
        m.heartbeat(alive, Vec::new(), 0, 0, 61_500).unwrap();
        assert!(m.tick(61_500).is_empty());
        assert_eq!(m.counts(), (1, 0), "forgotten");
        assert!(
            m.version() > before,
            "the view changes when a member is forgotten"
        );
        assert!(m.view().nodes.iter().all(|n| n.info.node_id != silent));
    }
}
