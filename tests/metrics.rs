//! `/metrics` on every node, in Prometheus' text format: the node's own figures match what
//! the test ran, and user-defined metrics from tasks and actors appear beside them.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::{eventually, local_cluster, turn};
use mobula::metrics::{Counter, Histogram};
use mobula::prelude::*;

/// GETs `path`; returns the status line and the body.
fn get(address: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).expect("the metrics port answers");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The value of the sample written exactly `series` (name and labels), if there is one.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[mobula::remote]
fn labelled(kind: String) -> u64 {
    let items = Counter::new("app_items_total", "Items seen", &["kind"]).unwrap();
    items.inc(&[&kind]).unwrap();
    1
}

#[mobula::remote]
fn fails() -> Result<u64, String> {
    Err("no".into())
}

#[mobula::actor]
struct Timer;

#[mobula::actor]
impl Timer {
    fn new() -> Self {
        Timer
    }

    fn time(&self, seconds: f64) {
        Histogram::new("app_wait_seconds", "Waits", vec![0.1, 1.0], &[])
            .unwrap()
            .observe(seconds, &[])
            .unwrap();
    }
}

#[test]
fn a_node_serves_its_figures_and_the_users_metrics() {
    let _turn = turn();
    let bad = mobula::init(Config::default().metrics_address("nowhere")).unwrap_err();
    assert!(bad.to_string().contains("nowhere"), "{bad}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let bad = mobula::init(Config::default().metrics_address(busy.clone())).unwrap_err();
    assert!(bad.to_string().contains(&busy), "{bad}");
    assert!(
        !mobula::is_initialized(),
        "a node that cannot serve is not left running"
    );
    let _node = mobula::init(Config::default().num_cpus(2).metrics_address("127.0.0.1:0")).unwrap();
    let address = mobula::node::metrics_address().expect("metrics are served");
    assert!(address.ip().is_loopback() && address.port() != 0);
    for kind in ["a", "a", "b"] {
        assert_eq!(labelled.remote(kind.to_string()).get().unwrap(), 1);
    }
    assert!(fails.remote().get().is_err());
    let timer = Timer::remote().unwrap();
    for s in [0.05, 0.5, 3.0] {
        timer.time(s).get().unwrap();
    }
    let _kept = mobula::put(vec![0u8; 4096]).unwrap();

    // Task ends are recorded just after their results are stored.
    eventually("the four tasks are counted as ended", || {
        let text = get(address, "/metrics").1;
        value(&text, "mobula_tasks_ended_total{state=\"FINISHED\"}") == Some(3.0)
            && value(&text, "mobula_tasks_ended_total{state=\"FAILED\"}") == Some(1.0)
    });
    let (status, text) = get(address, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        value(&text, "mobula_tasks_ended_total{state=\"FINISHED\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "mobula_tasks_ended_total{state=\"FAILED\"}"),
        Some(1.0)
    );
    assert_eq!(value(&text, "mobula_tasks{state=\"RUNNING\"}"), Some(0.0));
    assert_eq!(value(&text, "mobula_actors{state=\"ALIVE\"}"), Some(1.0));
    assert!(value(&text, "mobula_object_store_used_bytes").unwrap() >= 4096.0);
    assert!(value(&text, "mobula_scheduler_queue_length").is_some());
    assert!(text.contains("# TYPE mobula_tasks_ended_total counter"));
    assert_eq!(value(&text, "app_items_total{kind=\"a\"}"), Some(2.0));
    assert_eq!(value(&text, "app_items_total{kind=\"b\"}"), Some(1.0));
    assert_eq!(
        value(&text, "app_wait_seconds_bucket{le=\"0.1\"}"),
        Some(1.0)
    );
    assert_eq!(value(&text, "app_wait_seconds_bucket{le=\"1\"}"), Some(2.0));
    assert_eq!(value(&text, "app_wait_seconds_count"), Some(3.0));

    let (status, _) = get(address, "/nothing");
    assert!(status.contains("404"), "{status}");
    mobula::shutdown();
    assert!(
        TcpStream::connect(address).is_err(),
        "the server stops with the node"
    );
}

#[test]
fn every_node_of_a_cluster_serves_its_own() {
    let _turn = turn();
    let metrics = || Config::default().metrics_address("127.0.0.1:0");
    let (cluster, workers, _driver) = local_cluster(
        metrics().num_cpus(0),
        || metrics().num_cpus(2),
        2,
        |c| c.metrics_address("127.0.0.1:0"),
    );
    let refs: Vec<_> = (0..20).map(|_| labelled.remote("x".to_string())).collect();
    assert_eq!(mobula::get_all(&refs).unwrap().iter().sum::<u64>(), 20);
    let finished = || -> f64 {
        workers
            .iter()
            .map(|w| {
                let address = cluster
                    .metrics_address(*w)
                    .expect("the worker serves metrics");
                let (_, text) = get(address, "/metrics");
                value(&text, "mobula_tasks_ended_total{state=\"FINISHED\"}").unwrap()
            })
            .sum()
    };
    // Counted just after the results are stored, once each, where each ran.
    eventually("the 20 tasks are counted", || finished() >= 20.0);
    assert_eq!(finished(), 20.0, "every task counted once, where it ran");
    let (_, driver) = get(mobula::node::metrics_address().unwrap(), "/metrics");
    let sent: f64 = driver
        .lines()
        .filter(|l| l.starts_with("mobula_transport_sent_bytes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(sent > 0.0, "{driver}");
    assert!(
        driver.contains("mobula_transport_rtt_seconds{peer="),
        "{driver}"
    );
    let head = cluster.metrics_address(cluster.head()).unwrap();
    assert!(get(head, "/metrics").0.contains("200"));
}
