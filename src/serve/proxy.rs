//! The HTTP proxy (actix-web): takes requests, finds the application by the longest route
//! prefix that matches, sends each to a replica of its ingress deployment and writes the
//! answer back, whole or streamed (chunked, or server-sent events when the client accepts
//! `text/event-stream`).
//!
//! Bad input is answered, never fatal: an unknown route 404, a body over the limit 413, a
//! full replica 503 with `Retry-After`, a request over its timeout 504, a handler's panic or
//! error 500. A request a dead replica refused before running it goes to another replica.
//! `/-/healthz`, `/-/routes` and `/-/status` answer about the proxy and Serve itself.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures::StreamExt;
use futures::future::LocalBoxFuture;

use super::controller::{ControllerHandle, Shared};
use super::deployment::{Ingress, IngressCall};
use super::handle::DeploymentHandle;
use super::http::{Request, Response, StreamItem, sse_event};
use crate::base::error::GetError;
use crate::runtime::generator::RefStream;

impl Drop for ServeProxy {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop_with(true);
        }
    }
}

/// Where and how the proxy serves (Ray's `http_options`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOptions {
    /// The address (Ray: 127.0.0.1:8000); port 0 picks a free one.
    pub address: SocketAddr,
    /// How long a request may take before it is answered 504 (`None`: no limit, as Ray).
    pub request_timeout: Option<Duration>,
    /// The largest body taken; a larger one is answered 413 (default 16 MiB).
    pub max_body_bytes: usize,
    /// Threads taking connections (default 2).
    pub workers: usize,
    /// Which nodes run a proxy.
    pub location: ProxyLocation,
}

/// Which nodes run a proxy (Ray's `proxy_location`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProxyLocation {
    /// In the process that calls `serve::run` only (on a one-node program, or a driver on the
    /// head's machine, Ray's `HeadOnly`).
    #[default]
    Driver,
    /// There, and on every other node alive when an application runs, each listening on the
    /// same address on its own machine (Ray's `EveryNode`).
    EveryNode,
    /// On these nodes only (the driver's among them if it is listed).
    Nodes(Vec<crate::NodeId>),
}

impl ProxyLocation {
    /// Whether a node runs a proxy, `here` being the driver's node.
    pub fn includes(&self, node: crate::NodeId, here: Option<crate::NodeId>) -> bool {
        match self {
            ProxyLocation::Driver => Some(node) == here,
            ProxyLocation::EveryNode => true,
            ProxyLocation::Nodes(list) => list.contains(&node),
        }
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            address: SocketAddr::from(([127, 0, 0, 1], 8000)),
            request_timeout: None,
            max_body_bytes: 16 << 20,
            workers: 2,
            location: ProxyLocation::Driver,
        }
    }
}

/// The answer of one application to one request.
#[doc(hidden)]
pub enum Answer {
    /// A whole response.
    Whole(Response),
    /// A stream: the items after the first, and the first chunk.
    Stream(RefStream<StreamItem>, Vec<u8>),
}

/// An application's ingress as the proxy calls it.
#[doc(hidden)]
pub trait Route: Send + Sync {
    /// Sends one request.
    fn call(&self, request: Request) -> LocalBoxFuture<'static, Answer>;
}

pub(crate) struct IngressRoute<R: Ingress> {
    pub handle: DeploymentHandle<R>,
}

/// Tries a request on up to this many replicas when dead ones refuse it.
const ATTEMPTS: usize = 3;

impl<R: Ingress> Route for IngressRoute<R> {
    fn call(&self, request: Request) -> LocalBoxFuture<'static, Answer> {
        let handle = self.handle.clone();
        Box::pin(async move {
            let mut replica = match handle.pick() {
                Some(r) => r,
                None => handle.replica().await,
            };
            for attempt in 1..=ATTEMPTS {
                let refused = match R::http(&replica, request.clone()) {
                    IngressCall::Unary(r) => match r.await {
                        Ok(response) => return Answer::Whole(response),
                        Err(e) => e,
                    },
                    IngressCall::Stream(generator) => {
                        let mut items = generator.into_stream();
                        match items.next().await {
                            None => return Answer::Whole(Response::new(200, "text/plain", "")),
                            Some(first) => match first.await {
                                Ok(StreamItem::Head(response)) => return Answer::Whole(response),
                                Ok(StreamItem::Chunk(chunk)) => {
                                    return Answer::Stream(items, chunk);
                                }
                                Err(e) => e,
                            },
                        }
                    }
                };
                match refused {
                    // Refused before it ran: another replica takes it.
                    GetError::ActorDied { .. } if attempt < ATTEMPTS => {
                        handle.replica_failed(replica.id());
                        replica = match handle.pick_other(replica.id()) {
                            Some(r) => r,
                            None => handle.replica().await,
                        };
                    }
                    GetError::Backpressure { .. } => return Answer::Whole(busy()),
                    other => return Answer::Whole(Response::error(500, other.to_string())),
                }
            }
            Answer::Whole(Response::error(
                500,
                "every replica tried was dead; the deployment is being repaired, retry",
            ))
        })
    }
}

/// A 503 asking the client to come back.
pub(crate) fn busy() -> Response {
    Response::error(
        503,
        "the deployment is overloaded: too many requests are queued; retry",
    )
    .with_header("retry-after", "1")
}

/// The routes: `(prefix, application, route)`, longest prefix first.
pub(crate) type Routes = Arc<RwLock<Vec<(String, String, Arc<dyn Route>)>>>;

/// Where a proxy reads Serve's status: the controller's state in its own process, or the
/// controller actor from another node.
#[derive(Clone)]
pub(crate) enum StatusSource {
    Local(Arc<Shared>),
    Remote(ControllerHandle),
}

struct ProxyState {
    routes: Routes,
    status: StatusSource,
    options: HttpOptions,
}

/// The application whose prefix matches `path`.
fn find(routes: &Routes, path: &str) -> Option<Arc<dyn Route>> {
    let routes = routes.read().unwrap_or_else(|e| e.into_inner());
    routes
        .iter()
        .find(|(prefix, _, _)| {
            prefix == "/"
                || path == prefix
                || (path.starts_with(prefix.as_str()) && path.as_bytes()[prefix.len()] == b'/')
        })
        .map(|(_, _, r)| Arc::clone(r))
}

fn to_http(response: Response) -> HttpResponse {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::build(status);
    for (name, value) in &response.headers {
        out.insert_header((name.as_str(), value.as_str()));
    }
    out.body(response.body)
}

async fn handle(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ProxyState>,
) -> HttpResponse {
    let path = req.path().to_string();
    match path.as_str() {
        "/-/healthz" => return HttpResponse::Ok().body("success"),
        "/-/routes" => {
            let routes = state.routes.read().unwrap_or_else(|e| e.into_inner());
            let map: serde_json::Map<String, serde_json::Value> = routes
                .iter()
                .map(|(p, a, _)| (p.clone(), serde_json::Value::String(a.clone())))
                .collect();
            return HttpResponse::Ok().json(map);
        }
        "/-/status" => {
            let status = match &state.status {
                StatusSource::Local(shared) => shared.lock().status(),
                StatusSource::Remote(controller) => match controller.status().await {
                    Ok(s) => s,
                    Err(e) => {
                        return to_http(Response::error(503, format!("the controller: {e}")));
                    }
                },
            };
            return HttpResponse::Ok().json(status);
        }
        _ => {}
    }
    let Some(route) = find(&state.routes, &path) else {
        return to_http(Response::error(
            404,
            format!("no application serves {path}"),
        ));
    };
    let limit = state.options.max_body_bytes;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(bytes) => {
                if body.len() + bytes.len() > limit {
                    return to_http(Response::error(
                        413,
                        format!("the request body is over the limit of {limit} bytes"),
                    ));
                }
                body.extend_from_slice(&bytes);
            }
            Err(e) => {
                return to_http(Response::error(
                    400,
                    format!("the body could not be read: {e}"),
                ));
            }
        }
    }
    let request = Request {
        method: req.method().to_string(),
        path,
        query: req.query_string().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let sse = request
        .header("accept")
        .is_some_and(|a| a.contains("text/event-stream"));
    let answer = route.call(request);
    let answer = match state.options.request_timeout {
        None => answer.await,
        Some(t) => match tokio::time::timeout(t, answer).await {
            Ok(a) => a,
            Err(_) => {
                return to_http(Response::error(
                    504,
                    format!("the request took longer than its timeout of {t:?}"),
                ));
            }
        },
    };
    match answer {
        Answer::Whole(response) => to_http(response),
        Answer::Stream(items, first) => {
            let frame =
                move |chunk: Vec<u8>| -> Vec<u8> { if sse { sse_event(&chunk) } else { chunk } };
            let first = futures::stream::once(std::future::ready(frame(first)));
            // The stream ends at an error: the client sees it cut short.
            let rest = items
                .then(|r| async move { r.await })
                .take_while(|item| std::future::ready(matches!(item, Ok(StreamItem::Chunk(_)))))
                .filter_map(|item| {
                    std::future::ready(match item {
                        Ok(StreamItem::Chunk(c)) => Some(c),
                        _ => None,
                    })
                });
            let frame2 =
                move |chunk: Vec<u8>| -> Vec<u8> { if sse { sse_event(&chunk) } else { chunk } };
            let body = first
                .chain(rest.map(frame2))
                .map(|b| Ok::<_, actix_web::Error>(bytes::Bytes::from(b)));
            let content_type = if sse {
                "text/event-stream"
            } else {
                "application/octet-stream"
            };
            HttpResponse::Ok()
                .content_type(content_type)
                .streaming(body)
        }
    }
}

/// The running proxy: an HTTP server on a thread of its own.
pub(crate) type ProxyServer = crate::http::HttpServerHandle;

/// Starts proxies.
pub(crate) struct Proxy;

impl Proxy {
    pub(crate) fn start(
        options: HttpOptions,
        routes: Routes,
        status: StatusSource,
    ) -> std::io::Result<ProxyServer> {
        let state = web::Data::new(ProxyState {
            routes,
            status,
            options: options.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(handle))
        })
        .workers(options.workers.max(1))
        .disable_signals()
        .shutdown_timeout(1)
        .bind(options.address)?;
        let address = server.addrs().first().copied().unwrap_or(options.address);
        crate::http::run_on_thread(server.run(), address, "mobula-serve-proxy")
    }
}

/// Makes a route from a serialized `DeploymentHandle`.
pub type MakeRoute = fn(&[u8]) -> Result<Arc<dyn Route>, String>;

/// An ingress deployment class, registered by `#[mobula::deployment]` so that a proxy on
/// another node can rebuild a route from its handle's bytes.
#[doc(hidden)]
pub struct RegisteredIngress {
    /// The replica actor's class.
    pub class: &'static str,
    /// Makes the route from a serialized `DeploymentHandle`.
    pub route: MakeRoute,
}

inventory::collect!(RegisteredIngress);

/// The route of an ingress from its handle's bytes. Used by `#[mobula::deployment]`.
#[doc(hidden)]
pub fn route_from_bytes<R: Ingress>(bytes: &[u8]) -> Result<Arc<dyn Route>, String> {
    let handle: DeploymentHandle<R> = postcard::from_bytes(bytes)
        .map_err(|e| format!("the ingress handle does not decode: {e}"))?;
    Ok(Arc::new(IngressRoute { handle }))
}

fn registered(class: &str) -> Option<&'static RegisteredIngress> {
    inventory::iter::<RegisteredIngress>
        .into_iter()
        .find(|r| r.class == class)
}

/// A proxy's settings as they travel to another node.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProxySettings {
    /// Where it listens.
    pub address: SocketAddr,
    /// `request_timeout` in ms.
    pub request_timeout_ms: Option<u64>,
    /// `max_body_bytes`.
    pub max_body_bytes: usize,
    /// `workers`.
    pub workers: usize,
}

impl ProxySettings {
    pub(crate) fn of(o: &HttpOptions) -> Self {
        ProxySettings {
            address: o.address,
            request_timeout_ms: o.request_timeout.map(|t| t.as_millis() as u64),
            max_body_bytes: o.max_body_bytes,
            workers: o.workers,
        }
    }

    fn options(&self) -> HttpOptions {
        HttpOptions {
            address: self.address,
            request_timeout: self.request_timeout_ms.map(Duration::from_millis),
            max_body_bytes: self.max_body_bytes,
            workers: self.workers,
            location: ProxyLocation::Driver,
        }
    }
}

/// A proxy on another node than the controller's: an actor holding the HTTP server there.
#[crate::actor(num_cpus = 0, max_concurrency = 8)]
pub struct ServeProxy {
    server: Option<ProxyServer>,
    routes: Routes,
}

#[crate::actor]
impl ServeProxy {
    fn new(settings: ProxySettings, controller: ControllerHandle) -> Result<Self, String> {
        let routes: Routes = Arc::new(RwLock::new(Vec::new()));
        let server = Proxy::start(
            settings.options(),
            Arc::clone(&routes),
            StatusSource::Remote(controller),
        )
        .map_err(|e| format!("cannot listen on {}: {e}", settings.address))?;
        Ok(ServeProxy {
            server: Some(server),
            routes,
        })
    }

    /// Where it listens.
    fn address(&self) -> SocketAddr {
        self.server
            .as_ref()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |s| s.address)
    }

    /// Serves `app` at `prefix` through the ingress whose handle is `handle` (its bytes).
    fn set_route(
        &self,
        prefix: String,
        app: String,
        class: String,
        handle: Vec<u8>,
    ) -> Result<(), String> {
        let made = registered(&class)
            .ok_or_else(|| format!("no ingress deployment `{class}` in this build"))?;
        let route = (made.route)(&handle)?;
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        routes.retain(|(_, a, _)| *a != app);
        routes.push((prefix, app, route));
        routes.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        Ok(())
    }

    /// Stops serving `app`.
    fn remove_app(&self, app: String) {
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, a, _)| *a != app);
    }

    /// Stops the server.
    fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop_with(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl Route for Nothing {
        fn call(&self, _: Request) -> LocalBoxFuture<'static, Answer> {
            Box::pin(async { Answer::Whole(Response::text("")) })
        }
    }

    #[test]
    fn the_longest_matching_prefix_wins_and_prefixes_match_whole_segments() {
        let a: Arc<dyn Route> = Arc::new(Nothing);
        let b: Arc<dyn Route> = Arc::new(Nothing);
        let routes: Routes = Arc::new(RwLock::new(vec![
            ("/api/v1".into(), "v1".into(), Arc::clone(&a)),
            ("/api".into(), "api".into(), Arc::clone(&b)),
        ]));
        assert!(Arc::ptr_eq(&find(&routes, "/api/v1/x").unwrap(), &a));
        assert!(Arc::ptr_eq(&find(&routes, "/api/v1").unwrap(), &a));
        assert!(Arc::ptr_eq(&find(&routes, "/api/v10").unwrap(), &b));
        assert!(find(&routes, "/apiary").is_none());
        assert!(find(&routes, "/").is_none());
    }
}
