//! A cluster started with the `mobula` command alone (a head, node agents) and drivers of
//! the probe builds (`tests/programs/`) run against it, for the build and job tests.
//!
//! The probes are examples of this package: a whole `cargo test` builds them; a test run
//! alone needs them built first (`cargo build --examples && cargo test --test jobs`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cli::{join_variables, mobula, text};
use mobula::node::ClusterView;

/// A probe build, as `cargo test` built it (an example of this package).
pub fn probe(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    let path = target.join("examples").join(name);
    assert!(path.is_file(), "{} is not built", path.display());
    path
}

pub fn wait_for<T>(what: &str, mut ok: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = ok() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A head (no CPUs) started with `mobula start --head`; stopped with `mobula stop`.
pub struct Cluster {
    pub dir: PathBuf,
    pub vars: HashMap<String, String>,
}

impl Cluster {
    pub fn start(name: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("mobula-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.to_str().unwrap();
        let started = mobula(&[
            "start",
            "--head",
            "--listen",
            "127.0.0.1:0",
            "--no-dashboard",
            "--dir",
            d,
        ]);
        assert!(started.status.success(), "{}", text(&started));
        let vars = join_variables(&text(&started));
        Cluster { dir, vars }
    }

    /// Starts a node agent with `mobula start --address ... --token ... --ca-fingerprint
    /// ...`, as on another machine (its own directory); returns its directory and pid.
    pub fn agent(&self, name: &str, cpus: &str) -> (PathBuf, u32) {
        let dir = self.dir.join(name);
        let out = mobula(&[
            "start",
            "--address",
            &self.vars["MOBULA_ADDRESS"],
            "--token",
            &self.vars["MOBULA_JOIN_TOKEN"],
            "--ca-fingerprint",
            &self.vars["MOBULA_CA_FINGERPRINT"],
            "--num-cpus",
            cpus,
            "--dir",
            dir.to_str().unwrap(),
        ]);
        let printed = text(&out);
        assert!(out.status.success(), "{printed}");
        assert!(printed.contains("joined the cluster at"), "{printed}");
        assert!(printed.contains("as node agent"), "{printed}");
        let pid = printed
            .split("(pid ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .and_then(|pid| pid.parse().ok())
            .expect("the agent's pid");
        (dir, pid)
    }

    pub fn view(&self) -> ClusterView {
        mobula::node::cluster_status(&self.dir, Duration::from_secs(5)).unwrap()
    }

    /// Runs a driver of `build`, with extra environment; its output lines come back on the
    /// returned channel.
    pub fn driver(&self, build: &str, env: &[(&str, &str)]) -> Driver {
        let mut child = Command::new(probe(build))
            .envs(&self.vars)
            .envs(env.iter().copied())
            .env("MOBULA_DIR", self.dir.join(format!("driver-{build}")))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Driver { child, lines: rx }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = mobula(&["stop", "--dir", self.dir.to_str().unwrap()]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Driver {
    pub child: Child,
    pub lines: std::sync::mpsc::Receiver<String>,
}

/// What a probe driver printed on its `RESULT` line, and the lines before it.
#[derive(Debug)]
pub struct Outcome(pub HashMap<String, String>, pub Vec<String>);

impl Outcome {
    pub fn get(&self, key: &str) -> &str {
        &self.0[key]
    }
}

impl Driver {
    pub fn result(&self) -> Outcome {
        let mut before = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .expect("a RESULT line");
            if !line.starts_with("RESULT ") {
                before.push(line);
                continue;
            }
            let fields = line
                .split_whitespace()
                .skip(1)
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            return Outcome(fields, before);
        }
    }

    /// The next line the driver prints.
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(120))
            .expect("a line")
    }

    pub fn finish(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the driver failed: {status}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes the agent started, by build: (node, CPUs).
pub fn processes(view: &ClusterView) -> Vec<(String, f64)> {
    view.nodes
        .iter()
        .filter(|n| n.alive && n.info.started_by.is_some())
        .map(|n| {
            let cpus = n
                .info
                .resources
                .iter()
                .find(|(name, _)| name == "CPU")
                .map_or(0.0, |(_, a)| *a);
            (n.info.node_id.to_string(), cpus)
        })
        .collect()
}

pub fn cached_builds(agent_dir: &Path) -> Vec<(String, std::time::SystemTime)> {
    let Ok(entries) = std::fs::read_dir(agent_dir.join("builds")) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}
