//! Builds of a user's program on a running cluster, and the pure decisions about them.
//!
//! Rust cannot ship a closure, but it can ship the binary: a driver that joins offers its
//! build (the SHA-256 of its executable, its size, the platform it was built for). A node
//! agent (`mobula start --address ...`, holding no user code) runs a process of every build
//! that a live driver offers, fetched once by hash and kept in its cache; that process joins
//! as a node of its own, so a task goes straight from the driver to it. Work of one build
//! goes only to nodes of that build. What to run, how to share a machine between builds and
//! what to evict from the cache are decided here, from plain inputs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::base::id::NodeId;
use crate::base::membership::NodeState;
use crate::base::role::Role;

/// The SHA-256 of a program's executable: equal for two processes of the same build.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BuildId(pub [u8; 32]);

impl BuildId {
    /// The first 12 hex digits, as logs and tables show a build.
    pub fn short(&self) -> String {
        self.0[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// All 64 hex digits (the cache's file name).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The id a file name of 64 hex digits stands for.
    pub fn from_hex(text: &str) -> Option<BuildId> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut id = [0u8; 32];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(BuildId(id))
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl fmt::Debug for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuildId({})", self.short())
    }
}

/// A build as a driver offers it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Build {
    /// Its executable's SHA-256.
    pub id: BuildId,
    /// Its executable's size in bytes.
    pub size: u64,
    /// The platform it runs on, as [`this_target`] gives it (`x86_64-linux`).
    pub target: String,
}

/// The platform this program was built for: its architecture and operating system
/// (`x86_64-linux`, `aarch64-macos`).
pub fn this_target() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// A build that cannot run on a node's platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "build {build} is for {theirs} and cannot run on this cluster's {ours} nodes: build the driver for {ours} (cargo build --target ...)"
)]
pub struct WrongTarget {
    /// The build.
    pub build: BuildId,
    /// Its platform.
    pub theirs: String,
    /// The node's.
    pub ours: String,
}

impl Build {
    /// Whether it runs on a node of platform `target`.
    pub fn runs_on(&self, target: &str) -> Result<(), WrongTarget> {
        if self.target == target {
            Ok(())
        } else {
            Err(WrongTarget {
                build: self.id,
                theirs: self.target.clone(),
                ours: target.to_string(),
            })
        }
    }
}

/// A build an agent should run a process of, and the nodes it can be fetched from (the
/// drivers that offered it first, then other nodes that run it).
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The build.
    pub build: Build,
    /// Live nodes that run it.
    pub holders: Vec<NodeId>,
}

/// What an agent on platform `target` should run, from its view: one process of every build
/// that a live driver offers (or a head that is a user's program, the driver of its own
/// cluster), in the order they appear; and the builds it cannot run (another platform), with
/// the driver that offered each.
pub fn wanted(nodes: &[NodeState], target: &str) -> (Vec<Wanted>, Vec<(WrongTarget, NodeId)>) {
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut wrong = Vec::new();
    for driver in nodes
        .iter()
        .filter(|n| n.alive && matches!(n.info.role, Role::Driver | Role::Head))
    {
        let Some(build) = &driver.info.build else {
            continue;
        };
        if wanted.iter().any(|w| w.build.id == build.id) {
            continue;
        }
        if let Err(e) = build.runs_on(target) {
            if !wrong
                .iter()
                .any(|(w, _): &(WrongTarget, NodeId)| w.build == build.id)
            {
                wrong.push((e, driver.info.node_id));
            }
            continue;
        }
        let holders_first = nodes
            .iter()
            .filter(|n| n.alive && n.info.build.as_ref().is_some_and(|b| b.id == build.id));
        let mut holders: Vec<NodeId> = holders_first
            .clone()
            .filter(|n| n.info.role == Role::Driver)
            .map(|n| n.info.node_id)
            .collect();
        holders.extend(
            holders_first
                .filter(|n| n.info.role != Role::Driver)
                .map(|n| n.info.node_id),
        );
        wanted.push(Wanted {
            build: build.clone(),
            holders,
        });
    }
    (wanted, wrong)
}

/// A machine's resources shared between the `k` builds that run on it: each gets its
/// `index`-th part of every amount (whole units where they divide, the remainder to the
/// first ones), so the parts add up to the whole and nothing is counted twice.
pub fn share(totals: &[(String, f64)], k: usize, index: usize) -> Vec<(String, f64)> {
    let k = k.max(1);
    totals
        .iter()
        .map(|(name, amount)| {
            // In hundredths, so that 3 CPUs in 2 parts are 1.5 and 1.5.
            let units = (amount * 100.0).round() as i64;
            let each = units / k as i64;
            let extra = i64::from((index as i64) < units % k as i64);
            (name.clone(), (each + extra) as f64 / 100.0)
        })
        .collect()
}

/// One build kept in a node's cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    /// The build.
    pub id: BuildId,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last used (started or fetched), in any unit that grows with time.
    pub last_used: u64,
    /// Whether a process of it runs now (never evicted then).
    pub in_use: bool,
}

/// What to delete from a build cache so that it holds at most `limit` bytes: the least
/// recently used builds no process runs. (It may stay above the limit if every build in it
/// is running.)
pub fn evict(cached: &[Cached], limit: u64) -> Vec<BuildId> {
    let mut total: u64 = cached.iter().map(|c| c.size).sum();
    let mut idle: Vec<&Cached> = cached.iter().filter(|c| !c.in_use).collect();
    idle.sort_by_key(|c| (c.last_used, c.id));
    let mut out = Vec::new();
    for c in idle {
        if total <= limit {
            break;
        }
        total -= c.size;
        out.push(c.id);
    }
    out
}

/// Why a driver's work cannot be placed yet, for the warning it waits with: which build it
/// needs, and whether any node could ever start it.
pub fn why_nothing_runs(build: &Build, nodes: &[NodeState]) -> String {
    let live = || nodes.iter().filter(|n| n.alive);
    let agents: Vec<&NodeState> = live().filter(|n| n.info.agent).collect();
    if agents.is_empty() {
        return format!(
            "no live node runs build {} and no node agent can start it: start one with `mobula start --address HEAD:PORT` (or a worker of this program with MOBULA_WORKER=1)",
            build.id
        );
    }
    let mut targets: Vec<&str> = agents.iter().map(|a| a.info.target.as_str()).collect();
    targets.sort_unstable();
    targets.dedup();
    if !targets.contains(&build.target.as_str()) {
        return WrongTarget {
            build: build.id,
            theirs: build.target.clone(),
            ours: targets.join(", "),
        }
        .to_string();
    }
    format!(
        "waiting for the node agents ({}) to fetch and start build {}",
        agents.len(),
        build.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::membership::NodeInfo;

    fn build(n: u8, target: &str) -> Build {
        Build {
            id: BuildId([n; 32]),
            size: 1000,
            target: target.into(),
        }
    }

    fn node(role: Role, build: Option<Build>, alive: bool) -> NodeState {
        NodeState {
            info: NodeInfo {
                node_id: NodeId::random(),
                address: "127.0.0.1:1".parse().unwrap(),
                resources: vec![],
                registry: 0,
                runs_tasks: role == Role::Node,
                role,
                build,
                target: "x86_64-linux".into(),
                agent: false,
                started_by: None,
                job: None,
                entrypoint: String::new(),
            },
            available: vec![],
            load: 0,
            alive,
            left: false,
        }
    }

    #[test]
    fn hex_round_trips_and_short_is_twelve_digits() {
        let id = BuildId([0xab; 32]);
        assert_eq!(BuildId::from_hex(&id.hex()), Some(id));
        assert_eq!(id.short(), "abababababab");
        assert_eq!(BuildId::from_hex("ab"), None);
        assert_eq!(BuildId::from_hex(&"zz".repeat(32)), None);
    }

    #[test]
    fn an_agent_wants_each_live_drivers_build_once_with_drivers_first_as_holders() {
        let a = build(1, "x86_64-linux");
        let b = build(2, "x86_64-linux");
        let worker_a = node(Role::Node, Some(a.clone()), true);
        let driver_a = node(Role::Driver, Some(a.clone()), true);
        let driver_a2 = node(Role::Driver, Some(a.clone()), true);
        let dead_driver_b = node(Role::Driver, Some(b.clone()), false);
        let cli_head = node(Role::Head, None, true);
        let nodes = vec![
            cli_head,
            worker_a.clone(),
            driver_a.clone(),
            driver_a2.clone(),
            dead_driver_b,
        ];
        let (wanted, wrong) = wanted(&nodes, "x86_64-linux");
        assert!(wrong.is_empty());
        assert_eq!(wanted.len(), 1, "a dead driver's build is not wanted");
        assert_eq!(wanted[0].build, a);
        assert_eq!(
            wanted[0].holders,
            vec![
                driver_a.info.node_id,
                driver_a2.info.node_id,
                worker_a.info.node_id
            ]
        );
    }

    #[test]
    fn a_head_that_is_a_users_program_offers_its_build_as_a_driver_does() {
        let a = build(6, "x86_64-linux");
        let head = node(Role::Head, Some(a.clone()), true);
        let (wanted, _) = wanted(std::slice::from_ref(&head), "x86_64-linux");
        assert_eq!(wanted.len(), 1);
        assert_eq!(wanted[0].holders, vec![head.info.node_id]);
    }

    #[test]
    fn a_build_for_another_platform_is_refused_with_both_platforms_named() {
        let mac = build(3, "aarch64-macos");
        let driver = node(Role::Driver, Some(mac.clone()), true);
        let (wanted, wrong) = wanted(std::slice::from_ref(&driver), "x86_64-linux");
        assert!(wanted.is_empty());
        assert_eq!(wrong.len(), 1);
        assert_eq!(wrong[0].1, driver.info.node_id);
        let message = wrong[0].0.to_string();
        assert!(message.contains("aarch64-macos"), "{message}");
        assert!(message.contains("x86_64-linux"), "{message}");
    }

    #[test]
    fn shares_add_up_to_the_machine() {
        let totals = vec![("CPU".to_string(), 3.0), ("GPU".to_string(), 1.0)];
        let parts: Vec<_> = (0..2).map(|i| share(&totals, 2, i)).collect();
        assert_eq!(parts[0], vec![("CPU".into(), 1.5), ("GPU".into(), 0.5)]);
        assert_eq!(parts[1], vec![("CPU".into(), 1.5), ("GPU".into(), 0.5)]);
        let thirds: f64 = (0..3).map(|i| share(&totals, 3, i)[0].1).sum();
        assert!((thirds - 3.0).abs() < 1e-9, "{thirds}");
        assert_eq!(share(&totals, 1, 0), totals);
        let odd = [("CPU".to_string(), 0.05)];
        assert_eq!(share(&odd, 2, 0)[0].1 + share(&odd, 2, 1)[0].1, 0.05);
    }

    #[test]
    fn eviction_takes_the_least_recently_used_idle_builds_until_under_the_limit() {
        let c = |n: u8, size, last_used, in_use| Cached {
            id: BuildId([n; 32]),
            size,
            last_used,
            in_use,
        };
        let cached = vec![
            c(1, 40, 1, true),
            c(2, 40, 2, false),
            c(3, 40, 3, false),
            c(4, 40, 4, false),
        ];
        assert_eq!(evict(&cached, 160), vec![]);
        assert_eq!(
            evict(&cached, 100),
            vec![BuildId([2; 32]), BuildId([3; 32])]
        );
        assert_eq!(
            evict(&cached, 0),
            vec![BuildId([2; 32]), BuildId([3; 32]), BuildId([4; 32])],
            "a running build stays"
        );
    }

    #[test]
    fn waiting_says_what_is_missing() {
        let mine = build(4, "x86_64-linux");
        let none = why_nothing_runs(&mine, &[]);
        assert!(none.contains("mobula start --address"), "{none}");
        let mut agent = node(Role::Node, None, true);
        agent.info.agent = true;
        let fetching = why_nothing_runs(&mine, std::slice::from_ref(&agent));
        assert!(fetching.contains("fetch and start build"), "{fetching}");
        let arm = build(5, "aarch64-linux");
        let wrong = why_nothing_runs(&arm, &[agent]);
        assert!(
            wrong.contains("aarch64-linux") && wrong.contains("x86_64-linux"),
            "{wrong}"
        );
    }
}
