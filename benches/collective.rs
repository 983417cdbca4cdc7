//! Allreduce bus bandwidth (nccl-tests' definition: size x 2(n-1)/n / time) from 4 KB to
//! 256 MB, 2 and 4 members, on one node and across two worker processes (each node its own
//! QUIC endpoint on loopback; this process is the head), beside `../shared/bench/ray/allreduce_objects.py`
//! (Ray actors summing f32 arrays through the object store). Across nodes it also measures
//! the node-to-node transfer rate in the same run (a `Vec<f32>` made by a task on one node
//! and read by an actor on the other) and prints the ratio.
//!
//!     cargo bench --bench collective                  # 5 rounds per case
//!     cargo bench --bench collective -- --quick      # 4 KB and 4 MB, 2 members (CI)
//!     MOBULA_BENCH_SIZES=67108864 MOBULA_BENCH_WORKERS=2 MOBULA_BENCH_WHERE=node \
//!         cargo bench --bench collective              # one case
//!     /tmp/rayenv/bin/python ../shared/bench/ray/allreduce_objects.py --workers 2 --mb 4,64
//!
//! Prints one line per case, in the Ray script's format:
//! `allreduce where=W workers=N bytes=B s_per_op=T busbw_gbs=G`.

use std::time::Instant;

use mobula::collective::{self, ReduceOp};
use mobula::prelude::*;
use mobula::{NodeId, SchedulingStrategy};

#[path = "common/workers.rs"]
mod workers;

use workers::{spawn_worker, wait_for_workers};

#[mobula::actor]
struct Rank {
    data: Vec<f32>,
}

#[mobula::actor]
impl Rank {
    fn new(len: usize) -> Self {
        Rank {
            data: vec![1.0; len],
        }
    }

    fn allreduce(&mut self, group: String) -> Result<f32, String> {
        collective::allreduce(&mut self.data, ReduceOp::Sum, &group).map_err(|e| e.to_string())?;
        Ok(self.data[0])
    }

    /// Reads a value made by a task on node `from`: seconds taken.
    fn pull(&self, len: usize, from: NodeId) -> f64 {
        let started = Instant::now();
        let made = make
            .options()
            .scheduling_strategy(on(from))
            .remote(len)
            .get()
            .unwrap();
        assert_eq!(made.len(), len);
        started.elapsed().as_secs_f64()
    }
}

#[mobula::remote]
fn make(len: usize) -> Vec<f32> {
    vec![2.0; len]
}

fn on(node: NodeId) -> SchedulingStrategy {
    SchedulingStrategy::NodeAffinity { node, soft: false }
}

/// Seconds per allreduce of `bytes` over `world` members placed round-robin on `nodes`
/// (anywhere when empty), the median of `rounds`.
fn allreduce(world: usize, bytes: usize, nodes: &[NodeId], rounds: usize, tag: &str) -> f64 {
    let len = bytes / 4;
    let ranks: Vec<RankHandle> = (0..world)
        .map(|r| {
            let mut options = Rank::options().num_cpus(0);
            if !nodes.is_empty() {
                options = options.scheduling_strategy(on(nodes[r % nodes.len()]));
            }
            options.remote(len).unwrap()
        })
        .collect();
    let group = format!("bench-{tag}-{world}-{bytes}");
    collective::create_collective_group(&ranks, &group).unwrap();
    let once = || {
        let refs: Vec<_> = ranks.iter().map(|r| r.allreduce(group.clone())).collect();
        for r in refs {
            r.get().unwrap();
        }
    };
    once(); // warm: the group's table read, pages touched
    // Small cases are over in well under a millisecond: more rounds for a steady median.
    let rounds = if bytes <= 16 << 20 {
        rounds * 4
    } else {
        rounds
    };
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            once();
            started.elapsed().as_secs_f64()
        })
        .collect();
    collective::destroy_collective_group(&group).unwrap();
    for r in &ranks {
        mobula::kill(r);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn report(place: &str, world: usize, bytes: usize, s: f64) -> f64 {
    let busbw = bytes as f64 * 2.0 * (world as f64 - 1.0) / world as f64 / s / 1e9;
    println!(
        "allreduce where={place} workers={world} bytes={bytes} s_per_op={s:.6} busbw_gbs={busbw:.3}"
    );
    busbw
}

fn main() {
    if workers::run_if_worker() {
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 3 } else { 5 };
    let sizes: Vec<usize> = if quick {
        vec![4 << 10, 4 << 20]
    } else {
        vec![
            4 << 10,
            64 << 10,
            1 << 20,
            4 << 20,
            16 << 20,
            64 << 20,
            256 << 20,
        ]
    };
    let sizes = match std::env::var("MOBULA_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|x| x.parse().expect("sizes in bytes"))
            .collect(),
        Err(_) => sizes,
    };
    let worlds: Vec<usize> = match std::env::var("MOBULA_BENCH_WORKERS") {
        Ok(list) => list
            .split(',')
            .map(|x| x.parse().expect("worker counts"))
            .collect(),
        Err(_) if quick => vec![2],
        Err(_) => vec![2, 4],
    };
    let only = std::env::var("MOBULA_BENCH_WHERE").ok();
    let runs = |place: &str| only.as_deref().is_none_or(|o| o == place);

    // One node, two CPUs as Ray's script has.
    if runs("node") {
        let _rt = mobula::init(Config::default().num_cpus(2)).unwrap();
        for &world in &worlds {
            for &bytes in &sizes {
                let s = allreduce(world, bytes, &[], rounds, "node");
                report("node", world, bytes, s);
            }
        }
    }
    mobula::shutdown();
    if !runs("cluster") {
        return;
    }

    // Across node processes: this process the head (no CPUs), two worker processes of this
    // binary, each its own QUIC endpoint on loopback.
    let dir = std::env::temp_dir().join(format!("mobula-bench-collective-{}", std::process::id()));
    let _head = mobula::init(
        Config::default()
            .num_cpus(0)
            .head("127.0.0.1:0")
            .cluster_dir(&dir),
    )
    .unwrap();
    let head = mobula::node::head_address().expect("a head has an address");
    let _processes: Vec<workers::Worker> = (0..2).map(|_| spawn_worker(head, &dir)).collect();
    let workers = wait_for_workers(2);
    for &world in &worlds {
        for &bytes in &sizes {
            let s = allreduce(world, bytes, &workers, rounds, "cluster");
            let busbw = report("cluster", world, bytes, s);
            // The node-to-node rate for a value of the size each member sends per step
            // times the steps: the same bytes one way, as one object.
            let puller = Rank::options()
                .num_cpus(0)
                .scheduling_strategy(on(workers[0]))
                .remote(0usize)
                .unwrap();
            let len = bytes / 4;
            puller.pull(len, workers[1]).get().unwrap();
            let mut pulls: Vec<f64> = (0..rounds)
                .map(|_| puller.pull(len, workers[1]).get().unwrap())
                .collect();
            pulls.sort_by(f64::total_cmp);
            let rate = bytes as f64 / pulls[pulls.len() / 2] / 1e9;
            mobula::kill(&puller);
            println!(
                "transfer where=cluster bytes={bytes} gbs={rate:.3} allreduce_busbw_over_transfer={:.2}",
                busbw / rate
            );
        }
    }
}
