//! Which node runs a task: pure.
//!
//! The default policy is Ray's hybrid one: keep work on the submitting node while it is less
//! than half busy, then send it to the least loaded node that can run it. `Spread` deals
//! tasks round-robin over the nodes that can run them; `NodeAffinity` names a node, hard
//! (fail if it cannot) or soft (fall back to the default).

use serde::{Deserialize, Serialize};

use super::resources::{ResourceRequest, UNIT};
use crate::base::id::NodeId;

/// Where tasks of a call may run (Ray's `scheduling_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SchedulingStrategy {
    /// Pack the local node up to half its CPUs, then the least loaded node.
    #[default]
    Default,
    /// Round-robin over every node that can run the task.
    Spread,
    /// On this node; if it cannot, fail (`soft: false`) or use the default (`soft: true`).
    NodeAffinity {
        /// The node.
        node: NodeId,
        /// Fall back instead of failing.
        soft: bool,
    },
}

/// Busy fraction under which the default policy keeps work local.
pub const LOCAL_THRESHOLD: f64 = 0.5;

/// A node the task could go to.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The node.
    pub id: NodeId,
    /// Whether it is the submitting node.
    pub local: bool,
    /// Its total resources (`CPU`, `GPU`, custom).
    pub total: &'a [(String, f64)],
    /// Tasks running or queued there (last report plus what was sent since).
    pub load: u32,
    /// What it has free now, as far as the submitter knows; `None` when unknown.
    pub free: Option<FreeNow<'a>>,
}

/// What a node reported free at its last heartbeat, and what the submitter placed there
/// since (which that report does not show yet).
#[derive(Debug, Clone, Copy)]
pub struct FreeNow<'a> {
    /// The node's last report.
    pub reported: &'a [(String, f64)],
    /// Placed there since.
    pub placed: Option<&'a Placed>,
}

/// Resources placed on a node, summed (in units).
#[derive(Debug, Clone, Default)]
pub struct Placed {
    cpu: i64,
    gpu: i64,
    custom: std::collections::BTreeMap<std::sync::Arc<str>, i64>,
}

impl Placed {
    /// Counts one more request placed there.
    pub fn add(&mut self, req: &ResourceRequest) {
        self.cpu += req.cpu;
        self.gpu += req.gpu;
        for (name, amount) in &req.custom {
            *self.custom.entry(name.clone()).or_default() += amount;
        }
    }
}

impl FreeNow<'_> {
    /// Whether the request fits in what is free now.
    fn fits(&self, req: &ResourceRequest) -> bool {
        let placed = |name: &str| {
            self.placed.map_or(0, |p| match name {
                "CPU" => p.cpu,
                "GPU" => p.gpu,
                _ => p.custom.get(name).copied().unwrap_or(0),
            })
        };
        let free = |name: &str| amount(self.reported, name) - placed(name);
        req.cpu <= free("CPU")
            && req.gpu <= free("GPU")
            && req.custom.iter().all(|(n, a)| free(n) >= *a)
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Run it here.
    Local,
    /// Send it to this node.
    Remote(NodeId),
    /// No node can run it; why.
    Infeasible(String),
    /// No live node can run it yet, but one may come (nodes are joining, an agent is
    /// starting a process of this build): wait, up to the placement timeout; what for.
    Wait(String),
}

fn amount(total: &[(String, f64)], name: &str) -> i64 {
    total
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, a)| (a * UNIT as f64).round() as i64)
}

/// Whether a node with these totals could ever run the request.
pub fn feasible(total: &[(String, f64)], req: &ResourceRequest) -> bool {
    req.cpu <= amount(total, "CPU")
        && req.gpu <= amount(total, "GPU")
        && req.custom.iter().all(|(n, a)| amount(total, n) >= *a)
}

fn busy(c: &Candidate<'_>) -> f64 {
    let cpus = (amount(c.total, "CPU") as f64 / UNIT as f64).max(1.0);
    f64::from(c.load) / cpus
}

/// How many times work may be passed on from a node that cannot start it (Ray's raylet
/// spills back likewise, a bounded number of times).
pub const MAX_SPILL_HOPS: u8 = 3;

/// Whether a node handed work passes it on, before looking at its peers: not when it would
/// start the work at once (its resources are free and nothing waits before it), nor when
/// the work was passed on `hops` times already.
pub fn may_spill(starts_here_now: bool, hops: u8) -> bool {
    !starts_here_now && hops < MAX_SPILL_HOPS
}

/// Spill-back: where a node that may pass work on ([`may_spill`]) sends it: the least loaded
/// peer that has room for it, as far as the node's view says; `None` when no peer has (it
/// waits here). `peers` are the other live nodes.
pub fn spill_back(req: &ResourceRequest, peers: &[Candidate<'_>]) -> Option<NodeId> {
    peers
        .iter()
        .filter(|c| !c.local && feasible(c.total, req))
        .filter(|c| c.free.is_some_and(|free| free.fits(req)))
        .min_by(|a, b| busy(a).total_cmp(&busy(b)))
        .map(|c| c.id)
}

/// Chooses a node. `cursor` advances `Spread` (the caller increments it per task).
pub fn place(
    req: &ResourceRequest,
    strategy: SchedulingStrategy,
    candidates: &[Candidate<'_>],
    cursor: usize,
) -> Placement {
    let to = |c: &Candidate<'_>| {
        if c.local {
            Placement::Local
        } else {
            Placement::Remote(c.id)
        }
    };
    let fits: Vec<&Candidate<'_>> = candidates
        .iter()
        .filter(|c| feasible(c.total, req))
        .collect();
    // Nodes that can run it now are preferred to nodes that would have to queue it.
    let now: Vec<&Candidate<'_>> = fits
        .iter()
        .copied()
        .filter(|c| c.free.is_none_or(|free| free.fits(req)))
        .collect();
    let pool = if now.is_empty() { &fits } else { &now };
    match strategy {
        SchedulingStrategy::NodeAffinity { node, soft } => {
            if let Some(c) = fits.iter().find(|c| c.id == node) {
                return to(c);
            }
            if !soft {
                return Placement::Infeasible(format!(
                    "node {node} is not alive or cannot run this task (hard node affinity)"
                ));
            }
        }
        SchedulingStrategy::Spread => {
            if pool.is_empty() {
                return none_fits(candidates);
            }
            return to(pool[cursor % pool.len()]);
        }
        SchedulingStrategy::Default => {}
    }
    if let Some(local) = pool.iter().find(|c| c.local)
        && busy(local) < LOCAL_THRESHOLD
    {
        return to(local);
    }
    // Least busy; ties go to the local node, then to the earlier candidate.
    match pool.iter().min_by(|a, b| {
        busy(a)
            .total_cmp(&busy(b))
            .then_with(|| b.local.cmp(&a.local))
    }) {
        Some(c) => to(c),
        None => none_fits(candidates),
    }
}

fn none_fits(candidates: &[Candidate<'_>]) -> Placement {
    Placement::Infeasible(format!(
        "no node of the cluster ({} alive) has the resources this task asks for",
        candidates.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cpu: f64, custom: &[(&str, f64)]) -> ResourceRequest {
        let custom: Vec<(String, f64)> = custom.iter().map(|(n, a)| (n.to_string(), *a)).collect();
        ResourceRequest::new(cpu, 0.0, &custom).unwrap()
    }

    fn cpus(n: f64) -> Vec<(String, f64)> {
        vec![("CPU".to_string(), n)]
    }

    struct Nodes {
        ids: Vec<NodeId>,
        totals: Vec<Vec<(String, f64)>>,
    }

    impl Nodes {
        fn new(totals: Vec<Vec<(String, f64)>>) -> Self {
            Nodes {
                ids: totals.iter().map(|_| NodeId::random()).collect(),
                totals,
            }
        }

        fn candidates(&self, loads: &[u32]) -> Vec<Candidate<'_>> {
            self.ids
                .iter()
                .zip(&self.totals)
                .zip(loads)
                .enumerate()
                .map(|(i, ((id, total), load))| Candidate {
                    id: *id,
                    local: i == 0,
                    total,
                    load: *load,
                    free: None,
                })
                .collect()
        }
    }

    #[test]
    fn a_node_that_can_run_it_now_is_preferred_to_a_less_loaded_one_that_cannot() {
        let (a, b) = (NodeId::random(), NodeId::random());
        let total = vec![("CPU".to_string(), 2.0)];
        let req = ResourceRequest::new(1.0, 0.0, &[]).unwrap();
        let (no_cpu, one_cpu) = (
            vec![("CPU".to_string(), 0.0)],
            vec![("CPU".to_string(), 1.0)],
        );
        let free = |reported| {
            Some(FreeNow {
                reported,
                placed: None,
            })
        };
        let full = Candidate {
            id: a,
            local: false,
            total: &total,
            load: 0,
            free: free(&no_cpu),
        };
        let roomy = Candidate {
            id: b,
            local: false,
            total: &total,
            load: 1,
            free: free(&one_cpu),
        };
        let both = [full.clone(), roomy.clone()];
        assert_eq!(
            place(&req, SchedulingStrategy::Default, &both, 0),
            Placement::Remote(b)
        );
        for cursor in 0..4 {
            assert_eq!(
                place(&req, SchedulingStrategy::Spread, &both, cursor),
                Placement::Remote(b)
            );
        }
        // What was placed since the report counts: once b's one CPU is placed, neither can
        // run it now, and it queues where it fits at all: the least loaded.
        let mut placed = Placed::default();
        placed.add(&req);
        let none_free = [
            full,
            Candidate {
                free: Some(FreeNow {
                    reported: &one_cpu,
                    placed: Some(&placed),
                }),
                ..roomy
            },
        ];
        assert_eq!(
            place(&req, SchedulingStrategy::Default, &none_free, 0),
            Placement::Remote(a)
        );
    }

    #[test]
    fn default_packs_local_below_half_then_goes_to_the_least_loaded() {
        let n = Nodes::new(vec![cpus(4.0), cpus(4.0), cpus(4.0)]);
        let r = req(1.0, &[]);
        let d = SchedulingStrategy::Default;
        assert_eq!(place(&r, d, &n.candidates(&[1, 0, 0]), 0), Placement::Local);
        assert_eq!(
            place(&r, d, &n.candidates(&[2, 3, 1]), 0),
            Placement::Remote(n.ids[2])
        );
        assert_eq!(
            place(&r, d, &n.candidates(&[2, 2, 2]), 0),
            Placement::Local,
            "ties stay local"
        );
    }

    #[test]
    fn a_driver_without_cpus_sends_everything_away() {
        let n = Nodes::new(vec![cpus(0.0), cpus(2.0), cpus(2.0)]);
        let r = req(1.0, &[]);
        assert_eq!(
            place(
                &r,
                SchedulingStrategy::Default,
                &n.candidates(&[0, 1, 0]),
                0
            ),
            Placement::Remote(n.ids[2])
        );
    }

    #[test]
    fn spread_deals_round_robin_over_nodes_that_fit() {
        let n = Nodes::new(vec![cpus(0.0), cpus(2.0), cpus(2.0), cpus(2.0)]);
        let r = req(1.0, &[]);
        let picks: Vec<_> = (0..6)
            .map(|i| place(&r, SchedulingStrategy::Spread, &n.candidates(&[0; 4]), i))
            .collect();
        let want: Vec<_> = [1, 2, 3, 1, 2, 3]
            .iter()
            .map(|&i| Placement::Remote(n.ids[i]))
            .collect();
        assert_eq!(picks, want);
    }

    #[test]
    fn custom_resources_steer_and_affinity_is_hard_or_soft() {
        let mut gpu_box = cpus(2.0);
        gpu_box.push(("accelerator".into(), 1.0));
        let n = Nodes::new(vec![cpus(2.0), cpus(2.0), gpu_box]);
        let r = req(1.0, &[("accelerator", 1.0)]);
        assert_eq!(
            place(&r, SchedulingStrategy::Default, &n.candidates(&[0; 3]), 0),
            Placement::Remote(n.ids[2])
        );
        let plain = req(1.0, &[]);
        let hard = SchedulingStrategy::NodeAffinity {
            node: n.ids[1],
            soft: false,
        };
        assert_eq!(
            place(&plain, hard, &n.candidates(&[0, 9, 0]), 0),
            Placement::Remote(n.ids[1])
        );
        let gone = NodeId::random();
        assert!(matches!(
            place(
                &plain,
                SchedulingStrategy::NodeAffinity {
                    node: gone,
                    soft: false
                },
                &n.candidates(&[0; 3]),
                0
            ),
            Placement::Infeasible(_)
        ));
        assert_eq!(
            place(
                &plain,
                SchedulingStrategy::NodeAffinity {
                    node: gone,
                    soft: true
                },
                &n.candidates(&[0; 3]),
                0
            ),
            Placement::Local
        );
        assert!(matches!(
            place(
                &req(64.0, &[]),
                SchedulingStrategy::Default,
                &n.candidates(&[0; 3]),
                0
            ),
            Placement::Infeasible(_)
        ));
    }

    #[test]
    fn a_node_that_cannot_start_work_passes_it_to_a_peer_with_room() {
        let one = ResourceRequest::new(1.0, 0.0, &[]).unwrap();
        let total = [("CPU".to_string(), 2.0)];
        let none_free = [("CPU".to_string(), 0.0)];
        let two_free = [("CPU".to_string(), 2.0)];
        let (full, roomy) = (NodeId::random(), NodeId::random());
        fn peer<'a>(
            id: NodeId,
            total: &'a [(String, f64)],
            free: &'a [(String, f64)],
            load: u32,
        ) -> Candidate<'a> {
            Candidate {
                id,
                local: false,
                total,
                load,
                free: Some(FreeNow {
                    reported: free,
                    placed: None,
                }),
            }
        }
        // It would start here at once, or was passed on enough times already: it stays.
        assert!(!may_spill(true, 0));
        assert!(!may_spill(false, MAX_SPILL_HOPS));
        assert!(may_spill(false, MAX_SPILL_HOPS - 1));
        let peers = [
            peer(full, &total, &none_free, 2),
            peer(roomy, &total, &two_free, 0),
        ];
        assert_eq!(spill_back(&one, &peers), Some(roomy));
        // No peer has room: it waits here.
        assert_eq!(spill_back(&one, &peers[..1]), None);
        // A peer whose room is unknown is not guessed at.
        let unknown = [Candidate {
            free: None,
            ..peer(roomy, &total, &two_free, 0)
        }];
        assert_eq!(spill_back(&one, &unknown), None);
    }
}
