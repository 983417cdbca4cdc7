//! Across nodes, the shape of Ray's `ray_multinode.py` (../shared/bench/ray/): a head without
//! CPUs (this process, also the driver) and one worker node with 2 CPUs (this binary started
//! again), so every call crosses from one process to the other over QUIC.
//!
//!     cargo bench --bench cluster                  # every case, 5 rounds, medians
//!     cargo bench --bench cluster -- --rounds 9    # more rounds
//!     cargo bench --bench cluster -- --quick       # one short round (CI: it still works)
//!     cargo bench --bench cluster -- --json FILE   # also write the medians as JSON
//!     cargo bench --bench cluster -- --filter actor  # cases whose name contains "actor"
//!
//! Cases, with Ray's counts: cluster up (head + 1 worker, until the head sees it; and
//! head + 2 workers); 500 tasks one at a time (sync); 5,000 tasks submitted then gathered
//! (async); 1,000 actor calls one at a time; 5,000 actor calls submitted then gathered; a
//! 256 MB result pulled from the worker; 5,000 items of a streaming generator on the worker,
//! each got by the driver. Prints one JSON object with Ray's keys.
//!
//! Builds (no Ray counterpart): the first task of this build on a fresh node started with
//! `mobula start --address` (the node joins, fetches this binary by hash, starts a process
//! of it, and runs the task: `new_build_first_task_s`), and the same on a node restarted on
//! its directory, the build already cached (`cached_build_first_task_s`).
//!
//! The head's crash (no Ray counterpart here; issue 21), on a `LocalCluster` of a head and
//! two workers with this process as the driver: actors created and called once, named (the
//! head makes each name durable before it answers) and unnamed, per second
//! (`named_actors_per_s`, `unnamed_actors_per_s`); and the head killed and started again on
//! its tables: from the restart to a first task placed on a worker
//! (`head_restart_to_first_task_s`), then to the driver's read of the key-value store
//! answered by the head (`head_restart_to_head_answers_s`). Ray's side:
//! `benches/compare_head_crash.py`.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use mobula::prelude::*;

#[path = "common/workers.rs"]
mod workers;

use workers::{spawn_worker, wait_for_workers};

#[mobula::remote]
fn noop() -> u8 {
    0
}

#[mobula::remote]
fn make(n: usize) -> Vec<u8> {
    vec![1u8; n]
}

/// A streaming generator of `n` one-byte items (no Ray counterpart in ray_multinode.py:
/// `benches/compare_generators.py --nodes 2` runs the same on Ray).
#[mobula::remote]
fn items(n: u64) -> impl Iterator<Item = u8> {
    (0..n).map(|i| i as u8)
}

#[mobula::actor]
struct A;

#[mobula::actor]
impl A {
    fn new() -> Self {
        A
    }

    fn f(&self) -> u8 {
        0
    }
}

/// The head's crash on a LocalCluster: named against unnamed actor creation, and the time
/// from a head restart to the driver reconnecting and to a first task on a worker.
fn head_restart_case(scale: usize, samples: &mut BTreeMap<&'static str, Vec<f64>>) {
    let mut cluster = mobula::testing::LocalCluster::start(Config::default().num_cpus(0))
        .expect("the head starts");
    for _ in 0..2 {
        cluster
            .add_node(Config::default().num_cpus(2))
            .expect("a worker joins");
    }
    let _driver = mobula::init(cluster.driver_config().num_cpus(0)).expect("the driver joins");
    while mobula::node::nodes()
        .iter()
        .filter(|n| n.alive && n.info.runs_tasks)
        .count()
        < 2
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    noop.remote().get().unwrap();
    let n = 200 / scale;
    for (key, named) in [
        ("unnamed_actors_per_s", false),
        ("named_actors_per_s", true),
    ] {
        let per_s = rate(n, |n| {
            let actors: Vec<_> = (0..n)
                .map(|i| {
                    let mut options = A::options().num_cpus(0.0);
                    if named {
                        options = options.name(format!("bench-{i}"));
                    }
                    options.remote().unwrap()
                })
                .collect();
            for a in &actors {
                a.f().get().unwrap();
            }
        });
        samples.entry(key).or_default().push(per_s);
    }
    // Placement groups of one small bundle, made (ready) and removed.
    let per_s = rate(100 / scale, |n| {
        let groups: Vec<_> = (0..n)
            .map(|_| {
                mobula::placement_group(
                    vec![mobula::Bundle::new().num_cpus(0.01)],
                    mobula::PlacementStrategy::Pack,
                )
                .unwrap()
            })
            .collect();
        for g in &groups {
            g.ready().unwrap();
        }
        for g in &groups {
            mobula::remove_placement_group(g);
        }
    });
    samples
        .entry("placement_groups_per_s")
        .or_default()
        .push(per_s);
    mobula::kv::put("bench", "k", b"v", true).unwrap();
    let head = cluster.head();
    cluster.kill_node(head);
    while mobula::node::head_away().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let t = Instant::now();
    cluster.restart_head().expect("the head restarts");
    noop.remote().get().unwrap();
    samples
        .entry("head_restart_to_first_task_s")
        .or_default()
        .push(t.elapsed().as_secs_f64());
    // What needs the head: a read of the key-value store, answered from its tables.
    assert_eq!(mobula::kv::get("bench", "k").unwrap().unwrap(), b"v");
    samples
        .entry("head_restart_to_head_answers_s")
        .or_default()
        .push(t.elapsed().as_secs_f64());
}

/// A node agent started with the `mobula` command, and the time it took to run this build's
/// first task: from starting the agent (which joins, fetches this binary unless its cache
/// has it, and starts a process of it) to the task's result.
fn first_task_on_agent(head: std::net::SocketAddr, dir: &std::path::Path) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_mobula"))
        .args(["start", "--block", "--num-cpus", "2", "--address"])
        .arg(head.to_string())
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let answer = noop.remote().get();
    let took = t.elapsed().as_secs_f64();
    let _ = agent.kill();
    let _ = agent.wait();
    answer?;
    Ok(took)
}

/// The first task of this build on a fresh node, then on one restarted with it cached.
fn first_task_of_a_new_build(dir: &std::path::Path) -> anyhow::Result<(f64, f64)> {
    let agent_dir = dir.join("agent");
    let _ = std::fs::remove_dir_all(&agent_dir);
    let size = std::fs::metadata(std::env::current_exe()?)?.len();
    let mut times = Vec::new();
    for _ in 0..2 {
        // A head of its own each time, so that the process the last agent left is gone.
        let guard = mobula::init(
            Config::default()
                .num_cpus(0)
                .head("127.0.0.1:0")
                .cluster_dir(dir),
        )?;
        let head = mobula::node::head_address().expect("a head has an address");
        // The agent reads the join token and CA from its directory, as on the head's machine.
        std::fs::create_dir_all(&agent_dir)?;
        for file in ["token", "ca.der"] {
            std::fs::copy(dir.join(file), agent_dir.join(file))?;
        }
        times.push(first_task_on_agent(head, &agent_dir)?);
        drop(guard);
    }
    eprintln!(
        "build of {:.1} MB: first task {:.3} s fresh, {:.3} s cached",
        size as f64 / 1e6,
        times[0],
        times[1]
    );
    Ok((times[0], times[1]))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn rate(n: usize, f: impl FnOnce(usize)) -> f64 {
    let t = Instant::now();
    f(n);
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    // Started by a node agent (the build cases): a worker of this build.
    mobula::node::run_worker_if_asked();
    if workers::run_if_worker() {
        return Ok(());
    }
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(5),
        None if quick => 1,
        None => 5,
    };
    let json = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1).cloned());
    let filter = args
        .iter()
        .position(|a| a == "--filter")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_default();
    let wanted = |case: &str| case.contains(filter.as_str());
    let scale = if quick { 10 } else { 1 };
    let dir = std::env::temp_dir().join(format!("mobula-bench-cluster-{}", std::process::id()));

    let mut samples: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        // Cluster up: from nothing to the head seeing its worker(s).
        let t0 = Instant::now();
        let guard = mobula::init(
            Config::default()
                .num_cpus(0)
                .head("127.0.0.1:0")
                .cluster_dir(&dir),
        )?;
        let head = mobula::node::head_address().expect("a head has an address");
        let mut workers = vec![spawn_worker(head, &dir)];
        wait_for_workers(1);
        let up = t0.elapsed().as_secs_f64();
        samples.entry("cluster_up_s").or_default().push(up);

        noop.remote().get()?;
        mobula::get_all(&(0..200).map(|_| noop.remote()).collect::<Vec<_>>())?;
        if wanted("xnode_tasks") {
            let sync = rate(500 / scale, |n| {
                for _ in 0..n {
                    noop.remote().get().unwrap();
                }
            });
            samples
                .entry("xnode_tasks_sync_per_s")
                .or_default()
                .push(sync);
            let r#async = rate(5000 / scale, |n| {
                let refs: Vec<_> = (0..n).map(|_| noop.remote()).collect();
                mobula::get_all(&refs).unwrap();
            });
            samples
                .entry("xnode_tasks_async_per_s")
                .or_default()
                .push(r#async);
        }

        if wanted("xnode_actor") {
            let a = A::remote()?;
            a.f().get()?;
            let actor_sync = rate(1000 / scale, |n| {
                for _ in 0..n {
                    a.f().get().unwrap();
                }
            });
            samples
                .entry("xnode_actor_sync_per_s")
                .or_default()
                .push(actor_sync);
            let actor_async = rate(5000 / scale, |n| {
                let refs: Vec<_> = (0..n).map(|_| a.f()).collect();
                mobula::get_all(&refs).unwrap();
            });
            samples
                .entry("xnode_actor_async_per_s")
                .or_default()
                .push(actor_async);
            drop(a);
        }

        if wanted("xnode_generator") {
            // The window: the default, or MOBULA_BENCH_WINDOW.
            let window = std::env::var("MOBULA_BENCH_WINDOW")
                .ok()
                .and_then(|w| w.parse().ok())
                .unwrap_or(mobula::generator::DEFAULT_WINDOW);
            let per_s = rate(5000 / scale, |n| {
                let generator = items
                    .options()
                    .generator_backpressure(window)
                    .remote(n as u64);
                for item in generator {
                    item.get().unwrap();
                }
            });
            samples
                .entry("xnode_generator_items_per_s")
                .or_default()
                .push(per_s);
        }

        if wanted("xnode_object") {
            make.remote(1 << 20).get()?;
            let n = (256 << 20) / scale;
            let t = Instant::now();
            let x = make.remote(n).get()?;
            let dt = t.elapsed().as_secs_f64();
            assert_eq!(x.len(), n);
            drop(x);
            samples
                .entry("xnode_object_256MB_GBps")
                .or_default()
                .push(n as f64 / 1e9 / dt);
        }

        // Three nodes: a second worker joins the running cluster.
        let t1 = Instant::now();
        workers.push(spawn_worker(head, &dir));
        wait_for_workers(2);
        samples
            .entry("cluster_up_3_nodes_s")
            .or_default()
            .push(up + t1.elapsed().as_secs_f64());

        drop(guard);
        drop(workers);
        if wanted("build") {
            let (fresh, cached) = first_task_of_a_new_build(&dir)?;
            samples
                .entry("new_build_first_task_s")
                .or_default()
                .push(fresh);
            samples
                .entry("cached_build_first_task_s")
                .or_default()
                .push(cached);
        }
        if wanted("head") {
            head_restart_case(scale, &mut samples);
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    let _ = std::fs::remove_dir_all(&dir);

    let medians: BTreeMap<&str, f64> = samples
        .iter()
        .map(|(k, v)| (*k, median(v.clone())))
        .collect();
    for (k, v) in &samples {
        let shown: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
        eprintln!("{k}: median {:.3} of [{}]", medians[k], shown.join(", "));
    }
    let fields: Vec<String> = medians
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v:.3}"))
        .collect();
    let line = format!("{{{}}}", fields.join(", "));
    println!("{line}");
    if let Some(path) = json {
        std::fs::write(path, &line)?;
    }
    Ok(())
}
