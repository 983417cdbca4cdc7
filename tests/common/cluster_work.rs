//! Work that the cluster tests (processes and in-process) both send to nodes: each piece says
//! where it ran. Included with `#[path]` by those test files only.
#![allow(dead_code)]

use std::time::Duration;

use mobula::{NodeId, SchedulingStrategy};

/// Hard affinity to `node`.
pub fn on(node: NodeId) -> SchedulingStrategy {
    SchedulingStrategy::NodeAffinity { node, soft: false }
}

/// `i * i` and where it ran.
#[mobula::remote]
pub fn where_am_i(i: u64) -> (u64, NodeId) {
    (i * i, mobula::context().node_id().unwrap())
}

/// `n` bytes counting up modulo 251.
#[mobula::remote]
pub fn make_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// As [`where_am_i`], after a millisecond.
#[mobula::remote]
pub fn slow_square(i: u64) -> (u64, NodeId) {
    std::thread::sleep(Duration::from_millis(1));
    (i * i, mobula::context().node_id().unwrap())
}

/// An actor keeping a log of what it was given.
#[mobula::actor]
pub struct Tally {
    log: Vec<u64>,
}

#[mobula::actor]
impl Tally {
    pub fn new(first: u64) -> Self {
        Tally { log: vec![first] }
    }

    /// Appends `x`; returns how many entries there are and where the actor runs.
    pub fn add(&mut self, x: u64) -> (usize, NodeId) {
        self.log.push(x);
        (self.log.len(), mobula::context().node_id().unwrap())
    }

    pub fn log(&self) -> Vec<u64> {
        self.log.clone()
    }

    pub fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    pub fn pid(&self) -> u32 {
        std::process::id()
    }

    pub fn fail(&self) -> Result<u64, String> {
        Err("refused on purpose".into())
    }
}

/// Calls the actor from a task: returns the call's result and the task's own node.
#[mobula::remote]
pub fn add_from_a_task(tally: TallyHandle, x: u64) -> (usize, NodeId, NodeId) {
    let (len, actor_node) = tally.add(x).get().unwrap();
    (len, actor_node, mobula::context().node_id().unwrap())
}

/// `n` squares computed by tasks spread over the nodes: checks every value, returns them
/// with where each ran.
pub fn spread_squares(n: u64) -> Vec<(u64, NodeId)> {
    let refs: Vec<_> = (0..n)
        .map(|i| {
            where_am_i
                .options()
                .scheduling_strategy(SchedulingStrategy::Spread)
                .remote(i)
        })
        .collect();
    let results = mobula::get_all(&refs).unwrap();
    assert_eq!(
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..n).map(|i| i * i).collect::<Vec<_>>()
    );
    results
}
