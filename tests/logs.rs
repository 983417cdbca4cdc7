//! Task and actor logs: lines captured with their task or actor id on the node that ran
//! them, read back with `state::list_logs` and `mobula logs`, and shown on the driver's
//! terminal with a prefix naming the function or class, the id and the node.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::cli::{mobula as cli, text as all_text};
use common::{eventually, eventually_or, local_cluster, turn};
use mobula::logs::{LogLine, LogStream};
use mobula::prelude::*;
use mobula::state::{self, ListOptions};

/// Prints `n` lines, one to standard error and one `tracing` event; answers with its own
/// task id and node id.
#[mobula::remote]
fn shout(n: u32) -> (String, String) {
    for i in 0..n {
        mobula::println!("line {i} of {n}");
    }
    mobula::eprintln!("a warning from the task");
    tracing::info!(n, "traced");
    tracing::debug!("too verbose to keep by default");
    let c = mobula::context();
    (
        c.task_id().unwrap().to_string(),
        c.node_id().unwrap().to_string(),
    )
}

#[mobula::remote]
fn child() -> String {
    mobula::println!("from the child");
    mobula::context().task_id().unwrap().to_string()
}

/// Prints, runs `child` and waits for it, prints again.
#[mobula::remote]
fn parent() -> (String, String) {
    mobula::println!("parent before");
    let child_id = child.remote().get().unwrap();
    mobula::println!("parent after");
    (mobula::context().task_id().unwrap().to_string(), child_id)
}

#[mobula::actor]
struct Speaker {
    name: String,
}

#[mobula::actor]
impl Speaker {
    fn new(name: String) -> Self {
        mobula::println!("built {name}");
        Speaker { name }
    }

    /// Says `what`; answers with the actor's id.
    fn say(&mut self, what: String) -> String {
        mobula::println!("{} says {what}", self.name);
        mobula::context().actor_id().unwrap().to_string()
    }
}

fn texts(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

/// The lines of task or actor `id`, once `n` of them are kept.
fn lines_of(id: &str, n: usize) -> Vec<LogLine> {
    let options = ListOptions::new().filter("id", id).limit(1000);
    eventually(&format!("{n} lines of {id}"), || {
        state::list_logs(&options).unwrap().rows.len() >= n
    });
    state::list_logs(&options).unwrap().rows
}

#[test]
fn lines_of_tasks_and_actors_are_kept_with_their_ids_and_read_back() {
    let _turn = turn();
    let (cluster, workers, _driver) = local_cluster(
        Config::default().num_cpus(0),
        || Config::default().num_cpus(2),
        2,
        |c| c.num_cpus(0),
    );

    // A task on a worker: its prints, its standard error and its tracing event, in order.
    let (task, node) = shout.remote(3).get().unwrap();
    let node: mobula::NodeId = node.parse().unwrap();
    assert!(workers.contains(&node), "it ran on a worker");
    let lines = lines_of(&task, 5);
    assert_eq!(
        texts(&lines),
        [
            "line 0 of 3",
            "line 1 of 3",
            "line 2 of 3",
            "a warning from the task",
            "INFO logs: traced n=3",
        ],
        "the debug event is below the default level"
    );
    let streams: Vec<LogStream> = lines.iter().map(|l| l.stream).collect();
    assert_eq!(
        streams,
        [
            LogStream::Stdout,
            LogStream::Stdout,
            LogStream::Stdout,
            LogStream::Stderr,
            LogStream::Tracing
        ]
    );
    for line in &lines {
        assert_eq!(line.node_id, node);
        assert_eq!(line.task_id.to_string(), task);
        assert_eq!(line.actor_id, None);
        assert_eq!(line.source_name(), "shout");
    }
    assert_eq!(
        lines[0].render(),
        format!(
            "(shout task={task} node={}) line 0 of 3",
            &node.to_string()[..8]
        )
    );

    // A task's child task has lines of its own.
    let (parent_id, child_id) = parent.remote().get().unwrap();
    assert_ne!(parent_id, child_id);
    assert_eq!(
        texts(&lines_of(&parent_id, 2)),
        ["parent before", "parent after"]
    );
    assert_eq!(texts(&lines_of(&child_id, 1)), ["from the child"]);

    // An actor: its constructor's and its methods' lines, under the actor's id.
    let speaker = Speaker::remote("ann".to_string()).unwrap();
    let actor = speaker.say("hi".to_string()).get().unwrap();
    assert_eq!(actor, speaker.id().to_string());
    let said = speaker.say("bye".to_string()).get().unwrap();
    assert_eq!(said, actor);
    let lines = lines_of(&actor, 3);
    assert_eq!(texts(&lines), ["built ann", "ann says hi", "ann says bye"]);
    assert!(lines.iter().all(|l| l.source_name() == "Speaker"));
    assert!(
        lines[0]
            .prefix()
            .starts_with(&format!("(Speaker actor={actor} node="))
    );
    // Each call is a task of its own: filtering on its task id finds its line alone.
    let call = ListOptions::new().filter("task_id", lines[1].task_id);
    assert_eq!(
        texts(&state::list_logs(&call).unwrap().rows),
        ["ann says hi"]
    );

    // What the driver prints outside any task is not a task's line.
    mobula::println!("the driver itself");
    let all = state::list_logs(&ListOptions::new().limit(10_000)).unwrap();
    assert!(all.rows.iter().all(|l| l.text != "the driver itself"));
    assert_eq!(all.rows.len(), 5 + 2 + 1 + 3, "every line, once");

    // The limit keeps the newest lines and counts the rest.
    let (many, _) = shout.remote(50).get().unwrap();
    lines_of(&many, 52);
    let last = state::list_logs(&ListOptions::new().filter("id", &many).limit(3)).unwrap();
    assert_eq!(
        texts(&last.rows),
        [
            "line 49 of 50",
            "a warning from the task",
            "INFO logs: traced n=50"
        ]
    );
    assert_eq!(last.truncated, 49);
    let only_errors = ListOptions::new()
        .filter("id", &many)
        .filter("stream", "stderr");
    assert_eq!(
        texts(&state::list_logs(&only_errors).unwrap().rows),
        ["a warning from the task"]
    );

    // A field logs do not have is refused, naming those they have.
    let err = state::list_logs(&ListOptions::new().filter("colour", "red"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("task_id") && err.contains("stream"), "{err}");

    // `mobula logs ID` reads the same lines from the head, with the driver's prefix.
    let dir = cluster.dir().to_str().unwrap().to_string();
    let out = cli(&["logs", &task, "--dir", &dir]);
    assert!(out.status.success(), "{}", all_text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    let expected: Vec<String> = lines_of(&task, 5).iter().map(LogLine::render).collect();
    assert_eq!(printed.lines().collect::<Vec<_>>(), expected);
    let out = cli(&["logs", &actor, "--dir", &dir, "--format", "json"]);
    assert!(out.status.success(), "{}", all_text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let shown: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!(shown, ["built ann", "ann says hi", "ann says bye"]);
    assert!(rows.iter().all(|r| r["actor_id"] == actor.as_str()));
    let out = cli(&["logs", &many, "--limit", "2", "--dir", &dir]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert!(
        all_text(&out).contains("50 earlier lines left out"),
        "{}",
        all_text(&out)
    );
    let out = cli(&["logs", "000000000000000000000000", "--dir", &dir]);
    assert!(!out.status.success());
    assert!(all_text(&out).contains("no lines of"), "{}", all_text(&out));
    drop(cluster);
}

/// Not a test: a worker node, when the test below starts this binary as one (with
/// `--ignored`). Run any other way it fails.
#[test]
#[ignore = "child-process entry point: a worker node that the logs test starts"]
fn logs_worker() {
    assert!(
        std::env::var_os("MOBULA_WORKER").is_some(),
        "not a test: a worker node, started by the logs test"
    );
    mobula::node::run_worker_if_asked();
    unreachable!("run_worker_if_asked exits the process");
}

/// Not a test: the driver of the test below (started with `--ignored`). It runs a task and
/// an actor call on the worker, prints their ids, and stays until its standard input closes.
/// Run any other way it fails.
#[test]
#[ignore = "child-process entry point: the driver that the logs test starts"]
fn logs_driver() {
    assert!(
        std::env::var_os("MOBULA_LOGS_DRIVER").is_some(),
        "not a test: the driver of the logs test, started by it"
    );
    let _mobula = mobula::init(Config::default().num_cpus(0)).expect("the driver joins");
    eventually("the driver sees the worker", || {
        mobula::node::nodes()
            .iter()
            .any(|node| node.alive && node.info.runs_tasks)
    });
    let (task, node) = shout.remote(3).get().unwrap();
    let speaker = Speaker::remote("bo".to_string()).unwrap();
    let actor = speaker.say("hello".to_string()).get().unwrap();
    // Outside a task: printed as is.
    mobula::println!("ids task={task} node={node} actor={actor}");
    let mut rest = String::new();
    let _ = std::io::stdin().read_to_string(&mut rest);
}

/// Collects what a child writes on a stream, line by line.
fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

#[test]
fn a_driver_process_shows_what_its_work_prints_on_other_nodes() {
    let cluster = common::cli_cluster::Cluster::start("logs-test");
    let (dir, vars) = (cluster.dir.clone(), cluster.vars.clone());
    let d = dir.to_str().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut worker = Command::new(&exe)
        .args(["--ignored", "--exact", "logs_worker", "--nocapture"])
        .envs(&vars)
        .env("MOBULA_WORKER", "1")
        .env("MOBULA_NUM_CPUS", "2")
        .env("MOBULA_DIR", dir.join("worker"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let worker_out = collect(worker.stdout.take().unwrap());
    let worker_err = collect(worker.stderr.take().unwrap());
    let mut driver = Command::new(&exe)
        .args(["--ignored", "--exact", "logs_driver", "--nocapture"])
        .envs(vars.iter().filter(|(k, _)| k.as_str() != "MOBULA_WORKER"))
        .env("MOBULA_LOGS_DRIVER", "1")
        .env("MOBULA_DIR", dir.join("driver"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = collect(driver.stdout.take().unwrap());
    let err = collect(driver.stderr.take().unwrap());

    // The driver prints the ids once its work is done...
    let ids_line = || {
        out.lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with("ids "))
            .cloned()
    };
    let show = || {
        format!(
            "stdout {:?}\nstderr {:?} worker {:?}",
            out.lock().unwrap(),
            err.lock().unwrap(),
            worker_err.lock().unwrap()
        )
    };
    eventually_or(
        "the driver prints the ids",
        || ids_line().is_some() || driver.try_wait().unwrap().is_some(),
        show,
    );
    let ids: HashMap<String, String> = ids_line()
        .unwrap_or_else(|| panic!("the driver ended without printing its ids: {}", show()))
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (task, actor) = (&ids["task"], &ids["actor"]);
    let node = &ids["node"][..8];

    // ...and shows what the task and the actor printed on the worker, with their prefix, in
    // the order they printed it: standard output on its standard output...
    let task_prefix = format!("(shout task={task} node={node})");
    let actor_prefix = format!("(Speaker actor={actor} node={node})");
    let expected_out = [
        format!("{task_prefix} line 0 of 3"),
        format!("{task_prefix} line 1 of 3"),
        format!("{task_prefix} line 2 of 3"),
        format!("{actor_prefix} built bo"),
        format!("{actor_prefix} bo says hello"),
    ];
    let prefixed = |lines: &Arc<Mutex<Vec<String>>>| -> Vec<String> {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with('('))
            .cloned()
            .collect()
    };
    eventually_or(
        "the work's lines on the driver's stdout",
        || prefixed(&out).len() >= expected_out.len(),
        show,
    );
    assert_eq!(prefixed(&out), expected_out);
    // ...standard error and tracing on its standard error.
    let expected_err = [
        format!("{task_prefix} a warning from the task"),
        format!("{task_prefix} INFO logs: traced n=3"),
    ];
    eventually_or(
        "the work's lines on the driver's stderr",
        || prefixed(&err).len() >= expected_err.len(),
        show,
    );
    assert_eq!(prefixed(&err), expected_err);

    // `mobula logs` reads them from the worker, after the fact.
    let logs = cli(&["logs", task, "--dir", d]);
    assert!(logs.status.success(), "{}", all_text(&logs));
    let shown = String::from_utf8_lossy(&logs.stdout).to_string();
    let mut expected_task: Vec<String> = expected_out[..3].to_vec();
    expected_task.extend(expected_err.iter().cloned());
    assert_eq!(shown.lines().collect::<Vec<_>>(), expected_task);
    let logs = cli(&["logs", actor, "--dir", d]);
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout)
            .lines()
            .collect::<Vec<_>>(),
        expected_out[3..]
    );

    drop(driver.stdin.take());
    assert!(driver.wait().unwrap().success());
    let stopped = cli(&["stop", "--dir", d]);
    assert!(stopped.status.success(), "{}", all_text(&stopped));
    assert!(worker.wait().unwrap().success());
    // The lines went to the driver's terminal, not the worker's.
    assert!(
        worker_out
            .lock()
            .unwrap()
            .iter()
            .all(|l| !l.contains("line 0 of 3")),
        "{:?}",
        worker_out.lock().unwrap()
    );
}
