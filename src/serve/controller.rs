//! The Serve controller: an actor in the process that runs the applications, holding what
//! each deployment wants (its config, version and replica count) and reconciling its
//! replicas to it every [`TICK`]: starting and placing them across nodes, checking their
//! health and load, replacing unhealthy or dead ones, rolling new versions out, and asking
//! the autoscaler how many to run. Routers ask it for the replicas (`replicas`), tell it
//! when a request waits for one (`wake`), and `serve status` reads it (`status`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::autoscale::Autoscaler;
use super::config::DeploymentConfig;
use super::deployment::{Planned, ReplicaFactory, ReplicaOps};
use super::handle::{ErasedRouter, POLL_INTERVAL};
use super::reconcile::{ReplicaView, place, reconcile};
use super::replica::{ReplicaLoad, ReplicaSetup};
use super::status::{
    ApplicationStatus, DeploymentStatus, LatencyHistogram, ReplicaState, ReplicaStatus, ServeStatus,
};
use crate::base::id::{ActorId, NodeId};
use crate::base::options::ActorOptions;
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::runtime::object_ref::ObjectRef;

/// How often the controller reconciles.
pub const TICK: Duration = Duration::from_millis(50);

/// How often the controller reconciles while replicas start or stop.
pub const FAST_TICK: Duration = Duration::from_millis(2);

/// Replica starts in a row that may fail before `serve::run` gives up.
pub const START_ATTEMPTS: u32 = 3;

/// The replicas of one deployment as routers get them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaList {
    /// Bumped at each change.
    pub version: u64,
    /// The deployment's `max_ongoing_requests`.
    pub max_ongoing: u32,
    /// The running replicas.
    pub replicas: Vec<(ActorId, NodeId)>,
}

struct Stop {
    at: Instant,
    drain: ObjectRef<bool>,
    killed: bool,
}

struct Replica {
    number: u64,
    version: u64,
    ops: Box<dyn ReplicaOps>,
    state: ReplicaState,
    probe: Option<(ObjectRef<()>, Instant)>,
    next_health: Instant,
    load_ref: Option<ObjectRef<ReplicaLoad>>,
    load: ReplicaLoad,
    stop: Option<Stop>,
}

pub(crate) struct Deployment {
    config: DeploymentConfig,
    user_config: Option<String>,
    tag: Option<String>,
    version: u64,
    factory: Arc<dyn ReplicaFactory>,
    router: Arc<dyn ErasedRouter>,
    replicas: Vec<Replica>,
    next_number: u64,
    list_version: u64,
    autoscaler: Option<Autoscaler>,
    target: u32,
    held_at: Option<Instant>,
    message: String,
    failures: u32,
    next_start: Instant,
    /// Counts of replicas gone, kept for the deployment's totals.
    gone_served: u64,
    gone_errors: u64,
    gone_latency: LatencyHistogram,
    rate: VecDeque<(Instant, u64)>,
    /// User configs sent to running replicas, not yet answered.
    reconfiguring: Vec<ObjectRef<()>>,
}

struct App {
    route_prefix: String,
    ingress: String,
    deployments: Vec<Deployment>,
}

/// The controller's state, shared by its actor and its reconcile loop.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Notified after each reconcile.
    pub ticked: Condvar,
}

#[derive(Default)]
pub(crate) struct State {
    apps: BTreeMap<String, App>,
    pub proxy: Option<String>,
    pub stopped: bool,
    epoch: Option<Instant>,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Shared {
            state: Mutex::new(State::default()),
            ticked: Condvar::new(),
        })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Shared states handed to the controller actor being created, by key.
fn handed() -> &'static Mutex<HashMap<u64, Arc<Shared>>> {
    static HANDED: OnceLock<Mutex<HashMap<u64, Arc<Shared>>>> = OnceLock::new();
    HANDED.get_or_init(Default::default)
}

pub(crate) fn hand_off(key: u64, shared: Arc<Shared>) {
    handed()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, shared);
}

/// The controller's actor: what other processes reach.
#[crate::actor(num_cpus = 0, max_concurrency = 64)]
pub struct ServeController {
    shared: Arc<Shared>,
}

/// A handle to the controller.
pub type ControllerHandle = ServeControllerHandle;

#[crate::actor]
impl ServeController {
    fn new(key: u64) -> Result<Self, String> {
        let shared = handed()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key)
            .ok_or("the Serve controller must run in the process that started Serve")?;
        Ok(ServeController { shared })
    }

    /// The running replicas of a deployment, if they changed since version `known`.
    fn replicas(&self, app: String, deployment: String, known: u64) -> Option<ReplicaList> {
        let state = self.shared.lock();
        let d = state
            .apps
            .get(&app)?
            .deployments
            .iter()
            .find(|d| d.config.name == deployment)?;
        (d.list_version != known).then(|| d.list())
    }

    /// A request waits for a replica of this deployment.
    fn wake(&self, app: String, deployment: String) {
        let mut state = self.shared.lock();
        if let Some(d) = state.apps.get_mut(&app).and_then(|a| {
            a.deployments
                .iter_mut()
                .find(|d| d.config.name == deployment)
        }) {
            d.held_at = Some(Instant::now());
        }
    }

    /// Everything Serve runs.
    fn status(&self) -> ServeStatus {
        self.shared.lock().status()
    }
}

impl Deployment {
    fn list(&self) -> ReplicaList {
        ReplicaList {
            version: self.list_version,
            max_ongoing: self.config.max_ongoing_requests,
            replicas: self
                .replicas
                .iter()
                .filter(|r| r.state == ReplicaState::Running)
                .map(|r| (r.ops.id(), r.ops.node()))
                .collect(),
        }
    }

    fn changed(&mut self) {
        self.list_version += 1;
        self.router.update(&self.list());
    }

    /// The options of a new replica, placed on `node` if one is given (else spread).
    fn options(&self, node: Option<NodeId>) -> ActorOptions {
        let c = &self.config;
        let queue = c.max_queued_requests.unwrap_or(4096).min(1 << 20);
        let mut o = ActorOptions::new()
            .num_cpus(c.num_cpus)
            .num_gpus(c.num_gpus)
            .max_restarts(-1)
            .max_concurrency(c.max_ongoing_requests as usize + queue + 16)
            .scheduling_strategy(match node {
                Some(node) => SchedulingStrategy::NodeAffinity { node, soft: true },
                None => SchedulingStrategy::Spread,
            });
        for (name, amount) in &c.resources {
            o = o.resource(name.clone(), *amount);
        }
        o
    }

    fn start_one(&mut self, app: &str, now: Instant) {
        let number = self.next_number;
        self.next_number += 1;
        let setup = ReplicaSetup {
            app: app.to_string(),
            deployment: self.config.name.clone(),
            replica: number,
            max_ongoing_requests: self.config.max_ongoing_requests,
            max_queued_requests: self.config.max_queued_requests,
            user_config: self.user_config.clone(),
        };
        match self.factory.start(self.options(self.place()), setup) {
            Ok(ops) => {
                let probe = ops.health();
                self.replicas.push(Replica {
                    number,
                    version: self.version,
                    ops,
                    state: ReplicaState::Starting,
                    probe: Some((probe, now)),
                    next_health: now,
                    load_ref: None,
                    load: ReplicaLoad::default(),
                    stop: None,
                });
            }
            Err(e) => self.failed_start(e.to_string(), now),
        }
    }

    /// The node for a new replica: of the live nodes that have the CPUs and GPUs it asks for,
    /// the one with fewest of this deployment's replicas (`None` outside a cluster).
    fn place(&self) -> Option<NodeId> {
        let amount = |n: &crate::base::membership::NodeState, what: &str| {
            n.info
                .resources
                .iter()
                .find(|(r, _)| r == what)
                .map_or(0.0, |(_, a)| *a)
        };
        let candidates: Vec<NodeId> = crate::node::nodes()
            .iter()
            .filter(|n| n.alive && n.info.runs_tasks)
            .filter(|n| amount(n, "CPU") >= self.config.num_cpus)
            .filter(|n| amount(n, "GPU") >= self.config.num_gpus)
            .map(|n| n.info.node_id)
            .collect();
        let placed: Vec<NodeId> = self
            .replicas
            .iter()
            .filter(|r| r.state != ReplicaState::Stopping)
            .map(|r| r.ops.node())
            .collect();
        place(&candidates, &placed)
    }

    fn failed_start(&mut self, why: String, now: Instant) {
        self.failures += 1;
        self.message = why;
        let backoff = 100u64.saturating_mul(1 << self.failures.min(6)).min(5_000);
        self.next_start = now + Duration::from_millis(backoff);
    }

    fn begin_stop(&mut self, number: u64, now: Instant, kill: bool) {
        let graceful = self.config.graceful_shutdown_timeout_ms;
        if let Some(r) = self.replicas.iter_mut().find(|r| r.number == number) {
            if r.state == ReplicaState::Stopping {
                return;
            }
            let was_running = r.state == ReplicaState::Running;
            r.state = ReplicaState::Stopping;
            if kill {
                r.ops.kill();
            }
            r.stop = Some(Stop {
                at: now,
                drain: r.ops.drain(graceful),
                killed: kill,
            });
            if was_running {
                self.changed();
            }
        }
    }

    fn remove(&mut self, number: u64) {
        if let Some(i) = self.replicas.iter().position(|r| r.number == number) {
            let r = self.replicas.remove(i);
            self.gone_served += r.load.served;
            self.gone_errors += r.load.errors;
            self.gone_latency.merge(&r.load.latency);
            if r.state == ReplicaState::Running {
                self.changed();
            }
        }
    }

    /// One reconcile of this deployment.
    fn tick(&mut self, app: &str, now: Instant, now_ms: u64) {
        let period = Duration::from_millis(self.config.health_check_period_ms);
        let timeout = Duration::from_millis(self.config.health_check_timeout_ms);
        let graceful = Duration::from_millis(self.config.graceful_shutdown_timeout_ms);
        let mut became_running = false;
        let mut failed: Vec<(u64, String, bool)> = Vec::new();
        let mut done: Vec<u64> = Vec::new();
        for r in &mut self.replicas {
            match r.state {
                ReplicaState::Starting | ReplicaState::Running => {
                    if let Some((probe, at)) = &r.probe {
                        if probe.is_ready() {
                            match probe.get() {
                                Ok(()) => {
                                    if r.state == ReplicaState::Starting {
                                        r.state = ReplicaState::Running;
                                        became_running = true;
                                    }
                                    r.probe = None;
                                    r.next_health = now + period;
                                }
                                Err(e) => failed.push((
                                    r.number,
                                    e.to_string(),
                                    r.state == ReplicaState::Starting,
                                )),
                            }
                        } else if r.state == ReplicaState::Running && now - *at > timeout {
                            failed.push((
                                r.number,
                                format!(
                                    "replica {} did not answer its health check within {timeout:?}",
                                    r.number
                                ),
                                false,
                            ));
                        }
                    } else if now >= r.next_health {
                        r.probe = Some((r.ops.health(), now));
                    }
                    if r.state == ReplicaState::Running {
                        match &r.load_ref {
                            Some(l) if l.is_ready() => {
                                match l.get() {
                                    Ok(load) => r.load = load,
                                    Err(e) => failed.push((r.number, e.to_string(), false)),
                                }
                                r.load_ref = None;
                            }
                            Some(_) => {}
                            None => r.load_ref = Some(r.ops.load()),
                        }
                    }
                }
                ReplicaState::Stopping => {
                    let Some(stop) = &r.stop else {
                        done.push(r.number);
                        continue;
                    };
                    let drained = stop.killed || stop.drain.is_ready();
                    let routers_know = now - stop.at >= POLL_INTERVAL * 3;
                    if (drained && routers_know) || now - stop.at > graceful + POLL_INTERVAL * 3 {
                        if !stop.killed {
                            r.ops.terminate();
                        }
                        done.push(r.number);
                    }
                }
            }
        }
        for (number, why, starting) in failed {
            self.message = format!("replica {number}: {why}");
            if starting {
                self.failed_start(self.message.clone(), now);
            }
            self.begin_stop(number, now, true);
        }
        for number in done {
            self.remove(number);
        }
        if became_running {
            self.failures = 0;
            self.changed();
        }

        let mut refused = Vec::new();
        self.reconfiguring.retain(|r| {
            if !r.is_ready() {
                return true;
            }
            if let Err(e) = r.get() {
                refused.push(e.to_string());
            }
            false
        });
        if let Some(why) = refused.pop() {
            self.message = format!("reconfigure failed: {why}");
        }

        // How many it wants.
        let running = self
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Running && r.version == self.version)
            .count() as u32;
        self.target = match &mut self.autoscaler {
            Some(a) => {
                let mut load: u64 = self
                    .replicas
                    .iter()
                    .filter(|r| r.state == ReplicaState::Running)
                    .map(|r| u64::from(r.load.running + r.load.queued))
                    .sum();
                if self.held_at.is_some_and(|at| now - at < POLL_INTERVAL * 5) {
                    load += 1;
                }
                let live = self
                    .replicas
                    .iter()
                    .filter(|r| r.state != ReplicaState::Stopping && r.version == self.version)
                    .count() as u32;
                // Replicas still starting count as there, so they are not asked for twice.
                a.decide(now_ms, live.max(running), load)
            }
            None => self.config.num_replicas,
        };

        let views: Vec<ReplicaView> = self
            .replicas
            .iter()
            .map(|r| ReplicaView {
                number: r.number,
                version: r.version,
                state: r.state,
                ongoing: r.load.running + r.load.queued,
            })
            .collect();
        let actions = reconcile(&views, self.version, self.target);
        for number in actions.stop {
            self.begin_stop(number, now, false);
        }
        if actions.start > 0 && now >= self.next_start {
            for _ in 0..actions.start {
                self.start_one(app, now);
            }
        }

        super::metrics::replicas(app, &self.config.name, running as usize);
        let served: u64 =
            self.gone_served + self.replicas.iter().map(|r| r.load.served).sum::<u64>();
        self.rate.push_back((now, served));
        while self
            .rate
            .front()
            .is_some_and(|(at, _)| now - *at > Duration::from_secs(5))
        {
            self.rate.pop_front();
        }
    }

    fn status(&self) -> DeploymentStatus {
        let mut latency = self.gone_latency.clone();
        let mut requests = self.gone_served;
        let mut errors = self.gone_errors;
        for r in &self.replicas {
            latency.merge(&r.load.latency);
            requests += r.load.served;
            errors += r.load.errors;
        }
        let requests_per_s = match (self.rate.front(), self.rate.back()) {
            (Some((a, sa)), Some((b, sb))) if *b > *a => (sb - sa) as f64 / (*b - *a).as_secs_f64(),
            _ => 0.0,
        };
        let running = self
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Running && r.version == self.version)
            .count() as u32;
        let status = if running == self.target && self.replicas.len() == running as usize {
            "HEALTHY"
        } else if self.failures >= START_ATTEMPTS {
            "UNHEALTHY"
        } else {
            "UPDATING"
        };
        DeploymentStatus {
            name: self.config.name.clone(),
            status: status.into(),
            target_replicas: self.target,
            replicas: self
                .replicas
                .iter()
                .map(|r| ReplicaStatus {
                    replica: r.number,
                    state: r.state,
                    node: r.ops.node().to_string(),
                    version: r.version,
                    ongoing: r.load.running + r.load.queued,
                    served: r.load.served,
                })
                .collect(),
            requests,
            errors,
            requests_per_s,
            p50_ms: latency.quantile_ms(0.5),
            p99_ms: latency.quantile_ms(0.99),
            latency,
            message: self.message.clone(),
        }
    }
}

impl State {
    /// Adds or updates an application.
    pub(crate) fn deploy(
        &mut self,
        name: &str,
        route_prefix: &str,
        ingress: &str,
        planned: Vec<Planned>,
    ) {
        let now = Instant::now();
        let old = self.apps.remove(name);
        let mut old_deps: HashMap<String, Deployment> = old
            .map(|a| {
                a.deployments
                    .into_iter()
                    .map(|d| (d.config.name.clone(), d))
                    .collect()
            })
            .unwrap_or_default();
        let mut deployments = Vec::new();
        for p in planned {
            let user_config = p.user_config.as_ref().map(|v| v.to_string());
            let autoscaler = p
                .config
                .autoscaling
                .clone()
                .and_then(|a| Autoscaler::new(a).ok());
            match old_deps.remove(&p.config.name) {
                Some(mut d) => {
                    let same_replicas = p.version.is_some()
                        && d.tag == p.version
                        && same_replica_options(&d.config, &p.config);
                    if same_replicas {
                        // In place: a new user config goes to the running replicas.
                        if user_config != d.user_config {
                            if let Some(c) = &user_config {
                                for r in &d.replicas {
                                    if r.state != ReplicaState::Stopping {
                                        d.reconfiguring.push(r.ops.reconfigure(c.clone()));
                                    }
                                }
                            }
                        }
                    } else {
                        d.version += 1;
                    }
                    d.user_config = user_config;
                    d.tag = p.version;
                    d.config = p.config;
                    d.factory = p.factory;
                    d.router = p.router;
                    d.autoscaler = autoscaler;
                    d.failures = 0;
                    d.message.clear();
                    d.changed();
                    deployments.push(d);
                }
                None => {
                    let target = p.config.initial_replicas();
                    deployments.push(Deployment {
                        config: p.config,
                        user_config,
                        tag: p.version,
                        version: 1,
                        factory: p.factory,
                        router: p.router,
                        replicas: Vec::new(),
                        next_number: 1,
                        list_version: 0,
                        autoscaler,
                        target,
                        held_at: None,
                        message: String::new(),
                        failures: 0,
                        next_start: now,
                        gone_served: 0,
                        gone_errors: 0,
                        gone_latency: LatencyHistogram::default(),
                        rate: VecDeque::new(),
                        reconfiguring: Vec::new(),
                    });
                }
            }
        }
        // Deployments the application no longer has stop.
        for (_, mut d) in old_deps {
            let numbers: Vec<u64> = d.replicas.iter().map(|r| r.number).collect();
            for n in numbers {
                d.begin_stop(n, now, false);
            }
            for r in &d.replicas {
                r.ops.terminate();
            }
        }
        self.apps.insert(
            name.to_string(),
            App {
                route_prefix: route_prefix.to_string(),
                ingress: ingress.to_string(),
                deployments,
            },
        );
    }

    /// Stops an application's replicas and forgets it; false if there was none.
    pub(crate) fn delete(&mut self, name: &str) -> bool {
        match self.apps.remove(name) {
            Some(app) => {
                for d in app.deployments {
                    for r in &d.replicas {
                        r.ops.terminate();
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Stops everything.
    pub(crate) fn stop_all(&mut self) {
        let names: Vec<String> = self.apps.keys().cloned().collect();
        for n in names {
            self.delete(&n);
        }
        self.stopped = true;
    }

    /// One reconcile of every deployment.
    pub(crate) fn tick(&mut self, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        let now_ms = (now - epoch).as_millis() as u64;
        for (name, app) in &mut self.apps {
            for d in &mut app.deployments {
                d.tick(name, now, now_ms);
            }
        }
    }

    /// How long until the next reconcile: soon while replicas start or stop, else [`TICK`].
    pub(crate) fn next_tick(&self) -> Duration {
        let changing = self.apps.values().any(|a| {
            a.deployments
                .iter()
                .any(|d| d.replicas.iter().any(|r| r.state != ReplicaState::Running))
        });
        if changing { FAST_TICK } else { TICK }
    }

    /// Whether an application runs what it wants: `Ok(true)` ready, `Ok(false)` not yet,
    /// `Err` when a deployment failed to start its replicas too many times in a row.
    pub(crate) fn ready(&self, app: &str) -> Result<bool, (String, String)> {
        let Some(a) = self.apps.get(app) else {
            return Ok(false);
        };
        for d in &a.deployments {
            if d.failures >= START_ATTEMPTS {
                return Err((d.config.name.clone(), d.message.clone()));
            }
            let running = d
                .replicas
                .iter()
                .filter(|r| r.state == ReplicaState::Running && r.version == d.version)
                .count() as u32;
            let old = d.replicas.iter().any(|r| r.version != d.version);
            if running < d.target || old {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(crate) fn status(&self) -> ServeStatus {
        ServeStatus {
            proxy: self.proxy.clone(),
            applications: self
                .apps
                .iter()
                .map(|(name, a)| ApplicationStatus {
                    name: name.clone(),
                    route_prefix: a.route_prefix.clone(),
                    ingress: a.ingress.clone(),
                    deployments: a.deployments.iter().map(Deployment::status).collect(),
                })
                .collect(),
        }
    }

    /// A load call to every running replica, for a status read now.
    pub(crate) fn ask_loads(&self) -> Vec<(String, String, u64, ObjectRef<ReplicaLoad>)> {
        let mut asked = Vec::new();
        for (name, app) in &self.apps {
            for d in &app.deployments {
                for r in &d.replicas {
                    if r.state == ReplicaState::Running {
                        asked.push((name.clone(), d.config.name.clone(), r.number, r.ops.load()));
                    }
                }
            }
        }
        asked
    }

    /// Keeps a replica's load read by [`ask_loads`](Self::ask_loads).
    pub(crate) fn set_load(&mut self, app: &str, deployment: &str, number: u64, load: ReplicaLoad) {
        if let Some(r) = self
            .apps
            .get_mut(app)
            .and_then(|a| {
                a.deployments
                    .iter_mut()
                    .find(|d| d.config.name == deployment)
            })
            .and_then(|d| d.replicas.iter_mut().find(|r| r.number == number))
        {
            r.load = load;
        }
    }

    /// The replicas of a deployment, if it runs.
    pub(crate) fn list(&self, app: &str, deployment: &str) -> Option<ReplicaList> {
        self.apps
            .get(app)
            .and_then(|a| a.deployments.iter().find(|d| d.config.name == deployment))
            .map(Deployment::list)
    }

    /// Kills a replica as a crash would (the controller is not told); false if none.
    pub(crate) fn kill(&self, app: &str, deployment: &str, number: u64) -> bool {
        let found = self
            .apps
            .get(app)
            .and_then(|a| a.deployments.iter().find(|d| d.config.name == deployment))
            .and_then(|d| d.replicas.iter().find(|r| r.number == number));
        match found {
            Some(r) => {
                r.ops.kill();
                true
            }
            None => false,
        }
    }

    /// Replicas started, for tests: the numbers of the running replicas of a deployment.
    pub(crate) fn running(&self, app: &str, deployment: &str) -> Vec<(u64, ActorId)> {
        self.apps
            .get(app)
            .and_then(|a| a.deployments.iter().find(|d| d.config.name == deployment))
            .map(|d| {
                d.replicas
                    .iter()
                    .filter(|r| r.state == ReplicaState::Running)
                    .map(|r| (r.number, r.ops.id()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether two configs start the same replicas (resources and request limits).
fn same_replica_options(a: &DeploymentConfig, b: &DeploymentConfig) -> bool {
    a.num_cpus == b.num_cpus
        && a.num_gpus == b.num_gpus
        && a.resources == b.resources
        && a.max_ongoing_requests == b.max_ongoing_requests
        && a.max_queued_requests == b.max_queued_requests
}
