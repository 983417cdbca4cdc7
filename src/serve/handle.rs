//! Deployment handles (Ray's `DeploymentHandle`): a typed call to a deployment goes to one of
//! its replicas, chosen by power of two choices over the calls this process has in flight to
//! each; it returns a ref at once, which can be awaited, got, or passed to another call.
//!
//! Each process keeps one router per deployment, shared by every handle to it. In the process
//! of the controller, the controller tells routers of each change of replicas at once;
//! elsewhere a router asks the controller for news while it is used (every
//! [`POLL_INTERVAL`]). A call made while a deployment has no replica (scaled to zero, or
//! starting) is held: its ref is handed out at once and the call is made when a replica runs.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::Notify;

use super::controller::{ControllerHandle, ReplicaList};
use super::error::ServeError;
use super::router::{ReplicaLoad, Route, choose};
use crate::base::error::GetError;
use crate::base::id::{ActorId, NodeId};
use crate::base::value::Value;
use crate::runtime::actor::handle::{ActorClass, ActorHandle};
use crate::runtime::global;
use crate::runtime::object_ref::ObjectRef;
use crate::runtime::promise;

/// How often a router outside the controller's process asks for news while in use.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Replicas a call is tried on when dead ones refuse it.
pub const ATTEMPTS: u32 = 3;

/// A router's replicas.
struct ReplicaSet<R: ActorClass> {
    version: u64,
    max_ongoing: u32,
    replicas: Vec<ActorHandle<R>>,
}

/// The process's router to one deployment.
pub(crate) struct Router<R: ActorClass> {
    app: String,
    name: String,
    controller: Mutex<Option<ControllerHandle>>,
    set: RwLock<ReplicaSet<R>>,
    changed: Notify,
    /// The controller runs in this process and tells this router of changes.
    told: AtomicBool,
    polling: AtomicBool,
    polled: Mutex<Option<Instant>>,
    draw: AtomicU64,
}

/// A router with its replicas' type erased, as the controller and the registry hold it.
pub(crate) trait ErasedRouter: Send + Sync {
    fn update(&self, list: &ReplicaList);
    fn set_controller(&self, controller: ControllerHandle, told: bool);
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<R: ActorClass> ErasedRouter for Router<R> {
    fn update(&self, list: &ReplicaList) {
        {
            let mut set = self.set.write().unwrap_or_else(|e| e.into_inner());
            if list.version <= set.version && set.version != 0 {
                return;
            }
            set.version = list.version;
            set.max_ongoing = list.max_ongoing;
            set.replicas = list
                .replicas
                .iter()
                .map(|&(id, node)| {
                    // The handle already held keeps its in-flight count.
                    set.replicas
                        .iter()
                        .find(|h| h.id() == id)
                        .cloned()
                        .unwrap_or_else(|| ActorHandle::attach(id, node))
                })
                .collect();
        }
        self.changed.notify_waiters();
    }

    fn set_controller(&self, controller: ControllerHandle, told: bool) {
        *self.controller.lock().unwrap_or_else(|e| e.into_inner()) = Some(controller);
        self.told.store(told, Ordering::Release);
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Every router of this process, by application and deployment; kept with the runtime.
#[derive(Default)]
pub(crate) struct Routers {
    by_key: Mutex<HashMap<(String, String), Arc<dyn ErasedRouter>>>,
}

impl Routers {
    fn router<R: ActorClass>(&self, app: &str, name: &str) -> Arc<Router<R>> {
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let key = (app.to_string(), name.to_string());
        if let Some(found) = map.get(&key) {
            if let Ok(typed) = Arc::clone(found).as_any().downcast::<Router<R>>() {
                return typed;
            }
        }
        let router = Arc::new(Router::<R> {
            app: app.to_string(),
            name: name.to_string(),
            controller: Mutex::new(None),
            set: RwLock::new(ReplicaSet {
                version: 0,
                max_ongoing: 1,
                replicas: Vec::new(),
            }),
            changed: Notify::new(),
            told: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            polled: Mutex::new(None),
            draw: AtomicU64::new(uuid::Uuid::new_v4().as_u64_pair().0 | 1),
        });
        map.insert(key, Arc::clone(&router) as Arc<dyn ErasedRouter>);
        router
    }
}

impl Routers {
    /// Forgets the routers of an application (it was deleted).
    pub(crate) fn forget_app(&self, app: &str) {
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(a, _), _| a != app);
    }
}

/// This process's routers.
pub(crate) fn routers() -> Option<Arc<Routers>> {
    global::with_runtime(|rt| rt.extension_or_insert_with(|| Arc::new(Routers::default())))
}

/// A handle to a deployment: calls go to its replicas. `#[mobula::deployment]` wraps it in a
/// typed handle (`ModelHandle`) whose methods are the deployment's.
pub struct DeploymentHandle<R: ActorClass> {
    router: Arc<Router<R>>,
    _marker: PhantomData<fn() -> R>,
}

impl<R: ActorClass> Clone for DeploymentHandle<R> {
    fn clone(&self) -> Self {
        DeploymentHandle {
            router: Arc::clone(&self.router),
            _marker: PhantomData,
        }
    }
}

impl<R: ActorClass> std::fmt::Debug for DeploymentHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.router.set.read().unwrap_or_else(|e| e.into_inner());
        write!(
            f,
            "DeploymentHandle({}/{}, {} replicas)",
            self.router.app,
            self.router.name,
            set.replicas.len()
        )
    }
}

impl<R: ActorClass> PartialEq for DeploymentHandle<R> {
    fn eq(&self, other: &Self) -> bool {
        self.router.app == other.router.app && self.router.name == other.router.name
    }
}

impl<R: ActorClass> DeploymentHandle<R> {
    /// The router of `app`/`name` in this process.
    pub(crate) fn open(app: &str, name: &str, max_ongoing: u32) -> Result<Self, ServeError> {
        let routers = routers().ok_or(ServeError::NotInitialized)?;
        let router = routers.router::<R>(app, name);
        {
            let mut set = router.set.write().unwrap_or_else(|e| e.into_inner());
            if set.version == 0 {
                set.max_ongoing = max_ongoing;
            }
        }
        Ok(DeploymentHandle {
            router,
            _marker: PhantomData,
        })
    }

    pub(crate) fn erased(&self) -> Arc<dyn ErasedRouter> {
        Arc::clone(&self.router) as _
    }

    /// The application this deployment belongs to.
    pub fn app(&self) -> &str {
        &self.router.app
    }

    /// The deployment's name.
    pub fn deployment(&self) -> &str {
        &self.router.name
    }

    /// Replicas this handle can send to now.
    pub fn replicas(&self) -> usize {
        self.poll_if_due();
        let set = self.router.set.read().unwrap_or_else(|e| e.into_inner());
        set.replicas.len()
    }

    fn next_draw(&self) -> u64 {
        // xorshift over a shared state: a race only repeats a draw.
        let mut x = self.router.draw.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.router.draw.store(x, Ordering::Relaxed);
        x
    }

    /// The replica that takes the next call, or none when there is none.
    pub(crate) fn pick(&self) -> Option<ActorHandle<R>> {
        self.poll_if_due();
        let set = self.router.set.read().unwrap_or_else(|e| e.into_inner());
        let loads: Vec<ReplicaLoad> = set
            .replicas
            .iter()
            .map(|h| ReplicaLoad {
                ongoing: h.pending_calls() as u32,
                max_ongoing: set.max_ongoing,
            })
            .collect();
        let mut draws = [self.next_draw(), self.next_draw()].into_iter();
        match choose(&loads, |n| (draws.next().unwrap_or(0) % n as u64) as usize) {
            Route::Replica(i) | Route::Queue(i) => Some(set.replicas[i].clone()),
            Route::NoReplica => None,
        }
    }

    /// Every replica but `avoid`, picked as [`pick`](Self::pick) does; for a request a dead
    /// replica refused.
    pub(crate) fn pick_other(&self, avoid: ActorId) -> Option<ActorHandle<R>> {
        for _ in 0..4 {
            match self.pick() {
                Some(h) if h.id() != avoid => return Some(h),
                Some(_) => continue,
                None => return None,
            }
        }
        let set = self.router.set.read().unwrap_or_else(|e| e.into_inner());
        set.replicas.iter().find(|h| h.id() != avoid).cloned()
    }

    /// Waits until the deployment has a replica (telling the controller a request waits).
    pub(crate) async fn replica(&self) -> ActorHandle<R> {
        loop {
            let changed = self.router.changed.notified();
            if let Some(h) = self.pick() {
                return h;
            }
            self.wake_controller();
            self.poll_now();
            let _ = tokio::time::timeout(POLL_INTERVAL, changed).await;
        }
    }

    /// Tells the router a replica refused a call for being dead: asks for news at once.
    pub(crate) fn replica_failed(&self, replica: ActorId) {
        let mut set = self.router.set.write().unwrap_or_else(|e| e.into_inner());
        set.replicas.retain(|h| h.id() != replica);
        drop(set);
        self.poll_now();
    }

    /// Calls a method on one replica: `call` makes the call on the replica's handle. The
    /// ref is handed out at once. A call a dead replica refused before running it is made
    /// again on another (up to [`ATTEMPTS`] in all); when there is no replica, the call is
    /// held and made when one runs.
    pub fn call<T, F>(&self, call: F) -> ObjectRef<T>
    where
        T: Value,
        F: Fn(R::Handle) -> ObjectRef<T> + Send + 'static,
    {
        let (r, promise) = promise::promise::<T>("a deployment call");
        let this = self.clone();
        // The first try is made now, in the caller's order.
        let first = self.pick().map(|h| {
            let id = h.id();
            (id, call(R::Handle::from(h)))
        });
        promise::spawn(async move {
            let (mut replica, mut answer) = match first {
                Some(sent) => sent,
                None => {
                    let h = this.replica().await;
                    (h.id(), call(R::Handle::from(h)))
                }
            };
            let mut attempt = 1;
            loop {
                match answer.get_shared().await {
                    Err(GetError::ActorDied { .. }) if attempt < ATTEMPTS => {
                        attempt += 1;
                        this.replica_failed(replica);
                        let h = match this.pick_other(replica) {
                            Some(h) => h,
                            None => this.replica().await,
                        };
                        replica = h.id();
                        answer = call(R::Handle::from(h));
                    }
                    result => return promise.settle_shared(result),
                }
            }
        });
        // Without a runtime nothing was spawned: the promise, dropped with the future, fails
        // the ref.
        r
    }

    fn controller(&self) -> Option<ControllerHandle> {
        self.router
            .controller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn wake_controller(&self) {
        if let Some(c) = self.controller() {
            drop(c.wake(self.router.app.clone(), self.router.name.clone()));
        }
    }

    fn poll_if_due(&self) {
        if self.router.told.load(Ordering::Acquire) {
            return;
        }
        let due = {
            let polled = self.router.polled.lock().unwrap_or_else(|e| e.into_inner());
            polled.is_none_or(|at| at.elapsed() >= POLL_INTERVAL)
        };
        if due {
            self.poll_now();
        }
    }

    /// Asks the controller for the replicas, unless a question is out already.
    fn poll_now(&self) {
        if self.router.told.load(Ordering::Acquire) {
            return;
        }
        let Some(controller) = self.controller() else {
            return;
        };
        if self.router.polling.swap(true, Ordering::AcqRel) {
            return;
        }
        *self.router.polled.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let known = self
            .router
            .set
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .version;
        let answer = controller.replicas(self.router.app.clone(), self.router.name.clone(), known);
        let router = Arc::clone(&self.router);
        let spawned = promise::spawn(async move {
            if let Ok(Some(list)) = answer.await {
                router.update(&list);
            }
            router.polling.store(false, Ordering::Release);
        });
        if !spawned {
            self.router.polling.store(false, Ordering::Release);
        }
    }
}

/// A handle as it travels: its deployment, the controller, and the replicas it knew.
#[derive(Serialize, Deserialize)]
#[serde(rename = "mobula::DeploymentHandle")]
struct Wire {
    app: String,
    name: String,
    controller: Option<ControllerHandle>,
    version: u64,
    max_ongoing: u32,
    replicas: Vec<(ActorId, NodeId)>,
}

impl<R: ActorClass> Serialize for DeploymentHandle<R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (version, max_ongoing, replicas) = {
            let set = self.router.set.read().unwrap_or_else(|e| e.into_inner());
            (
                set.version,
                set.max_ongoing,
                set.replicas.iter().map(|h| (h.id(), h.node_id())).collect(),
            )
        };
        Wire {
            app: self.router.app.clone(),
            name: self.router.name.clone(),
            controller: self.controller(),
            version,
            max_ongoing,
            replicas,
        }
        .serialize(serializer)
    }
}

impl<'de, R: ActorClass> Deserialize<'de> for DeploymentHandle<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let handle = DeploymentHandle::<R>::open(&wire.app, &wire.name, wire.max_ongoing)
            .map_err(serde::de::Error::custom)?;
        if let Some(c) = wire.controller {
            if handle.controller().is_none() {
                handle.router.set_controller(c, false);
            }
        }
        handle.router.update(&ReplicaList {
            version: wire.version,
            max_ongoing: wire.max_ongoing,
            replicas: wire.replicas,
        });
        Ok(handle)
    }
}
