//! What both probe builds share: a driver that runs tasks on the cluster it is pointed at
//! (`MOBULA_ADDRESS` and the credentials) and prints where they ran, for `tests/builds.rs`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mobula::SchedulingStrategy;
use mobula::prelude::*;

/// A task that says what it computed and where: the process and the node; and prints a
/// line, which the driver shows before it has the result.
#[mobula::remote]
pub fn whoami(i: u64) -> (u64, u32, String) {
    mobula::println!("probe line {i}");
    let node = mobula::context().node_id().map(|n| n.to_string());
    (i * i, std::process::id(), node.unwrap_or_default())
}

/// An actor whose method prints a line, which the driver shows before the call's result.
#[mobula::actor]
pub struct Echo;

#[mobula::actor]
impl Echo {
    pub fn new() -> Self {
        Echo
    }

    pub fn say(&self, what: String) -> usize {
        mobula::println!("actor says {what}");
        what.len()
    }
}

/// A task that prints a line and fails.
#[mobula::remote(max_retries = 0)]
pub fn fails_loudly() -> Result<u64, String> {
    mobula::println!("about to fail");
    Err("it failed on purpose".into())
}

/// Runs the probe as build `tag`: 8 spread tasks and `own` (a function only this build
/// has), prints one `RESULT` line, then waits for the file `PROBE_HOLD` if set (so that the
/// test can keep this driver connected while another build runs). Its first argument may
/// be `exit=N` (exit with code N after the line) or `wait` (wait two minutes after it).
pub fn main(tag: &str, own: impl FnOnce() -> anyhow::Result<u64>) -> anyhow::Result<()> {
    if let Ok(n) = std::env::var("PROBE_CORRUPT_CHUNKS") {
        mobula::testing::builds::spoil_next_transfers(n.parse()?, 0);
    }
    if let Ok(n) = std::env::var("PROBE_TRUNCATE_CHUNKS") {
        mobula::testing::builds::spoil_next_transfers(0, n.parse()?);
    }
    let mobula = mobula::init(Config::default())?;
    let refs: Vec<ObjectRef<(u64, u32, String)>> = (0..8)
        .map(|i| {
            whoami
                .options()
                .scheduling_strategy(SchedulingStrategy::Spread)
                .remote(i)
        })
        .collect();
    let got = mobula::get_all(&refs)?;
    let squares: Vec<u64> = got.iter().map(|(s, _, _)| *s).collect();
    anyhow::ensure!(
        squares == (0..8).map(|i| i * i).collect::<Vec<u64>>(),
        "wrong squares {squares:?}"
    );
    let own = own()?;
    let echo = Echo::remote()?;
    anyhow::ensure!(echo.say("hello".to_string()).get()? == 5);
    println!("ECHO_DONE");
    if std::env::var_os("PROBE_FAIL").is_some() {
        match fails_loudly.remote().get() {
            Err(mobula::GetError::Task(e)) => println!("FAILED_TASK id={}", e.task_id),
            other => anyhow::bail!("expected a task error, got {other:?}"),
        }
    }
    let pids: BTreeSet<u32> = got.iter().map(|(_, p, _)| *p).collect();
    let nodes: BTreeSet<&str> = got.iter().map(|(_, _, n)| n.as_str()).collect();
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let nodes: Vec<&str> = nodes.into_iter().collect();
    println!(
        "RESULT tag={tag} own={own} driver={} node={} pids={} nodes={} served={}",
        std::process::id(),
        mobula.node_id(),
        pids.join(","),
        nodes.join(","),
        mobula::testing::builds::transfers_served(),
    );
    match std::env::args().nth(1).as_deref() {
        Some("wait") => std::thread::sleep(Duration::from_secs(120)),
        Some(exit) if exit.starts_with("exit=") => {
            drop(mobula);
            std::process::exit(exit["exit=".len()..].parse()?);
        }
        _ => {}
    }
    if let Ok(hold) = std::env::var("PROBE_HOLD") {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !std::path::Path::new(&hold).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}
