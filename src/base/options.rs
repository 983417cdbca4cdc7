//! Options of tasks and actors as plain data: the builders behind `f.options()` and
//! `Class::options()`, and what they become once checked.

use serde::{Deserialize, Serialize};

use super::id::NodeId;
use super::scheduling::bundles;
use super::scheduling::placement::SchedulingStrategy;
use super::scheduling::resources::{ResourceRequest, set_amount};
use super::scheduling::retry::{Retries, RetryPolicy};

/// Options of a task: what it needs to run and how it is retried. Ray's `@ray.remote(...)`
/// and `.options(...)` arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOptions {
    pub(crate) num_cpus: f64,
    pub(crate) num_gpus: f64,
    pub(crate) resources: Vec<(String, f64)>,
    pub(crate) max_retries: i64,
    pub(crate) retry_exceptions: bool,
    pub(crate) name: Option<String>,
    pub(crate) strategy: SchedulingStrategy,
    pub(crate) placement: Option<BundleRef>,
    pub(crate) generator_backpressure: u32,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            num_cpus: 1.0,
            num_gpus: 0.0,
            resources: Vec::new(),
            max_retries: 3,
            retry_exceptions: false,
            name: None,
            strategy: SchedulingStrategy::Default,
            placement: None,
            generator_backpressure: super::generator::DEFAULT_WINDOW,
        }
    }
}

impl TaskOptions {
    /// Ray's defaults: 1 CPU, no GPU, 3 retries on system failures, errors not retried.
    pub fn new() -> Self {
        Self::default()
    }

    /// CPUs the task holds while it runs (fractions allowed; 0 runs it regardless of load).
    pub fn num_cpus(mut self, n: impl Into<f64>) -> Self {
        self.num_cpus = n.into();
        self
    }

    /// GPUs the task holds while it runs (a fraction shares one GPU; above 1, whole GPUs).
    pub fn num_gpus(mut self, n: impl Into<f64>) -> Self {
        self.num_gpus = n.into();
        self
    }

    /// An amount of a custom resource the task holds while it runs.
    pub fn resource(mut self, name: impl Into<String>, amount: impl Into<f64>) -> Self {
        set_amount(&mut self.resources, name.into(), amount.into());
        self
    }

    /// How many times the task runs again when its worker dies; negative for no limit.
    /// With [`retry_exceptions`](Self::retry_exceptions), panics and errors count too.
    pub fn max_retries(mut self, n: i64) -> Self {
        self.max_retries = n;
        self
    }

    /// Also retry the task when it panics or returns `Err`.
    pub fn retry_exceptions(mut self, yes: bool) -> Self {
        self.retry_exceptions = yes;
        self
    }

    /// For a function that yields (a streaming generator): how many items it may make
    /// that its caller has not taken yet before it pauses (Ray's
    /// `_generator_backpressure_num_objects`); at least 1, default
    /// [`DEFAULT_WINDOW`](crate::generator::DEFAULT_WINDOW).
    pub fn generator_backpressure(mut self, items: u32) -> Self {
        self.generator_backpressure = items.max(1);
        self
    }

    /// A name for the task, shown in errors and logs instead of the function's id.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where in a cluster the task may run (Ray's `scheduling_strategy`). Outside a cluster
    /// every strategy runs it on the one node.
    pub fn scheduling_strategy(mut self, strategy: SchedulingStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    pub(crate) fn resolve(&self) -> ResolvedOptions {
        let mut strategy = self.strategy;
        let mut request = ResourceRequest::new(self.num_cpus, self.num_gpus, &self.resources);
        let mut place_request = None;
        if let (Some(bundle), Ok(req)) = (&self.placement, &request) {
            let plain = req.clone();
            request = bundle.resolve(req).map(|(req, node)| {
                strategy = SchedulingStrategy::NodeAffinity { node, soft: false };
                place_request = Some(plain);
                req
            });
        }
        ResolvedOptions {
            request,
            place_request,
            retry: RetryPolicy {
                max_retries: Retries::from_ray(self.max_retries),
                retry_exceptions: self.retry_exceptions,
            },
            name: self.name.clone(),
            strategy,
        }
    }
}

/// Task options checked and converted for the scheduler.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedOptions {
    /// What the node's scheduler acquires.
    pub request: Result<ResourceRequest, String>,
    /// What a node must have to be chosen in a cluster, when it differs from `request` (a
    /// task in a placement group's bundle asks its node for the bundle's resources).
    pub place_request: Option<ResourceRequest>,
    pub retry: RetryPolicy,
    pub name: Option<String>,
    pub strategy: SchedulingStrategy,
}

/// Options of an actor: Ray's `@ray.remote(...)` on a class and `.options(...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorOptions {
    pub(crate) num_cpus: Option<f64>,
    pub(crate) num_gpus: f64,
    pub(crate) resources: Vec<(String, f64)>,
    pub(crate) name: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) get_if_exists: bool,
    pub(crate) detached: bool,
    pub(crate) max_restarts: i64,
    pub(crate) max_task_retries: i64,
    pub(crate) max_pending_calls: Option<usize>,
    pub(crate) max_concurrency: Option<usize>,
    pub(crate) strategy: SchedulingStrategy,
    pub(crate) placement: Option<BundleRef>,
}

impl Default for ActorOptions {
    fn default() -> Self {
        ActorOptions {
            num_cpus: None,
            num_gpus: 0.0,
            resources: Vec::new(),
            name: None,
            namespace: None,
            get_if_exists: false,
            detached: false,
            max_restarts: 0,
            max_task_retries: 0,
            max_pending_calls: None,
            max_concurrency: None,
            strategy: SchedulingStrategy::Default,
            placement: None,
        }
    }
}

/// The namespace of named actors when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

impl ActorOptions {
    /// Ray's defaults: no restarts, no call retries, no name, ended with its last handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// CPUs the actor holds for its whole life. Unset, it holds none (Ray: 1 CPU to place,
    /// 0 while running), but still needs a node with at least one CPU.
    pub fn num_cpus(mut self, n: impl Into<f64>) -> Self {
        self.num_cpus = Some(n.into());
        self
    }

    /// GPUs the actor holds for its whole life.
    pub fn num_gpus(mut self, n: impl Into<f64>) -> Self {
        self.num_gpus = n.into();
        self
    }

    /// An amount of a custom resource the actor holds for its whole life.
    pub fn resource(mut self, name: impl Into<String>, amount: impl Into<f64>) -> Self {
        set_amount(&mut self.resources, name.into(), amount.into());
        self
    }

    /// A name to find the actor by with [`get_actor`](crate::get_actor).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The namespace of the name (default: `"default"`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// With a name: return the actor of that name if it exists instead of failing.
    pub fn get_if_exists(mut self, yes: bool) -> Self {
        self.get_if_exists = yes;
        self
    }

    /// Keep the actor alive after its last handle is dropped, until it is killed or the
    /// runtime shuts down (Ray's `lifetime="detached"`).
    pub fn detached(mut self, yes: bool) -> Self {
        self.detached = yes;
        self
    }

    /// How many times the actor is restarted after a failure (negative: no limit).
    pub fn max_restarts(mut self, n: i64) -> Self {
        self.max_restarts = n;
        self
    }

    /// How many times a call caught by a failure is run again on the restarted actor
    /// (negative: no limit).
    pub fn max_task_retries(mut self, n: i64) -> Self {
        self.max_task_retries = n;
        self
    }

    /// How many calls may wait or run at once; a call beyond fails with
    /// [`GetError::Backpressure`](crate::GetError::Backpressure).
    pub fn max_pending_calls(mut self, n: usize) -> Self {
        self.max_pending_calls = Some(n);
        self
    }

    /// How many calls may run at once (default 1; 1000 for async actors).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Where in a cluster the actor is created (Ray's `scheduling_strategy`). Outside a
    /// cluster every strategy creates it on the one node.
    pub fn scheduling_strategy(mut self, strategy: SchedulingStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The scheduling strategy (a placement group's bundle pins the node).
    pub(crate) fn strategy(&self) -> SchedulingStrategy {
        match &self.placement {
            Some(bundle) => bundle
                .resolve(&ResourceRequest::default())
                .map_or(self.strategy, |(_, node)| {
                    SchedulingStrategy::NodeAffinity { node, soft: false }
                }),
            None => self.strategy,
        }
    }

    /// The actor's name and namespace, if it has a name.
    pub(crate) fn name_option(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn resolve(&self, is_async: bool) -> Result<ActorSettings, String> {
        let mut hold =
            ResourceRequest::new(self.num_cpus.unwrap_or(0.0), self.num_gpus, &self.resources)?;
        let place =
            ResourceRequest::new(self.num_cpus.unwrap_or(1.0), self.num_gpus, &self.resources)?;
        if let Some(bundle) = &self.placement {
            // It holds the bundle's resources; a node is chosen by the plain request.
            hold = bundle.resolve(&hold)?.0;
        }
        if self.max_concurrency == Some(0) {
            return Err("max_concurrency must be at least 1".into());
        }
        if self.max_pending_calls == Some(0) {
            return Err("max_pending_calls must be at least 1".into());
        }
        if self.name.as_deref() == Some("") {
            return Err("an actor name cannot be empty".into());
        }
        Ok(ActorSettings {
            hold,
            place,
            name: self.name.clone().map(|n| {
                (
                    self.namespace
                        .clone()
                        .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
                    n,
                )
            }),
            get_if_exists: self.get_if_exists,
            detached: self.detached,
            max_restarts: Retries::from_ray(self.max_restarts),
            max_task_retries: Retries::from_ray(self.max_task_retries),
            max_pending_calls: self.max_pending_calls,
            max_concurrency: self
                .max_concurrency
                .unwrap_or(if is_async { 1000 } else { 1 }),
            is_async,
            log_to: None,
        })
    }
}

/// An actor's options, checked.
#[derive(Debug, Clone)]
pub(crate) struct ActorSettings {
    /// What it holds while alive.
    pub hold: ResourceRequest,
    /// What a node must have to place it.
    pub place: ResourceRequest,
    /// (namespace, name).
    pub name: Option<(String, String)>,
    pub get_if_exists: bool,
    pub detached: bool,
    pub max_restarts: Retries,
    pub max_task_retries: Retries,
    pub max_pending_calls: Option<usize>,
    pub max_concurrency: usize,
    pub is_async: bool,
    /// The node whose terminal shows what it prints; set where it is created.
    pub log_to: Option<NodeId>,
}

/// A bundle of a group as task and actor options carry it (to other nodes too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BundleRef {
    pub group: String,
    pub index: Option<usize>,
    pub nodes: Vec<NodeId>,
}

impl BundleRef {
    /// What a task or actor in this bundle asks for instead of `req`, and the node it runs
    /// on; an index out of range is an error.
    pub fn resolve(&self, req: &ResourceRequest) -> Result<(ResourceRequest, NodeId), String> {
        let node = match self.index {
            Some(i) => *self.nodes.get(i).ok_or_else(|| {
                format!(
                    "bundle index {i} is out of range: placement group {} has {} bundles",
                    self.group,
                    self.nodes.len()
                )
            })?,
            None => self.nodes[0],
        };
        Ok((bundles::in_group(&self.group, self.index, req), node))
    }
}
