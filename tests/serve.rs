//! Serve on one node: deployments over real HTTP on loopback, composition through handles,
//! batching, every bad input, streaming, autoscaling, health checks, rolling updates and
//! killed replicas.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::http::{Reply, get, post, request};
use common::{eventually, start};
use mobula::prelude::*;
use mobula::serve::{self, HttpOptions, Json, Request, Response, RunOptions};
use serde::{Deserialize, Serialize};

fn options(app: &str, prefix: &str) -> RunOptions {
    RunOptions::default()
        .name(app)
        .route_prefix(prefix)
        .http(HttpOptions {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..HttpOptions::default()
        })
}

fn proxy() -> SocketAddr {
    serve::proxy_address().expect("the proxy runs")
}

fn node() -> common::TestNode {
    start(Config::default().num_cpus(2))
}

fn replicas(app: &str, deployment: &str) -> Vec<u64> {
    serve::running_replicas(app, deployment)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Values, routes, raw requests.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sum {
    a: i64,
    b: i64,
}

#[mobula::deployment(num_replicas = 2, num_cpus = 0)]
struct Adder {
    offset: i64,
}

#[mobula::deployment]
impl Adder {
    fn new(offset: i64) -> Self {
        Adder { offset }
    }

    fn add(&self, a: i64, b: i64) -> i64 {
        a + b + self.offset
    }

    #[http]
    fn call(&self, sum: Json<Sum>) -> Json<i64> {
        Json(sum.0.a + sum.0.b + self.offset)
    }
}

/// Echoes what the proxy saw of the raw request.
#[mobula::deployment(num_cpus = 0)]
struct Echo;

#[mobula::deployment]
impl Echo {
    fn new() -> Self {
        Echo
    }

    #[http]
    fn call(&self, request: Request) -> Response {
        let text = format!(
            "{} {} q={} x={} body={}",
            request.method,
            request.path,
            request.query_param("q").unwrap_or("-"),
            request.header("x-test").unwrap_or("-"),
            request.text()
        );
        Response::text(text).with_header("x-echo", "yes")
    }
}

#[test]
fn deployments_answer_json_and_raw_requests_at_their_routes_and_through_handles() {
    let _node = node();
    let adder = serve::run(Adder::bind(100), options("adder", "/add")).expect("run");
    serve::run(Echo::bind(), options("echo", "/echo")).expect("run echo");

    let reply = post(proxy(), "/add", r#"{"a": 2, "b": 3}"#);
    assert_eq!((reply.status, reply.text()), (200, "105".to_string()));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    // Handles work from plain Rust code too.
    assert_eq!(adder.add(1, 2).get().unwrap(), 103);
    assert_eq!(replicas("adder", "Adder").len(), 2);

    let reply = request(
        proxy(),
        "PUT",
        "/echo/deeper/path?q=7&r=1",
        &[("x-test", "hi")],
        b"payload",
    )
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "PUT /echo/deeper/path q=7 x=hi body=payload");
    assert_eq!(reply.header("x-echo"), Some("yes"));

    // Routes and health.
    let routes = get(proxy(), "/-/routes").json();
    assert_eq!(routes["/add"], "adder");
    assert_eq!(routes["/echo"], "echo");
    assert_eq!(get(proxy(), "/-/healthz").text(), "success");

    // Status knows both applications and counts requests.
    let status = serve::status().unwrap();
    let names: HashSet<_> = status.applications.iter().map(|a| a.name.clone()).collect();
    assert_eq!(names, HashSet::from(["adder".into(), "echo".into()]));
    eventually("the adder's request is counted", || {
        let s = serve::status().unwrap();
        let d = &s
            .applications
            .iter()
            .find(|a| a.name == "adder")
            .unwrap()
            .deployments[0];
        d.requests >= 1 && d.p50_ms.is_some()
    });
    let table = serve::status().unwrap().render();
    assert!(
        table.contains("Adder") && table.contains("HEALTHY"),
        "{table}"
    );

    // A prefix is one application's.
    let taken = serve::run(Echo::bind(), options("other", "/echo")).unwrap_err();
    assert!(
        matches!(taken, serve::ServeError::RouteTaken { .. }),
        "{taken}"
    );

    serve::delete("echo").unwrap();
    assert_eq!(get(proxy(), "/echo").status, 404);
    assert_eq!(post(proxy(), "/add", r#"{"a": 0, "b": 0}"#).text(), "100");
}

// ---------------------------------------------------------------------------------------
// Bad input.

static RELEASE: AtomicBool = AtomicBool::new(false);

#[mobula::deployment(num_cpus = 0, max_ongoing_requests = 1, max_queued_requests = 1)]
struct Fragile;

#[mobula::deployment]
impl Fragile {
    fn new() -> Self {
        Fragile
    }

    #[http]
    async fn call(&self, body: Json<serde_json::Value>) -> Result<Json<String>, String> {
        match body.0["do"].as_str() {
            Some("panic") => panic!("the handler was asked to panic"),
            Some("fail") => Err("asked to fail".to_string()),
            Some("hold") => {
                while !RELEASE.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok(Json("released".into()))
            }
            _ => Ok(Json("fine".into())),
        }
    }
}

#[test]
fn bad_input_gets_its_status_and_the_service_goes_on() {
    let _node = node();
    RELEASE.store(false, Ordering::Release);
    let mut opts = options("fragile", "/f");
    opts.http.max_body_bytes = 1024;
    opts.http.request_timeout = Some(Duration::from_millis(500));
    serve::run(Fragile::bind(), opts).expect("run");
    let addr = proxy();

    // Malformed JSON: 400 with the parser's message.
    let r = post(addr, "/f", r#"{"do": "#);
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("malformed JSON body") && r.text().contains("EOF"),
        "{}",
        r.text()
    );
    // Unknown route: 404.
    assert_eq!(get(addr, "/nothing-here").status, 404);
    // Too large: 413.
    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(4096));
    assert_eq!(post(addr, "/f", &big).status, 413);
    // An error result: 500 with its message.
    let r = post(addr, "/f", r#"{"do": "fail"}"#);
    assert_eq!((r.status, r.text()), (500, "asked to fail\n".to_string()));

    // A panic: 500, and the replica is restarted and serves again.
    let r = post(addr, "/f", r#"{"do": "panic"}"#);
    assert_eq!(r.status, 500);
    assert!(r.text().contains("asked to panic"), "{}", r.text());
    eventually("the restarted replica serves", || {
        post(addr, "/f", r#"{"do": "ok"}"#).text() == "\"fine\""
    });

    // One request runs (held), one waits, the third is refused: 503 with Retry-After. The
    // held one passes its timeout: 504.
    let held = std::thread::spawn(move || post(addr, "/f", r#"{"do": "hold"}"#));
    eventually("the held request runs", || {
        serve::status().unwrap().applications[0].deployments[0].replicas[0].ongoing == 1
    });
    let queued = std::thread::spawn(move || post(addr, "/f", r#"{"do": "hold"}"#));
    eventually("the second request waits", || {
        serve::status().unwrap().applications[0].deployments[0].replicas[0].ongoing == 2
    });
    let refused = post(addr, "/f", r#"{"do": "ok"}"#);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    let timed_out: Reply = held.join().unwrap();
    assert_eq!(timed_out.status, 504, "{}", timed_out.text());
    RELEASE.store(true, Ordering::Release);
    let second = queued.join().unwrap();
    assert!(matches!(second.status, 200 | 504), "{}", second.text());
    // A timed-out request's work goes on on the replica until it ends; then it serves on.
    eventually("the replica is idle", || {
        serve::status().unwrap().applications[0].deployments[0].replicas[0].ongoing == 0
    });
    assert_eq!(post(addr, "/f", r#"{"do": "ok"}"#).status, 200);
}

// ---------------------------------------------------------------------------------------
// Composition and batching.

#[mobula::deployment(num_cpus = 0)]
struct Preprocess;

#[mobula::deployment]
impl Preprocess {
    fn new() -> Self {
        Preprocess
    }

    /// Words to lengths.
    fn features(&self, text: String) -> Vec<f64> {
        text.split_whitespace().map(|w| w.len() as f64).collect()
    }
}

#[mobula::deployment(num_cpus = 0, max_ongoing_requests = 64)]
struct Scorer {
    weight: f64,
}

#[mobula::deployment]
impl Scorer {
    fn new(weight: f64) -> Self {
        Scorer { weight }
    }

    #[batch(max_batch_size = 8, batch_wait_timeout_ms = 50)]
    async fn score(&self, batch: Vec<Vec<f64>>) -> Vec<f64> {
        batch
            .into_iter()
            .map(|f| f.iter().sum::<f64>() * self.weight)
            .collect()
    }
}

#[mobula::deployment(num_cpus = 0, max_ongoing_requests = 64)]
struct Ingress {
    pre: PreprocessHandle,
    scorer: ScorerHandle,
}

#[mobula::deployment]
impl Ingress {
    fn new(pre: PreprocessHandle, scorer: ScorerHandle) -> Self {
        Ingress { pre, scorer }
    }

    #[http]
    async fn call(&self, text: String) -> Result<Json<f64>, GetError> {
        // The preprocessing's answer goes to the scorer without waiting for it here.
        let features = self.pre.features(text);
        let score = self.scorer.score(features).await?;
        Ok(Json(score))
    }
}

#[test]
fn a_composed_application_passes_responses_between_handles_and_batches_under_load() {
    let _node = node();
    let app = Ingress::bind(Preprocess::bind(), Scorer::bind(10.0));
    let ingress = serve::run(app, options("composed", "/")).expect("run");
    let addr = proxy();
    let r = request(addr, "POST", "/", &[], b"ab cde f").unwrap();
    assert_eq!((r.status, r.text()), (200, "60.0".to_string()));

    // Concurrent requests are batched; each still gets its own answer.
    let threads: Vec<_> = (0..24)
        .map(|i| {
            std::thread::spawn(move || {
                let text = "x".repeat(i + 1);
                let r = request(addr, "POST", "/", &[], text.as_bytes()).unwrap();
                (i, r.text())
            })
        })
        .collect();
    for t in threads {
        let (i, text) = t.join().unwrap();
        assert_eq!(text, format!("{:.1}", (i + 1) as f64 * 10.0));
    }
    let scorer = serve::running_replicas("composed", "Scorer").unwrap();
    assert_eq!(scorer.len(), 1);
    // Batch sizes, read through the replica's own method.
    let sizes = batch_sizes();
    assert!(
        sizes.iter().any(|&s| s > 1),
        "some batch held several: {sizes:?}"
    );
    assert!(sizes.iter().all(|&s| s <= 8), "{sizes:?}");

    // A lone request is answered once its batch's wait ends.
    let before = batch_sizes().len();
    let r = request(addr, "POST", "/", &[], b"lone").unwrap();
    assert_eq!(r.text(), "40.0");
    let after = batch_sizes();
    assert_eq!(after.len(), before + 1);
    assert_eq!(*after.last().unwrap(), 1);

    // The ingress's handle works from code, and its handles travel into its replicas.
    let _ = ingress;
}

/// The Scorer's latest batch sizes, from its one replica, through a handle found by name.
fn batch_sizes() -> Vec<usize> {
    let scorer = serve::get_deployment_handle::<ScorerHandle>("composed", "Scorer").unwrap();
    scorer.score_batch_sizes().get().unwrap()
}

// ---------------------------------------------------------------------------------------
// Streaming.

#[mobula::deployment(num_cpus = 0)]
struct Counter;

#[mobula::deployment]
impl Counter {
    fn new() -> Self {
        Counter
    }

    #[http]
    fn call(&self, n: Json<u32>) -> impl Iterator<Item = Json<u32>> {
        (0..n.0).map(Json)
    }
}

#[test]
fn a_yielding_method_streams_chunks_or_server_sent_events() {
    let _node = node();
    serve::run(Counter::bind(), options("count", "/count")).expect("run");
    let r = post(proxy(), "/count", "4");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "0\n1\n2\n3\n");
    let r = request(
        proxy(),
        "POST",
        "/count",
        &[("accept", "text/event-stream")],
        b"3",
    )
    .unwrap();
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.text(), "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    // A body that does not parse is a 400, not a stream.
    assert_eq!(post(proxy(), "/count", "nope").status, 400);
}

// ---------------------------------------------------------------------------------------
// Autoscaling, scale to zero.

static BUSY_RELEASE: AtomicBool = AtomicBool::new(false);

#[mobula::deployment(
    num_cpus = 0,
    max_ongoing_requests = 4,
    autoscaling(
        min_replicas = 0,
        max_replicas = 3,
        target_ongoing_requests = 1,
        upscale_delay_ms = 0,
        downscale_delay_ms = 200
    )
)]
struct Busy;

#[mobula::deployment]
impl Busy {
    fn new() -> Self {
        Busy
    }

    #[http]
    async fn call(&self, _r: Request) -> String {
        while !BUSY_RELEASE.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        "done".into()
    }
}

#[test]
fn autoscaling_starts_replicas_under_load_and_stops_them_after_and_scales_from_zero() {
    let _node = node();
    BUSY_RELEASE.store(true, Ordering::Release);
    serve::run(Busy::bind(), options("busy", "/")).expect("run");
    // min_replicas = 0: nothing runs until a request comes; the request is held meanwhile.
    assert_eq!(replicas("busy", "Busy").len(), 0);
    let addr = proxy();
    let r = get(addr, "/");
    assert_eq!((r.status, r.text()), (200, "done".to_string()));

    BUSY_RELEASE.store(false, Ordering::Release);
    let load: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(move || get(addr, "/")))
        .collect();
    eventually("three replicas under load", || {
        replicas("busy", "Busy").len() == 3
    });
    BUSY_RELEASE.store(true, Ordering::Release);
    for t in load {
        assert_eq!(t.join().unwrap().status, 200);
    }
    eventually("back to zero after the load", || {
        replicas("busy", "Busy").is_empty()
    });
}

// ---------------------------------------------------------------------------------------
// Health, killed replicas, updates.

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settings {
    factor: i64,
}

#[mobula::deployment(
    num_replicas = 2,
    num_cpus = 0,
    health_check_period_ms = 20,
    health_check_timeout_ms = 2000
)]
struct Service {
    version: i64,
    factor: AtomicU64,
    sick: AtomicBool,
}

#[mobula::deployment]
impl Service {
    fn new(version: i64) -> Self {
        Service {
            version,
            factor: AtomicU64::new(1),
            sick: AtomicBool::new(false),
        }
    }

    fn reconfigure(&mut self, settings: Settings) {
        self.factor.store(settings.factor as u64, Ordering::Release);
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
    fn call(&self, x: Json<i64>) -> Json<(i64, i64)> {
        Json((
            self.version,
            x.0 * self.factor.load(Ordering::Acquire) as i64,
        ))
    }
}

/// Sends requests from 4 threads until `stop`; returns every status seen.
fn traffic(
    addr: SocketAddr,
    stop: &'static AtomicBool,
) -> Vec<std::thread::JoinHandle<Vec<(u16, String)>>> {
    (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    let r = post(addr, "/svc", "1");
                    seen.push((r.status, r.text()));
                }
                seen
            })
        })
        .collect()
}

static STOP_A: AtomicBool = AtomicBool::new(false);
static STOP_B: AtomicBool = AtomicBool::new(false);

#[test]
fn killed_and_unhealthy_replicas_are_replaced_and_updates_roll_without_a_failed_request() {
    let _node = node();
    STOP_A.store(false, Ordering::Release);
    STOP_B.store(false, Ordering::Release);
    let svc = serve::run(
        Service::bind(1)
            .version("a")
            .user_config(Settings { factor: 2 }),
        options("svc", "/svc"),
    )
    .expect("run");
    let addr = proxy();
    assert_eq!(post(addr, "/svc", "5").json(), serde_json::json!([1, 10]));
    let first = replicas("svc", "Service");
    assert_eq!(first.len(), 2);

    // A new user config with the same version: the replicas take it without restarting.
    serve::run(
        Service::bind(1)
            .version("a")
            .user_config(Settings { factor: 3 }),
        options("svc", "/svc"),
    )
    .expect("reconfigure");
    common::eventually_or(
        "the new factor is used",
        || post(addr, "/svc", "5").json() == serde_json::json!([1, 15]),
        || {
            format!(
                "{}\n{:?}",
                serve::status().unwrap().render(),
                post(addr, "/svc", "5")
            )
        },
    );
    assert_eq!(replicas("svc", "Service"), first, "same replicas");

    // A replica killed while traffic flows: no request fails, and it is replaced.
    let load = traffic(addr, &STOP_A);
    eventually("traffic flows", || {
        serve::status().unwrap().applications[0].deployments[0].requests > 20
    });
    serve::kill_replica("svc", "Service", first[0]).unwrap();
    eventually("the killed replica is replaced", || {
        let now = replicas("svc", "Service");
        now.len() == 2 && !now.contains(&first[0])
    });
    STOP_A.store(true, Ordering::Release);
    let seen: Vec<(u16, String)> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(seen.len() > 20);
    assert!(
        seen.iter().all(|(s, _)| *s == 200),
        "{:?}",
        seen.iter().find(|(s, _)| *s != 200)
    );

    // An unhealthy replica is replaced.
    let before = replicas("svc", "Service");
    svc.fall_ill().get().unwrap();
    eventually("the sick replica is replaced", || {
        let now = replicas("svc", "Service");
        now.len() == 2 && now.iter().any(|n| !before.contains(n))
    });

    // A new version rolls out under traffic without a failed request.
    let load = traffic(addr, &STOP_B);
    let old = replicas("svc", "Service");
    serve::run(
        Service::bind(2)
            .version("b")
            .user_config(Settings { factor: 1 }),
        options("svc", "/svc"),
    )
    .expect("update");
    eventually("every replica runs the new version", || {
        let now = replicas("svc", "Service");
        now.len() == 2 && now.iter().all(|n| !old.contains(n))
    });
    STOP_B.store(true, Ordering::Release);
    let seen: Vec<(u16, String)> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(
        seen.iter().all(|(s, _)| *s == 200),
        "{:?}",
        seen.iter().find(|(s, _)| *s != 200)
    );
    assert_eq!(post(addr, "/svc", "5").json(), serde_json::json!([2, 5]));
}

// ---------------------------------------------------------------------------------------
// Seeing it: status, the proxy's /-/status, Prometheus metrics, the dashboard, the CLI.

#[test]
fn serve_shows_in_status_metrics_the_dashboard_and_the_cli() {
    let _node = start(
        Config::default()
            .num_cpus(2)
            .metrics_address("127.0.0.1:0")
            .dashboard_address("127.0.0.1:0"),
    );
    serve::run(Adder::bind(0), options("seen", "/seen")).expect("run");
    let addr = proxy();
    for i in 0..5 {
        assert_eq!(
            post(addr, "/seen", &format!(r#"{{"a": {i}, "b": 1}}"#)).status,
            200
        );
    }
    assert_eq!(post(addr, "/seen", "{").status, 400);

    // The proxy's /-/status, as `mobula serve status` reads it.
    eventually("status counts the requests", || {
        let s: serve::ServeStatus = serde_json::from_slice(&get(addr, "/-/status").body).unwrap();
        let d = &s.applications[0].deployments[0];
        d.requests == 6 && d.errors == 1 && d.replicas.len() == 2
    });

    // Prometheus, on the node's /metrics.
    let metrics = mobula::node::metrics_address().unwrap();
    let text = get(metrics, "/metrics").text();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("application=\"seen\""))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .to_string()
    };
    assert!(
        line("mobula_serve_requests_total").ends_with(" 6"),
        "{text}"
    );
    assert!(line("mobula_serve_errors_total").ends_with(" 1"), "{text}");
    assert!(
        line("mobula_serve_latency_ms_count").ends_with(" 6"),
        "{text}"
    );
    assert!(line("mobula_serve_replicas").ends_with(" 2"), "{text}");
    assert!(text.contains("mobula_serve_ongoing_requests"), "{text}");

    // The dashboard's state has a Serve panel.
    let (dashboard, token) = mobula::node::dashboard().unwrap();
    let bearer = format!("Bearer {token}");
    let state = request(
        dashboard,
        "GET",
        "/api/state",
        &[("authorization", &bearer)],
        b"",
    )
    .unwrap()
    .json();
    let app = &state["panels"]["serve"]["applications"][0];
    assert_eq!(app["name"], "seen");
    assert_eq!(app["deployments"][0]["name"], "Adder");

    // The CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mobula"))
        .args(["serve", "status", "--address", &addr.to_string()])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{shown} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains("application seen (route /seen, ingress Adder)"),
        "{shown}"
    );
    assert!(shown.contains("HEALTHY"), "{shown}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mobula"))
        .args(["serve", "status", "--address", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach a Serve proxy"));
}
