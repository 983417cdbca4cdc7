//! Serve side by side with Ray Serve (`../shared/bench/ray/serve_noop.py`): a no-op HTTP
//! deployment and a two-step composition, each loaded with `wrk` at 1 and 32 connections,
//! plus the floor: a bare actix-web handler returning the same bytes on the same machine.
//!
//!     apt-get install -y wrk
//!     cargo bench --bench serve                       # 10 s per case
//!     MOBULA_BENCH_SECONDS=3 cargo bench --bench serve
//!     cargo bench --bench serve -- --quick           # 1 s per case (CI)
//!     /tmp/rayenv/bin/python ../shared/bench/ray/serve_noop.py --seconds 10
//!
//! Prints one line per case, in Ray's format: `serve CASE conns=N rps=R p50_ms=A p99_ms=B`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use mobula::prelude::*;
use mobula::serve::{self, HttpOptions, Request, RunOptions};

#[mobula::deployment(max_ongoing_requests = 100, num_cpus = 0.5)]
struct Noop;

#[mobula::deployment]
impl Noop {
    fn new() -> Self {
        Noop
    }

    #[http]
    async fn call(&self, _request: Request) -> &'static str {
        "ok"
    }
}

#[mobula::deployment(max_ongoing_requests = 100, num_cpus = 0.5)]
struct Double;

#[mobula::deployment]
impl Double {
    fn new() -> Self {
        Double
    }

    fn double(&self, x: i64) -> i64 {
        2 * x
    }
}

#[mobula::deployment(max_ongoing_requests = 100, num_cpus = 0.5)]
struct Ingress {
    doubler: DoubleHandle,
}

#[mobula::deployment]
impl Ingress {
    fn new(doubler: DoubleHandle) -> Self {
        Ingress { doubler }
    }

    #[http]
    async fn call(&self, _request: Request) -> Result<String, GetError> {
        Ok(self.doubler.double(21).await?.to_string())
    }
}

/// Runs wrk; returns requests/s, p50 and p99 in ms.
fn wrk(url: &str, conns: usize, seconds: u64) -> (f64, f64, f64) {
    let out = Command::new("wrk")
        .args([
            "-t",
            &conns.min(2).to_string(),
            "-c",
            &conns.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("wrk could not run ({e}): install it with `apt-get install -y wrk`")
        });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| -> Option<&str> {
        text.lines()
            .find(|l| l.trim_start().starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
    };
    let rps: f64 = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    let ms = |p: &str| -> f64 {
        let v = field(p).unwrap_or("0ms");
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(0.0);
        match unit {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            _ => n,
        }
    };
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        eprintln!("wrk saw errors at {url}:\n{text}");
    }
    (rps, ms("50%"), ms("99%"))
}

/// The floor: actix-web alone returning "ok", on its own thread, 2 workers as the proxy.
fn bare_actix() -> SocketAddr {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|| async { HttpResponse::Ok().body("ok") }))
    })
    .workers(2)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let address = server.addrs()[0];
    let server = server.run();
    std::thread::spawn(move || actix_rt::System::new().block_on(server));
    address
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds: u64 = std::env::var("MOBULA_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1 } else { 10 });
    let conns = [1usize, 32];
    let floor = bare_actix();
    let _guard = mobula::init(Config::default().num_cpus(2))?;
    let http = HttpOptions {
        address: SocketAddr::from(([127, 0, 0, 1], 8000)),
        ..HttpOptions::default()
    };
    let started = Instant::now();
    serve::run(
        Noop::bind(),
        RunOptions::default()
            .name("noop")
            .route_prefix("/noop")
            .http(http.clone()),
    )?;
    println!("serve deploy_noop_s={:.3}", started.elapsed().as_secs_f64());
    serve::run(
        Ingress::bind(Double::bind()),
        RunOptions::default()
            .name("compose")
            .route_prefix("/compose")
            .http(http),
    )?;
    let address = serve::proxy_address().expect("the proxy runs");
    for case in ["noop", "compose"] {
        for c in conns {
            let (rps, p50, p99) = wrk(&format!("http://{address}/{case}"), c, seconds);
            println!("serve {case} conns={c} rps={rps:.0} p50_ms={p50:.3} p99_ms={p99:.3}");
        }
    }
    for c in conns {
        let (rps, p50, p99) = wrk(&format!("http://{floor}/"), c, seconds);
        println!("floor actix_bare conns={c} rps={rps:.0} p50_ms={p50:.3} p99_ms={p99:.3}");
    }
    serve::shutdown();
    Ok(())
}
