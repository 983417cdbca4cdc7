//! The lecture's workloads on a cluster: this program starts a head (itself, the driver) and
//! two worker nodes (this same binary, started again with `MOBULA_WORKER=1`, as on real
//! machines), on loopback. It runs four 1-second tasks spread over the workers, a Counter
//! actor on one worker called from the driver and from a task on the other worker, and a
//! 1000x1000 matrix summed on another node; it prints where everything ran, then stops the
//! cluster and waits for the workers to exit.
//!
//! Run it with `cargo run --release --example cluster`.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use mobula::prelude::*;
use mobula::{NodeId, SchedulingStrategy};

/// A slow operation: sleeps one second, returns the square and where it ran.
#[mobula::remote]
fn slow_function(i: u64) -> (u64, NodeId) {
    std::thread::sleep(Duration::from_secs(1));
    (i * i, here())
}

/// The lecture's Counter; also says where it lives.
#[mobula::actor]
struct Counter {
    value: i64,
}

#[mobula::actor]
impl Counter {
    fn new() -> Self {
        Counter { value: 0 }
    }

    fn increment(&mut self) -> (i64, NodeId) {
        self.value += 1;
        (self.value, here())
    }
}

/// Increments the counter from inside a task: a handle passed to another node.
#[mobula::remote]
fn bump(counter: CounterHandle) -> ((i64, NodeId), NodeId) {
    (
        counter.increment().get().expect("the counter answers"),
        here(),
    )
}

/// Sums a matrix (its values, row after row) and says where.
#[mobula::remote]
fn matrix_sum(matrix: Vec<f64>) -> (f64, NodeId) {
    (matrix.iter().sum(), here())
}

fn here() -> NodeId {
    mobula::context().node_id().expect("runs on a node")
}

fn random_matrix(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// Stops worker processes that are still running when the example ends early.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[mobula::main]
fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("mobula-example-cluster-{}", std::process::id()));
    let t = Instant::now();
    // The head: no CPUs of its own, so every task and actor runs on a worker.
    let mobula = mobula::init(
        Config::default()
            .num_cpus(0)
            .head("127.0.0.1:0")
            .cluster_dir(&dir),
    )?;
    let join = mobula::node::join_info(&dir)?;
    let mut workers = Workers(Vec::new());
    for _ in 0..2 {
        // What `mobula start --head` tells you to run on each machine.
        let child = Command::new(std::env::current_exe()?)
            .env("MOBULA_WORKER", "1")
            .env("MOBULA_ADDRESS", join.address.to_string())
            .env("MOBULA_JOIN_TOKEN", &join.token)
            .env("MOBULA_CA_FINGERPRINT", &join.ca_fingerprint)
            .env("MOBULA_NUM_CPUS", "2")
            .env("MOBULA_DIR", dir.join("worker"))
            .spawn()?;
        workers.0.push(child);
    }
    while mobula::node::nodes()
        .iter()
        .filter(|n| n.alive && n.info.runs_tasks)
        .count()
        < 2
    {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(30),
            "the workers did not join"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut names: HashMap<NodeId, String> = HashMap::new();
    names.insert(mobula.node_id(), "head".into());
    for (i, n) in mobula::node::nodes()
        .iter()
        .filter(|n| n.info.runs_tasks)
        .enumerate()
    {
        names.insert(n.info.node_id, format!("worker {}", i + 1));
    }
    let name = |id: &NodeId| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    println!(
        "[cluster] head at {} and 2 workers up in {:.3} s",
        join.address,
        t.elapsed().as_secs_f64()
    );

    // Four 1-second tasks, spread over the workers (2 CPUs each): about 1 second.
    let t = Instant::now();
    let refs: Vec<_> = (0..4)
        .map(|i| {
            slow_function
                .options()
                .scheduling_strategy(SchedulingStrategy::Spread)
                .remote(i)
        })
        .collect();
    let results = mobula::get_all(&refs)?;
    for (i, (square, node)) in results.iter().enumerate() {
        println!("[tasks] slow_function({i}) = {square} on {}", name(node));
    }
    println!("[tasks] 4 tasks in {:.3} s", t.elapsed().as_secs_f64());
    assert_eq!(
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![0, 1, 4, 9]
    );

    // An actor on one worker, called from the driver and from a task on the other worker.
    let t = Instant::now();
    let counter = Counter::remote()?;
    let values = mobula::get_all(&(0..5).map(|_| counter.increment()).collect::<Vec<_>>())?;
    let home = values[0].1;
    println!(
        "[actors] Counter lives on {}; driver's increments: {:?}",
        name(&home),
        values.iter().map(|v| v.0).collect::<Vec<_>>()
    );
    let other = mobula::node::nodes()
        .iter()
        .find(|n| n.info.runs_tasks && n.info.node_id != home)
        .map(|n| n.info.node_id)
        .expect("two workers");
    let ((value, actor_node), task_node) = bump
        .options()
        .scheduling_strategy(SchedulingStrategy::NodeAffinity {
            node: other,
            soft: false,
        })
        .remote(counter.clone())
        .get()?;
    println!(
        "[actors] a task on {} incremented it to {value} (the actor answered from {}) in {:.4} s",
        name(&task_node),
        name(&actor_node),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(value, 6);

    // The object store: a 1000x1000 matrix put on the head, summed on a worker.
    let matrix = random_matrix(1000 * 1000, 42);
    let expected: f64 = matrix.iter().sum();
    let t = Instant::now();
    let matrix_ref = mobula::put(matrix)?;
    let (sum, node) = matrix_sum.remote(&matrix_ref).get()?;
    println!(
        "[objects] sum of the matrix {sum:.3} computed on {} in {:.4} s",
        name(&node),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(sum, expected);

    // Dropping the guard stops the head, which tells every node to stop.
    drop(counter);
    drop(mobula);
    for (i, child) in workers.0.iter_mut().enumerate() {
        let status = child.wait()?;
        println!("[cluster] worker {} exited: {status}", i + 1);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
