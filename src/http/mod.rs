//! The node's HTTP servers (actix-web): `/metrics` in Prometheus' text format, and the
//! dashboard. Each runs on a thread of its own, apart from the node's event loop, and holds
//! the runtime weakly.
//!
//! - `metrics`: the `/metrics` route.
//! - `dashboard`: the dashboard's page, login, JSON state and live events, behind a token.
//! - `certificate`: the dashboard's HTTPS certificate, from the cluster CA.
//! - `snapshot`: the state the dashboard shows, gathered from the cluster.

mod certificate;
mod dashboard;
mod metrics;
mod snapshot;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use actix_web::{App, HttpServer, web};

use crate::base::error::InitError;
use crate::base::node_config::HttpSettings;
use crate::runtime::global::Runtime;
use crate::transport::credentials::{ClusterDir, new_token};

/// A running HTTP server: where it listens, and how to stop it.
pub(crate) struct HttpServerHandle {
    pub address: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServerHandle {
    /// Stops the server (open connections close at once) and waits for its thread.
    pub fn stop(self) {
        self.stop_with(false);
    }

    /// Stops it, letting requests being answered finish when `graceful`.
    pub fn stop_with(mut self, graceful: bool) {
        futures::executor::block_on(self.handle.stop(graceful));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The node's HTTP servers, once started.
#[derive(Default)]
pub(crate) struct Servers {
    pub metrics: Option<HttpServerHandle>,
    /// The dashboard, and the token it asks for.
    pub dashboard: Option<(HttpServerHandle, String)>,
    /// Whether the dashboard is served over HTTPS.
    pub dashboard_https: bool,
}

impl Servers {
    pub fn stop(&mut self) {
        if let Some(server) = self.metrics.take() {
            server.stop();
        }
        if let Some((server, _)) = self.dashboard.take() {
            server.stop();
        }
    }
}

/// Serves `routes` on `address` (port 0: any free port), over TLS when `tls` is given, on a
/// thread of its own.
fn serve(
    address: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    routes: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
) -> std::io::Result<HttpServerHandle> {
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1);
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(address, tls)?,
        None => server.bind(address)?,
    };
    let address = server.addrs().first().copied().unwrap_or(address);
    run_on_thread(server.run(), address, "mobula-http")
}

/// Runs a bound server on a thread of its own (its own actix system), until stopped.
pub(crate) fn run_on_thread(
    server: actix_web::dev::Server,
    address: SocketAddr,
    name: &str,
) -> std::io::Result<HttpServerHandle> {
    let handle = server.handle();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let system = actix_rt::System::new();
            if let Err(e) = system.block_on(server) {
                tracing::error!(error = %e, "an HTTP server failed");
            }
        })?;
    Ok(HttpServerHandle {
        address,
        handle,
        thread: Some(thread),
    })
}

/// Starts the servers a node was configured with: `/metrics`, and the dashboard (asking for
/// the cluster's dashboard token, or a fresh one outside a cluster; over HTTPS if asked).
pub(crate) fn start(rt: &Arc<Runtime>, settings: HttpSettings) -> Result<(), InitError> {
    let weak: Weak<Runtime> = Arc::downgrade(rt);
    let failed = |what: &str, address: SocketAddr, e: &dyn std::fmt::Display| {
        InitError::InvalidConfig(format!("cannot serve {what} at {address}: {e}"))
    };
    let mut servers = Servers::default();
    if let Some(address) = settings.metrics {
        let node = weak.clone();
        let server = serve(address, None, move |cfg| metrics::routes(cfg, node.clone()))
            .map_err(|e| failed("metrics", address, &e))?;
        tracing::info!(address = %server.address, "serving /metrics");
        servers.metrics = Some(server);
    }
    if let Some(address) = settings.dashboard {
        let dir = settings.cluster_dir.as_ref().map(ClusterDir::new);
        let token = match &dir {
            Some(dir) => dir.dashboard_token(),
            None => new_token(),
        }
        .map_err(|e| failed("the dashboard", address, &e))?;
        let tls = if settings.dashboard_https {
            let ca = dir
                .as_ref()
                .map(|d| d.load_ca())
                .transpose()
                .map_err(|e| failed("the dashboard", address, &e))?
                .flatten()
                .ok_or_else(|| {
                    failed(
                        "the dashboard",
                        address,
                        &"HTTPS needs the cluster CA in the cluster directory (serve it on the head's machine)",
                    )
                })?;
            let tls = certificate::DashboardCertificate::new(ca, address)
                .and_then(|c| c.server_config())
                .map_err(|e| failed("the dashboard", address, &e))?;
            Some(tls)
        } else {
            None
        };
        let secure = tls.is_some();
        let (node, key) = (weak.clone(), token.clone());
        let server = serve(address, tls, move |cfg| {
            dashboard::routes(cfg, node.clone(), key.clone(), secure)
        })
        .map_err(|e| failed("the dashboard", address, &e))?;
        tracing::info!(address = %server.address, https = secure, "serving the dashboard");
        servers.dashboard = Some((server, token));
        servers.dashboard_https = secure;
    }
    let servers = Arc::new(Mutex::new(servers));
    rt.set_extension(Arc::clone(&servers));
    rt.on_stop(move || servers.lock().unwrap_or_else(|e| e.into_inner()).stop());
    Ok(())
}

/// Where node `rt` serves `/metrics`, if it does.
/// What a library above shows on the dashboard: named JSON documents, each made when the
/// dashboard's state is gathered (Serve's applications). Kept in the runtime's extensions.
#[derive(Default)]
pub(crate) struct Panels {
    panels: Mutex<Vec<(&'static str, Panel)>>,
}

type Panel = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

impl Panels {
    /// The node's panels.
    pub(crate) fn of(rt: &Runtime) -> Arc<Panels> {
        rt.extension_or_insert_with(|| Arc::new(Panels::default()))
    }

    /// Shows `make()` under `name` (in place of an earlier panel of that name).
    pub(crate) fn set(&self, name: &'static str, make: Panel) {
        let mut panels = self.panels.lock().unwrap_or_else(|e| e.into_inner());
        panels.retain(|(n, _)| *n != name);
        panels.push((name, make));
    }

    /// Every panel's document, by name.
    pub(crate) fn documents(&self) -> serde_json::Map<String, serde_json::Value> {
        let panels = self.panels.lock().unwrap_or_else(|e| e.into_inner());
        panels
            .iter()
            .map(|(name, make)| (name.to_string(), make()))
            .collect()
    }
}

pub(crate) fn metrics_address(rt: &Runtime) -> Option<SocketAddr> {
    let servers = rt.extension::<Mutex<Servers>>()?;
    let servers = servers.lock().unwrap_or_else(|e| e.into_inner());
    servers.metrics.as_ref().map(|h| h.address)
}

/// Where node `rt` serves the dashboard, and the token it asks for, if it does.
pub(crate) fn dashboard_address(rt: &Runtime) -> Option<(SocketAddr, String)> {
    let servers = rt.extension::<Mutex<Servers>>()?;
    let servers = servers.lock().unwrap_or_else(|e| e.into_inner());
    servers
        .dashboard
        .as_ref()
        .map(|(h, token)| (h.address, token.clone()))
}
