//! Chained actor calls: a call whose argument is the ref of an earlier call, on the same
//! actor or another, from one caller or several, with the actor on this node or another.
//! Each must finish (the calling side must not wait for an argument inside the loop that
//! settles answers), and calls from one caller still run in the order made.

mod common;

use std::time::Duration;

use common::{Gate, local_cluster, start, turn};
use mobula::prelude::*;
use mobula::{GetError, NodeId, SchedulingStrategy};

#[mobula::actor]
struct Acc {
    total: i64,
    seen: Vec<i64>,
}

#[mobula::actor]
impl Acc {
    fn new(start: i64) -> Self {
        Acc {
            total: start,
            seen: Vec::new(),
        }
    }

    fn value(&self) -> i64 {
        self.total
    }

    /// Adds `n`; returns the new total.
    fn add(&mut self, n: i64) -> i64 {
        self.seen.push(n);
        self.total += n;
        self.total
    }

    /// Adds `n`; returns `n`.
    fn record(&mut self, n: i64) -> i64 {
        self.seen.push(n);
        self.total += n;
        n
    }

    fn seen(&self) -> Vec<i64> {
        self.seen.clone()
    }
}

/// How long any one get here may take before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(30);

fn on(node: NodeId) -> SchedulingStrategy {
    SchedulingStrategy::NodeAffinity { node, soft: false }
}

/// `value`, then `add` of that value, 20 times over: the total doubles each time.
fn doubling(acc: &AccHandle) {
    let first = acc.value();
    assert_eq!(acc.add(&first).get_timeout(BOUND).unwrap(), 2);
    let mut last = acc.value();
    for _ in 0..20 {
        last = acc.add(&last);
    }
    assert_eq!(last.get_timeout(BOUND).unwrap(), 2 << 20);
}

/// `record(k)`, then five `record`s each taking the previous answer: six records of `k`.
fn record_chain(acc: &AccHandle, k: i64) -> ObjectRef<i64> {
    let mut x = acc.record(k);
    for _ in 0..5 {
        x = acc.record(&x);
    }
    x
}

/// [`record_chain`] from a task; returns what came out.
#[mobula::remote]
fn chain_from_a_task(acc: AccHandle, k: i64) -> i64 {
    record_chain(&acc, k).get_timeout(BOUND).unwrap()
}

/// A head without CPUs, two workers with two each, and this process as the driver.
fn two_workers() -> (
    mobula::testing::LocalCluster,
    Vec<NodeId>,
    mobula::InitGuard,
) {
    local_cluster(
        Config::default().num_cpus(0),
        || Config::default().num_cpus(2),
        2,
        |c| c.num_cpus(0),
    )
}

/// An `Acc` starting at `start`, pinned to `node`.
fn acc_on(node: NodeId, start: i64) -> AccHandle {
    Acc::options()
        .scheduling_strategy(on(node))
        .remote(start)
        .unwrap()
}

#[test]
fn a_chained_call_on_a_local_actor_finishes() {
    let _node = start(Config::default().num_cpus(2));
    let acc = Acc::remote(1).unwrap();
    doubling(&acc);
}

#[test]
fn chained_calls_on_an_actor_on_another_node_finish_in_order() {
    let _turn = turn();
    let (_cluster, workers, _driver) = two_workers();
    let acc = acc_on(workers[0], 1);
    doubling(&acc);
    let expected: Vec<i64> = std::iter::once(1).chain((1..=20).map(|i| 1 << i)).collect();
    assert_eq!(acc.seen().get_timeout(BOUND).unwrap(), expected);

    // A ref from another actor, on another node, as the argument.
    let other = acc_on(workers[1], 5);
    let five = other.value();
    let acc2 = acc_on(workers[0], 0);
    assert_eq!(acc2.add(&five).get_timeout(BOUND).unwrap(), 5);
    assert_eq!(other.add(acc2.value()).get_timeout(BOUND).unwrap(), 10);

    // A call that waits for an argument does not hold back the answers of calls sent before
    // it, nor does it let calls made after it run first.
    let slow_arg = other.value();
    let before = acc2.record(100);
    let waiting = acc2.record(&slow_arg);
    let after = acc2.record(7);
    assert_eq!(after.get_timeout(BOUND).unwrap(), 7);
    assert_eq!(before.get_timeout(BOUND).unwrap(), 100);
    assert_eq!(waiting.get_timeout(BOUND).unwrap(), 10);
    let seen = acc2.seen().get_timeout(BOUND).unwrap();
    assert_eq!(seen, vec![5, 100, 10, 7]);
}

#[test]
fn several_callers_chain_calls_on_one_remote_actor() {
    let _turn = turn();
    let (_cluster, workers, _driver) = two_workers();
    let acc = acc_on(workers[0], 0);
    // Callers: tasks on the other worker and on the actor's own node, and the driver.
    let tasks: Vec<_> = (1..=4)
        .map(|k| {
            chain_from_a_task
                .options()
                .scheduling_strategy(on(workers[(k % 2) as usize]))
                .remote(acc.clone(), k)
        })
        .collect();
    let mine = record_chain(&acc, 10);
    assert_eq!(mine.get_timeout(BOUND).unwrap(), 10);
    let got: Vec<i64> = tasks
        .iter()
        .map(|t| t.get_timeout(BOUND).unwrap())
        .collect();
    assert_eq!(got, vec![1, 2, 3, 4]);
    // Each caller recorded its number six times.
    assert_eq!(
        acc.value().get_timeout(BOUND).unwrap(),
        6 * (1 + 2 + 3 + 4 + 10)
    );
}

static GATE: Gate = Gate::new();

#[mobula::remote]
fn after_the_gate() -> i64 {
    GATE.pass();
    1
}

#[test]
fn a_get_that_times_out_says_how_long_it_waited() {
    let _node = start(Config::default().num_cpus(1));
    GATE.close();
    let never = after_the_gate.remote();
    let waited = Duration::from_millis(300);
    match never.get_timeout(waited) {
        Err(GetError::Timeout { timeout, .. }) => {
            assert!(timeout >= waited, "said it waited {timeout:?}");
            let text = GetError::Timeout {
                object_id: mobula::ObjectId::NIL,
                timeout,
            }
            .to_string();
            assert!(!text.contains("after 0ns"), "{text}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    GATE.open();
    assert_eq!(never.get_timeout(BOUND).unwrap(), 1);
}
