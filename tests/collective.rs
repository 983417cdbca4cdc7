//! `mobula::collective`: every operation, every element type, 2 to 4 members, odd lengths,
//! within one node and across the nodes of a `LocalCluster` (letters over QUIC); and a
//! member that dies failing the group's pending operations with its name rather than a hang.

mod common;

use common::{eventually, turn};
use mobula::collective::{self, CollectiveError, Element, ReduceOp};
use mobula::prelude::*;
use mobula::{NodeId, SchedulingStrategy};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Kind {
    F32,
    F64,
    I32,
    I64,
    U8,
}

const KINDS: [Kind; 5] = [Kind::F32, Kind::F64, Kind::I32, Kind::I64, Kind::U8];

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Op {
    Allreduce(ReduceOp),
    Reduce(usize, ReduceOp),
    Broadcast(usize),
    Allgather,
    Reducescatter(ReduceOp),
    Barrier,
    /// Each rank sends to the next and receives from the previous.
    SendRecv,
}

/// Rank `rank`'s input: small integers (exact in every type), different per rank.
fn input(rank: usize, len: usize) -> Vec<f64> {
    (0..len).map(|i| ((rank * 7 + i * 3) % 50) as f64).collect()
}

trait Cast: Element + Default {
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
}

macro_rules! cast {
    ($($t:ty),*) => {$(
        impl Cast for $t {
            fn from_f64(x: f64) -> Self { x as $t }
            fn to_f64(self) -> f64 { self as f64 }
        }
    )*};
}
cast!(f32, f64, i32, i64, u8);

fn run<T: Cast>(
    op: Op,
    rank: usize,
    world: usize,
    len: usize,
    group: &str,
) -> Result<Vec<f64>, CollectiveError> {
    let mut data: Vec<T> = input(rank, len).into_iter().map(T::from_f64).collect();
    let out: Vec<T> = match op {
        Op::Allreduce(r) => {
            collective::allreduce(&mut data, r, group)?;
            data
        }
        Op::Reduce(root, r) => {
            collective::reduce(&mut data, root, r, group)?;
            data
        }
        Op::Broadcast(root) => {
            collective::broadcast(&mut data, root, group)?;
            data
        }
        Op::Allgather => {
            let mut out = vec![T::default(); len * world];
            collective::allgather(&data, &mut out, group)?;
            out
        }
        Op::Reducescatter(r) => {
            let each = len / world;
            let mut out = vec![T::default(); each];
            collective::reducescatter(&data[..each * world], &mut out, r, group)?;
            out
        }
        Op::Barrier => {
            collective::barrier(group)?;
            data
        }
        Op::SendRecv => {
            collective::send(&data, (rank + 1) % world, group)?;
            let mut got = vec![T::default(); len];
            collective::recv(&mut got, (rank + world - 1) % world, group)?;
            got
        }
    };
    Ok(out.into_iter().map(T::to_f64).collect())
}

/// What rank `rank` must hold after `op`, computed plainly.
fn expected(kind: Kind, op: Op, rank: usize, world: usize, len: usize) -> Vec<f64> {
    let inputs: Vec<Vec<f64>> = (0..world).map(|r| input(r, len)).collect();
    let combine = |r: ReduceOp, i: usize| -> f64 {
        let column = inputs.iter().map(|v| v[i]);
        match r {
            ReduceOp::Sum => column.sum(),
            ReduceOp::Min => column.fold(f64::MAX, f64::min),
            ReduceOp::Max => column.fold(f64::MIN, f64::max),
            ReduceOp::Mean => {
                let sum: f64 = column.sum();
                match kind {
                    Kind::F32 => f64::from(sum as f32 / world as f32),
                    Kind::F64 => sum / world as f64,
                    _ => ((sum as i64) / world as i64) as f64,
                }
            }
        }
    };
    match op {
        Op::Allreduce(r) => (0..len).map(|i| combine(r, i)).collect(),
        Op::Reduce(root, r) if rank == root => (0..len).map(|i| combine(r, i)).collect(),
        Op::Reduce(..) | Op::Barrier => inputs[rank].clone(),
        Op::Broadcast(root) => inputs[root].clone(),
        Op::Allgather => inputs.concat(),
        Op::Reducescatter(r) => {
            let each = len / world;
            (rank * each..(rank + 1) * each)
                .map(|i| combine(r, i))
                .collect()
        }
        Op::SendRecv => inputs[(rank + world - 1) % world].clone(),
    }
}

#[mobula::actor]
struct Member {
    rank: usize,
    world: usize,
}

#[mobula::actor]
impl Member {
    fn new(rank: usize, world: usize) -> Self {
        Member { rank, world }
    }

    fn node(&self) -> NodeId {
        mobula::context().node_id().unwrap()
    }

    fn run(&self, kind: Kind, op: Op, len: usize, group: String) -> Result<Vec<f64>, String> {
        let (r, w, g) = (self.rank, self.world, group.as_str());
        match kind {
            Kind::F32 => run::<f32>(op, r, w, len, g),
            Kind::F64 => run::<f64>(op, r, w, len, g),
            Kind::I32 => run::<i32>(op, r, w, len, g),
            Kind::I64 => run::<i64>(op, r, w, len, g),
            Kind::U8 => run::<u8>(op, r, w, len, g),
        }
        .map_err(|e| e.to_string())
    }

    /// Joins from inside, as `init_collective_group` does in Ray.
    fn join(&self, group: String) -> Result<(), String> {
        collective::init_collective_group(self.world as u32, self.rank as u32, &group)
            .map_err(|e| e.to_string())?;
        assert_eq!(collective::get_rank(&group).unwrap(), self.rank);
        assert_eq!(
            collective::get_collective_group_size(&group).unwrap(),
            self.world
        );
        Ok(())
    }

    fn leave(&self, group: String) -> Result<(), String> {
        collective::destroy_collective_group(&group).map_err(|e| e.to_string())
    }
}

fn members(world: usize, nodes: &[NodeId]) -> Vec<MemberHandle> {
    (0..world)
        .map(|r| {
            let mut options = Member::options();
            if !nodes.is_empty() {
                options = options.scheduling_strategy(SchedulingStrategy::NodeAffinity {
                    node: nodes[r % nodes.len()],
                    soft: false,
                });
            }
            options.remote(r, world).unwrap()
        })
        .collect()
}

/// Every op, every type, on `world` members, for lengths around the member count.
fn every_op(members: &[MemberHandle], group: &str) {
    let world = members.len();
    let last = world - 1;
    let ops = [
        Op::Allreduce(ReduceOp::Sum),
        Op::Allreduce(ReduceOp::Mean),
        Op::Allreduce(ReduceOp::Min),
        Op::Allreduce(ReduceOp::Max),
        Op::Reduce(last, ReduceOp::Sum),
        Op::Reduce(0, ReduceOp::Max),
        Op::Broadcast(last),
        Op::Broadcast(0),
        Op::Allgather,
        Op::Reducescatter(ReduceOp::Sum),
        Op::Reducescatter(ReduceOp::Min),
        Op::Barrier,
        Op::SendRecv,
    ];
    for len in [1, 7, 1001] {
        for kind in KINDS {
            for op in ops {
                let refs: Vec<_> = members
                    .iter()
                    .map(|m| m.run(kind, op, len, group.to_string()))
                    .collect();
                for (rank, r) in refs.iter().enumerate() {
                    let got = r.get().unwrap();
                    assert_eq!(
                        got,
                        expected(kind, op, rank, world, len),
                        "{op:?} on {kind:?}, {world} members, rank {rank}, length {len}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_collective_is_exact_for_2_3_and_4_members_in_one_node() {
    let _node = common::start(Config::default().num_cpus(4));
    for world in [2, 3, 4] {
        let group = format!("one-node-{world}");
        let ms = members(world, &[]);
        collective::create_collective_group(&ms, &group).unwrap();
        every_op(&ms, &group);
        collective::destroy_collective_group(&group).unwrap();
    }
    // Joined from inside each member, and the name used again after a destroy.
    let ms = members(3, &[]);
    for _ in 0..2 {
        let joins: Vec<_> = ms.iter().map(|m| m.join("inside".to_string())).collect();
        for j in joins {
            j.get().unwrap();
        }
        let refs: Vec<_> = ms
            .iter()
            .map(|m| {
                m.run(
                    Kind::I64,
                    Op::Allreduce(ReduceOp::Sum),
                    5,
                    "inside".to_string(),
                )
            })
            .collect();
        for (rank, r) in refs.iter().enumerate() {
            assert_eq!(
                r.get().unwrap(),
                expected(Kind::I64, Op::Allreduce(ReduceOp::Sum), rank, 3, 5)
            );
        }
        let leaves: Vec<_> = ms.iter().map(|m| m.leave("inside".to_string())).collect();
        for l in leaves {
            l.get().unwrap();
        }
        // The table actor of the group made from inside goes with its last member's hold.
        eventually("the group's name is free again", || {
            mobula::get_actor_in::<collective::CollectiveGroupInfo>(collective::NAMESPACE, "inside")
                .is_err()
        });
    }
}

#[test]
fn bad_calls_are_errors_not_hangs() {
    let _node = common::start(Config::default().num_cpus(2));
    let ms = members(2, &[]);
    // Not a member of any such group.
    let err = ms[0]
        .run(Kind::F32, Op::Barrier, 1, "none".to_string())
        .get()
        .unwrap_err();
    assert!(
        err.to_string().contains("no collective group \"none\""),
        "{err}"
    );
    collective::create_collective_group(&ms, "bad").unwrap();
    // A root out of range.
    let err = ms[0]
        .run(Kind::F32, Op::Broadcast(5), 3, "bad".to_string())
        .get()
        .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    // Buffers of different lengths: the group fails on both sides, saying why.
    let a = ms[0].run(
        Kind::F64,
        Op::Allreduce(ReduceOp::Sum),
        4,
        "bad".to_string(),
    );
    let b = ms[1].run(
        Kind::F64,
        Op::Allreduce(ReduceOp::Sum),
        6,
        "bad".to_string(),
    );
    let (a, b) = (a.get().unwrap_err(), b.get().unwrap_err());
    assert!(
        a.to_string().contains("different lengths") || b.to_string().contains("different lengths"),
        "{a} / {b}"
    );
    // A second group of the same name from outside is refused while the first stands.
    assert!(matches!(
        collective::create_collective_group(&ms, "bad"),
        Err(CollectiveError::Rendezvous { .. })
    ));
}

#[test]
fn a_member_killed_mid_operation_fails_the_others_with_its_name() {
    let _node = common::start(Config::default().num_cpus(3));
    let ms = members(3, &[]);
    collective::create_collective_group(&ms, "doomed").unwrap();
    // Ranks 0 and 1 wait for rank 2, which never comes: it is killed.
    let waiting: Vec<_> = ms[..2]
        .iter()
        .map(|m| {
            m.run(
                Kind::F32,
                Op::Allreduce(ReduceOp::Sum),
                1000,
                "doomed".to_string(),
            )
        })
        .collect();
    mobula::kill(&ms[2]);
    let victim = ms[2].id().to_string();
    for w in waiting {
        let err = w.get().unwrap_err().to_string();
        assert!(err.contains("rank 2") && err.contains(&victim), "{err}");
    }
    // Later operations fail the same way.
    let err = ms[0]
        .run(Kind::F32, Op::Barrier, 1, "doomed".to_string())
        .get()
        .unwrap_err();
    assert!(err.to_string().contains("rank 2"), "{err}");
}

/// A head without CPUs, two workers with four CPUs each, and the driver joined.
fn cluster() -> (
    mobula::testing::LocalCluster,
    Vec<NodeId>,
    mobula::InitGuard,
) {
    common::local_cluster(
        Config::default().num_cpus(0),
        || Config::default().num_cpus(4),
        2,
        |c| c,
    )
}

#[test]
fn every_collective_is_exact_across_the_nodes_of_a_cluster() {
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster();
    for world in [2, 3, 4] {
        let group = format!("cluster-{world}");
        let ms = members(world, &workers);
        let nodes: Vec<NodeId> = ms.iter().map(|m| m.node().get().unwrap()).collect();
        assert!(nodes.contains(&workers[0]) && nodes.contains(&workers[1]));
        collective::create_collective_group(&ms, &group).unwrap();
        every_op(&ms, &group);
        collective::destroy_collective_group(&group).unwrap();
    }
    // Joined from inside, across nodes.
    let ms = members(4, &workers);
    let joins: Vec<_> = ms.iter().map(|m| m.join("inside".to_string())).collect();
    for j in joins {
        j.get().unwrap();
    }
    let refs: Vec<_> = ms
        .iter()
        .map(|m| {
            m.run(
                Kind::F32,
                Op::Allreduce(ReduceOp::Sum),
                100_003,
                "inside".to_string(),
            )
        })
        .collect();
    for (rank, r) in refs.iter().enumerate() {
        assert_eq!(
            r.get().unwrap(),
            expected(Kind::F32, Op::Allreduce(ReduceOp::Sum), rank, 4, 100_003)
        );
    }
    // Larger buffers (chunks of 600 KB and more, several QUIC packets' worth per letter).
    for op in [
        Op::Allreduce(ReduceOp::Sum),
        Op::Allreduce(ReduceOp::Mean),
        Op::Allgather,
        Op::Reducescatter(ReduceOp::Max),
        Op::Broadcast(3),
    ] {
        let len = 300_001;
        let refs: Vec<_> = ms
            .iter()
            .map(|m| m.run(Kind::F64, op, len, "inside".to_string()))
            .collect();
        for (rank, r) in refs.iter().enumerate() {
            assert!(
                r.get().unwrap() == expected(Kind::F64, op, rank, 4, len),
                "{op:?}, rank {rank}"
            );
        }
    }
}

#[test]
fn a_member_lost_on_another_node_fails_the_group_there_too() {
    let _turn = turn();
    let (mut cluster, workers, _driver) = cluster();
    // Killed actor: ranks 0 and 2 on worker 0 wait for rank 1 on worker 1.
    let ms = members(3, &[workers[0], workers[1], workers[0]]);
    collective::create_collective_group(&ms, "killed").unwrap();
    let ready: Vec<_> = ms
        .iter()
        .map(|m| m.run(Kind::U8, Op::Barrier, 1, "killed".to_string()))
        .collect();
    for r in ready {
        r.get().unwrap();
    }
    let waiting: Vec<_> = [&ms[0], &ms[2]]
        .iter()
        .map(|m| {
            m.run(
                Kind::I32,
                Op::Allreduce(ReduceOp::Max),
                77,
                "killed".to_string(),
            )
        })
        .collect();
    mobula::kill(&ms[1]);
    for w in waiting {
        let err = w.get().unwrap_err().to_string();
        assert!(
            err.contains("rank 1") && err.contains(&ms[1].id().to_string()),
            "{err}"
        );
    }
    // A member's node lost: rank 1 lives on worker 1, which dies.
    let ms = members(2, &workers);
    collective::create_collective_group(&ms, "lost").unwrap();
    let ready: Vec<_> = ms
        .iter()
        .map(|m| m.run(Kind::U8, Op::Barrier, 1, "lost".to_string()))
        .collect();
    for r in ready {
        r.get().unwrap();
    }
    let waiting = ms[0].run(
        Kind::F64,
        Op::Allreduce(ReduceOp::Sum),
        10,
        "lost".to_string(),
    );
    assert!(cluster.kill_node(workers[1]));
    let err = waiting.get().unwrap_err().to_string();
    assert!(err.contains("rank 1"), "{err}");
}
