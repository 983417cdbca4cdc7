//! Mobula's side of `ray microbenchmark`: the same cases, workload shapes and timing method,
//! printed in Ray's form (`NAME per second MEAN +- STD`) so the two outputs line up.
//!
//!     cargo bench --bench microbenchmark                  # every case, ~10 s each
//!     cargo bench --bench microbenchmark -- --filter put  # cases whose name contains "put"
//!     cargo bench --bench microbenchmark -- --quick       # a few hundred operations per case
//!     cargo bench --bench microbenchmark -- --observe     # with /metrics and the dashboard on,
//!                                                         # scraped and watched every second
//!     cargo bench --bench microbenchmark -- --json out.json
//!
//! Timing (Ray's `timeit`): run the case for about 1 s to warm up, then take 4 samples of
//! about 2 s each; report the mean and standard deviation of operations per second.

use std::io::Write;
use std::time::{Duration, Instant};

use mobula::prelude::*;

/// Ray's no-op task returns the two bytes "ok".
#[mobula::remote]
fn small_value() -> Vec<u8> {
    b"ok".to_vec()
}

/// A streaming generator of `n` two-byte items (not one of Ray's microbenchmark cases:
/// `benches/compare_generators.py` runs the same on Ray).
#[mobula::remote]
fn small_items(n: u64) -> impl Iterator<Item = Vec<u8>> {
    (0..n).map(|_| b"ok".to_vec())
}

/// Ray's multi-client put: a task that puts 0 a hundred times.
#[mobula::remote(num_cpus = 0)]
fn do_put_small() -> u8 {
    for _ in 0..100 {
        drop(mobula::put(0u64).unwrap());
    }
    0
}

/// Ray's multi-client put of gigabytes: a task that puts ten 80 MB arrays (`len` int64s).
#[mobula::remote(num_cpus = 0)]
fn do_put_large(len: usize) -> u8 {
    let arr = std::hint::black_box(vec![0i64; len]);
    for _ in 0..10 {
        drop(mobula::put(arr.clone()).unwrap());
    }
    0
}

/// Ray's benchmark actor (`Actor` there): no-op methods.
#[mobula::actor]
struct Server;

#[mobula::actor]
impl Server {
    fn new() -> Self {
        Server
    }

    fn small_value(&self) -> Vec<u8> {
        b"ok".to_vec()
    }

    fn small_value_arg(&self, _x: u64) -> Vec<u8> {
        b"ok".to_vec()
    }
}

/// Ray's `AsyncActor`.
#[mobula::actor]
struct AsyncServer;

#[mobula::actor]
impl AsyncServer {
    fn new() -> Self {
        AsyncServer
    }

    async fn small_value(&self) -> Vec<u8> {
        b"ok".to_vec()
    }

    async fn small_value_with_arg(&self, _x: u64) -> Vec<u8> {
        b"ok".to_vec()
    }
}

/// Ray's `Client` actor: calls servers from inside an actor.
#[mobula::actor]
struct Client {
    servers: Vec<ServerHandle>,
    async_servers: Vec<AsyncServerHandle>,
}

#[mobula::actor]
impl Client {
    fn new(servers: Vec<ServerHandle>, async_servers: Vec<AsyncServerHandle>) -> Self {
        Client {
            servers,
            async_servers,
        }
    }

    fn small_value_batch(&self, n: u64) -> u8 {
        let mut refs = Vec::new();
        for s in &self.servers {
            refs.extend((0..n).map(|_| s.small_value()));
        }
        for s in &self.async_servers {
            refs.extend((0..n).map(|_| s.small_value()));
        }
        mobula::get_all(&refs).unwrap();
        0
    }

    fn small_value_batch_arg(&self, n: u64) -> u8 {
        let x = mobula::put(0u64).unwrap();
        let refs: Vec<_> = (0..n)
            .map(|_| self.servers[0].small_value_arg(&x))
            .collect();
        mobula::get_all(&refs).unwrap();
        0
    }

    /// Ray's multi-client task submitter: n no-op tasks, then get them all.
    fn submit_tasks(&self, n: u64) -> u8 {
        let refs: Vec<_> = (0..n).map(|_| small_value.remote()).collect();
        mobula::get_all(&refs).unwrap();
        0
    }
}

/// Ray's n:n `work` task: `n` calls round robin over the servers.
#[mobula::remote(num_cpus = 0)]
fn work(servers: Vec<ServerHandle>, n: u64) -> u8 {
    let refs: Vec<_> = (0..n as usize)
        .map(|i| servers[i % servers.len()].small_value())
        .collect();
    mobula::get_all(&refs).unwrap();
    0
}

/// The same over async servers.
#[mobula::remote(num_cpus = 0)]
fn work_async(servers: Vec<AsyncServerHandle>, n: u64) -> u8 {
    let refs: Vec<_> = (0..n as usize)
        .map(|i| servers[i % servers.len()].small_value())
        .collect();
    mobula::get_all(&refs).unwrap();
    0
}

struct Options {
    filter: Option<String>,
    quick: bool,
    json: Option<String>,
    /// Serve /metrics and the dashboard, and watch both.
    observe: bool,
}

struct Bench {
    opts: Options,
    results: Vec<(String, f64, f64, &'static str)>,
}

impl Bench {
    fn wanted(&self, name: &str) -> bool {
        self.opts.filter.as_deref().is_none_or(|f| name.contains(f))
    }

    /// Ray's `timeit`: `multiplier` operations per call of `f`.
    fn timeit(&mut self, name: &str, multiplier: f64, mut f: impl FnMut()) {
        if !self.wanted(name) {
            return;
        }
        let (warmup, sample, samples) = if self.opts.quick {
            (Duration::from_millis(20), Duration::from_millis(50), 2)
        } else {
            (Duration::from_secs(1), Duration::from_secs(2), 4)
        };
        let start = Instant::now();
        let mut count = 0u64;
        while start.elapsed() < warmup || count == 0 {
            f();
            count += 1;
        }
        let step = count / 10 + 1;
        let mut stats = Vec::new();
        for _ in 0..samples {
            let start = Instant::now();
            let mut count = 0u64;
            while start.elapsed() < sample {
                for _ in 0..step {
                    f();
                }
                count += step;
            }
            stats.push(multiplier * count as f64 / start.elapsed().as_secs_f64());
        }
        let mean = stats.iter().sum::<f64>() / stats.len() as f64;
        let std =
            (stats.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / stats.len() as f64).sqrt();
        println!("{name} per second {mean:.2} +- {std:.2}");
        let _ = std::io::stdout().flush();
        self.results.push((name.to_string(), mean, std, "ok"));
    }
}

/// What a Prometheus scraping every second and an open dashboard page cost: a thread that
/// gets `/metrics` and the dashboard's state (what its live page receives) once a second.
fn watch() -> std::thread::JoinHandle<()> {
    let metrics = mobula::node::metrics_address().expect("metrics are served");
    let (dashboard, token) = mobula::node::dashboard().expect("the dashboard is served");
    std::thread::spawn(move || {
        loop {
            for (address, path, auth) in [
                (metrics, "/metrics", String::new()),
                (
                    dashboard,
                    "/api/state",
                    format!("Authorization: Bearer {token}\r\n"),
                ),
            ] {
                if let Ok(mut s) = std::net::TcpStream::connect(address) {
                    let _ = write!(
                        s,
                        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
                    );
                    let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
                }
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    })
}

fn parse_args() -> Options {
    let mut opts = Options {
        filter: None,
        quick: false,
        json: None,
        observe: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--observe" => opts.observe = true,
            "--filter" => opts.filter = args.next(),
            "--json" => opts.json = args.next(),
            "--bench" => {}
            other if other.starts_with("--") => eprintln!("ignoring unknown option {other}"),
            other => opts.filter = Some(other.to_string()),
        }
    }
    opts
}

fn main() -> anyhow::Result<()> {
    let opts = parse_args();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut config = Config::default()
        .num_cpus(cpus as f64)
        .resource("custom", 100);
    if opts.observe {
        config = config
            .metrics_address("127.0.0.1:0")
            .dashboard_address("127.0.0.1:0");
    }
    let _mobula = mobula::init(config)?;
    let _watcher = opts.observe.then(watch);
    let mut b = Bench {
        opts,
        results: Vec::new(),
    };

    let value = mobula::put(0u64)?;
    b.timeit("single client get calls (Plasma Store)", 1.0, || {
        value.get().unwrap();
    });
    b.timeit("single client put calls (Plasma Store)", 1.0, || {
        drop(mobula::put(0u64).unwrap());
    });
    b.timeit("multi client put calls (Plasma Store)", 1000.0, || {
        let refs: Vec<_> = (0..10).map(|_| do_put_small.remote()).collect();
        mobula::get_all(&refs).unwrap();
    });
    // Ray's 800 MB array; the quick smoke run uses 8 MB (and reports GB/s all the same).
    let scale = if b.opts.quick { 100 } else { 1 };
    let large = std::hint::black_box(vec![0i64; 100 * 1024 * 1024 / scale]);
    b.timeit("single client put gigabytes", 0.8 / scale as f64, || {
        drop(mobula::put(large.clone()).unwrap());
    });
    drop(large);
    b.timeit("single client tasks and get batch", 1.0, || {
        let refs: Vec<_> = (0..1000).map(|_| small_value.remote()).collect();
        mobula::get_all(&refs).unwrap();
    });
    b.timeit("multi client put gigabytes", 8.0 / scale as f64, || {
        let refs: Vec<_> = (0..10)
            .map(|_| do_put_large.remote(10 * 1024 * 1024 / scale))
            .collect();
        mobula::get_all(&refs).unwrap();
    });
    let refs: Vec<_> = (0..10_000).map(|_| mobula::put(0u64).unwrap()).collect();
    let holder = mobula::put(refs)?;
    b.timeit("single client get object containing 10k refs", 1.0, || {
        holder.get().unwrap();
    });
    drop(holder);
    b.timeit("single client wait 1k refs", 1.0, || {
        let mut pending: Vec<_> = (0..1000).map(|_| small_value.remote()).collect();
        while !pending.is_empty() {
            let (_, rest) = mobula::wait(pending, 1, None).unwrap();
            pending = rest;
        }
    });
    b.timeit("single client tasks sync", 1.0, || {
        small_value.remote().get().unwrap();
    });
    b.timeit("single client tasks async", 1000.0, || {
        let refs: Vec<_> = (0..1000).map(|_| small_value.remote()).collect();
        mobula::get_all(&refs).unwrap();
    });
    b.timeit("single client generator items", 1000.0, || {
        for item in small_items.remote(1000) {
            item.get().unwrap();
        }
    });
    let clients: Vec<_> = (0..4)
        .map(|_| Client::remote(vec![], vec![]).unwrap())
        .collect();
    b.timeit("multi client tasks async", 4.0 * 10_000.0, || {
        let refs: Vec<_> = clients.iter().map(|c| c.submit_tasks(10_000)).collect();
        mobula::get_all(&refs).unwrap();
    });
    drop(clients);

    let a = Server::remote()?;
    b.timeit("1:1 actor calls sync", 1.0, || {
        a.small_value().get().unwrap();
    });
    b.timeit("1:1 actor calls async", 1000.0, || {
        let refs: Vec<_> = (0..1000).map(|_| a.small_value()).collect();
        mobula::get_all(&refs).unwrap();
    });
    let concurrent = Server::options().max_concurrency(16).remote()?;
    b.timeit("1:1 actor calls concurrent", 1000.0, || {
        let refs: Vec<_> = (0..1000).map(|_| concurrent.small_value()).collect();
        mobula::get_all(&refs).unwrap();
    });
    let n_cpu = (cpus / 2).max(1);
    let servers: Vec<_> = (0..n_cpu).map(|_| Server::remote().unwrap()).collect();
    let client = Client::remote(servers.clone(), vec![])?;
    b.timeit("1:n actor calls async", 5000.0 * n_cpu as f64, || {
        client.small_value_batch(5000).get().unwrap();
    });
    b.timeit("n:n actor calls async", 4.0 * 5000.0, || {
        let refs: Vec<_> = (0..4).map(|_| work.remote(servers.clone(), 5000)).collect();
        mobula::get_all(&refs).unwrap();
    });
    let pairs: Vec<_> = (0..n_cpu)
        .map(|_| Client::remote(vec![Server::remote().unwrap()], vec![]).unwrap())
        .collect();
    b.timeit(
        "n:n actor calls with arg async",
        1000.0 * n_cpu as f64,
        || {
            let refs: Vec<_> = pairs
                .iter()
                .map(|c| c.small_value_batch_arg(1000))
                .collect();
            mobula::get_all(&refs).unwrap();
        },
    );

    let aa = AsyncServer::remote()?;
    b.timeit("1:1 async-actor calls sync", 1.0, || {
        aa.small_value().get().unwrap();
    });
    b.timeit("1:1 async-actor calls async", 1000.0, || {
        let refs: Vec<_> = (0..1000).map(|_| aa.small_value()).collect();
        mobula::get_all(&refs).unwrap();
    });
    b.timeit("1:1 async-actor calls with args async", 1000.0, || {
        let refs: Vec<_> = (0..1000).map(|_| aa.small_value_with_arg(1)).collect();
        mobula::get_all(&refs).unwrap();
    });
    let async_servers: Vec<_> = (0..n_cpu).map(|_| AsyncServer::remote().unwrap()).collect();
    let async_client = Client::remote(vec![], async_servers.clone())?;
    b.timeit("1:n async-actor calls async", 5000.0 * n_cpu as f64, || {
        async_client.small_value_batch(5000).get().unwrap();
    });
    b.timeit("n:n async-actor calls async", 4.0 * 5000.0, || {
        let refs: Vec<_> = (0..4)
            .map(|_| work_async.remote(async_servers.clone(), 5000))
            .collect();
        mobula::get_all(&refs).unwrap();
    });
    // Ray's shape: 100 one-bundle groups of 0.001 "custom" (the node has 100), each waited
    // for, then all removed.
    b.timeit("placement group create/removal", 100.0, || {
        let groups: Vec<_> = (0..100)
            .map(|_| {
                let bundle = mobula::Bundle::new().resource("custom", 0.001);
                mobula::placement_group(vec![bundle], mobula::PlacementStrategy::Pack).unwrap()
            })
            .collect();
        for g in &groups {
            assert!(g.wait(Duration::from_secs(30)).unwrap());
        }
        for g in &groups {
            mobula::remove_placement_group(g);
        }
    });

    if let Some(path) = &b.opts.json {
        let rows: Vec<String> = b
            .results
            .iter()
            .map(|(n, m, s, st)| format!("  {{\"name\": {n:?}, \"per_second\": {m:.2}, \"std\": {s:.2}, \"status\": {st:?}}}"))
            .collect();
        std::fs::write(path, format!("[\n{}\n]\n", rows.join(",\n")))?;
    }
    Ok(())
}
