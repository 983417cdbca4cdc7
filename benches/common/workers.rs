//! Worker nodes for the benches that cross processes: this bench binary started again as a
//! worker joined to the head in the bench's own process.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mobula::prelude::*;

/// The variable that tells a started copy of the bench to be a worker (the head's address).
const WORKER_ENV: &str = "MOBULA_BENCH_WORKER";

/// A worker process; killed when dropped.
pub struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this binary again as a worker with 2 CPUs, joining `head` with the credentials in
/// `dir`.
pub fn spawn_worker(head: std::net::SocketAddr, dir: &std::path::Path) -> Worker {
    let child = Command::new(std::env::current_exe().expect("own path"))
        .env(WORKER_ENV, head.to_string())
        .env("MOBULA_DIR", dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("start a worker");
    Worker(child)
}

/// In a copy started by [`spawn_worker`]: runs the worker until it is killed, and returns
/// `true`; in the bench itself, returns `false` at once.
pub fn run_if_worker() -> bool {
    let Ok(head) = std::env::var(WORKER_ENV) else {
        return false;
    };
    let dir = std::env::var("MOBULA_DIR").expect("MOBULA_DIR");
    let config = Config::default().num_cpus(2).address(head).cluster_dir(dir);
    if let Err(e) = mobula::node::run(config) {
        eprintln!("worker failed: {e}");
        std::process::exit(3);
    }
    true
}

/// The live nodes that run tasks, once there are `n` (30 s at most).
pub fn wait_for_workers(n: usize) -> Vec<mobula::NodeId> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let workers: Vec<mobula::NodeId> = mobula::node::nodes()
            .iter()
            .filter(|n| n.alive && n.info.runs_tasks)
            .map(|n| n.info.node_id)
            .collect();
        if workers.len() >= n {
            return workers;
        }
        assert!(
            Instant::now() < deadline,
            "{n} workers did not join in 30 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
