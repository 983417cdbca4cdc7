//! The state API and the CLI's `list`, `summary` and `memory` against a running
//! LocalCluster: what they show matches what the test did.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{eventually, local_cluster, turn};
use mobula::prelude::*;
use mobula::state::{self, ActorState, ListOptions, ObjectState, PlacementGroupState, TaskState};
use mobula::testing::LocalCluster;
use mobula::{Bundle, NodeId, PlacementStrategy};

const CLI: &str = env!("CARGO_BIN_EXE_mobula");

/// Lets the `held` tasks end.
static RELEASE: AtomicBool = AtomicBool::new(false);

#[mobula::remote]
fn quick(i: u64) -> u64 {
    i
}

#[mobula::remote]
fn broken(i: u64) -> Result<u64, String> {
    Err(format!("broken {i}"))
}

/// Runs until the test releases it (every node is in this process, so they share RELEASE).
#[mobula::remote]
fn held() -> u64 {
    while !RELEASE.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(2));
    }
    1
}

#[mobula::remote]
fn after(x: u64) -> u64 {
    x + 1
}

#[mobula::actor]
struct Keeper {
    n: u64,
}

#[mobula::actor]
impl Keeper {
    fn new() -> Self {
        Keeper { n: 0 }
    }

    fn bump(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    /// Runs until the test releases it.
    fn hold(&mut self) -> u64 {
        while !RELEASE.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.n
    }
}

fn cluster() -> (LocalCluster, Vec<NodeId>, InitGuard) {
    let worker = || Config::default().num_cpus(2);
    local_cluster(Config::default().num_cpus(0), worker, 2, |c| c)
}

fn cli(cluster: &LocalCluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(CLI)
        .args(args)
        .arg("--dir")
        .arg(cluster.dir())
        .output()
        .expect("the CLI runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tasks_of(function: &str, state: TaskState) -> Vec<state::TaskInfo> {
    state::list_tasks(
        &ListOptions::new()
            .filter("function", function)
            .filter("state", state)
            .limit(1000),
    )
    .unwrap()
    .rows
}

#[test]
fn the_state_api_and_the_cli_show_what_the_cluster_does() {
    let _turn = turn();
    RELEASE.store(false, Ordering::Release);
    let (cluster, workers, driver) = cluster();

    // A placement group, made first so that the held tasks do not hold what it needs.
    let pg =
        mobula::placement_group(vec![Bundle::new().num_cpus(1)], PlacementStrategy::Pack).unwrap();
    assert!(pg.wait(Duration::from_secs(30)).unwrap());

    // Ten tasks that finish, two that fail, two that run until released, one waiting on one
    // of those.
    let done: Vec<u64> = (0..10).map(|i| quick.remote(i).get().unwrap()).collect();
    assert_eq!(done.len(), 10);
    for i in 0..2 {
        assert!(broken.remote(i).get().is_err());
    }
    // Their ends are recorded just after their results are stored.
    eventually("the quick and broken tasks are recorded as ended", || {
        tasks_of("state::quick", TaskState::Finished).len() == 10
            && tasks_of("state::broken", TaskState::Failed).len() == 2
    });
    let running: Vec<_> = (0..2).map(|_| held.remote()).collect();
    let waiting = after.remote(&running[0]);
    // Each runs, or waits for a CPU where the placement group took one.
    let held_states = || {
        let rows = state::list_tasks(&ListOptions::new().filter("function", "state::held"))
            .unwrap()
            .rows;
        let running = rows
            .iter()
            .filter(|t| t.state == TaskState::Running)
            .count();
        let queued = rows
            .iter()
            .filter(|t| t.state == TaskState::PendingResources)
            .count();
        (running, queued)
    };
    eventually("the held tasks are listed, one running", || {
        let (running, queued) = held_states();
        running >= 1 && running + queued == 2
    });
    let (running_now, queued_now) = held_states();

    // Actors: one named and called three times, one killed.
    let keeper = Keeper::options().name("keeper").remote().unwrap();
    for _ in 0..3 {
        keeper.bump().get().unwrap();
    }
    let doomed = Keeper::remote().unwrap();
    doomed.bump().get().unwrap();
    mobula::kill(&doomed);
    // An object of about 1 MB in the driver's store.
    let big = mobula::put(vec![7u8; 1 << 20]).unwrap();

    // Tasks, by function and state, on the nodes that ran them.
    let finished = tasks_of("state::quick", TaskState::Finished);
    assert_eq!(finished.len(), 10);
    assert!(finished.iter().all(|t| workers.contains(&t.node_id)));
    assert!(
        finished
            .iter()
            .all(|t| t.attempts == 1 && t.ended_us >= t.started_us)
    );
    let failed = tasks_of("state::broken", TaskState::Failed);
    assert_eq!(failed.len(), 2);
    let errors: HashSet<String> = failed.iter().map(|t| t.error.clone().unwrap()).collect();
    assert!(errors.iter().any(|e| e.contains("broken 0")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("broken 1")), "{errors:?}");
    let pending = tasks_of("state::after", TaskState::PendingArgs);
    assert_eq!(pending.len(), 1);
    // A limit keeps that many and counts the rest.
    let three = state::list_tasks(&ListOptions::new().limit(3)).unwrap();
    assert_eq!(three.rows.len(), 3);
    assert!(three.truncated >= 12, "{}", three.truncated);
    // A bad filter is refused, naming the field.
    let err = state::list_tasks(&ListOptions::new().filter("colour", "red")).unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");

    let summary = state::summary().unwrap();
    assert_eq!(summary.tasks["state::quick"][&TaskState::Finished], 10);
    assert_eq!(summary.tasks["state::broken"][&TaskState::Failed], 2);
    let held_counts = &summary.tasks["state::held"];
    assert_eq!(held_counts[&TaskState::Running] as usize, running_now);
    assert_eq!(
        held_counts
            .get(&TaskState::PendingResources)
            .copied()
            .unwrap_or(0) as usize,
        queued_now
    );
    assert_eq!(summary.tasks["state::after"][&TaskState::PendingArgs], 1);
    assert!(summary.missing.is_empty(), "{:?}", summary.missing);

    // Actors.
    let alive = state::list_actors(&ListOptions::new().filter("state", "ALIVE")).unwrap();
    let named: Vec<_> = alive.rows.iter().filter(|a| a.name.is_some()).collect();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].name.as_deref(), Some("keeper"));
    assert!(named[0].class.ends_with("Keeper"));
    assert_eq!(named[0].calls, 3);
    // Its method calls are tasks of the actor, as Ray lists them.
    let of_keeper = ListOptions::new().filter("actor_id", keeper.id());
    eventually("the keeper's calls are listed as ended tasks", || {
        let rows = state::list_tasks(&of_keeper).unwrap().rows;
        rows.len() == 3 && rows.iter().all(|t| t.state == TaskState::Finished)
    });
    let calls = state::list_tasks(&of_keeper).unwrap().rows;
    assert!(
        calls.iter().all(|t| t.function.ends_with("Keeper.bump")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .all(|t| t.ended_us >= t.started_us && t.started_us.is_some())
    );
    let doomed_calls = ListOptions::new().filter("actor_id", doomed.id());
    assert_eq!(state::list_tasks(&doomed_calls).unwrap().rows.len(), 1);
    let bumps = &state::summary().unwrap().tasks;
    let bump = bumps
        .iter()
        .find(|(f, _)| f.ends_with("Keeper.bump"))
        .unwrap()
        .1;
    assert_eq!(
        bump[&TaskState::Finished],
        4,
        "the keeper's three and the doomed one's"
    );
    eventually("the killed actor is listed dead", || {
        state::list_actors(&ListOptions::new().filter("state", ActorState::Dead))
            .unwrap()
            .rows
            .iter()
            .any(|a| {
                a.actor_id == doomed.id() && a.death_cause.as_deref().unwrap_or("").contains("kill")
            })
    });
    assert_eq!(
        state::summary().unwrap().actors_in(ActorState::Alive),
        alive.rows.len() as u64
    );

    // Objects: the put value, in the driver's memory.
    let objects =
        state::list_objects(&ListOptions::new().filter("node_id", driver.node_id())).unwrap();
    let found = objects
        .rows
        .iter()
        .find(|o| o.object_id == big.id())
        .expect("the put object is listed");
    assert_eq!(found.state, ObjectState::InMemory);
    assert!(found.size >= 1 << 20, "{}", found.size);
    assert!(found.ref_count >= 1 && found.function.is_none());

    // Nodes and placement groups.
    let nodes = state::list_nodes(&ListOptions::new()).unwrap();
    assert_eq!(nodes.rows.len(), 4, "head, two workers, the driver");
    assert!(nodes.rows[0].is_head && nodes.rows.iter().all(|n| n.alive));
    let groups = state::list_placement_groups(&ListOptions::new()).unwrap();
    assert_eq!(groups.rows.len(), 1);
    assert_eq!(groups.rows[0].id, pg.id());
    assert_eq!(groups.rows[0].state, PlacementGroupState::Created);

    // The CLI asks the head with the cluster directory's credentials.
    let (ok, out, err) = cli(
        &cluster,
        &[
            "list",
            "tasks",
            "--filter",
            "state=RUNNING",
            "--format",
            "json",
        ],
    );
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), running_now, "{out}");
    assert!(rows.iter().all(|r| r["function"] == "state::held"));
    let (ok, out, err) = cli(&cluster, &["summary", "tasks"]);
    assert!(ok, "{err}");
    let quick_row = out
        .lines()
        .find(|l| l.starts_with("state::quick"))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = quick_row.split_whitespace().collect();
    // function, PENDING_ARGS, PENDING_RESOURCES, SUBMITTED_TO_ACTOR, RUNNING, FINISHED,
    // FAILED, CANCELLED
    assert_eq!(cells, ["state::quick", "0", "0", "0", "0", "10", "0", "0"]);
    let (ok, out, err) = cli(&cluster, &["list", "actors", "--filter", "name=keeper"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("keeper") && out.contains("ALIVE") && out.contains("(1 shown)"),
        "{out}"
    );
    let (ok, out, _) = cli(&cluster, &["list", "nodes"]);
    assert!(
        ok && out.lines().filter(|l| l.contains("true")).count() >= 4,
        "{out}"
    );
    let (ok, out, err) = cli(&cluster, &["memory"]);
    assert!(ok, "{err}");
    assert!(out.contains(&big.id().to_string()), "{out}");
    let trace_file = cluster.dir().join("trace.json");
    let trace_arg = trace_file.to_str().unwrap();
    let (ok, out, err) = cli(&cluster, &["timeline", "--output", trace_arg]);
    assert!(ok, "{err}");
    assert!(out.contains("Wrote"), "{out}");
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace_file).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let quick_events = events
        .iter()
        .filter(|e| e["name"] == "state::quick")
        .count();
    assert_eq!(
        quick_events, 10,
        "every finished quick task is on the timeline"
    );
    let (ok, _, err) = cli(&cluster, &["list", "tasks", "--filter", "colour=red"]);
    assert!(!ok && err.contains("colour"), "{err}");
    let (ok, _, err) = cli(&cluster, &["list", "things"]);
    assert!(!ok && err.contains("placement-groups"), "{err}");

    // Of two calls to one actor, one runs and the other waits in the actor's queue.
    let holds: Vec<_> = (0..2).map(|_| keeper.hold()).collect();
    eventually("one call runs and one is queued at the actor", || {
        let rows = state::list_tasks(&of_keeper).unwrap().rows;
        let count = |s| rows.iter().filter(|t| t.state == s).count();
        count(TaskState::Running) == 1 && count(TaskState::SubmittedToActor) == 1
    });

    // Released, the held tasks and calls, and the task waiting on one, finish.
    RELEASE.store(true, Ordering::Release);
    assert_eq!(mobula::get_all(&holds).unwrap(), vec![3, 3]);
    assert_eq!(waiting.get().unwrap(), 2);
    eventually("every task has ended", || {
        let s = state::summary().unwrap();
        s.tasks_in(TaskState::Running) == 0 && s.tasks_in(TaskState::PendingArgs) == 0
    });
    assert_eq!(tasks_of("state::held", TaskState::Finished).len(), 2);
    drop(running);
}

#[test]
fn a_single_node_answers_for_itself() {
    let _turn = turn();
    let _node = mobula::init(Config::default().num_cpus(2)).unwrap();
    let r = quick.remote(1);
    assert_eq!(r.get().unwrap(), 1);
    // The state is recorded just after the result is stored: a moment later, not before.
    eventually("the task is listed finished", || {
        let tasks = state::list_tasks(&ListOptions::new()).unwrap();
        tasks.rows.len() == 1 && tasks.rows[0].state == TaskState::Finished
    });
    let nodes = state::list_nodes(&ListOptions::new()).unwrap();
    assert_eq!(nodes.rows.len(), 1);
    assert_eq!(nodes.rows[0].address, None);
    mobula::shutdown();
    assert!(matches!(
        state::list_tasks(&ListOptions::new()),
        Err(state::StateError::NotInitialized)
    ));
}
