//! Spill-back, as a node that was handed work decides it, over real QUIC: a task placed by
//! policy that its node cannot start now goes to a peer with room (answered `Moved`, having
//! not run); one passed on too often, or pinned there, waits for the node's CPU instead.
//! (tests/local_cluster.rs has four actors that only all start if spill-back works.)

mod common;
#[path = "common/peers.rs"]
mod peers;

use common::{Gate, eventually, local_cluster, turn};
use mobula::prelude::*;
use mobula::testing::codec;
use mobula::wire::{MAX_SPILL_HOPS, Message, Role, RunTask, TaskOutcome};
use mobula::{NodeId, SchedulingStrategy, TaskId};
use peers::*;

static GATE: Gate = Gate::new();

#[mobula::remote]
fn held_up() -> u64 {
    GATE.pass();
    1
}

#[mobula::remote]
fn triple(x: u64) -> u64 {
    x * 3
}

/// `triple(7)` as a node receives it, passed on `spill` times (`None`: pinned there).
fn run_triple(spill: Option<u8>) -> Message {
    let function = mobula::registry::function_ids()
        .into_iter()
        .find(|id| id.ends_with("triple"))
        .expect("triple is registered");
    Message::RunTask(RunTask {
        task: TaskId::NIL,
        function: function.to_string(),
        args: vec![codec::encode(&7u64).unwrap()],
        streamed: Vec::new(),
        resources: vec![("CPU".into(), 1.0)],
        max_retries: 0,
        retry_exceptions: false,
        name: None,
        log_to: NodeId::random(),
        spill,
    })
}

#[test]
fn a_node_that_cannot_start_a_task_passes_it_to_a_peer_with_room() {
    let _turn = turn();
    // The test's own driver identity sends no heartbeats: a long node timeout keeps it a
    // member throughout.
    let (cluster, workers, _driver) = local_cluster(
        Config::default()
            .num_cpus(0)
            .node_timeout(std::time::Duration::from_secs(60)),
        || Config::default().num_cpus(1),
        2,
        |c| c.num_cpus(0),
    );
    let (full, roomy) = (workers[0], workers[1]);
    // The full node's one CPU is taken by a task pinned there.
    GATE.close();
    let blocker = held_up
        .options()
        .scheduling_strategy(SchedulingStrategy::NodeAffinity {
            node: full,
            soft: false,
        })
        .remote();
    // Until the full node's view shows the other with room, and the driver's shows it full.
    eventually("the full node is seen full and the other free", || {
        let nodes = mobula::node::nodes();
        let free = |id| {
            nodes.iter().find(|n| n.info.node_id == id).and_then(|n| {
                n.available
                    .iter()
                    .find(|(r, _)| r == "CPU")
                    .map(|(_, a)| *a)
            })
        };
        free(full) == Some(0.0) && free(roomy) == Some(1.0)
    });
    let join = cluster.join_info().clone();
    let rt = runtime();
    let identity = rt.block_on(join_as(&join, Role::Driver)).unwrap();
    let endpoint = rt.block_on(async { endpoint_of(&identity) });
    let register = Message::Register(driver_info(&identity, &endpoint));
    assert_eq!(rt.block_on(ask(&endpoint, join.address, &register)), "View");
    let full_address = address_of(full);
    // On a task channel to the full node: each task and its answer.
    let answers = rt.block_on(async {
        let link = endpoint.link(full_address).await.unwrap();
        let (mut tx, mut rx) = link.open_bi().await.unwrap();
        let mut answers = Vec::new();
        mobula::transport::link::send(&mut tx, &Message::OpenTasks)
            .await
            .unwrap();
        // Placed by policy, never passed on: passed on to the peer with room.
        mobula::transport::link::send(&mut tx, &run_triple(Some(0)))
            .await
            .unwrap();
        // (Bounded: a node that kept it would not answer before the gate opens.)
        let first = tokio::time::timeout(BOUND, mobula::transport::link::recv(&mut rx)).await;
        answers.push(first.expect("an answer before the CPU is free").unwrap());
        // Passed on as often as allowed already, and pinned: both wait here for the CPU.
        mobula::transport::link::send(&mut tx, &run_triple(Some(MAX_SPILL_HOPS)))
            .await
            .unwrap();
        mobula::transport::link::send(&mut tx, &run_triple(None))
            .await
            .unwrap();
        GATE.open();
        for _ in 0..2 {
            let next = tokio::time::timeout(BOUND, mobula::transport::link::recv(&mut rx)).await;
            answers.push(next.expect("an answer once the CPU is free").unwrap());
        }
        answers
    });
    match &answers[0] {
        Message::TaskDone {
            outcome: TaskOutcome::Moved(node),
            ..
        } => assert_eq!(*node, roomy),
        other => panic!("expected Moved, got {other:?}"),
    }
    let value = codec::encode(&21u64).unwrap();
    for answer in &answers[1..] {
        match answer {
            Message::TaskDone {
                outcome: TaskOutcome::Value(bytes),
                ..
            } => assert_eq!(bytes, &value),
            other => panic!("expected a value, got {other:?}"),
        }
    }
    assert_eq!(blocker.get().unwrap(), 1);
}
