//! Jobs, as Ray Jobs, with real processes: programs submitted with `mobula job submit` run
//! on the cluster as drivers (output streamed, status from their exit, stopped on demand),
//! and every driver that connects is a job too; `mobula job list` and the state API list
//! them.

mod common;

use std::time::Duration;

use common::cli::{mobula, text};
use common::cli_cluster::{Cluster, probe, wait_for};
use mobula::state::{JobStatus, ListOptions, Source};

fn jobs(cluster: &Cluster) -> Vec<mobula::state::JobInfo> {
    Source::ClusterDir(cluster.dir.clone(), Duration::from_secs(5))
        .list_jobs(&ListOptions::new())
        .unwrap()
        .rows
}

#[test]
fn submitted_programs_and_connected_drivers_are_jobs_with_their_status() {
    let cluster = Cluster::start("jobs");
    cluster.agent("agent", "1");
    let d = cluster.dir.to_str().unwrap().to_string();
    let a = probe("probe_build_a");
    let a = a.to_str().unwrap();

    // A submitted program: its output streams to the terminal, and it succeeds.
    let out = mobula(&["job", "submit", "--dir", &d, "--", a]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("RESULT tag=a own=42"), "{printed}");
    assert!(printed.contains("job-1 SUCCEEDED"), "{printed}");

    // One that exits with 3: FAILED, with its code, and the CLI fails too.
    let out = mobula(&["job", "submit", "--dir", &d, "--", a, "exit=3"]);
    let printed = text(&out);
    assert!(!out.status.success(), "{printed}");
    assert!(printed.contains("RESULT tag=a"), "{printed}");
    assert!(printed.contains("FAILED (exit code 3)"), "{printed}");

    // One that runs on: submitted without waiting, its logs read, then stopped.
    let out = mobula(&["job", "submit", "--no-wait", "--dir", &d, "--", a, "wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(job, "job-3");
    wait_for("the waiting job's output", || {
        let logs = mobula(&["job", "logs", &job, "--dir", &d]);
        text(&logs).contains("RESULT tag=a").then_some(())
    });
    let status = mobula(&["job", "status", &job, "--dir", &d]);
    assert!(text(&status).contains("job-3 RUNNING"), "{}", text(&status));
    let stopped = mobula(&["job", "stop", &job, "--dir", &d]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert!(
        text(&stopped).contains("job-3 STOPPED"),
        "{}",
        text(&stopped)
    );

    // A driver run by hand is a job of its own, finished when it ends.
    let driver = cluster.driver("probe_build_a", &[]);
    let result = driver.result();
    driver.finish();
    let by_hand = wait_for("the hand-run driver's job to end", || {
        jobs(&cluster)
            .into_iter()
            .find(|j| j.driver.map(|n| n.to_string()).as_deref() == Some(result.get("node")))
            .filter(|j| j.status.is_terminal())
    });
    assert!(!by_hand.submitted);
    assert_eq!(by_hand.status, JobStatus::Succeeded);

    // Every job, the newest first, in the state API and the CLI's list.
    let listed = jobs(&cluster);
    let statuses: Vec<(String, JobStatus, bool)> = listed
        .iter()
        .map(|j| (j.job_id.to_string(), j.status, j.submitted))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("job-4".into(), JobStatus::Succeeded, false),
            ("job-3".into(), JobStatus::Stopped, true),
            ("job-2".into(), JobStatus::Failed, true),
            ("job-1".into(), JobStatus::Succeeded, true),
        ]
    );
    assert_eq!(listed[2].exit_code, Some(3));
    assert!(listed[0].build.is_some() && listed[0].build == listed[1].build);
    let list = mobula(&["job", "list", "--dir", &d]);
    let table = text(&list);
    for row in [
        "job-4",
        "job-3",
        "STOPPED",
        "job-2",
        "FAILED",
        "job-1",
        "SUCCEEDED",
    ] {
        assert!(table.contains(row), "{table}");
    }
    let filtered = mobula(&["list", "jobs", "--filter", "status=FAILED", "--dir", &d]);
    let filtered = text(&filtered);
    assert!(
        filtered.contains("job-2") && !filtered.contains("job-1"),
        "{filtered}"
    );
}
