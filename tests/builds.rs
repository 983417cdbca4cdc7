//! Any build on a running cluster, with real processes: a head and a node agent started with
//! the `mobula` command alone, then two builds of a probe program (`tests/programs/`) run as
//! drivers, one after the other and side by side. The agent fetches each build once, by
//! hash, runs a process of each, and shares its CPUs between them.

mod common;
#[path = "common/peers.rs"]
mod peers;

use std::process::Command;

use common::cli::{mobula, text};
use common::cli_cluster::{Cluster, cached_builds, processes, wait_for};

#[test]
fn two_builds_run_on_a_cli_cluster_each_in_its_own_processes() {
    let cluster = Cluster::start("builds");
    let (agent_dir, _) = cluster.agent("agent", "2");

    // Build A: its tasks run in a process the agent started, not in the driver.
    let hold_a = cluster.dir.join("release-a");
    let a = cluster.driver("probe_build_a", &[("PROBE_HOLD", hold_a.to_str().unwrap())]);
    let ra = a.result();
    assert_eq!(ra.get("own"), "42");
    let mut printed: Vec<&String> = ra.1.iter().filter(|l| l.contains("probe line")).collect();
    printed.sort();
    assert_eq!(
        printed.len(),
        8,
        "every line a task printed, before its result: {:?}",
        ra.1
    );
    assert_ne!(ra.get("pids"), ra.get("driver"));
    assert_eq!(
        ra.get("pids").split(',').count(),
        1,
        "one process of build A"
    );
    let view = cluster.view();
    let driver_a = view
        .nodes
        .iter()
        .find(|n| n.info.node_id.to_string() == ra.get("node"))
        .expect("driver A in the view");
    let driver_offers: f64 = driver_a.info.resources.iter().map(|(_, a)| a).sum();
    assert_eq!(driver_offers, 0.0, "a driver offers nothing unless asked");
    let build_a = driver_a
        .info
        .build
        .clone()
        .expect("driver A offers its build");
    for node in ra.get("nodes").split(',') {
        let ran = view
            .nodes
            .iter()
            .find(|n| n.info.node_id.to_string() == node)
            .unwrap();
        assert_eq!(
            ran.info.build.as_ref(),
            Some(&build_a),
            "A's task ran on A's build"
        );
    }

    // Build B while A is still connected: its own process; the agent's 2 CPUs are shared.
    let b = cluster.driver("probe_build_b", &[]);
    let rb = b.result();
    assert_eq!(rb.get("own"), "42");
    assert_eq!(
        rb.get("pids").split(',').count(),
        1,
        "one process of build B"
    );
    assert_ne!(
        rb.get("pids"),
        ra.get("pids"),
        "each build in its own process"
    );
    let shares = wait_for("the machine shared between two builds", || {
        let p = processes(&cluster.view());
        (p.len() == 2 && p.iter().all(|(_, cpus)| *cpus == 1.0)).then_some(p)
    });
    assert_eq!(shares.iter().map(|(_, c)| c).sum::<f64>(), 2.0);
    b.finish();

    // B's driver left: its process stops, and A's gets the whole machine back.
    wait_for("B's process to stop and A's to take both CPUs", || {
        let p = processes(&cluster.view());
        (p.len() == 1 && p[0].1 == 2.0).then_some(())
    });
    let view = cluster.view();
    let gone_b = view
        .nodes
        .iter()
        .find(|n| n.info.node_id.to_string() == rb.get("node"))
        .unwrap();
    assert!(
        !gone_b.alive && gone_b.left,
        "an ended driver left; it did not die"
    );

    std::fs::write(&hold_a, b"").unwrap();
    a.finish();
    let cached = cached_builds(&agent_dir);
    assert_eq!(cached.len(), 2, "both builds kept: {cached:?}");
}

#[test]
fn a_node_restarted_refetches_nothing_and_bad_transfers_are_refused_then_retried() {
    let cluster = Cluster::start("refetch");
    let (agent_dir, agent_pid) = cluster.agent("agent", "1");

    // The driver serves its first chunk corrupt: the agent refuses that copy, fetches again.
    let a = cluster.driver("probe_build_a", &[("PROBE_CORRUPT_CHUNKS", "1")]);
    let ra = a.result();
    assert_eq!(ra.get("own"), "42");
    assert_eq!(ra.get("served"), "2", "the corrupt copy was fetched again");
    a.finish();
    let cached = cached_builds(&agent_dir);
    assert_eq!(cached.len(), 1, "{cached:?}");

    // A truncated transfer is refused the same way.
    let b = cluster.driver("probe_build_b", &[("PROBE_TRUNCATE_CHUNKS", "1")]);
    let rb = b.result();
    assert_eq!(rb.get("own"), "42");
    assert_eq!(
        rb.get("served"),
        "2",
        "the truncated copy was fetched again"
    );
    b.finish();

    // The agent is stopped and started again on its directory: A runs with no fetch.
    let agent_node = cluster
        .view()
        .nodes
        .iter()
        .find(|n| n.alive && n.info.agent)
        .map(|n| n.info.node_id)
        .unwrap();
    let log = std::fs::read_dir(&agent_dir)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("node-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .unwrap();
    assert!(log.contains("fetched a build"), "{log}");
    let killed = Command::new("kill")
        .args(["-9", &agent_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for("the killed agent to be declared dead", || {
        let view = cluster.view();
        view.nodes
            .iter()
            .any(|n| n.info.node_id == agent_node && !n.alive)
            .then_some(())
    });
    let before = cached_builds(&agent_dir);
    cluster.agent("agent", "1");
    let a = cluster.driver("probe_build_a", &[]);
    let ra = a.result();
    assert_eq!(ra.get("own"), "42");
    assert_eq!(ra.get("served"), "0", "the restarted agent fetched nothing");
    a.finish();
    assert_eq!(
        cached_builds(&agent_dir),
        before,
        "the cache was not rewritten"
    );
}

#[test]
fn the_task_id_a_drivers_error_names_finds_its_row_and_its_logs() {
    let cluster = Cluster::start("task-ids");
    cluster.agent("agent", "1");
    let d = cluster.dir.to_str().unwrap().to_string();
    let hold = cluster.dir.join("release");
    let driver = cluster.driver(
        "probe_build_a",
        &[("PROBE_FAIL", "1"), ("PROBE_HOLD", hold.to_str().unwrap())],
    );
    let failed = wait_for("the failed task's line", || {
        let line = driver.next_line();
        line.strip_prefix("FAILED_TASK id=").map(str::to_string)
    });
    let _ = driver.result();
    let row = mobula(&[
        "list",
        "tasks",
        "--filter",
        &format!("task_id={failed}"),
        "--dir",
        &d,
    ]);
    let row = text(&row);
    assert!(row.contains(&failed) && row.contains("FAILED"), "{row}");
    let short = mobula(&[
        "list",
        "tasks",
        "--filter",
        "function=fails_loudly",
        "--dir",
        &d,
    ]);
    assert!(text(&short).contains(&failed), "{}", text(&short));
    let logs = mobula(&["logs", &failed, "--dir", &d]);
    assert!(text(&logs).contains("about to fail"), "{}", text(&logs));
    std::fs::write(&hold, b"").unwrap();
    driver.finish();
}

#[test]
fn a_driver_started_before_any_node_can_run_its_build_waits_and_then_runs() {
    let cluster = Cluster::start("waits");
    let driver = cluster.driver("probe_build_a", &[]);
    // It joined, and its work waits: no node runs its build yet.
    wait_for("the driver to join", || {
        let view = cluster.view();
        view.nodes
            .iter()
            .any(|n| n.alive && n.info.build.is_some())
            .then_some(())
    });
    assert!(processes(&cluster.view()).is_empty());
    cluster.agent("late", "1");
    let result = driver.result();
    assert_eq!(result.get("own"), "42");
    driver.finish();
}

#[test]
fn a_build_for_another_platform_is_refused_with_a_message_naming_both() {
    use mobula::wire::{Build, BuildId, Message, Role};
    let cluster = Cluster::start("platform");
    let (agent_dir, _) = cluster.agent("agent", "1");
    // A driver built for another platform joins and offers its build.
    let join = mobula::node::join_info(&cluster.dir).unwrap();
    let rt = peers::runtime();
    let identity = rt.block_on(peers::join_as(&join, Role::Driver)).unwrap();
    let endpoint = rt.block_on(async { peers::endpoint_of(&identity) });
    let mut info = peers::driver_info(&identity, &endpoint);
    info.build = Some(Build {
        id: BuildId([7; 32]),
        size: 1 << 20,
        target: "aarch64-macos".into(),
    });
    info.target = "aarch64-macos".into();
    let answer = rt.block_on(peers::ask(
        &endpoint,
        join.address,
        &Message::Register(info),
    ));
    assert_eq!(answer, "View");
    let log = wait_for("the agent to refuse the build", || {
        let log = std::fs::read_dir(&agent_dir)
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().starts_with("node-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())?;
        log.contains("cannot run").then_some(log)
    });
    let line = log.lines().find(|l| l.contains("cannot run")).unwrap();
    assert!(
        line.contains("aarch64-macos") && line.contains(&mobula::wire::this_target()),
        "{line}"
    );
    assert!(
        processes(&cluster.view()).is_empty(),
        "nothing started for it"
    );
}
