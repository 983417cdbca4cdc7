//! A real cluster on loopback: this test process is the head and the driver; worker nodes
//! are this same test binary started again as separate processes (same binary, as every
//! node must be), joined over QUIC with the token and the pinned CA.

#[path = "common/cluster_work.rs"]
mod cluster_work;
mod common;

use cluster_work::*;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, turn};
use mobula::prelude::*;
use mobula::{ActorError, InitError, NodeId, ObjectRef, SchedulingStrategy};

const WORKER_ENV: &str = "MOBULA_TEST_WORKER";

/// Not a test: the body of a worker process, which `spawn_worker` starts (with
/// `--ignored`). Run any other way it fails.
#[test]
#[ignore = "child-process entry point: the body of a worker process that spawn_worker starts"]
fn worker_main() {
    let Ok(head) = std::env::var(WORKER_ENV) else {
        panic!("not a test: the body of a worker process, started by spawn_worker");
    };
    let mut config = Config::default()
        .num_cpus(2)
        .address(head)
        .cluster_dir(std::env::var("MOBULA_DIR").unwrap());
    if let Ok(token) = std::env::var("MOBULA_TEST_TOKEN") {
        config = config.join_token(token);
    }
    if let Ok(pin) = std::env::var("MOBULA_TEST_PIN") {
        config = config.ca_fingerprint(pin);
    }
    if let Err(e) = mobula::node::run(config) {
        eprintln!("worker failed: {e}");
        std::process::exit(3);
    }
}

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_worker(head: std::net::SocketAddr, dir: &PathBuf, env: &[(&str, &str)]) -> Worker {
    spawn_worker_in(None, head, dir, env)
}

/// A worker process, in network namespace `netns` if given (`ip netns exec`).
fn spawn_worker_in(
    netns: Option<&str>,
    head: std::net::SocketAddr,
    dir: &PathBuf,
    env: &[(&str, &str)],
) -> Worker {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args([
        "--ignored",
        "--exact",
        "worker_main",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(WORKER_ENV, head.to_string())
    .env("MOBULA_DIR", dir)
    .stdout(Stdio::null())
    .stderr(if std::env::var_os("MOBULA_TEST_VERBOSE").is_some() {
        Stdio::inherit()
    } else {
        Stdio::piped()
    });
    for (k, v) in env {
        cmd.env(k, v);
    }
    Worker(cmd.spawn().unwrap())
}

fn cluster_dir() -> PathBuf {
    std::env::temp_dir().join(format!("mobula-test-cluster-{}", std::process::id()))
}

/// A head (this process, no CPUs, so every task goes to a worker) and `n` workers.
fn start_cluster(n: usize) -> (InitGuard, Vec<Worker>, PathBuf) {
    let dir = cluster_dir();
    let guard = mobula::init(
        Config::default()
            .num_cpus(0)
            .head("127.0.0.1:0")
            .cluster_dir(&dir),
    )
    .expect("head");
    let head = mobula::node::head_address().unwrap();
    let workers = (0..n).map(|_| spawn_worker(head, &dir, &[])).collect();
    eventually("the workers joined", || {
        mobula::node::nodes()
            .iter()
            .filter(|n| n.alive && n.info.runs_tasks)
            .count()
            == n
    });
    (guard, workers, dir)
}

#[mobula::remote]
fn checksum(data: Vec<u8>) -> (usize, u64) {
    (data.len(), data.iter().map(|&b| u64::from(b)).sum())
}

#[mobula::remote]
fn fails(i: u64) -> Result<u64, String> {
    Err(format!("no {i}"))
}

#[test]
fn tasks_spread_over_worker_processes_with_correct_results() {
    let _turn = turn();
    let (_head, _workers, _) = start_cluster(2);
    let results = spread_squares(40);
    let nodes: HashSet<NodeId> = results.iter().map(|r| r.1).collect();
    let workers: HashSet<NodeId> = mobula::node::nodes()
        .iter()
        .filter(|n| n.info.runs_tasks)
        .map(|n| n.info.node_id)
        .collect();
    assert_eq!(nodes, workers, "both workers ran tasks, the head none");

    // Hard affinity puts every task on the named node.
    let target = *workers.iter().next().unwrap();
    let pinned: Vec<_> = (0..10)
        .map(|i| {
            where_am_i
                .options()
                .scheduling_strategy(SchedulingStrategy::NodeAffinity {
                    node: target,
                    soft: false,
                })
                .remote(i)
        })
        .collect();
    assert!(
        mobula::get_all(&pinned)
            .unwrap()
            .iter()
            .all(|r| r.1 == target)
    );

    // Errors come back as errors, with the node they ran on.
    match fails.remote(7).get() {
        Err(GetError::Task(e)) => {
            assert_eq!(e.message, "no 7");
            assert!(workers.contains(&e.node_id));
        }
        other => panic!("expected a task error, got {other:?}"),
    }
}

#[test]
fn a_64_mb_object_crosses_nodes_both_ways() {
    let _turn = turn();
    let (_head, _workers, _) = start_cluster(1);
    let n = 64 << 20;
    let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let expected: u64 = data.iter().map(|&b| u64::from(b)).sum();
    let big = mobula::put(data).unwrap();
    assert_eq!(checksum.remote(&big).get().unwrap(), (n, expected));
    let back = make_bytes.remote(n).get().unwrap();
    assert_eq!(back.len(), n);
    assert_eq!(back.iter().map(|&b| u64::from(b)).sum::<u64>(), expected);
}

fn worker_error(head: std::net::SocketAddr, dir: &PathBuf, env: &[(&str, &str)]) -> String {
    let mut worker = spawn_worker(head, dir, env);
    let status = worker.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(worker.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        !status.success(),
        "the worker should have been refused: {err}"
    );
    err
}

#[test]
fn a_wrong_token_or_ca_is_refused_and_garbage_is_ignored() {
    let _turn = turn();
    let (_head, _workers, dir) = start_cluster(1);
    let head = mobula::node::head_address().unwrap();

    let err = worker_error(head, &dir, &[("MOBULA_TEST_TOKEN", "0123")]);
    assert!(err.contains("wrong join token"), "{err}");

    let other_ca = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let err = worker_error(head, &dir, &[("MOBULA_TEST_PIN", other_ca)]);
    assert!(err.contains("pinned"), "{err}");

    // Garbage datagrams at the head's port: dropped, and the cluster keeps serving.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200u32 {
        let junk: Vec<u8> = (0..(i % 1300) + 1).map(|j| (j * 7 + i) as u8).collect();
        socket.send_to(&junk, head).unwrap();
    }
    // The head still lets a node with the right token join.
    let before = mobula::node::nodes().len();
    let _late = spawn_worker(head, &dir, &[]);
    eventually("a node joined after the garbage", || {
        mobula::node::nodes().len() == before + 1
    });
}

#[test]
fn killing_a_worker_mid_run_loses_no_result() {
    let _turn = turn();
    let (_head, mut workers, _) = start_cluster(2);
    let n = 10_000;
    let refs: Vec<_> = (0..n)
        .map(|i| {
            slow_square
                .options()
                .scheduling_strategy(SchedulingStrategy::Spread)
                .remote(i)
        })
        .collect();
    // Let some finish, then kill -9 one worker while thousands are in flight.
    refs[20].get().unwrap();
    drop(workers.remove(0)); // Child::kill: SIGKILL
    let results = mobula::get_all(&refs).unwrap();
    assert_eq!(
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..n).map(|i| i * i).collect::<Vec<_>>()
    );
    eventually("the head declared the worker dead", || {
        mobula::node::nodes()
            .iter()
            .filter(|n| n.info.runs_tasks && n.alive)
            .count()
            == 1
    });
    let nodes = mobula::node::nodes();
    let dead = nodes
        .iter()
        .find(|n| n.info.runs_tasks && !n.alive)
        .unwrap();
    let by_dead = results.iter().filter(|r| r.1 == dead.info.node_id).count();
    assert!(by_dead > 0, "the killed worker ran tasks before it died");
    assert!(
        by_dead < (n / 2) as usize,
        "the survivor ran the dead worker's unfinished share again ({by_dead} finished there)"
    );
}

#[test]
fn a_driver_whose_head_is_gone_gets_an_error_not_a_hang() {
    let _turn = turn();
    let err = mobula::init(
        Config::default()
            .address("127.0.0.1:9")
            .join_token("x")
            .ca_fingerprint("sha256:00")
            .node_timeout(Duration::from_millis(300)),
    )
    .unwrap_err();
    assert!(matches!(err, InitError::Cluster(_)), "{err}");
}

fn workers_by_id() -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = mobula::node::nodes()
        .iter()
        .filter(|n| n.info.runs_tasks && n.alive)
        .map(|n| n.info.node_id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn an_actor_on_one_node_is_called_in_order_from_the_driver_and_from_a_task_on_another() {
    let _turn = turn();
    let (_head, _workers, _) = start_cluster(2);
    let ids = workers_by_id();
    let (w1, w2) = (ids[0], ids[1]);
    let tally = Tally::options()
        .scheduling_strategy(on(w1))
        .remote(1000)
        .unwrap();
    assert_eq!(tally.node_id(), w1);

    // 300 calls from one caller, sent at once: they run in the order they were made.
    let refs: Vec<_> = (0..300).map(|i| tally.add(i)).collect();
    let results = mobula::get_all(&refs).unwrap();
    assert_eq!(
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        (2..302).collect::<Vec<_>>()
    );
    assert!(results.iter().all(|r| r.1 == w1));

    // A task on the other worker gets the handle (same type) and calls the actor.
    let (len, actor_node, task_node) = add_from_a_task
        .options()
        .scheduling_strategy(on(w2))
        .remote(tally.clone(), 7)
        .get()
        .unwrap();
    assert_eq!((len, actor_node, task_node), (302, w1, w2));
    let log = tally.log().get().unwrap();
    assert_eq!(log[0], 1000);
    assert_eq!(&log[1..301], &(0..300).collect::<Vec<_>>()[..]);
    assert_eq!(log[301], 7);

    // A value larger than a frame goes through a call both ways.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(tally.echo(data.clone()).get().unwrap(), data);

    // A method's error comes back as the method's error, with its node.
    match tally.fail().get() {
        Err(GetError::Task(e)) => {
            assert_eq!(e.message, "refused on purpose");
            assert_eq!(e.node_id, w1);
        }
        other => panic!("expected the method's error, got {other:?}"),
    }
}

#[test]
fn an_actor_whose_node_dies_is_restarted_on_another_if_its_restarts_allow() {
    let _turn = turn();
    let (_head, mut workers, _) = start_cluster(2);
    let ids = workers_by_id();
    let (w1, w2) = (ids[0], ids[1]);
    let keeps = Tally::options()
        .name("keeper")
        .scheduling_strategy(on(w1))
        .max_restarts(1)
        .max_task_retries(1)
        .remote(1)
        .unwrap();
    let ends = Tally::options()
        .scheduling_strategy(on(w1))
        .remote(2)
        .unwrap();
    assert_eq!(keeps.add(10).get().unwrap(), (2, w1));
    assert_eq!(ends.add(20).get().unwrap(), (2, w1));

    // kill -9 the process that hosts both.
    let pid = keeps.pid().get().unwrap();
    let index = workers.iter().position(|w| w.0.id() == pid).unwrap();
    drop(workers.remove(index));

    // The restartable one comes back on the other worker, its state new from `new(1)`.
    assert_eq!(keeps.add(30).get().unwrap(), (2, w2));
    assert_eq!(keeps.node_id(), w2);
    assert_eq!(keeps.log().get().unwrap(), vec![1, 30]);
    // Its name followed it.
    eventually("the name points at the restarted actor", || {
        mobula::get_actor::<Tally>("keeper").is_ok_and(|t| t.node_id() == w2)
    });
    // The other one is gone, and says why.
    match ends.add(40).get() {
        Err(GetError::ActorDied { cause, .. }) => {
            assert!(cause.contains("was lost"), "{cause}");
            assert!(cause.contains("no restarts left"), "{cause}");
        }
        other => panic!("expected ActorDied, got {other:?}"),
    }
}

#[test]
fn placement_groups_reserve_bundles_across_worker_processes() {
    use mobula::{Bundle, PlacementGroupError, PlacementStrategy};
    let _turn = turn();
    let (_head, _workers, _) = start_cluster(2);
    let workers: HashSet<NodeId> = workers_by_id().into_iter().collect();
    let two = || Bundle::new().num_cpus(2);

    // STRICT_SPREAD: one bundle per worker (the head has no CPUs).
    let pg = mobula::placement_group(vec![two(), two()], PlacementStrategy::StrictSpread).unwrap();
    pg.ready().unwrap();
    let nodes: HashSet<NodeId> = (0..2).map(|i| pg.bundle_node(i).unwrap()).collect();
    assert_eq!(nodes, workers);
    // Tasks and an actor in each bundle run on its node.
    for i in 0..2 {
        let (_, node) = where_am_i
            .options()
            .placement_group(&pg, Some(i))
            .remote(3)
            .get()
            .unwrap();
        assert_eq!(Some(node), pg.bundle_node(i));
    }
    let tally = Tally::options()
        .placement_group(&pg, Some(1))
        .num_cpus(1)
        .remote(0)
        .unwrap();
    assert_eq!(tally.add(5).get().unwrap().1, pg.bundle_node(1).unwrap());
    // More than a bundle holds fails instead of waiting.
    let too_big = where_am_i
        .options()
        .placement_group(&pg, Some(0))
        .num_cpus(3)
        .remote(1);
    assert!(too_big.get().is_err());
    drop(tally);
    mobula::remove_placement_group(&pg);

    // Three bundles cannot each have their own worker; STRICT_PACK keeps a group on one.
    let err = mobula::placement_group(vec![two(), two(), two()], PlacementStrategy::StrictSpread)
        .unwrap_err();
    assert!(
        matches!(&err, PlacementGroupError::Failed(why) if why.contains("STRICT_SPREAD")),
        "{err}"
    );
    let packed = mobula::placement_group(
        vec![Bundle::new().num_cpus(1), Bundle::new().num_cpus(1)],
        PlacementStrategy::StrictPack,
    )
    .unwrap();
    packed.ready().unwrap();
    assert_eq!(packed.bundle_node(0), packed.bundle_node(1));
    mobula::remove_placement_group(&packed);

    // Everything was given back: 2-CPU tasks run on both workers again.
    let refs: Vec<_> = (0..4)
        .map(|i| {
            where_am_i
                .options()
                .num_cpus(2)
                .scheduling_strategy(SchedulingStrategy::Spread)
                .remote(i)
        })
        .collect();
    let ran: HashSet<NodeId> = mobula::get_all(&refs)
        .unwrap()
        .iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(ran, workers);
}

/// The namespaces `.ci/netns-setup` makes, if they exist: why not, otherwise.
fn namespaces() -> Result<(), String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map_err(|e| format!("no ip command: {e}"))?;
    let list = String::from_utf8_lossy(&out.stdout);
    if list.contains("mobula-w1") && list.contains("mobula-w2") {
        let entered = Command::new("ip")
            .args(["netns", "exec", "mobula-w1", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if entered {
            Ok(())
        } else {
            Err(
                "the namespaces exist but this user cannot enter them (ip netns exec needs root)"
                    .into(),
            )
        }
    } else {
        Err("network namespaces mobula-w1 and mobula-w2 are not set up (run .ci/netns-setup as root)".into())
    }
}

#[test]
fn nodes_on_separate_hosts_in_network_namespaces() {
    if let Err(why) = namespaces() {
        println!("skipped: {why}");
        return;
    }
    let _turn = turn();
    let dir = cluster_dir();
    let _head = mobula::init(
        Config::default()
            .num_cpus(0)
            .head("10.77.0.1:0")
            .cluster_dir(&dir),
    )
    .expect("head on the bridge address");
    let head = mobula::node::head_address().unwrap();
    let _w1 = spawn_worker_in(Some("mobula-w1"), head, &dir, &[]);
    let _w2 = spawn_worker_in(Some("mobula-w2"), head, &dir, &[]);
    eventually("both namespaced workers joined", || {
        workers_by_id().len() == 2
    });
    let mut addresses: Vec<String> = mobula::node::nodes()
        .iter()
        .filter(|n| n.info.runs_tasks)
        .map(|n| n.info.address.ip().to_string())
        .collect();
    addresses.sort();
    assert_eq!(addresses, vec!["10.77.0.2", "10.77.0.3"]);

    // Tasks spread over the two hosts.
    let results = spread_squares(20);
    let ran: HashSet<NodeId> = results.iter().map(|r| r.1).collect();
    assert_eq!(ran, workers_by_id().into_iter().collect());

    // An actor on one host called from a task on the other: worker to worker, across the bridge.
    let ids = workers_by_id();
    let tally = Tally::options()
        .scheduling_strategy(on(ids[0]))
        .remote(1)
        .unwrap();
    let (len, actor_node, task_node) = add_from_a_task
        .options()
        .scheduling_strategy(on(ids[1]))
        .remote(tally.clone(), 2)
        .get()
        .unwrap();
    assert_eq!((len, actor_node, task_node), (2, ids[0], ids[1]));
    // A value larger than a frame, from the host to a namespace and back.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
    assert_eq!(tally.echo(data.clone()).get().unwrap(), data);
}

/// Finds a named actor from inside a task and calls it.
#[mobula::remote]
fn add_to_named(name: String, x: u64) -> (usize, NodeId, NodeId) {
    let tally: TallyHandle = mobula::get_actor::<Tally>(&name).unwrap();
    let (len, actor_node) = tally.add(x).get().unwrap();
    (len, actor_node, mobula::context().node_id().unwrap())
}

#[test]
fn a_named_actor_is_found_from_any_node_and_its_name_is_freed_when_it_ends() {
    let _turn = turn();
    let (_head, _workers, _) = start_cluster(2);
    let ids = workers_by_id();
    let tally = Tally::options()
        .name("ledger")
        .scheduling_strategy(on(ids[0]))
        .remote(1)
        .unwrap();
    assert_eq!(tally.add(2).get().unwrap(), (2, ids[0]));

    // The driver (another node) finds it by name: the same actor, same state.
    let found = mobula::get_actor::<Tally>("ledger").unwrap();
    assert_eq!(found.node_id(), ids[0]);
    assert_eq!(found.add(3).get().unwrap().0, 3);
    // So does a task on the other worker.
    let (len, actor_node, task_node) = add_to_named
        .options()
        .scheduling_strategy(on(ids[1]))
        .remote("ledger".to_string(), 4)
        .get()
        .unwrap();
    assert_eq!((len, actor_node, task_node), (4, ids[0], ids[1]));
    assert_eq!(tally.log().get().unwrap(), vec![1, 2, 3, 4]);

    // The name is taken cluster-wide, even for an actor placed on another node.
    let again = Tally::options()
        .name("ledger")
        .scheduling_strategy(on(ids[1]))
        .remote(9);
    assert!(
        matches!(again, Err(ActorError::NameTaken { .. })),
        "{again:?}"
    );
    let shared = Tally::options()
        .name("ledger")
        .get_if_exists(true)
        .scheduling_strategy(on(ids[1]))
        .remote(9)
        .unwrap();
    assert_eq!(
        shared.node_id(),
        ids[0],
        "get_if_exists gives the existing actor"
    );
    assert!(matches!(
        mobula::get_actor::<Other>("ledger"),
        Err(ActorError::WrongClass { .. })
    ));
    assert!(matches!(
        mobula::get_actor::<Tally>("nobody"),
        Err(ActorError::NotFound { .. })
    ));

    // Killed, it gives its name back.
    mobula::kill(&tally);
    eventually("the name was freed", || {
        matches!(
            mobula::get_actor::<Tally>("ledger"),
            Err(ActorError::NotFound { .. })
        )
    });
}

#[mobula::actor]
struct Other;

#[mobula::actor]
impl Other {
    fn new() -> Self {
        Other
    }

    fn ping(&self) -> u8 {
        1
    }
}

/// Owns a Tally it creates on another node.
#[mobula::actor]
struct Manager {
    tally: Option<TallyHandle>,
}

#[mobula::actor]
impl Manager {
    fn new() -> Self {
        Manager { tally: None }
    }

    fn make(&mut self, at: NodeId) -> TallyHandle {
        let tally = Tally::options()
            .scheduling_strategy(on(at))
            .max_restarts(1)
            .remote(100)
            .unwrap();
        self.tally = Some(tally.clone());
        tally
    }
}

#[test]
fn a_handle_from_another_process_follows_its_actor_to_the_node_it_restarted_on() {
    let _turn = turn();
    let (_head, mut workers, _) = start_cluster(2);
    let ids = workers_by_id();
    let (w1, w2) = (ids[0], ids[1]);
    // The manager on w2 owns a Tally on w1; this process only borrows a handle to it.
    let manager = Manager::options()
        .scheduling_strategy(on(w2))
        .remote()
        .unwrap();
    let tally = manager.make(w1).get().unwrap();
    assert_eq!(tally.node_id(), w1);
    assert_eq!(tally.add(1).get().unwrap(), (2, w1));

    let pid = tally.pid().get().unwrap();
    let index = workers.iter().position(|w| w.0.id() == pid).unwrap();
    drop(workers.remove(index)); // kill -9 w1

    // Calls in flight when the loss is noticed fail; then the handle follows the actor to
    // where its owner restarted it (w2, the only worker left), state new from `new(100)`.
    let mut outcome = tally.add(2).get();
    eventually("a call reached the restarted actor", || {
        if outcome.is_err() {
            outcome = tally.add(2).get();
        }
        outcome.is_ok()
    });
    assert_eq!(outcome.unwrap(), (2, w2));
    assert_eq!(tally.node_id(), w2);
    assert_eq!(tally.log().get().unwrap(), vec![100, 2]);
}

/// Not a test: the body of a head process, which the test below starts (with `--ignored`).
/// Run any other way it fails.
#[test]
#[ignore = "child-process entry point: the body of a head process that the next test starts"]
fn head_main() {
    let Ok(dir) = std::env::var("MOBULA_TEST_HEAD") else {
        panic!("not a test: the body of a head process, started by the test after it");
    };
    let config = Config::default()
        .num_cpus(0)
        .head("127.0.0.1:0")
        .cluster_dir(dir);
    if let Err(e) = mobula::node::run(config) {
        eprintln!("head failed: {e}");
        std::process::exit(3);
    }
}

#[test]
fn a_driver_whose_head_dies_mid_run_gets_errors_not_hangs() {
    let _turn = turn();
    let dir = cluster_dir().with_extension("own-head");
    let _ = std::fs::remove_dir_all(&dir);
    let mut head = Worker(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "head_main",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MOBULA_TEST_HEAD", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut address = None;
    eventually("the head wrote its address", || {
        address = std::fs::read_to_string(dir.join("head.addr")).ok();
        address.is_some()
    });
    let address: std::net::SocketAddr = address.unwrap().trim().parse().unwrap();
    let _worker = spawn_worker(address, &dir, &[]);
    // This process is a driver: it joins, runs nothing itself.
    // It waits for a head that stops answering for 2 s (its head_timeout), then gives up.
    let _driver = mobula::init(
        Config::default()
            .num_cpus(0)
            .address(address.to_string())
            .cluster_dir(&dir)
            .head_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    eventually("the worker joined", || workers_by_id().len() == 1);
    assert_eq!(where_am_i.remote(3).get().unwrap().0, 9);

    // Work in flight, then the head is killed.
    let refs: Vec<_> = (0..500).map(|i| slow_square.remote(i)).collect();
    refs[0].get().unwrap();
    let _ = head.0.kill();
    let _ = head.0.wait();
    // Every ref settles, with its value or an error: none waits forever.
    for r in &refs {
        let outcome = r.get_timeout(Duration::from_secs(60));
        assert!(
            !matches!(outcome, Err(GetError::Timeout { .. })),
            "{outcome:?}"
        );
    }
    // Once the driver gives up on the head, new work fails at once and says why.
    eventually("new work fails for the lost head", || {
        matches!(where_am_i.remote(1).get_timeout(Duration::from_secs(60)),
            Err(GetError::Unschedulable { reason, .. }) if reason.contains("head"))
    });
    // A named actor can no longer be made: creation fails with a typed error naming the
    // head (placement refuses first once the driver gave up; a name claim waiting for the
    // head fails the same way), and no actor is made.
    let named = Other::options().num_cpus(0.0).name("too-late").remote();
    match named {
        Err(ActorError::NameNotTaken { reason, .. } | ActorError::Unschedulable { reason, .. }) => {
            assert!(reason.contains(&address.to_string()), "{reason}");
        }
        other => panic!("{:?}", other.map(|_| "an actor")),
    }
    assert!(matches!(
        mobula::get_actor::<Other>("too-late"),
        Err(ActorError::NotFound { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A value too large to travel with its answer (it stays on its node until wanted); marks
/// `done` when made.
#[mobula::remote]
fn big_from(tag: u8, done: String) -> (Vec<u8>, NodeId) {
    let value = vec![tag; 2 << 20];
    std::fs::write(&done, b"made").unwrap();
    (value, mobula::context().node_id().unwrap())
}

#[mobula::remote]
fn pid_here() -> u32 {
    std::process::id()
}

#[test]
fn a_value_lost_with_its_node_is_rebuilt_by_running_its_task_again() {
    let _turn = turn();
    let (_head, mut workers, dir) = start_cluster(2);
    let ids = workers_by_id();
    let (w1, w2) = (ids[0], ids[1]);
    let near_w1 = SchedulingStrategy::NodeAffinity {
        node: w1,
        soft: true,
    };
    let marker = |tag: &str| dir.join(format!("made-{tag}")).display().to_string();
    // Two large values made on w1 and left there; one task may run again, one may not.
    let kept = big_from
        .options()
        .scheduling_strategy(near_w1)
        .remote(7, marker("kept"));
    let lost = big_from
        .options()
        .scheduling_strategy(near_w1)
        .max_retries(0)
        .remote(8, marker("lost"));
    eventually("both values were made", || {
        std::path::Path::new(&marker("kept")).exists()
            && std::path::Path::new(&marker("lost")).exists()
    });
    // kill -9 w1 before anyone got them: their only copies go with it.
    let pid = pid_here
        .options()
        .scheduling_strategy(on(w1))
        .remote()
        .get()
        .unwrap();
    let index = workers.iter().position(|w| w.0.id() == pid).unwrap();
    drop(workers.remove(index));

    // The first is made again on w2, from its lineage.
    let (bytes, made_on) = kept.get().unwrap();
    assert_eq!(bytes, vec![7u8; 2 << 20]);
    assert_eq!(made_on, w2, "made again on the surviving worker");
    // The second cannot be, and says why.
    match lost.get() {
        Err(GetError::ObjectLost { reason, .. }) => {
            assert!(reason.contains("only copy"), "{reason}");
            assert!(reason.contains("no retries left"), "{reason}");
        }
        other => panic!("expected ObjectLost, got {other:?}"),
    }
}

/// Gets refs that arrived inside a value (not resolved before the task ran).
#[mobula::remote]
fn sum_nested(parts: Vec<ObjectRef<Vec<u64>>>) -> (u64, NodeId) {
    let total = parts
        .iter()
        .map(|p| p.get().unwrap().iter().sum::<u64>())
        .sum();
    (total, mobula::context().node_id().unwrap())
}

#[test]
fn refs_inside_values_are_fetched_from_the_node_that_made_them() {
    let _turn = turn();
    let (_head, _workers, _) = start_cluster(1);
    let big: Vec<u64> = (0..2_000_000).collect();
    let small: Vec<u64> = vec![1, 2, 3];
    let expected = big.iter().sum::<u64>() + 6;
    // Put here (the head), passed inside a Vec: the worker fetches each from this node.
    let refs = vec![mobula::put(big).unwrap(), mobula::put(small).unwrap()];
    let (total, node) = sum_nested.remote(refs.clone()).get().unwrap();
    assert_eq!(total, expected);
    assert_eq!(node, workers_by_id()[0]);
    // Twice, from a second task: still there, still the same.
    assert_eq!(sum_nested.remote(refs).get().unwrap().0, expected);
}

#[mobula::actor]
struct Doubler {
    total: u64,
}

#[mobula::actor]
impl Doubler {
    fn new(start: u64) -> Self {
        Doubler { total: start }
    }

    fn value(&self) -> u64 {
        self.total
    }

    fn add(&mut self, n: u64) -> u64 {
        self.total += n;
        self.total
    }
}

#[test]
fn chained_calls_on_an_actor_in_another_process_finish() {
    let _turn = turn();
    let (_guard, _workers, _dir) = start_cluster(1);
    // The head has no CPUs: the actor runs in the worker process.
    let acc = Doubler::remote(1).unwrap();
    let mut last = acc.value();
    for _ in 0..10 {
        last = acc.add(&last);
    }
    assert_eq!(last.get_timeout(Duration::from_secs(60)).unwrap(), 1 << 10);
}
