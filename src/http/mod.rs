//! The node's HTTP server (actix-web): `/metrics` in Prometheus' text format. It runs on a
//! thread of its own, apart from the node's event loop, and holds the runtime weakly.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use actix_web::{App, HttpResponse, HttpServer, web};

use crate::runtime::global::Runtime;

/// A running HTTP server: where it listens, and how to stop it.
pub(crate) struct HttpServerHandle {
    pub address: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServerHandle {
    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        futures::executor::block_on(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn metrics(rt: web::Data<Weak<Runtime>>) -> HttpResponse {
    match rt.upgrade() {
        Some(rt) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(crate::metrics::exposition(&rt)),
        None => HttpResponse::ServiceUnavailable().body("the node has stopped\n"),
    }
}

/// Starts serving `rt` on `address` (port 0: any free port).
pub(crate) fn start(rt: &Arc<Runtime>, address: SocketAddr) -> std::io::Result<HttpServerHandle> {
    let weak = web::Data::new(Arc::downgrade(rt));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(weak.clone())
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(address)?;
    let address = server.addrs().first().copied().unwrap_or(address);
    let server = server.run();
    let handle = server.handle();
    let thread = std::thread::Builder::new()
        .name("mobula-http".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            if let Err(e) = system.block_on(server) {
                tracing::error!(error = %e, "the HTTP server failed");
            }
        })?;
    Ok(HttpServerHandle {
        address,
        handle,
        thread: Some(thread),
    })
}
