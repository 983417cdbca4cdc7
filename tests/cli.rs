//! The `mobula` command against real processes: a head started in the background, a worker
//! that joins with exactly the variables the head printed, `status`, and `stop`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::cli::{join_variables, mobula, text};
use std::time::{Duration, Instant};

/// Not a test: a worker node started the way `#[mobula::main]` starts one, by the test
/// below (with `--ignored`). Run any other way it fails.
#[test]
#[ignore = "child-process entry point: a worker node that the CLI test starts"]
fn cli_worker() {
    assert!(
        std::env::var_os("MOBULA_WORKER").is_some(),
        "not a test: a worker node, started by the CLI test"
    );
    mobula::node::run_worker_if_asked();
    unreachable!("run_worker_if_asked exits the process");
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn start_a_head_join_a_worker_with_the_printed_command_look_and_stop() {
    let dir = std::env::temp_dir().join(format!("mobula-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    // If an assertion fails, the head still stops (it runs in the background).
    struct StopOnDrop(String);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            let _ = mobula(&["stop", "--dir", &self.0]);
        }
    }
    let _stop = StopOnDrop(d.to_string());

    let started = mobula(&["start", "--head", "--listen", "127.0.0.1:0", "--dir", d]);
    let printed = text(&started);
    assert!(started.status.success(), "{printed}");
    let vars = join_variables(&printed);
    assert!(
        vars["MOBULA_ADDRESS"].starts_with("127.0.0.1:"),
        "{printed}"
    );
    assert_eq!(vars["MOBULA_JOIN_TOKEN"].len(), 64, "{printed}");
    assert!(
        vars["MOBULA_CA_FINGERPRINT"].starts_with("sha256:"),
        "{printed}"
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("token")), 0o600);
        assert_eq!(mode(&dir.join("ca.key")), 0o600);
    }

    // A second start finds the running head.
    let again = mobula(&["start", "--head", "--listen", "127.0.0.1:0", "--dir", d]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already runs"), "{}", text(&again));

    // A worker joins with the printed variables only (its own, empty cluster directory).
    let worker_dir = dir.join("elsewhere");
    let mut worker = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "cli_worker", "--nocapture"])
        .envs(&vars)
        .env("MOBULA_WORKER", "1")
        .env("MOBULA_NUM_CPUS", "1")
        .env("MOBULA_DIR", &worker_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the worker in `mobula status`", || {
        text(&mobula(&["status", "--dir", d])).contains("2 node(s) alive")
    });
    let status = text(&mobula(&["status", "--dir", d]));
    assert!(status.contains("CPU=1"), "{status}");
    // Later commands find the directory `mobula start` was given.
    let remembered = text(&mobula(&["status"]));
    assert!(remembered.contains("2 node(s) alive"), "{remembered}");
    assert!(status.contains("total (alive): CPU=1"), "{status}");

    let stopped = mobula(&["stop", "--dir", d]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    // The worker was told to stop and exits cleanly.
    wait_for("the worker to exit", || {
        worker.try_wait().unwrap().is_some()
    });
    assert!(worker.wait().unwrap().success());
    // After a stop, status says at once that no head runs there.
    let asked = Instant::now();
    let after = mobula(&["status", "--dir", d]);
    assert!(!after.status.success());
    assert!(text(&after).contains("no cluster in"), "{}", text(&after));
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_command_has_help_and_join_errors_say_what_to_fix() {
    for command in [
        "start", "job", "status", "list", "summary", "memory", "timeline", "logs", "stop",
    ] {
        let out = mobula(&[command, "--help"]);
        assert!(out.status.success(), "{command}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("mobula {command}")),
            "{}",
            text(&out)
        );
    }

    // A port where no head listens: said as such, not as a certificate problem.
    let unused = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = unused.local_addr().unwrap().port();
    drop(unused);
    let dir = std::env::temp_dir().join(format!("mobula-cli-join-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let pin = format!("sha256:{}", "00".repeat(32));
    let address = format!("127.0.0.1:{port}");
    let out = mobula(&[
        "start",
        "--address",
        &address,
        "--token",
        "x",
        "--ca-fingerprint",
        &pin,
        "--dir",
        d,
        "--block",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("no answer from {address}")),
        "{}",
        text(&out)
    );
    // No token anywhere: the variable to set is named.
    let out = mobula(&["start", "--address", &address, "--dir", d, "--block"]);
    assert!(text(&out).contains("MOBULA_JOIN_TOKEN"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_commands_say_what_is_wrong() {
    let out = mobula(&["start"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("start what?"), "{}", text(&out));

    let out = mobula(&["status", "--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("unknown option \"--frobnicate\""),
        "{}",
        text(&out)
    );

    let out = mobula(&["status", "--dir", "/nonexistent/mobula"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("mobula start --head"), "{}", text(&out));
}
