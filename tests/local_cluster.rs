//! A cluster inside this test process (`mobula::testing::LocalCluster`): a head and workers,
//! each a whole node with its own QUIC endpoint on 127.0.0.1 and its own store, and this
//! process's runtime joined as the driver. Nodes are killed in place.

#[path = "common/cluster_work.rs"]
mod cluster_work;
mod common;

use cluster_work::*;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{eventually, turn};
use mobula::prelude::*;
use mobula::testing::LocalCluster;
use mobula::{InitError, NodeId, SchedulingStrategy};

/// A head without CPUs, `n` workers with two each, and the driver joined.
fn cluster(n: usize) -> (LocalCluster, Vec<NodeId>, InitGuard) {
    let worker = || Config::default().num_cpus(2);
    common::local_cluster(Config::default().num_cpus(0), worker, n, |c| c)
}

/// Submits a task from inside a task: it runs through the node the outer task runs on.
#[mobula::remote]
fn nested(i: u64) -> (u64, NodeId, NodeId) {
    let inner = where_am_i
        .options()
        .scheduling_strategy(on(mobula::context().node_id().unwrap()))
        .remote(i);
    let (square, inner_node) = inner.get().unwrap();
    (square, inner_node, mobula::context().node_id().unwrap())
}

#[test]
fn tasks_spread_over_in_process_nodes_and_run_on_the_node_they_were_sent_to() {
    let _turn = turn();
    let (cluster, workers, _driver) = cluster(2);
    assert_eq!(cluster.node_ids().len(), 3, "head and two workers");
    let results = spread_squares(40);
    assert_eq!(
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..40).map(|i| i * i).collect::<Vec<_>>()
    );
    let ran: HashSet<NodeId> = results.iter().map(|r| r.1).collect();
    assert_eq!(
        ran,
        workers.iter().copied().collect(),
        "both workers, no head"
    );

    // A task's own API calls reach the node it runs on.
    for &w in &workers {
        let (square, inner, outer) = nested
            .options()
            .scheduling_strategy(on(w))
            .remote(9)
            .get()
            .unwrap();
        assert_eq!((square, inner, outer), (81, w, w));
    }
}

#[mobula::remote(num_returns = 2)]
fn square_and_node(x: u64) -> (u64, NodeId) {
    (x * x, mobula::context().node_id().unwrap())
}

#[test]
fn num_returns_refs_of_a_task_on_another_node_are_ready_here() {
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster(2);
    let (square, node) = square_and_node.remote(12);
    assert_eq!(square.get().unwrap(), 144);
    assert!(workers.contains(&node.get().unwrap()), "it ran on a worker");
}

#[test]
fn an_actor_on_one_node_is_called_from_a_task_on_another() {
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster(2);
    let (w1, w2) = (workers[0], workers[1]);
    let tally = Tally::options()
        .scheduling_strategy(on(w1))
        .remote(100)
        .unwrap();
    let refs: Vec<_> = (0..50).map(|i| tally.add(i)).collect();
    let lens: Vec<usize> = mobula::get_all(&refs)
        .unwrap()
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(lens, (2..52).collect::<Vec<_>>());
    let (len, actor_node, task_node) = add_from_a_task
        .options()
        .scheduling_strategy(on(w2))
        .remote(tally.clone(), 7)
        .get()
        .unwrap();
    assert_eq!((len, actor_node, task_node), (52, w1, w2));
    let log = tally.log().get().unwrap();
    assert_eq!(log[0], 100);
    assert_eq!(log[51], 7);
}

#[mobula::remote]
fn checksum(data: Vec<u8>) -> (usize, u64, NodeId) {
    (
        data.len(),
        data.iter().map(|&b| u64::from(b)).sum(),
        mobula::context().node_id().unwrap(),
    )
}

#[test]
fn a_64_mb_object_crosses_in_process_nodes_both_ways() {
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster(2);
    let n = 64 << 20;
    // Made on one worker, left there, passed by ref to a task on the other.
    let made = make_bytes
        .options()
        .scheduling_strategy(on(workers[0]))
        .remote(n);
    let (len, sum, node) = checksum
        .options()
        .scheduling_strategy(on(workers[1]))
        .remote(&made)
        .get()
        .unwrap();
    let expected: u64 = (0..n).map(|i| (i % 251) as u64).sum();
    assert_eq!((len, sum, node), (n, expected, workers[1]));
    // And fetched by the driver.
    let back = made.get().unwrap();
    assert_eq!(back.len(), n);
    assert_eq!(back.iter().map(|&b| u64::from(b)).sum::<u64>(), expected);
}

#[test]
fn a_wrong_token_or_ca_is_refused_and_garbage_is_ignored() {
    let _turn = turn();
    let (mut cluster, _workers, _driver) = cluster(1);
    let err = cluster
        .add_node(Config::default().num_cpus(1).join_token("0123"))
        .unwrap_err();
    assert!(
        matches!(&err, InitError::Cluster(why) if why.contains("wrong join token")),
        "{err}"
    );
    let other_ca = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let err = cluster
        .add_node(Config::default().num_cpus(1).ca_fingerprint(other_ca))
        .unwrap_err();
    assert!(
        matches!(&err, InitError::Cluster(why) if why.contains("pinned")),
        "{err}"
    );
    assert_eq!(
        cluster.node_ids().len(),
        2,
        "the refused nodes are not kept"
    );

    // Garbage datagrams at the head's port are dropped; a good node still joins.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200u32 {
        let junk: Vec<u8> = (0..(i % 1300) + 1).map(|j| (j * 7 + i) as u8).collect();
        socket.send_to(&junk, cluster.join_info().address).unwrap();
    }
    let late = cluster.add_node(Config::default().num_cpus(1)).unwrap();
    let (_, ran) = where_am_i
        .options()
        .scheduling_strategy(on(late))
        .remote(2)
        .get()
        .unwrap();
    assert_eq!(ran, late);
}

#[test]
fn killing_a_node_with_10_000_tasks_in_flight_loses_no_result() {
    let _turn = turn();
    let (mut cluster, workers, _driver) = cluster(2);
    let n = 10_000;
    let refs: Vec<_> = (0..n)
        .map(|i| {
            slow_square
                .options()
                .scheduling_strategy(SchedulingStrategy::Spread)
                .remote(i)
        })
        .collect();
    refs[20].get().unwrap();
    assert!(cluster.kill_node(workers[0]));
    let results = mobula::get_all(&refs).unwrap();
    assert_eq!(
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..n).map(|i| i * i).collect::<Vec<_>>()
    );
    let by_dead = results.iter().filter(|r| r.1 == workers[0]).count();
    assert!(by_dead > 0, "the killed node ran tasks before it died");
    assert!(by_dead < (n / 2) as usize, "the survivor ran the rest");
    eventually("the killed node is declared dead", || {
        mobula::node::nodes()
            .iter()
            .any(|n| n.info.node_id == workers[0] && !n.alive)
    });
}

#[test]
fn an_actor_whose_node_is_killed_is_restarted_on_another() {
    let _turn = turn();
    let (mut cluster, workers, _driver) = cluster(2);
    let (w1, w2) = (workers[0], workers[1]);
    let keeps = Tally::options()
        .scheduling_strategy(on(w1))
        .max_restarts(1)
        .max_task_retries(1)
        .remote(1)
        .unwrap();
    assert_eq!(keeps.add(10).get().unwrap(), (2, w1));
    cluster.kill_node(w1);
    assert_eq!(keeps.add(30).get().unwrap(), (2, w2));
    assert_eq!(keeps.log().get().unwrap(), vec![1, 30]);
}

static MADE: AtomicUsize = AtomicUsize::new(0);

/// Large enough to stay on the node that made it until someone wants it.
#[mobula::remote]
fn big(tag: u8) -> (Vec<u8>, NodeId) {
    MADE.fetch_add(1, Ordering::SeqCst);
    (vec![tag; 2 << 20], mobula::context().node_id().unwrap())
}

#[test]
fn a_value_lost_with_its_node_is_rebuilt_from_its_lineage() {
    let _turn = turn();
    let (mut cluster, workers, _driver) = cluster(2);
    let (w1, w2) = (workers[0], workers[1]);
    MADE.store(0, Ordering::SeqCst);
    let near_w1 = SchedulingStrategy::NodeAffinity {
        node: w1,
        soft: true,
    };
    let kept = big.options().scheduling_strategy(near_w1).remote(7);
    let lost = big
        .options()
        .scheduling_strategy(near_w1)
        .max_retries(0)
        .remote(8);
    // Both made and left on w1 (ready, not fetched).
    let (ready, _) = mobula::wait_anywhere(vec![kept.clone(), lost.clone()], 2, None).unwrap();
    assert_eq!(ready.len(), 2);
    assert_eq!(MADE.load(Ordering::SeqCst), 2);
    cluster.kill_node(w1);
    let (bytes, made_on) = kept.get().unwrap();
    assert_eq!(bytes, vec![7u8; 2 << 20]);
    assert_eq!(made_on, w2);
    assert_eq!(
        MADE.load(Ordering::SeqCst),
        3,
        "made once more, not twice more"
    );
    match lost.get() {
        Err(GetError::ObjectLost { reason, .. }) => {
            assert!(reason.contains("no retries left"), "{reason}");
        }
        other => panic!("expected ObjectLost, got {other:?}"),
    }
}

#[test]
fn placement_groups_reserve_bundles_on_in_process_nodes() {
    use mobula::{Bundle, PlacementStrategy};
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster(2);
    let two = || Bundle::new().num_cpus(2);
    let pg = mobula::placement_group(vec![two(), two()], PlacementStrategy::StrictSpread).unwrap();
    pg.ready().unwrap();
    let nodes: HashSet<NodeId> = (0..2).map(|i| pg.bundle_node(i).unwrap()).collect();
    assert_eq!(nodes, workers.iter().copied().collect());
    for i in 0..2 {
        let (_, node) = where_am_i
            .options()
            .placement_group(&pg, Some(i))
            .remote(3)
            .get()
            .unwrap();
        assert_eq!(Some(node), pg.bundle_node(i));
    }
    // While the group holds every CPU, a third 2-CPU bundle cannot be placed anywhere.
    let third = mobula::placement_group(vec![two()], PlacementStrategy::Pack).unwrap();
    assert!(
        !third.wait(Duration::from_millis(300)).unwrap(),
        "not while the first holds it all"
    );
    mobula::remove_placement_group(&pg);
    third.ready().unwrap();
    mobula::remove_placement_group(&third);
}

#[test]
fn a_removed_node_leaves_and_its_work_goes_elsewhere() {
    let _turn = turn();
    let (mut cluster, workers, _driver) = cluster(2);
    assert!(cluster.remove_node(workers[1]));
    assert!(!cluster.remove_node(workers[1]), "already gone");
    eventually("the head knows it left", || {
        mobula::node::nodes()
            .iter()
            .any(|n| n.info.node_id == workers[1] && !n.alive)
    });
    assert!(spread_squares(10).iter().all(|r| r.1 == workers[0]));
}

/// Reports its node for 5 steps.
#[mobula::remote]
fn trial_here(
    config: mobula::tune::TrialConfig,
    session: mobula::tune::Session,
) -> Result<(), mobula::tune::ReportError> {
    let x: f64 = config.get("x").unwrap();
    // Where it ran, for the test.
    let dir = std::path::PathBuf::from(config.get::<String>("dir").unwrap());
    let node = mobula::context().node_id().unwrap();
    std::fs::write(dir.join(session.trial_name()), node.to_string()).unwrap();
    for step in 0..5 {
        session.report([("score", x * step as f64)])?;
    }
    Ok(())
}

#[test]
fn tune_trials_run_on_the_cluster_nodes_and_report_to_the_driver() {
    use mobula::tune::{self, Mode, RunConfig, SearchSpace, TuneConfig, Tuner};
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster(2);
    let dir = std::env::temp_dir().join(format!("mobula-lc-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let results = Tuner::new(trial_here)
        .param_space(
            SearchSpace::new()
                .param("x", tune::uniform(0.0, 1.0))
                .constant("dir", dir.display().to_string()),
        )
        .tune_config(
            TuneConfig::new()
                .metric("score")
                .mode(Mode::Max)
                .num_samples(8)
                .scheduler(
                    tune::Asha::new()
                        .max_t(5)
                        .grace_period(1)
                        .reduction_factor(2),
                ),
        )
        .run_config(
            RunConfig::new()
                .storage_path(dir.join("results"))
                .verbose(0),
        )
        .fit()
        .unwrap();
    assert_eq!(results.len(), 8);
    assert!(results.errors().is_empty());
    let ran: HashSet<String> = results
        .trials()
        .iter()
        .map(|t| std::fs::read_to_string(dir.join(&t.name)).unwrap())
        .collect();
    let workers: HashSet<String> = workers.iter().map(|w| w.to_string()).collect();
    assert!(ran.is_subset(&workers), "{ran:?}");
    assert_eq!(ran.len(), 2, "trials ran on both workers");
    assert!(
        results.trials().iter().any(|t| t.iterations() < 5),
        "ASHA stopped some trial early, through the controller on the driver"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A class-style trainable that counts to 5 and says where it was made (its actor's node).
struct Counting {
    n: u32,
}

impl mobula::tune::Trainable for Counting {
    fn setup(config: &mobula::tune::TrialConfig) -> Result<Self, String> {
        let dir = std::path::PathBuf::from(config.get::<String>("dir").map_err(|e| e.to_string())?);
        let id: u64 = config.get("id").map_err(|e| e.to_string())?;
        let node = mobula::context().node_id().ok_or("no node")?;
        std::fs::write(dir.join(format!("class-{id}")), node.to_string())
            .map_err(|e| e.to_string())?;
        // The four trials wait for each other (each holding a CPU), so that they are placed
        // at once and fill both workers. Placement works from the driver's view of what the
        // workers have free, which can be a heartbeat behind: an actor that lands on a full
        // worker is passed on to the one with room (spill-back), so all four start. The
        // bound only turns a hang into a failure.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while (0..4).any(|i| !dir.join(format!("class-{i}")).exists()) {
            if std::time::Instant::now() > deadline {
                return Err("not all four trials started: one waits on a full worker".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(Counting { n: 0 })
    }

    fn step(&mut self) -> Result<mobula::tune::Metrics, String> {
        self.n += 1;
        let done = if self.n >= 5 { 1.0 } else { 0.0 };
        Ok([
            ("n".to_string(), f64::from(self.n)),
            ("done".to_string(), done),
        ]
        .into_iter()
        .collect())
    }
}

mobula::register_trainable!(Counting);

#[test]
fn class_trials_are_actors_made_by_name_on_the_cluster_nodes() {
    use mobula::tune::{self, RunConfig, SearchSpace, TuneConfig, Tuner};
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster(2);
    eventually("the driver knows what the workers have free", || {
        mobula::node::nodes()
            .iter()
            .filter(|n| n.info.runs_tasks)
            .all(|n| !n.available.is_empty())
    });
    let dir = std::env::temp_dir().join(format!("mobula-lc-class-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let results = Tuner::with_class::<Counting>()
        .param_space(
            SearchSpace::new()
                .param("id", tune::grid_search([0, 1, 2, 3]))
                .constant("dir", dir.display().to_string()),
        )
        .tune_config(TuneConfig::new().metric("n"))
        .run_config(
            RunConfig::new()
                .storage_path(dir.join("results"))
                .verbose(0),
        )
        .fit()
        .unwrap();
    assert!(results.errors().is_empty(), "{:?}", results.errors());
    assert!(results.trials().iter().all(|t| t.iterations() == 5));
    let made_on: HashSet<String> = (0..4)
        .map(|i| std::fs::read_to_string(dir.join(format!("class-{i}"))).unwrap())
        .collect();
    let workers: HashSet<String> = workers.iter().map(|w| w.to_string()).collect();
    // Four 1-CPU actors created at once fill both 2-CPU workers: the driver counts what it
    // placed since the workers last reported what they have free.
    assert_eq!(made_on, workers);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A task pinned to `node` with unlimited retries fails at once, `Unschedulable`, naming it.
fn pinned_task_is_unschedulable(node: NodeId) {
    let task = where_am_i
        .options()
        .scheduling_strategy(on(node))
        .max_retries(-1)
        .remote(3);
    match task.get_timeout(Duration::from_secs(30)) {
        Err(GetError::Unschedulable { reason, .. }) => {
            assert!(reason.contains(&node.to_string()), "{reason}")
        }
        other => panic!("expected Unschedulable, got {other:?}"),
    }
}

#[test]
fn hard_affinity_to_a_node_not_in_the_cluster_fails_at_once_whatever_the_retries() {
    let _turn = turn();
    let (mut cluster, workers, _driver) = cluster(2);
    let stranger = NodeId::random();
    // A task pinned to a node that never joined, with unlimited retries.
    pinned_task_is_unschedulable(stranger);
    // An actor pinned to it, with unlimited restarts: dead, naming the node.
    let tally = Tally::options()
        .scheduling_strategy(on(stranger))
        .max_restarts(-1)
        .remote(0);
    let call = tally.map(|t| t.add(1));
    match call.map(|c| c.get_timeout(Duration::from_secs(30))) {
        Err(e) => assert!(e.to_string().contains(&stranger.to_string()), "{e}"),
        Ok(Err(GetError::ActorDied { cause, .. })) => {
            assert!(cause.contains(&stranger.to_string()), "{cause}")
        }
        other => panic!("expected the actor to be dead, got {other:?}"),
    }
    // A node that died: pinned work fails at once too, once the driver's view says so.
    let dead = workers[1];
    assert!(cluster.kill_node(dead));
    eventually("the killed worker is declared dead", || {
        mobula::node::nodes()
            .iter()
            .any(|n| n.info.node_id == dead && !n.alive)
    });
    pinned_task_is_unschedulable(dead);
    // The live worker still runs pinned work.
    assert_eq!(
        where_am_i
            .options()
            .scheduling_strategy(on(workers[0]))
            .remote(5)
            .get()
            .unwrap(),
        (25, workers[0])
    );
}

/// Constructions of `Survivor` in this process (every node of the cluster lives in it).
static SURVIVORS_BUILT: AtomicUsize = AtomicUsize::new(0);

#[mobula::actor]
struct Survivor {
    calls: u64,
}

#[mobula::actor]
impl Survivor {
    fn new() -> Self {
        SURVIVORS_BUILT.fetch_add(1, Ordering::SeqCst);
        Survivor { calls: 0 }
    }

    fn bump(&mut self) -> (u64, NodeId) {
        self.calls += 1;
        (self.calls, mobula::context().node_id().unwrap())
    }
}

#[test]
fn a_broken_link_alone_neither_restarts_an_actor_nor_bars_its_node() {
    let _turn = turn();
    let (cluster, workers, _driver) = cluster(2);
    SURVIVORS_BUILT.store(0, Ordering::SeqCst);
    let host = workers[0];
    let actor = Survivor::options()
        .scheduling_strategy(on(host))
        .max_restarts(-1)
        .remote()
        .unwrap();
    for i in 1..=3 {
        assert_eq!(actor.bump().get().unwrap(), (i, host));
    }
    // The network drops every link of the actor's node; the node itself runs on, and the
    // head keeps it a member.
    assert!(cluster.break_links(host));
    let mut last = 3;
    let mut unavailable = 0;
    for _ in 0..20 {
        match actor.bump().get_timeout(Duration::from_secs(30)) {
            Ok((n, node)) => {
                assert_eq!(node, host, "the actor moved");
                assert!(n > last, "the actor lost its state: {n} after {last}");
                last = n;
            }
            // A call in flight when the link broke may or may not have run.
            Err(GetError::ActorUnavailable { .. }) => unavailable += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        unavailable <= 1,
        "{unavailable} calls were caught by one break"
    );
    assert_eq!(SURVIVORS_BUILT.load(Ordering::SeqCst), 1, "built once");
    assert!(mobula::node::nodes().iter().all(|n| n.alive));
    // Tasks go to the node again: a broken link kept it out for a node timeout at most.
    eventually("spread tasks reach the node whose links broke", || {
        spread_squares(8).iter().any(|(_, node)| *node == host)
    });
}

#[test]
fn work_no_node_can_take_yet_waits_for_one_then_fails_saying_what_it_waited_for() {
    let _turn = turn();
    let worker = || Config::default().num_cpus(2);
    let (mut cluster, _, _driver) =
        common::local_cluster(Config::default().num_cpus(0), worker, 0, |c| {
            c.placement_timeout(Duration::from_secs(2))
        });
    // No node runs tasks: the task waits, then fails naming what it waited for.
    let (lonely, _) = square_and_node.remote(3);
    match lonely.get() {
        Err(GetError::Unschedulable { reason, .. }) => {
            assert!(reason.contains("waited"), "{reason}");
            assert!(reason.contains("no live node runs build"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A task submitted before a node joins waits for it and runs there.
    let (square, node) = square_and_node.remote(4);
    let joined = cluster.add_node(worker()).unwrap();
    assert_eq!(square.get().unwrap(), 16);
    assert_eq!(node.get().unwrap(), joined);
}

static LOST_ATTEMPT_STARTED: common::Gate = common::Gate::new();
static LOST_ATTEMPT_HOLD: common::Gate = common::Gate::new();
static LOST_ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

/// Where it ran; the first attempt says it started, then waits to be let go.
#[mobula::remote(max_retries = 3)]
fn held_first_time() -> NodeId {
    if LOST_ATTEMPTS.fetch_add(1, Ordering::SeqCst) == 0 {
        LOST_ATTEMPT_STARTED.open();
        LOST_ATTEMPT_HOLD.pass();
    }
    mobula::context().node_id().unwrap()
}

#[test]
fn a_task_whose_node_is_lost_while_no_other_can_run_it_waits_for_one() {
    let _turn = turn();
    let worker = || Config::default().num_cpus(1);
    let (mut cluster, workers, _driver) =
        common::local_cluster(Config::default().num_cpus(0), worker, 1, |c| c);
    LOST_ATTEMPT_STARTED.close();
    LOST_ATTEMPT_HOLD.close();
    LOST_ATTEMPTS.store(0, Ordering::SeqCst);
    let ran_on = held_first_time.remote();
    LOST_ATTEMPT_STARTED.pass();
    // Its only node dies mid-task: no node can run it again now, so the retry waits (as a
    // task placed for the first time does), and runs on the node that joins.
    assert!(cluster.kill_node(workers[0]));
    eventually("the driver finds the worker dead", || {
        mobula::node::nodes()
            .iter()
            .any(|n| n.info.node_id == workers[0] && !n.alive)
    });
    let joined = cluster.add_node(worker()).unwrap();
    LOST_ATTEMPT_HOLD.open();
    assert_eq!(ran_on.get().unwrap(), joined);
    assert_eq!(LOST_ATTEMPTS.load(Ordering::SeqCst), 2);
}

// Streaming generators across nodes: the items are made on a worker and pushed to the
// consumer's node over QUIC, each answered once it fits in the window.

/// `n` items: its index, a payload of `size` bytes, and the node that made it.
#[mobula::remote]
fn items_from_here(n: u64, size: usize) -> impl Iterator<Item = (u64, Vec<u8>, NodeId)> {
    let node = mobula::context().node_id().unwrap();
    (0..n).map(move |i| (i, vec![i as u8; size], node))
}

#[test]
fn a_generator_on_another_node_streams_its_items_here_in_order() {
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster(2);
    let items: Vec<(u64, Vec<u8>, NodeId)> = items_from_here
        .options()
        .scheduling_strategy(on(workers[0]))
        .remote(300, 100)
        .map(|r| r.get().unwrap())
        .collect();
    assert_eq!(items.len(), 300);
    for (i, (index, payload, node)) in items.iter().enumerate() {
        assert_eq!(*index, i as u64);
        assert_eq!(payload, &vec![i as u8; 100]);
        assert_eq!(*node, workers[0]);
    }
    // Items larger than a frame travel after it.
    let large: Vec<usize> = items_from_here
        .options()
        .scheduling_strategy(on(workers[1]))
        .remote(3, 3 << 20)
        .map(|r| r.get().unwrap().1.len())
        .collect();
    assert_eq!(large, vec![3 << 20; 3]);
    eventually("the driver's generator table empties", || {
        mobula::node::table_sizes().contains(&("generators", 0))
    });
}

static GEN_ASKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static GEN_MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static GEN_MOST_AHEAD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[mobula::remote]
fn counted_far(n: u64) -> impl Iterator<Item = u64> {
    (0..n).inspect(|_| {
        let made = GEN_MADE.fetch_add(1, Ordering::SeqCst) + 1;
        let ahead = made.saturating_sub(GEN_ASKED.load(Ordering::SeqCst));
        GEN_MOST_AHEAD.fetch_max(ahead, Ordering::SeqCst);
    })
}

#[test]
fn a_generator_on_another_node_runs_at_most_its_window_ahead() {
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster(1);
    for window in [1u64, 4] {
        GEN_ASKED.store(0, Ordering::SeqCst);
        GEN_MADE.store(0, Ordering::SeqCst);
        GEN_MOST_AHEAD.store(0, Ordering::SeqCst);
        let mut items = counted_far
            .options()
            .scheduling_strategy(on(workers[0]))
            .generator_backpressure(window as u32)
            .remote(30);
        for i in 0..30u64 {
            if i == 2 {
                eventually("the window fills", || {
                    GEN_MADE.load(Ordering::SeqCst) == 2 + window
                });
            }
            GEN_ASKED.fetch_add(1, Ordering::SeqCst);
            assert_eq!(items.next().unwrap().get().unwrap(), i);
        }
        assert!(items.next().is_none());
        let most = GEN_MOST_AHEAD.load(Ordering::SeqCst);
        assert!(most <= window, "window {window}: {most} items made ahead");
    }
}

#[mobula::remote(max_retries = 0)]
fn fails_after_two_far() -> impl Iterator<Item = Result<u64, String>> {
    vec![Ok(1), Ok(2), Err("no third".to_string())].into_iter()
}

static DROPPED_MADE: AtomicUsize = AtomicUsize::new(0);

#[mobula::remote(generator_backpressure = 2)]
fn endless_far() -> impl Iterator<Item = u64> {
    (0..).inspect(|_| {
        DROPPED_MADE.fetch_add(1, Ordering::SeqCst);
    })
}

#[test]
fn a_failure_or_a_drop_ends_a_generator_across_nodes() {
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster(1);
    let mut items = fails_after_two_far
        .options()
        .scheduling_strategy(on(workers[0]))
        .remote();
    assert_eq!(items.next().unwrap().get().unwrap(), 1);
    assert_eq!(items.next().unwrap().get().unwrap(), 2);
    let err = items.next().unwrap().get().unwrap_err();
    assert!(err.to_string().contains("no third"), "{err}");
    assert!(items.next().is_none());

    DROPPED_MADE.store(0, Ordering::SeqCst);
    let mut items = endless_far
        .options()
        .scheduling_strategy(on(workers[0]))
        .remote();
    assert_eq!(items.next().unwrap().get().unwrap(), 0);
    let done = items.completed();
    drop(items);
    let err = done.get().unwrap_err();
    assert!(err.to_string().contains("dropped"), "{err}");
    assert!(DROPPED_MADE.load(Ordering::SeqCst) <= 4);
    assert!(mobula::node::table_sizes().contains(&("generators", 0)));
}

static FIRST_ATTEMPT_HOLD: common::Gate = common::Gate::new();
static FAR_ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

/// Ten items and where each was made; the first attempt stops before its sixth item.
#[mobula::remote(max_retries = 3, generator_backpressure = 2)]
fn ten_from_somewhere() -> impl Iterator<Item = (u64, NodeId)> {
    let attempt = FAR_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    let node = mobula::context().node_id().unwrap();
    (0..10).map(move |i| {
        if attempt == 0 && i == 5 {
            FIRST_ATTEMPT_HOLD.pass();
        }
        (i, node)
    })
}

#[test]
fn a_generator_whose_node_dies_is_retried_and_gives_each_item_once() {
    let _turn = turn();
    let (mut cluster, workers, _driver) = cluster(2);
    FIRST_ATTEMPT_HOLD.close();
    FAR_ATTEMPTS.store(0, Ordering::SeqCst);
    let mut items = ten_from_somewhere
        .options()
        .scheduling_strategy(SchedulingStrategy::Spread)
        .remote();
    let first: Vec<(u64, NodeId)> = (0..5)
        .map(|_| items.next().unwrap().get().unwrap())
        .collect();
    let producer = first[0].1;
    assert!(first.iter().all(|(_, n)| *n == producer));
    assert!(cluster.kill_node(producer));
    let rest: Vec<(u64, NodeId)> = items.map(|r| r.get().unwrap()).collect();
    FIRST_ATTEMPT_HOLD.open();
    let survivor = *workers.iter().find(|w| **w != producer).unwrap();
    assert_eq!(
        rest.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (5..10).collect::<Vec<_>>()
    );
    assert!(rest.iter().all(|(_, n)| *n == survivor), "{rest:?}");
    assert_eq!(FAR_ATTEMPTS.load(Ordering::SeqCst), 2);
}

#[mobula::actor]
struct Counter2 {
    next: u64,
}

#[mobula::actor]
impl Counter2 {
    fn new() -> Self {
        Counter2 { next: 0 }
    }

    fn take(&mut self, n: u64) -> impl Iterator<Item = (u64, NodeId)> {
        let node = mobula::context().node_id().unwrap();
        (0..n).map(move |_| {
            self.next += 1;
            (self.next, node)
        })
    }
}

#[mobula::remote]
fn sum_from_actor(counter: Counter2Handle, n: u64) -> (u64, NodeId) {
    let total = counter.take(n).map(|r| r.get().unwrap().0).sum();
    (total, mobula::context().node_id().unwrap())
}

#[test]
fn an_actor_method_on_one_worker_streams_to_the_driver_and_to_a_task_on_another() {
    let _turn = turn();
    let (_cluster, workers, _driver) = cluster(2);
    let counter = Counter2::options()
        .scheduling_strategy(on(workers[0]))
        .remote()
        .unwrap();
    let here: Vec<(u64, NodeId)> = counter.take(3).map(|r| r.get().unwrap()).collect();
    assert_eq!(
        here,
        vec![(1, workers[0]), (2, workers[0]), (3, workers[0])]
    );
    let (total, node) = sum_from_actor
        .options()
        .scheduling_strategy(on(workers[1]))
        .remote(counter.clone(), 4)
        .get()
        .unwrap();
    assert_eq!((total, node), (4 + 5 + 6 + 7, workers[1]));
}
