//! The head killed with SIGKILL and started again with `mobula start --head` on the same
//! cluster directory and address, with real processes: two worker nodes and this test as a
//! driver keep running through the outage and reconnect; a detached named actor made before
//! the crash is found by a second driver after it, and so is a key of the key-value store;
//! a placement group's tasks still land on its bundles, a large value held on a worker is
//! fetched, a new worker joins; jobs list both drivers; `mobula status` counts the restart.
//! A head whose database cannot be opened says why and does not start.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use common::cli::{join_variables, mobula, text};
use common::eventually;
use mobula::prelude::*;
use mobula::{NodeId, SchedulingStrategy};

#[mobula::actor]
struct Keeper {
    n: u64,
}

#[mobula::actor]
impl Keeper {
    fn new() -> Self {
        Keeper { n: 0 }
    }

    fn add(&mut self, k: u64) -> u64 {
        self.n += k;
        self.n
    }
}

#[mobula::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[mobula::remote]
fn big(n: usize) -> Vec<u8> {
    vec![7u8; n]
}

/// Not a test: a worker node, started by the test below.
#[test]
#[ignore = "child-process entry point: a worker node that the head-crash test starts"]
fn crash_worker() {
    assert!(
        std::env::var_os("MOBULA_WORKER").is_some(),
        "not a test: a worker node, started by the head-crash test"
    );
    mobula::node::run_worker_if_asked();
    unreachable!("run_worker_if_asked exits the process");
}

/// Not a test: a second driver, started by the test below after the head's restart. Prints
/// what the named actor answered.
#[test]
#[ignore = "child-process entry point: a driver that the head-crash test starts"]
fn crash_second_driver() {
    let Some(address) = std::env::var_os("MOBULA_ADDRESS") else {
        panic!("not a test: a driver, started by the head-crash test");
    };
    let _driver = mobula::init(
        Config::default()
            .address(address.to_string_lossy())
            .num_cpus(0),
    )
    .expect("the second driver joins");
    let name = std::env::var("KEEPER_NAME").unwrap_or_else(|_| "keeper".into());
    let keeper = mobula::get_actor::<Keeper>(&name).expect("the name outlived the head");
    println!("keeper answered {}", keeper.add(100).get().unwrap());
    let kept = mobula::kv::get("app", "model").expect("the head answers");
    println!(
        "kv kept {}",
        String::from_utf8_lossy(&kept.unwrap_or_default())
    );
}

struct StopOnDrop(String);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = mobula(&["stop", "--dir", &self.0]);
    }
}

fn pid_of(printed: &str) -> String {
    let at = printed.find("(pid ").expect("the head's pid") + 5;
    printed[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// Runs a second driver process against the cluster of `vars`, which calls the actor named
/// `keeper` and reads the key-value store; what it printed.
fn second_driver(
    vars: &HashMap<String, String>,
    dir: &std::path::Path,
    keeper: &str,
) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "crash_second_driver", "--nocapture"])
        .env("MOBULA_ADDRESS", &vars["MOBULA_ADDRESS"])
        .env("MOBULA_JOIN_TOKEN", &vars["MOBULA_JOIN_TOKEN"])
        .env("MOBULA_CA_FINGERPRINT", &vars["MOBULA_CA_FINGERPRINT"])
        .env("MOBULA_DIR", dir.join("second"))
        .env("KEEPER_NAME", keeper)
        .output()
        .unwrap()
}

fn driver_config(vars: &HashMap<String, String>, dir: &std::path::Path) -> Config {
    Config::default()
        .address(vars["MOBULA_ADDRESS"].clone())
        .join_token(vars["MOBULA_JOIN_TOKEN"].clone())
        .ca_fingerprint(vars["MOBULA_CA_FINGERPRINT"].clone())
        .cluster_dir(dir)
        .num_cpus(0)
}

#[test]
fn a_head_killed_with_sigkill_and_started_again_keeps_its_cluster() {
    let _turn = common::turn();
    let dir = std::env::temp_dir().join(format!("mobula-head-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap().to_string();
    let _stop = StopOnDrop(d.clone());

    let started = mobula(&["start", "--head", "--listen", "127.0.0.1:0", "--dir", &d]);
    let printed = text(&started);
    assert!(started.status.success(), "{printed}");
    let vars = join_variables(&printed);
    let address = vars["MOBULA_ADDRESS"].clone();

    let start_worker = |name: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "crash_worker", "--nocapture"])
            .envs(&vars)
            .env("MOBULA_WORKER", "1")
            .env("MOBULA_NUM_CPUS", "2")
            .env("MOBULA_DIR", dir.join(name))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let workers_alive = || -> Vec<NodeId> {
        mobula::node::nodes()
            .iter()
            .filter(|n| n.alive && n.info.runs_tasks)
            .map(|n| n.info.node_id)
            .collect()
    };
    let mut worker = start_worker("worker");
    let mut worker_b = start_worker("worker-b");
    let _driver = mobula::init(driver_config(&vars, &dir.join("driver"))).unwrap();
    eventually("both workers join", || workers_alive().len() == 2);
    let (worker_id, worker_b_id) = (workers_alive()[0], workers_alive()[1]);
    let on = |node| SchedulingStrategy::NodeAffinity { node, soft: false };
    let on_worker = on(worker_id);
    // A placement group with a bundle on each worker, and a large value held on one.
    let pg = mobula::placement_group(
        vec![mobula::Bundle::new().num_cpus(1); 2],
        mobula::PlacementStrategy::StrictSpread,
    )
    .unwrap();
    pg.ready().unwrap();
    let held = big
        .options()
        .scheduling_strategy(on(worker_b_id))
        .remote(16 << 20);
    let (ready, _) = mobula::wait_anywhere(vec![held.clone()], 1, None).unwrap();
    assert_eq!(ready.len(), 1);
    let keeper = Keeper::options()
        .name("keeper")
        .detached(true)
        .scheduling_strategy(on_worker)
        .remote()
        .unwrap();
    assert_eq!(keeper.add(1).get().unwrap(), 1);
    // A key of the key-value store, durable before put returns.
    assert!(!mobula::kv::put("app", "model", b"v1", true).unwrap());

    // kill -9 the head.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -9 {}", pid_of(&printed))])
        .status()
        .unwrap();
    assert!(killed.success());
    eventually("the driver finds the head away", || {
        mobula::node::head_away().is_some()
    });
    // Meanwhile the worker runs tasks and the actor answers.
    let squares: Vec<_> = (0..10u64)
        .map(|i| square.options().scheduling_strategy(on_worker).remote(i))
        .collect();
    assert_eq!(
        mobula::get_all(&squares).unwrap(),
        (0..10u64).map(|i| i * i).collect::<Vec<_>>()
    );
    assert_eq!(keeper.add(1).get().unwrap(), 2);

    // Started again, on the same directory and address.
    let again = mobula(&["start", "--head", "--listen", &address, "--dir", &d]);
    assert!(again.status.success(), "{}", text(&again));
    eventually("the driver hears the head again", || {
        mobula::node::head_away().is_none()
    });
    let status = text(&mobula(&["status", "--dir", &d]));
    assert!(status.contains("head restarted 1 time(s)"), "{status}");
    assert!(
        worker.try_wait().unwrap().is_none() && worker_b.try_wait().unwrap().is_none(),
        "the workers kept running"
    );
    // The placement group stands: a task in each bundle runs on that bundle's node.
    common::groups::each_bundle_runs_on_its_node(&pg, 2);
    // The large value is fetched from the worker that holds it.
    let value = held.get().unwrap();
    assert_eq!((value.len(), value[0]), (16 << 20, 7));
    // A new worker joins the restarted head, and runs a task.
    let mut worker_c = start_worker("worker-c");
    eventually("the new worker joins", || workers_alive().len() == 3);
    let new_id = *workers_alive()
        .iter()
        .find(|w| ![worker_id, worker_b_id].contains(w))
        .unwrap();
    let on_new = square.options().scheduling_strategy(on(new_id)).remote(9);
    assert_eq!(on_new.get().unwrap(), 81);

    // A second driver finds the actor by the name taken before the crash.
    let second = second_driver(&vars, &dir, "keeper");
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("keeper answered 102"),
        "{}",
        text(&second)
    );
    assert!(text(&second).contains("kv kept v1"), "{}", text(&second));
    assert_eq!(keeper.add(1).get().unwrap(), 103);

    // Jobs list both drivers: this one, from before the crash and still running, and the
    // second, numbered after it and ended.
    let jobs = text(&mobula(&["job", "list", "--dir", &d]));
    let row = |job: &str| {
        jobs.lines()
            .find(|l| l.split_whitespace().next() == Some(job))
            .unwrap_or_else(|| panic!("no {job} in\n{jobs}"))
            .to_string()
    };
    assert!(row("job-1").contains("RUNNING"), "{jobs}");
    assert!(row("job-2").contains("SUCCEEDED"), "{jobs}");

    let stopped = mobula(&["stop", "--dir", &d]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    eventually("the workers exit", || {
        [&mut worker, &mut worker_b, &mut worker_c]
            .into_iter()
            .all(|w| w.try_wait().unwrap().is_some())
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether process `pid` is gone.
fn gone(pid: &str) -> bool {
    !Command::new("sh")
        .args(["-c", &format!("kill -0 {pid} 2>/dev/null")])
        .status()
        .unwrap()
        .success()
}

#[test]
fn a_head_killed_mid_name_registration_leaves_the_name_taken_or_free() {
    let _turn = common::turn();
    // The head dies just before the name's commit (the name is free after it), or just
    // after (taken, its answer lost): either way the driver's claim, sent again once the
    // head is back, ends with the name its actor's, found from another process.
    for point in ["name-before-commit", "name-after-commit"] {
        let dir =
            std::env::temp_dir().join(format!("mobula-head-crash-{point}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.to_str().unwrap().to_string();
        let _stop = StopOnDrop(d.clone());
        let started = Command::new(common::cli::CLI)
            .args(["start", "--head", "--listen", "127.0.0.1:0", "--dir", &d])
            .env("HOME", &dir)
            .env("MOBULA_TEST_CRASH_AT", point)
            .output()
            .unwrap();
        let printed = text(&started);
        assert!(started.status.success(), "{printed}");
        let vars = join_variables(&printed);
        let address = vars["MOBULA_ADDRESS"].clone();
        let pid = pid_of(&printed);
        let _driver = mobula::init(driver_config(&vars, &dir.join("driver")).num_cpus(1)).unwrap();

        let claim = std::thread::spawn(|| {
            Keeper::options()
                .name("registered")
                .detached(true)
                .remote()
                .map(|k| k.add(1).get().unwrap())
        });
        eventually("the head reaches its kill point", || gone(&pid));
        let again = mobula(&["start", "--head", "--listen", &address, "--dir", &d]);
        assert!(again.status.success(), "{}", text(&again));
        assert_eq!(claim.join().unwrap().unwrap(), 1, "{point}");

        let second = second_driver(&vars, &dir, "registered");
        assert!(
            text(&second).contains("keeper answered 101"),
            "{point}: {}",
            text(&second)
        );
        drop(_driver);
        let stopped = mobula(&["stop", "--dir", &d]);
        assert!(stopped.status.success(), "{}", text(&stopped));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_head_whose_database_cannot_be_opened_says_why_and_does_not_start() {
    let dir = std::env::temp_dir().join(format!("mobula-head-bad-db-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("head.redb"), b"this is not a database").unwrap();
    let d = dir.to_str().unwrap();
    let out = mobula(&["start", "--head", "--listen", "127.0.0.1:0", "--dir", d]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("head.redb") && text(&out).contains("cannot be opened"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
