//! The churn and chaos soaks, shared by their short runs (tests/soak.rs) and their long runs
//! (benches/soak.rs). Both run a `LocalCluster` in this process: a head, workers, and this
//! process as the driver.
//!
//! - Churn: rounds of actors, placement groups, large results and a task that acts as a
//!   second driver (it makes its own actors and groups), all dropped again, with a worker
//!   added and one killed every other round. Afterwards every table that grows with use is
//!   back to its baseline, and links and channels number no more than the live nodes.
//! - Chaos: batches of a mixed workload (tasks with retries, actors with restarts, large
//!   values rebuilt by lineage, chained actor calls), a worker killed without a word while
//!   each batch runs and a fresh one added. Every get returns the right value or one of the
//!   typed errors docs/semantics.md promises, within a bound: never a hang.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mobula::prelude::*;
use mobula::testing::LocalCluster;
use mobula::{GetError, InitGuard, NodeId, SchedulingStrategy, TaskErrorKind};

use crate::common::{eventually_or, local_cluster};

/// Longer than any get here may take when nothing hangs (a node timeout is 1 s).
pub const BOUND: Duration = Duration::from_secs(60);

/// Certificates this short make dead members forgettable within a soak.
const CERTIFICATE_LIFETIME: Duration = Duration::from_secs(3);

#[mobula::actor]
pub struct Keeper {
    total: u64,
}

#[mobula::actor]
impl Keeper {
    pub fn new(start: u64) -> Self {
        Keeper { total: start }
    }

    pub fn add(&mut self, n: u64) -> u64 {
        self.total += n;
        self.total
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

/// `len` bytes, each `seed`.
#[mobula::remote]
pub fn blob(len: usize, seed: u8) -> Vec<u8> {
    vec![seed; len]
}

#[mobula::remote]
pub fn square(x: u64) -> u64 {
    x * x
}

/// Acts as a second driver on a worker: makes an actor and a placement group of its own, a
/// large value, uses them and drops them. Returns a checksum.
#[mobula::remote]
pub fn second_driver(round: u64) -> u64 {
    let keeper = Keeper::remote(round).unwrap();
    let total = keeper.add(1).get_timeout(BOUND).unwrap();
    let group = mobula::placement_group(
        vec![mobula::Bundle::new().num_cpus(0.5)],
        mobula::PlacementStrategy::Pack,
    )
    .unwrap();
    group.ready().unwrap();
    let inside = square
        .options()
        .placement_group(&group, Some(0))
        .num_cpus(0.5)
        .remote(round)
        .get_timeout(BOUND)
        .unwrap();
    mobula::remove_placement_group(&group);
    let big = blob
        .options()
        .scheduling_strategy(SchedulingStrategy::Spread)
        .remote(2 << 20, 7)
        .get_timeout(BOUND)
        .unwrap();
    total + inside + big.len() as u64
}

/// A cluster for a soak: a head without CPUs, `workers` workers with two CPUs each, this
/// process as the driver; 1 s node timeouts, 3 s certificates.
pub struct Soak {
    pub cluster: LocalCluster,
    pub workers: Vec<NodeId>,
    _driver: InitGuard,
}

pub fn start(workers: usize) -> Soak {
    let head = Config::default()
        .num_cpus(0)
        .node_timeout(Duration::from_secs(1))
        .certificate_lifetime(CERTIFICATE_LIFETIME);
    let worker = || {
        Config::default()
            .num_cpus(2)
            .node_timeout(Duration::from_secs(1))
    };
    let (cluster, workers, driver) = local_cluster(head, worker, workers, |c| {
        c.num_cpus(0).node_timeout(Duration::from_secs(1))
    });
    Soak {
        cluster,
        workers,
        _driver: driver,
    }
}

impl Soak {
    /// Adds a worker, then kills the oldest one without a word.
    pub fn replace_a_worker(&mut self) -> NodeId {
        let fresh = self
            .cluster
            .add_node(
                Config::default()
                    .num_cpus(2)
                    .node_timeout(Duration::from_secs(1)),
            )
            .expect("a worker joins");
        let old = self.workers.remove(0);
        assert!(self.cluster.kill_node(old));
        self.workers.push(fresh);
        old
    }

    /// Every table of every live node (the driver's included), summed by table; and the
    /// largest count of links or task channels any one node has.
    pub fn tables(&self) -> (BTreeMap<&'static str, usize>, usize) {
        let mut sums = BTreeMap::new();
        let mut widest = 0;
        let mut add = |sizes: Vec<(&'static str, usize)>| {
            for (name, n) in sizes {
                if matches!(name, "links" | "task_channels") {
                    widest = widest.max(n);
                } else {
                    *sums.entry(name).or_insert(0) += n;
                }
            }
        };
        add(mobula::node::table_sizes());
        for id in self.cluster.node_ids() {
            add(self.cluster.table_sizes(id));
        }
        (sums, widest)
    }

    /// Live nodes, the driver included.
    pub fn live_nodes(&self) -> usize {
        self.cluster.node_ids().len() + 1
    }
}

/// Threads this process runs now.
pub fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The resident memory of this process, and its peak, in bytes.
pub fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What a churn soak did and saw.
#[derive(Debug)]
pub struct ChurnReport {
    pub rounds: u64,
    pub nodes_replaced: u64,
    pub baseline: BTreeMap<&'static str, usize>,
    pub after: BTreeMap<&'static str, usize>,
    pub widest_after: usize,
    pub rss_baseline: u64,
    pub rss_after: u64,
    pub threads_baseline: u64,
    pub threads_after: u64,
}

/// One round of work that leaves nothing behind.
fn churn_round(soak: &Soak, round: u64) {
    let keepers: Vec<_> = (0..3)
        .map(|i| {
            Keeper::options()
                .scheduling_strategy(SchedulingStrategy::Spread)
                .remote(i)
                .unwrap()
        })
        .collect();
    for (i, k) in keepers.iter().enumerate() {
        assert_eq!(k.add(1).get_timeout(BOUND).unwrap(), i as u64 + 1);
    }
    drop(keepers);
    let group = mobula::placement_group(
        vec![mobula::Bundle::new().num_cpus(1); 2],
        mobula::PlacementStrategy::Spread,
    )
    .unwrap();
    group.ready().unwrap();
    assert_eq!(
        square
            .options()
            .placement_group(&group, Some(1))
            .remote(round)
            .get_timeout(BOUND)
            .unwrap(),
        round * round
    );
    mobula::remove_placement_group(&group);
    // Large values, left on the workers that made them: two fetched, two dropped unread.
    let bigs: Vec<_> = (0..4)
        .map(|i| {
            blob.options()
                .scheduling_strategy(SchedulingStrategy::Spread)
                .remote(2 << 20, i)
        })
        .collect();
    for (i, b) in bigs.iter().take(2).enumerate() {
        let v = b.get_timeout(BOUND).unwrap();
        assert_eq!((v.len(), v[0]), (2 << 20, i as u8));
    }
    drop(bigs);
    let on = soak.workers[round as usize % soak.workers.len()];
    let sum = second_driver
        .options()
        .scheduling_strategy(SchedulingStrategy::NodeAffinity {
            node: on,
            soft: false,
        })
        .remote(round)
        .get_timeout(BOUND)
        .unwrap();
    assert_eq!(sum, round + 1 + round * round + (2 << 20));
}

/// Runs `rounds` rounds of churn after one to warm up (replacing a worker every other round
/// when `replace`), and waits for every table to come back to its baseline.
pub fn churn(soak: &mut Soak, rounds: u64, replace: bool) -> ChurnReport {
    churn_round(soak, 0);
    let (baseline, _) = settled(soak, None);
    let rss_baseline = rss().0;
    let threads_baseline = threads();
    let mut replaced = 0;
    for round in 1..=rounds {
        churn_round(soak, round);
        if replace && round % 2 == 0 {
            let old = soak.replace_a_worker();
            replaced += 1;
            // Churn is not chaos: the next round starts once every node knows.
            // Listed dead, or already forgotten (its certificates expired).
            let dead = |nodes: Vec<mobula::node::NodeState>| {
                !nodes.iter().any(|n| n.info.node_id == old && n.alive)
            };
            crate::common::eventually("every node sees the killed worker dead", || {
                dead(mobula::node::nodes())
                    && soak
                        .cluster
                        .node_ids()
                        .into_iter()
                        .all(|id| dead(soak.cluster.view_of(id)))
            });
        }
    }
    let (after, widest_after) = settled(soak, Some(&baseline));
    ChurnReport {
        rounds,
        nodes_replaced: replaced,
        baseline,
        after,
        widest_after,
        rss_baseline,
        rss_after: rss().0,
        threads_baseline,
        threads_after: threads(),
    }
}

/// Waits until the tables are at `baseline` or below (links and channels: no more than the
/// live nodes), or until they stop changing when there is no baseline yet.
fn settled(
    soak: &Soak,
    baseline: Option<&BTreeMap<&'static str, usize>>,
) -> (BTreeMap<&'static str, usize>, usize) {
    let mut last = soak.tables();
    eventually_or(
        "every table is back to its baseline",
        || {
            let now = soak.tables();
            let ok = match baseline {
                Some(base) => {
                    now.0.iter().all(|(name, n)| {
                        // Members come and go with node churn; the rest comes back down.
                        *name == "members" || *n <= base.get(name).copied().unwrap_or(0)
                    }) && now.1 <= soak.live_nodes()
                }
                None => now == last,
            };
            last = now;
            ok
        },
        || format!("tables now: {:?}; baseline: {baseline:?}", soak.tables()),
    );
    soak.tables()
}

/// What a chaos soak did and saw.
#[derive(Debug, Default)]
pub struct ChaosReport {
    pub rounds: u64,
    pub faults: u64,
    pub checked: u64,
    pub errors: BTreeMap<String, u64>,
    /// The first error of each kind, in full.
    pub examples: BTreeMap<String, String>,
    pub peak_rss: u64,
}

/// The kind of an error a get may end with under chaos; anything else fails the soak.
fn allowed(e: &GetError) -> Option<String> {
    match e {
        GetError::Task(t) if t.kind == TaskErrorKind::WorkerDied => {
            Some("task: worker died".into())
        }
        GetError::ActorDied { .. } => Some("actor died".into()),
        GetError::ActorRestarting { .. } => Some("actor restarting".into()),
        GetError::ActorUnavailable { .. } => Some("actor unavailable".into()),
        GetError::ObjectLost { .. } => Some("object lost".into()),
        GetError::Unschedulable { .. } => Some("unschedulable".into()),
        _ => None,
    }
}

/// Checks a get: the right value, or an allowed error; a timeout is a hang.
fn check<T: PartialEq + std::fmt::Debug>(
    report: &mut ChaosReport,
    what: &str,
    got: Result<T, GetError>,
    want: impl FnOnce(&T) -> bool,
) {
    report.checked += 1;
    match got {
        Ok(v) => assert!(want(&v), "{what}: wrong value {v:?}"),
        Err(e) => match allowed(&e) {
            Some(kind) => {
                report
                    .examples
                    .entry(kind.clone())
                    .or_insert_with(|| e.to_string());
                *report.errors.entry(kind).or_insert(0) += 1
            }
            None => panic!("{what}: {e}"),
        },
    }
}

/// Runs `rounds` batches of a mixed workload, killing a worker (and adding a fresh one)
/// while each runs.
pub fn chaos(soak: &mut Soak, rounds: u64) -> ChaosReport {
    let mut report = ChaosReport::default();
    let started = Instant::now();
    for round in 0..rounds {
        let tasks: Vec<_> = (0..40u64)
            .map(|i| {
                square
                    .options()
                    .scheduling_strategy(SchedulingStrategy::Spread)
                    .max_retries(3)
                    .remote(i)
            })
            .collect();
        let bigs: Vec<_> = (0..4u8)
            .map(|i| {
                blob.options()
                    .scheduling_strategy(SchedulingStrategy::Spread)
                    .max_retries(3)
                    .remote(1 << 20 | 1, i)
            })
            .collect();
        let keepers: Vec<_> = (0..3u64)
            .map(|i| {
                Keeper::options()
                    .scheduling_strategy(SchedulingStrategy::Spread)
                    .max_restarts(-1)
                    .max_task_retries(-1)
                    .remote(i)
                    .unwrap()
            })
            .collect();
        // Chained calls: each add takes the previous answer.
        let chains: Vec<_> = keepers
            .iter()
            .map(|k| {
                let mut last = k.add(1);
                for _ in 0..4 {
                    last = k.add(&last);
                }
                last
            })
            .collect();
        // A fault while all that runs.
        soak.replace_a_worker();
        report.faults += 1;
        for (i, t) in tasks.iter().enumerate() {
            let i = i as u64;
            check(&mut report, "a task", t.get_timeout(BOUND), |v| *v == i * i);
        }
        for (i, b) in bigs.iter().enumerate() {
            check(&mut report, "a large value", b.get_timeout(BOUND), |v| {
                v.len() == (1 << 20 | 1) && v[0] == i as u8
            });
        }
        for c in &chains {
            // A restarted actor starts over, and retried calls may run twice: any total.
            check(&mut report, "a chained call", c.get_timeout(BOUND), |v| {
                *v > 0
            });
        }
        for (i, k) in keepers.iter().enumerate() {
            // At least where it started (a restart starts it over).
            let start = i as u64;
            check(
                &mut report,
                "an actor call",
                k.total().get_timeout(BOUND),
                |v| *v >= start,
            );
        }
        report.rounds = round + 1;
    }
    report.peak_rss = rss().1;
    let _ = started;
    report
}
