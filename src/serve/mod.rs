//! Model serving (Ray Serve): deployments of replicas behind an HTTP proxy, composed through
//! typed handles, batched, autoscaled and kept healthy by a controller.
//!
//! ```no_run
//! use mobula::prelude::*;
//! use mobula::serve::{self, Json};
//!
//! #[mobula::deployment(num_replicas = 2, num_cpus = 0)]
//! struct Doubler;
//!
//! #[mobula::deployment]
//! impl Doubler {
//!     fn new() -> Self {
//!         Doubler
//!     }
//!
//!     #[http]
//!     fn call(&self, x: Json<i64>) -> Json<i64> {
//!         Json(2 * x.0)
//!     }
//! }
//!
//! fn main() -> anyhow::Result<()> {
//!     mobula::init(Config::default())?;
//!     serve::run(Doubler::bind(), serve::RunOptions::default())?;
//!     // curl -d 21 http://127.0.0.1:8000/  ->  42
//!     Ok(())
//! }
//! ```
//!
//! The parts:
//! - [`deployment`]: the trait the attribute implements, `bind` and the bound deployment.
//! - [`handle`]: deployment handles and the per-process router (power of two choices).
//! - [`controller`]: the controller actor and its reconcile loop.
//! - [`proxy`]: the HTTP proxy on actix-web; [`http`]: requests and responses as values.
//! - [`replica`]: what runs in each replica beside the user's value (gate, batch queue).
//! - Pure decisions, unit-tested: [`autoscale`], [`router`], [`batch`], [`reconcile`],
//!   [`config`]; [`status`]: what `serve status` shows.

pub mod autoscale;
pub mod batch;
pub mod config;
pub mod controller;
pub mod deployment;
pub mod error;
pub mod handle;
pub mod http;
mod metrics;
pub mod proxy;
pub mod reconcile;
pub mod replica;
pub mod router;
pub mod status;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use autoscale::AutoscalingConfig;
pub use config::DeploymentConfig;
pub use controller::ServeControllerHandle;
pub use deployment::{BindArg, Bound, Deployment, Ingress, IngressCall, PublicHandle};
pub use error::ServeError;
pub use handle::DeploymentHandle;
pub use http::{FromRequest, IntoChunk, IntoResponse, Json, Request, Response, StreamItem};
pub use proxy::{HttpOptions, ProxyLocation};
pub use replica::{BatchQueue, ReplicaCore, ReplicaLoad, ReplicaSetup};
pub use status::ServeStatus;

use crate::base::scheduling::placement::SchedulingStrategy;
use crate::runtime::global;
use controller::{ServeController, Shared};
use proxy::{
    IngressRoute, ProxyServer, ProxySettings, Routes, ServeProxy, ServeProxyHandle, StatusSource,
};

/// How an application runs (Ray's `serve.run` arguments).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The application's name (Ray: `default`).
    pub name: String,
    /// Its route prefix (`/`, or `/a/b`).
    pub route_prefix: String,
    /// The proxy's options; used when this call starts the proxy.
    pub http: HttpOptions,
    /// Serve over HTTP (`false`: handles only, no proxy).
    pub proxy: bool,
    /// How long `run` waits for the replicas to be ready.
    pub ready_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            name: "default".into(),
            route_prefix: "/".into(),
            http: HttpOptions::default(),
            proxy: true,
            ready_timeout: Duration::from_secs(120),
        }
    }
}

impl RunOptions {
    /// The application's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The application's route prefix.
    pub fn route_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.route_prefix = prefix.into();
        self
    }

    /// The proxy's options.
    pub fn http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }

    /// Whether to serve over HTTP.
    pub fn proxy(mut self, yes: bool) -> Self {
        self.proxy = yes;
        self
    }
}

/// What Serve keeps in a process that runs applications.
struct Local {
    shared: Arc<Shared>,
    controller: ServeControllerHandle,
    routes: Routes,
    proxy: Mutex<Option<ProxyServer>>,
    /// Proxies on other nodes (`ProxyLocation::EveryNode` or `Nodes`).
    remote_proxies: Mutex<Vec<(crate::NodeId, ServeProxyHandle, std::net::SocketAddr)>>,
}

/// The process's Serve, started (controller and reconcile loop) if it was not.
fn local() -> Result<Arc<Local>, ServeError> {
    let found =
        global::with_runtime(|rt| rt.extension::<Local>()).ok_or(ServeError::NotInitialized)?;
    if let Some(l) = found {
        if !l.shared.lock().stopped {
            return Ok(l);
        }
    }
    let shared = Shared::new();
    let key = uuid::Uuid::new_v4().as_u64_pair().0;
    controller::hand_off(key, Arc::clone(&shared));
    let mut options = ServeController::options();
    if let Some(here) = crate::context().node_id() {
        options = options.scheduling_strategy(SchedulingStrategy::NodeAffinity {
            node: here,
            soft: false,
        });
    }
    let controller = options
        .remote(key)
        .map_err(|e| ServeError::Controller(e.to_string()))?;
    let looped = Arc::clone(&shared);
    promise_spawn(async move {
        loop {
            let next = {
                let mut state = looped.lock();
                if state.stopped {
                    break;
                }
                state.tick(Instant::now());
                state.next_tick()
            };
            looped.ticked.notify_all();
            tokio::time::sleep(next).await;
        }
    })?;
    let local = Arc::new(Local {
        shared,
        controller,
        routes: Arc::new(std::sync::RwLock::new(Vec::new())),
        proxy: Mutex::new(None),
        remote_proxies: Mutex::new(Vec::new()),
    });
    let stopping = Arc::clone(&local);
    let shown = Arc::downgrade(&local.shared);
    global::with_runtime(|rt| {
        crate::http::Panels::of(rt).set(
            "serve",
            Box::new(move || match shown.upgrade() {
                Some(shared) => {
                    serde_json::to_value(shared.lock().status()).unwrap_or(serde_json::Value::Null)
                }
                None => serde_json::Value::Null,
            }),
        );
        rt.set_extension(Arc::clone(&local));
        rt.on_stop(move || stop(&stopping));
    });
    Ok(local)
}

fn promise_spawn(
    f: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if crate::runtime::promise::spawn(f) {
        Ok(())
    } else {
        Err(ServeError::NotInitialized)
    }
}

fn stop(local: &Local) {
    for (_, p, _) in local
        .remote_proxies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
    {
        drop(p.stop());
        p.terminate();
    }
    local.shared.lock().stop_all();
    if let Some(p) = local.proxy.lock().unwrap_or_else(|e| e.into_inner()).take() {
        p.stop_with(true);
    }
    local
        .routes
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
}

/// Starts the proxy with these options if it does not run yet (Ray's `serve.start`);
/// returns the address it listens on.
pub fn start(http: HttpOptions) -> Result<std::net::SocketAddr, ServeError> {
    let local = local()?;
    let mut proxy = local.proxy.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = &*proxy {
        return Ok(p.address);
    }
    let server = proxy::Proxy::start(
        http.clone(),
        Arc::clone(&local.routes),
        StatusSource::Local(Arc::clone(&local.shared)),
    )
    .map_err(|e| ServeError::Proxy {
        address: http.address.to_string(),
        reason: e.to_string(),
    })?;
    let address = server.address;
    local.shared.lock().proxy = Some(address.to_string());
    *proxy = Some(server);
    Ok(address)
}

/// Runs an application: deploys its deployments (the arguments' first), waits until their
/// replicas are ready, serves its ingress over HTTP at its route prefix, and returns a
/// handle to its ingress. Running an application of the same name again updates it (in
/// place, or rolling; see [`Bound::version`]).
///
/// Blocks while replicas start: call it from the program's thread, not from a task.
pub fn run<R: Ingress>(app: Bound<R>, options: RunOptions) -> Result<R::Public, ServeError> {
    deployment::check_prefix(&options.route_prefix)?;
    let local = local()?;
    {
        let routes = local.routes.read().unwrap_or_else(|e| e.into_inner());
        if let Some((_, other, _)) = routes
            .iter()
            .find(|(p, a, _)| *p == options.route_prefix && *a != options.name)
        {
            return Err(ServeError::RouteTaken {
                prefix: options.route_prefix.clone(),
                app: other.clone(),
            });
        }
    }
    let here = crate::context().node_id();
    if options.proxy && here.is_none_or(|h| options.http.location.includes(h, here)) {
        start(options.http.clone())?;
    }
    let mut plan = deployment::Plan::new(&options.name);
    let ingress = plan.add(app)?;
    for p in &plan.deployments {
        p.router.set_controller(local.controller.clone(), true);
    }
    {
        let mut state = local.shared.lock();
        state.deploy(
            &options.name,
            &options.route_prefix,
            ingress.deployment(),
            plan.deployments,
        );
        // Replicas start now, not at the next reconcile.
        state.tick(Instant::now());
    }
    {
        let mut routes = local.routes.write().unwrap_or_else(|e| e.into_inner());
        routes.retain(|(_, a, _)| *a != options.name);
        routes.push((
            options.route_prefix.clone(),
            options.name.clone(),
            Arc::new(IngressRoute {
                handle: ingress.clone(),
            }),
        ));
        routes.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
    }
    wait_ready(&local, &options.name, options.ready_timeout)?;
    if options.proxy && options.http.location != ProxyLocation::Driver {
        other_nodes(&local, &options, &ingress)?;
    }
    Ok(R::Public::from(ingress))
}

/// Starts a proxy on each other node of the location that has none yet, and gives every
/// proxy elsewhere the application's route.
fn other_nodes<R: Ingress>(
    local: &Local,
    options: &RunOptions,
    ingress: &DeploymentHandle<R>,
) -> Result<(), ServeError> {
    let here = crate::context().node_id();
    let mut proxies = local
        .remote_proxies
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for node in crate::node::nodes() {
        let id = node.info.node_id;
        let has = proxies.iter().any(|p| p.0 == id);
        let wanted = options.http.location.includes(id, here);
        if !wanted || !node.alive || !node.info.runs_tasks || Some(id) == here || has {
            continue;
        }
        let made = ServeProxy::options()
            .scheduling_strategy(SchedulingStrategy::NodeAffinity {
                node: id,
                soft: false,
            })
            .remote(ProxySettings::of(&options.http), local.controller.clone())
            .map_err(|e| e.to_string())
            .and_then(|p| {
                let address = p
                    .address()
                    .get_timeout(Duration::from_secs(30))
                    .map_err(|e| e.to_string())?;
                Ok((p, address))
            });
        match made {
            Ok((p, address)) => proxies.push((id, p, address)),
            Err(why) => tracing::warn!(node = %id, %why, "no Serve proxy on this node"),
        }
    }
    let bytes = postcard::to_stdvec(ingress).map_err(|e| ServeError::Controller(e.to_string()))?;
    let class = <R as crate::runtime::actor::handle::ActorClass>::CLASS.to_string();
    for (id, p, _) in proxies.iter() {
        let set = p.set_route(
            options.route_prefix.clone(),
            options.name.clone(),
            class.clone(),
            bytes.clone(),
        );
        if let Err(e) = set.get_timeout(Duration::from_secs(30)) {
            tracing::warn!(node = %id, error = %e, "a Serve proxy did not take the route");
        }
    }
    Ok(())
}

fn wait_ready(local: &Local, app: &str, timeout: Duration) -> Result<(), ServeError> {
    let deadline = Instant::now() + timeout;
    let mut state = local.shared.lock();
    loop {
        match state.ready(app) {
            Ok(true) => return Ok(()),
            Err((deployment, reason)) => return Err(ServeError::Start { deployment, reason }),
            Ok(false) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ServeError::Start {
                deployment: app.to_string(),
                reason: format!("its replicas were not ready after {timeout:?}"),
            });
        }
        // Reconcile here too while waiting, so starting replicas are seen at once.
        state = local
            .shared
            .ticked
            .wait_timeout(state, (deadline - now).min(controller::FAST_TICK))
            .unwrap_or_else(|e| e.into_inner())
            .0;
        state.tick(Instant::now());
    }
}

/// Everything Serve runs in this process: applications, deployments, replicas, request
/// rates and latency (Ray's `serve.status()`).
///
/// Outside a task, each replica's counts are read now (waiting at most a second for each);
/// inside one, as the controller last read them.
pub fn status() -> Result<ServeStatus, ServeError> {
    let local = local()?;
    let asked = local.shared.lock().ask_loads();
    for (app, deployment, number, load) in asked {
        if let Ok(load) = load.get_timeout(Duration::from_secs(1)) {
            local
                .shared
                .lock()
                .set_load(&app, &deployment, number, load);
        }
    }
    Ok(local.shared.lock().status())
}

/// A handle to a running deployment, by application and deployment name (Ray's
/// `serve.get_deployment_handle`): `get_deployment_handle::<ModelHandle>("app", "Model")`.
pub fn get_deployment_handle<H: PublicHandle>(
    app: &str,
    deployment: &str,
) -> Result<H, ServeError> {
    let local = local()?;
    let list = local.shared.lock().list(app, deployment);
    let Some(list) = list else {
        return Err(ServeError::UnknownApplication(format!(
            "{app} (deployment {deployment})"
        )));
    };
    let handle = DeploymentHandle::<H::Replica>::open(app, deployment, list.max_ongoing)?;
    let router = handle.erased();
    router.set_controller(local.controller.clone(), true);
    router.update(&list);
    Ok(H::from(handle))
}

/// Stops an application's replicas and its route.
pub fn delete(app: &str) -> Result<(), ServeError> {
    let local = local()?;
    local
        .routes
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(_, a, _)| a != app);
    for (_, p, _) in local
        .remote_proxies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        drop(p.remove_app(app.to_string()));
    }
    if let Some(routers) = handle::routers() {
        routers.forget_app(app);
    }
    if local.shared.lock().delete(app) {
        Ok(())
    } else {
        Err(ServeError::UnknownApplication(app.to_string()))
    }
}

/// Stops every application and the proxy (Ray's `serve.shutdown()`).
pub fn shutdown() {
    if let Some(Some(l)) = global::with_runtime(|rt| rt.extension::<Local>()) {
        stop(&l);
    }
}

/// The replicas of a deployment that run now, as `(number, actor id)`: for tests and tools
/// that kill one.
pub fn running_replicas(
    app: &str,
    deployment: &str,
) -> Result<Vec<(u64, crate::ActorId)>, ServeError> {
    Ok(local()?.shared.lock().running(app, deployment))
}

/// Kills one replica as a crash would, without telling the controller (chaos testing, as
/// Ray's tests kill a replica's actor): its calls not yet started go to other replicas, and
/// the controller replaces it.
pub fn kill_replica(app: &str, deployment: &str, replica: u64) -> Result<(), ServeError> {
    if local()?.shared.lock().kill(app, deployment, replica) {
        Ok(())
    } else {
        Err(ServeError::UnknownApplication(format!(
            "{app} (deployment {deployment}, replica {replica})"
        )))
    }
}

/// Every proxy: this process's (if it runs) and those on other nodes
/// (`ProxyLocation::EveryNode` or `Nodes`), by node.
pub fn proxy_addresses() -> Vec<(crate::NodeId, std::net::SocketAddr)> {
    let Some(l) = global::with_runtime(|rt| rt.extension::<Local>()).flatten() else {
        return Vec::new();
    };
    let mut all = Vec::new();
    if let (Some(here), Some(address)) = (crate::context().node_id(), proxy_address()) {
        all.push((here, address));
    }
    let remote = l.remote_proxies.lock().unwrap_or_else(|e| e.into_inner());
    all.extend(remote.iter().map(|(n, _, a)| (*n, *a)));
    all
}

/// Where the proxy listens, if it runs.
pub fn proxy_address() -> Option<std::net::SocketAddr> {
    let l = global::with_runtime(|rt| rt.extension::<Local>()).flatten()?;
    let p = l.proxy.lock().unwrap_or_else(|e| e.into_inner());
    p.as_ref().map(|p| p.address)
}
