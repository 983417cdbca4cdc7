//! Serve on one node: deployments over real HTTP on loopback, composition through handles,
//! batching, bad input, autoscaling, health checks, rolling updates and killed replicas.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use common::http::{get, post, request};
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

#[test]
fn a_deployment_answers_json_over_http_and_through_its_handle() {
    let _node = start(Config::default().num_cpus(2));
    let handle = serve::run(Adder::bind(100), options("adder", "/add")).expect("run");
    let reply = post(proxy(), "/add", r#"{"a": 2, "b": 3}"#);
    assert_eq!((reply.status, reply.text()), (200, "105".to_string()));
    assert_eq!(handle.add(1, 2).get().unwrap(), 103);
    // Two replicas run.
    assert_eq!(serve::running_replicas("adder", "Adder").unwrap().len(), 2);
    serve::shutdown();
}
