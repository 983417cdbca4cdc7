//! Serve on a cluster in this process (`LocalCluster`): replicas on two workers, the proxy
//! and controller with the driver, handles travelling into replicas on other nodes, and a
//! worker killed with traffic flowing.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use common::http::post;
use common::{eventually, turn};
use mobula::NodeId;
use mobula::prelude::*;
use mobula::serve::{self, HttpOptions, Json, ProxyLocation, RunOptions};

#[mobula::deployment(num_cpus = 0)]
struct Doubler;

#[mobula::deployment]
impl Doubler {
    fn new() -> Self {
        Doubler
    }

    fn double(&self, x: i64) -> (i64, NodeId) {
        (2 * x, mobula::context().node_id().unwrap())
    }
}

#[mobula::deployment(num_replicas = 2, num_cpus = 1)]
struct Front {
    doubler: DoublerHandle,
}

#[mobula::deployment]
impl Front {
    fn new(doubler: DoublerHandle) -> Self {
        Front { doubler }
    }

    #[http]
    async fn call(&self, x: Json<i64>) -> Result<Json<(i64, String, String)>, GetError> {
        let (y, doubled_on) = self.doubler.double(x.0).await?;
        let here = mobula::context().node_id().unwrap();
        Ok(Json((y + 1, here.to_string(), doubled_on.to_string())))
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

#[test]
fn replicas_spread_over_two_workers_compose_across_nodes_and_survive_a_lost_worker() {
    let _turn = turn();
    let (mut cluster, workers, _driver) = common::local_cluster(
        Config::default().num_cpus(0),
        || Config::default().num_cpus(2),
        2,
        |c| c,
    );
    let options = RunOptions::default().name("front").http(HttpOptions {
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        location: ProxyLocation::EveryNode,
        ..HttpOptions::default()
    });
    serve::run(Front::bind(Doubler::bind().num_replicas(2)), options).expect("run");
    let addr = serve::proxy_address().unwrap();

    // Each Front replica holds a CPU: one on each worker.
    let status = serve::status().unwrap();
    let front = status.applications[0]
        .deployments
        .iter()
        .find(|d| d.name == "Front")
        .unwrap();
    let nodes: HashSet<String> = front.replicas.iter().map(|r| r.node.clone()).collect();
    let worker_names: HashSet<String> = workers.iter().map(|w| w.to_string()).collect();
    assert_eq!(nodes, worker_names, "one Front replica on each worker");

    // Requests go through both, and the Doubler's handle works inside replicas on workers.
    let mut fronts = HashSet::new();
    for x in 0..40 {
        let r = post(addr, "/", &x.to_string());
        assert_eq!(r.status, 200, "{}", r.text());
        let (y, front_node, _doubled_on): (i64, String, String) =
            serde_json::from_slice(&r.body).unwrap();
        assert_eq!(y, 2 * x + 1);
        fronts.insert(front_node);
    }
    assert_eq!(fronts, worker_names, "both Front replicas served");

    // A proxy on every node: the driver's and each worker's answer alike.
    let proxies = serve::proxy_addresses();
    let proxy_nodes: HashSet<String> = proxies.iter().map(|(n, _)| n.to_string()).collect();
    assert!(proxy_nodes.is_superset(&worker_names), "{proxies:?}");
    for (node, address) in &proxies {
        let r = post(*address, "/", "4");
        assert_eq!(r.status, 200, "through the proxy on {node}: {}", r.text());
        assert_eq!(r.json()[0], 9);
        let status: serve::ServeStatus =
            serde_json::from_slice(&common::http::get(*address, "/-/status").body).unwrap();
        assert_eq!(status.applications[0].name, "front");
    }

    // A worker dies while traffic flows: requests not yet started go to the other replicas,
    // and the controller replaces what was lost.
    STOP.store(false, Ordering::Release);
    let load: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !STOP.load(Ordering::Acquire) {
                    let r = post(addr, "/", "1");
                    seen.push((r.status, r.text()));
                }
                seen
            })
        })
        .collect();
    eventually("traffic flows", || {
        serve::status().unwrap().applications[0].deployments[0].requests > 80
    });
    cluster.kill_node(workers[0]);
    eventually("the deployments run on the live worker", || {
        let s = serve::status().unwrap();
        s.applications[0].deployments.iter().all(|d| {
            !d.replicas.is_empty()
                && d.replicas.iter().all(|r| {
                    r.node == workers[1].to_string()
                        && r.state == serve::status::ReplicaState::Running
                })
        })
    });
    STOP.store(true, Ordering::Release);
    let seen: Vec<(u16, String)> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
    eprintln!(
        "{} requests during the loss, failed: {failed:?}",
        seen.len()
    );
    // Requests running on the lost worker when it died may fail (they had started); every
    // other one is answered.
    assert!(failed.len() <= 3, "{} failed: {failed:?}", failed.len());
    let r = post(addr, "/", "20");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[mobula::deployment(num_replicas = 2, num_cpus = 1, health_check_period_ms = 20)]
struct Versioned {
    version: u32,
}

#[mobula::deployment]
impl Versioned {
    fn new(version: u32) -> Self {
        Versioned { version }
    }

    #[http]
    fn call(&self, _body: Vec<u8>) -> String {
        self.version.to_string()
    }
}

#[mobula::deployment(num_cpus = 1, max_ongoing_requests = 32)]
struct Summer;

#[mobula::deployment]
impl Summer {
    fn new() -> Self {
        Summer
    }

    #[batch(max_batch_size = 8, batch_wait_timeout_ms = 100)]
    async fn total(&self, batch: Vec<Vec<u32>>) -> Vec<u32> {
        batch.into_iter().map(|xs| xs.iter().sum()).collect()
    }
}

static STOP_ROLL: AtomicBool = AtomicBool::new(false);

#[test]
fn across_nodes_a_killed_replica_and_a_rolling_update_fail_no_request_and_batches_fill() {
    let _turn = turn();
    let (_cluster, workers, _driver) = common::local_cluster(
        Config::default().num_cpus(0),
        || Config::default().num_cpus(2),
        2,
        |c| c,
    );
    let http = HttpOptions {
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..HttpOptions::default()
    };
    let options = || RunOptions::default().name("versioned").http(http.clone());
    serve::run(Versioned::bind(1).version("1"), options()).expect("run");
    let addr = serve::proxy_address().unwrap();
    let nodes_of = || -> HashSet<String> {
        let s = serve::status().unwrap();
        s.applications[0].deployments[0]
            .replicas
            .iter()
            .map(|r| r.node.clone())
            .collect()
    };
    let worker_names: HashSet<String> = workers.iter().map(|w| w.to_string()).collect();
    assert_eq!(nodes_of(), worker_names);

    STOP_ROLL.store(false, Ordering::Release);
    let load: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !STOP_ROLL.load(Ordering::Acquire) {
                    let r = post(addr, "/", "");
                    seen.push((r.status, r.text()));
                }
                seen
            })
        })
        .collect();
    let replicas = || serve::running_replicas("versioned", "Versioned").unwrap();
    let first = replicas();
    serve::kill_replica("versioned", "Versioned", first[0].0).unwrap();
    eventually("the killed replica is replaced", || {
        let now = replicas();
        now.len() == 2 && now.iter().all(|r| r.0 != first[0].0)
    });
    let before = replicas();
    serve::run(Versioned::bind(2).version("2"), options()).expect("update");
    eventually("every replica runs version 2", || {
        let now = replicas();
        now.len() == 2 && now.iter().all(|r| !before.contains(r))
    });
    STOP_ROLL.store(true, Ordering::Release);
    let seen: Vec<(u16, String)> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        seen.len()
    );
    assert!(seen.iter().any(|(_, v)| v == "1") && seen.iter().any(|(_, v)| v == "2"));
    assert_eq!(post(addr, "/", "").text(), "2");

    // A batched deployment on a worker, called from the driver through its handle.
    // Its proxy on the second worker only (the driver's runs already).
    let on_worker = HttpOptions {
        location: ProxyLocation::Nodes(vec![workers[1]]),
        ..http.clone()
    };
    let summer = serve::run(
        Summer::bind(),
        RunOptions::default()
            .name("sums")
            .route_prefix("/sums")
            .http(on_worker),
    )
    .expect("run");
    let proxies = serve::proxy_addresses();
    assert_eq!(
        proxies.len(),
        2,
        "the driver's and the second worker's: {proxies:?}"
    );
    let (node, worker_proxy) = proxies[1];
    assert_eq!(node, workers[1]);
    for address in [addr, worker_proxy] {
        let r = post(address, "/sums", "");
        assert_eq!(r.status, 404);
        assert!(r.text().contains("has no #[http] method"), "{}", r.text());
    }
    let refs: Vec<_> = (0..16u32).map(|i| summer.total(vec![i, 1])).collect();
    let totals = mobula::get_all(&refs).unwrap();
    assert_eq!(totals, (0..16u32).map(|i| i + 1).collect::<Vec<_>>());
    let sizes = summer.total_batch_sizes().get().unwrap();
    assert!(sizes.iter().any(|&s| s > 1), "{sizes:?}");
    let on = serve::status().unwrap();
    let sums = on.applications.iter().find(|a| a.name == "sums").unwrap();
    assert!(worker_names.contains(&sums.deployments[0].replicas[0].node));
}

static HOLD: AtomicBool = AtomicBool::new(false);

async fn held(x: u32) -> u32 {
    while HOLD.load(Ordering::Acquire) {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    x + 1
}

#[mobula::deployment(
    num_cpus = 1,
    health_check_period_ms = 20,
    autoscaling(
        min_replicas = 1,
        max_replicas = 2,
        target_ongoing_requests = 1,
        upscale_delay_ms = 0,
        downscale_delay_ms = 100
    )
)]
struct Elastic {
    sick: AtomicBool,
}

#[mobula::deployment]
impl Elastic {
    fn new() -> Self {
        Elastic {
            sick: AtomicBool::new(false),
        }
    }

    fn check_health(&self) -> Result<(), String> {
        if self.sick.load(Ordering::Acquire) {
            Err("told to be sick".into())
        } else {
            Ok(())
        }
    }

    fn fall_ill(&self) {
        self.sick.store(true, Ordering::Release);
    }

    #[http]
    async fn call(&self, x: Json<u32>) -> Json<u32> {
        Json(held(x.0).await)
    }
}

#[mobula::deployment(num_cpus = 1, max_ongoing_requests = 1, max_queued_requests = 0)]
struct Tight;

#[mobula::deployment]
impl Tight {
    fn new() -> Self {
        Tight
    }

    #[http]
    async fn call(&self, x: Json<u32>) -> Json<u32> {
        Json(held(x.0).await)
    }
}

#[test]
fn across_nodes_autoscaling_health_checks_and_bad_input() {
    let _turn = turn();
    let (_cluster, workers, _driver) = common::local_cluster(
        Config::default().num_cpus(0),
        || Config::default().num_cpus(2),
        2,
        |c| c,
    );
    HOLD.store(false, Ordering::Release);
    let http = HttpOptions {
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        request_timeout: Some(std::time::Duration::from_millis(300)),
        max_body_bytes: 64,
        ..HttpOptions::default()
    };
    let run = |name: &str, prefix: &str| {
        RunOptions::default()
            .name(name)
            .route_prefix(prefix)
            .http(http.clone())
    };
    let elastic = serve::run(Elastic::bind(), run("elastic", "/e")).expect("run");
    serve::run(Tight::bind(), run("tight", "/t")).expect("run");
    let addr = serve::proxy_address().unwrap();
    let replicas = || serve::running_replicas("elastic", "Elastic").unwrap();
    assert_eq!(replicas().len(), 1);
    assert_eq!(post(addr, "/e", "41").text(), "42");

    // Bad input through the cluster's proxy: 400 and 413.
    let r = post(addr, "/e", "{");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("malformed JSON body"), "{}", r.text());
    assert_eq!(post(addr, "/e", &"9".repeat(100)).status, 413);

    // Under held load the deployment scales to 2 replicas, one on each worker, and back to
    // 1 after.
    HOLD.store(true, Ordering::Release);
    let load: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || post(addr, "/e", "1").status))
        .collect();
    eventually("two replicas under load", || replicas().len() == 2);
    let status = serve::status().unwrap();
    let elastic_status = status
        .applications
        .iter()
        .find(|a| a.name == "elastic")
        .unwrap();
    let nodes: HashSet<String> = elastic_status.deployments[0]
        .replicas
        .iter()
        .map(|r| r.node.clone())
        .collect();
    let worker_names: HashSet<String> = workers.iter().map(|w| w.to_string()).collect();
    assert_eq!(nodes, worker_names, "one replica on each worker");
    // Held past the proxy's timeout: 504 (their work goes on until released).
    for t in load {
        assert_eq!(t.join().unwrap(), 504);
    }

    // A full replica on a worker: 503 with Retry-After.
    let tight_ongoing = || {
        let s = serve::status().unwrap();
        let t = s.applications.iter().find(|a| a.name == "tight").unwrap();
        t.deployments[0].replicas[0].ongoing
    };
    let one = std::thread::spawn(move || post(addr, "/t", "1").status);
    eventually("the tight replica is busy", || tight_ongoing() == 1);
    let refused = post(addr, "/t", "1");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(one.join().unwrap(), 504);
    HOLD.store(false, Ordering::Release);
    eventually("the tight replica is idle", || tight_ongoing() == 0);
    assert_eq!(post(addr, "/t", "1").text(), "2");
    eventually("back to one replica after the load", || {
        replicas().len() == 1
    });

    // A replica that fails its health check is replaced.
    let before = replicas();
    elastic.fall_ill().get().unwrap();
    eventually("the sick replica is replaced", || {
        let now = replicas();
        now.len() == 1 && now[0] != before[0]
    });
    assert_eq!(post(addr, "/e", "1").text(), "2");
}
