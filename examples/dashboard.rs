//! A small cluster with work running, and its dashboard: a head and two workers in this
//! process (`mobula::testing::LocalCluster`), a counter actor being called and tasks being
//! submitted every second, some of them failing. Open the address it prints and log in with
//! the token.
//!
//!     cargo run --release --example dashboard                 # runs until Ctrl-C
//!     cargo run --release --example dashboard -- --seconds 30
//!     cargo run --release --example dashboard -- --address 0.0.0.0:8265   # other machines

use std::time::{Duration, Instant};

use mobula::prelude::*;
use mobula::testing::LocalCluster;

#[mobula::remote]
fn work(i: u64) -> Result<u64, String> {
    std::thread::sleep(Duration::from_millis(20 + (i * 37) % 200));
    if i % 13 == 0 {
        return Err(format!("item {i} is unlucky"));
    }
    Ok(i * i)
}

#[mobula::actor]
struct Counter {
    n: u64,
}

#[mobula::actor]
impl Counter {
    fn new() -> Self {
        Counter { n: 0 }
    }

    fn add(&mut self, k: u64) -> u64 {
        self.n += k;
        self.n
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let seconds: Option<u64> = option("--seconds").map(|s| s.parse()).transpose()?;
    let address = option("--address").unwrap_or_else(|| "127.0.0.1:8265".into());

    let mut cluster = LocalCluster::start(
        Config::default()
            .num_cpus(0)
            .dashboard_address(address.as_str()),
    )?;
    for _ in 0..2 {
        cluster.add_node(Config::default().num_cpus(2))?;
    }
    let _driver = mobula::init(cluster.driver_config())?;
    let (bound, token) = cluster
        .dashboard(cluster.head())
        .ok_or_else(|| anyhow::anyhow!("the head serves no dashboard"))?;
    println!("Dashboard: http://{bound}/");
    println!("Token:     {token}");
    let counter = Counter::options().name("counter").remote()?;
    let started = Instant::now();
    let mut i = 0;
    let (mut ok, mut failed) = (0, 0);
    while seconds.is_none_or(|s| started.elapsed() < Duration::from_secs(s)) {
        let batch: Vec<_> = (0..8).map(|k| work.remote(i + k)).collect();
        i += 8;
        counter.add(8).get()?;
        for r in batch {
            match r.get() {
                Ok(_) => ok += 1,
                Err(_) => failed += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let summary = mobula::state::summary()?;
    println!(
        "Ran {} tasks ({ok} finished, {failed} failed); the cluster counts {} finished, {} failed.",
        ok + failed,
        summary.tasks_in(mobula::state::TaskState::Finished),
        summary.tasks_in(mobula::state::TaskState::Failed)
    );
    Ok(())
}
