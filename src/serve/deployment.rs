//! A deployment as the user declares and binds it: the trait `#[mobula::deployment]`
//! implements on each deployment's replica actor, the bound deployment
//! (`Model::bind(args).num_replicas(2)`), and the plan an application becomes when it runs
//! (each bound deployment among the arguments deployed first and replaced by its handle).

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use super::autoscale::AutoscalingConfig;
use super::config::{ConfigError, DeploymentConfig};
use super::error::ServeError;
use super::handle::{DeploymentHandle, ErasedRouter};
use super::http::{Request, Response, StreamItem};
use super::replica::{ReplicaLoad, ReplicaSetup};
use crate::base::error::ActorError;
use crate::base::id::{ActorId, NodeId};
use crate::base::options::ActorOptions;
use crate::base::value::Value;
use crate::runtime::actor::handle::ActorHandle;
use crate::runtime::generator::ObjectRefGenerator;
use crate::runtime::hosted::ActorMethods;
use crate::runtime::object_ref::ObjectRef;

/// A deployment's replica actor. Implemented by `#[mobula::deployment]`; not by hand.
pub trait Deployment: ActorMethods + Sized {
    /// The deployment's name by default (the struct's name).
    const NAME: &'static str;
    /// The handle users hold (`ModelHandle`).
    type Public: From<DeploymentHandle<Self>> + Value;
    /// The constructor's arguments.
    type Args: Value;
    /// The options in the struct's attribute over Ray's defaults.
    fn default_config() -> DeploymentConfig;
    /// Creates one replica.
    fn start(
        options: ActorOptions,
        setup: ReplicaSetup,
        args: Self::Args,
    ) -> Result<ActorHandle<Self>, ActorError>;
    /// Runs the replica's health check (the user's `check_health`, if it has one).
    fn health(replica: &ActorHandle<Self>) -> ObjectRef<()>;
    /// The replica's load and counts.
    fn load(replica: &ActorHandle<Self>) -> ObjectRef<ReplicaLoad>;
    /// Passes a user config (JSON) to the replica's `reconfigure`.
    fn reconfigure(replica: &ActorHandle<Self>, config: String) -> ObjectRef<()>;
    /// Waits until the replica has no request, at most `timeout_ms`.
    fn drain(replica: &ActorHandle<Self>, timeout_ms: u64) -> ObjectRef<bool>;
}

/// The typed handle of a deployment (`ModelHandle`). Implemented by `#[mobula::deployment]`.
pub trait PublicHandle: From<DeploymentHandle<Self::Replica>> {
    /// The deployment's replica actor.
    type Replica: Deployment;
}

/// A deployment as an application's ingress: how the proxy sends it a request. Every
/// deployment is one; without an `#[http]` method it answers 404 saying so.
pub trait Ingress: Deployment {
    /// Sends one request to a replica.
    fn http(replica: &ActorHandle<Self>, request: Request) -> IngressCall;
}

/// A request on its way: one response, or a stream.
pub enum IngressCall {
    /// The method returns one response.
    Unary(ObjectRef<Response>),
    /// The method yields chunks.
    Stream(ObjectRefGenerator<StreamItem>),
}

/// How a bound argument is had when the application runs.
pub type Resolve<T> = Box<dyn FnOnce(&mut Plan) -> Result<T, ServeError> + Send>;

/// A deployment bound to its constructor's arguments, with its options: what
/// `Model::bind(...)` returns. Pass it to [`run`](super::run), or as an argument of another
/// deployment's `bind`, where it becomes that deployment's handle.
#[must_use = "a bound deployment runs only when passed to serve::run (or to another bind)"]
pub struct Bound<R: Deployment> {
    config: DeploymentConfig,
    user_config: Option<serde_json::Value>,
    version: Option<String>,
    args: Resolve<R::Args>,
}

/// An argument of `bind`: a value, or a bound deployment (which becomes its handle).
pub trait BindArg<T> {
    /// How the value is had when the application runs.
    fn into_resolve(self) -> Resolve<T>;
}

impl<T: Value> BindArg<T> for T {
    fn into_resolve(self) -> Resolve<T> {
        Box::new(move |_| Ok(self))
    }
}

impl<R: Deployment> BindArg<R::Public> for Bound<R> {
    fn into_resolve(self) -> Resolve<R::Public> {
        Box::new(move |plan| plan.add(self).map(R::Public::from))
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $ty:ty) => $set:expr;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $arg: $ty) -> Self {
            #[allow(clippy::redundant_closure_call)]
            ($set)(&mut self.config, $arg);
            self
        }
    )*};
}

impl<R: Deployment> Bound<R> {
    /// A bound deployment: its arguments resolved when the application runs. Made by
    /// `#[mobula::deployment]`'s `bind`.
    #[doc(hidden)]
    pub fn new(args: Resolve<R::Args>) -> Self {
        Bound {
            config: R::default_config(),
            user_config: None,
            version: None,
            args,
        }
    }

    setters! {
        /// Replicas to run (Ray: 1).
        num_replicas(n: u32) => |c: &mut DeploymentConfig, n| c.num_replicas = n;
        /// CPUs each replica holds (Ray: 1).
        num_cpus(n: f64) => |c: &mut DeploymentConfig, n| c.num_cpus = n;
        /// GPUs each replica holds.
        num_gpus(n: f64) => |c: &mut DeploymentConfig, n| c.num_gpus = n;
        /// Requests a replica runs at once (Ray: 5).
        max_ongoing_requests(n: u32) => |c: &mut DeploymentConfig, n| c.max_ongoing_requests = n;
        /// Requests that may wait on a replica; beyond, 503 (`None`: no limit).
        max_queued_requests(n: Option<usize>) => |c: &mut DeploymentConfig, n| c.max_queued_requests = n;
        /// Scale with the load.
        autoscaling(a: AutoscalingConfig) => |c: &mut DeploymentConfig, a| c.autoscaling = Some(a);
        /// How often each replica's health is checked (Ray: 10 s).
        health_check_period(d: std::time::Duration) => |c: &mut DeploymentConfig, d: std::time::Duration| c.health_check_period_ms = d.as_millis() as u64;
        /// How long a health check may take (Ray: 30 s).
        health_check_timeout(d: std::time::Duration) => |c: &mut DeploymentConfig, d: std::time::Duration| c.health_check_timeout_ms = d.as_millis() as u64;
        /// How long a stopping replica may finish its requests (Ray: 20 s).
        graceful_shutdown_timeout(d: std::time::Duration) => |c: &mut DeploymentConfig, d: std::time::Duration| c.graceful_shutdown_timeout_ms = d.as_millis() as u64;
    }

    /// The deployment's name in its application (default: the struct's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// A custom resource each replica holds.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.config.resources.push((name.into(), amount));
        self
    }

    /// A config passed to the replicas' `reconfigure` method when they start, and again
    /// (without restarting them) when the application is run with another one.
    pub fn user_config(mut self, config: impl Serialize) -> Self {
        self.user_config = Some(serde_json::to_value(config).unwrap_or(serde_json::Value::Null));
        self
    }

    /// The deployment's code version. Running an application again with the same version
    /// (and the same replica options) updates it in place: its user config, replica count
    /// and autoscaling change without restarting replicas. Without a version (or with
    /// another), its replicas are replaced one by one (a rolling update).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The options as set so far.
    pub fn config(&self) -> &DeploymentConfig {
        &self.config
    }
}

/// Starts replicas of one deployment: the bound arguments kept for each new replica.
pub(crate) trait ReplicaFactory: Send + Sync {
    fn start(
        &self,
        options: ActorOptions,
        setup: ReplicaSetup,
    ) -> Result<Box<dyn ReplicaOps>, ActorError>;
}

/// The controller's hold on one replica, its type erased.
pub(crate) trait ReplicaOps: Send + Sync {
    fn id(&self) -> ActorId;
    fn node(&self) -> NodeId;
    fn health(&self) -> ObjectRef<()>;
    fn load(&self) -> ObjectRef<ReplicaLoad>;
    fn reconfigure(&self, config: String) -> ObjectRef<()>;
    fn drain(&self, timeout_ms: u64) -> ObjectRef<bool>;
    fn terminate(&self);
    fn kill(&self);
}

struct Factory<R: Deployment> {
    args: R::Args,
}

struct Replica<R: Deployment>(ActorHandle<R>);

impl<R: Deployment> ReplicaFactory for Factory<R> {
    fn start(
        &self,
        options: ActorOptions,
        setup: ReplicaSetup,
    ) -> Result<Box<dyn ReplicaOps>, ActorError> {
        R::start(options, setup, self.args.clone()).map(|h| Box::new(Replica(h)) as _)
    }
}

impl<R: Deployment> ReplicaOps for Replica<R> {
    fn id(&self) -> ActorId {
        self.0.id()
    }
    fn node(&self) -> NodeId {
        self.0.node_id()
    }
    fn health(&self) -> ObjectRef<()> {
        R::health(&self.0)
    }
    fn load(&self) -> ObjectRef<ReplicaLoad> {
        R::load(&self.0)
    }
    fn reconfigure(&self, config: String) -> ObjectRef<()> {
        R::reconfigure(&self.0, config)
    }
    fn drain(&self, timeout_ms: u64) -> ObjectRef<bool> {
        R::drain(&self.0, timeout_ms)
    }
    fn terminate(&self) {
        self.0.terminate();
    }
    fn kill(&self) {
        self.0.kill(false);
    }
}

/// One deployment of an application about to run.
pub(crate) struct Planned {
    pub config: DeploymentConfig,
    pub user_config: Option<serde_json::Value>,
    pub version: Option<String>,
    pub factory: Arc<dyn ReplicaFactory>,
    pub router: Arc<dyn ErasedRouter>,
}

/// An application being made ready to run: its deployments, dependencies first.
pub struct Plan {
    pub(crate) app: String,
    pub(crate) deployments: Vec<Planned>,
    names: HashSet<String>,
}

impl Plan {
    pub(crate) fn new(app: &str) -> Self {
        Plan {
            app: app.to_string(),
            deployments: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// Adds a bound deployment (its arguments' deployments first) and returns its handle.
    pub(crate) fn add<R: Deployment>(
        &mut self,
        bound: Bound<R>,
    ) -> Result<DeploymentHandle<R>, ServeError> {
        let Bound {
            mut config,
            user_config,
            version,
            args,
        } = bound;
        if config.name.is_empty() {
            config.name = R::NAME.to_string();
        }
        // The same class bound twice: the second is `Name_1`, as Ray names them.
        if self.names.contains(&config.name) {
            let base = config.name.clone();
            let mut i = 1;
            while self.names.contains(&format!("{base}_{i}")) {
                i += 1;
            }
            config.name = format!("{base}_{i}");
        }
        config.check().map_err(|e| ServeError::Config {
            deployment: config.name.clone(),
            error: e,
        })?;
        self.names.insert(config.name.clone());
        let args = args(self)?;
        let handle =
            DeploymentHandle::<R>::open(&self.app, &config.name, config.max_ongoing_requests)?;
        self.deployments.push(Planned {
            config,
            user_config,
            version,
            factory: Arc::new(Factory::<R> { args }),
            router: handle.erased(),
        });
        Ok(handle)
    }
}

/// Checks a route prefix, as an error of the application.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), ServeError> {
    super::config::check_route_prefix(prefix).map_err(|e: ConfigError| ServeError::Config {
        deployment: "route_prefix".into(),
        error: e,
    })
}
