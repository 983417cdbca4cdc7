//! The process's runtime: started by `init`, stopped by `shutdown`, found by every API call.
//!
//! API calls reach the runtime through a per-thread cache checked against a global generation
//! number: one atomic load on the hot path, no lock and no shared reference count.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use super::actor::directory::ActorDirectory;
use super::actor_threads::WorkerPool;
use super::context::{self, TaskContext, current_task};
use super::task_threads::TaskWorkers;
use crate::base::id::{IdMint, NodeId, TaskId};

use super::cluster_port::ClusterPort;
use super::logs::NodeLogs;
use crate::base::rows::PlacementGroupInfo;
use crate::object::store::Store;
use crate::runtime::scheduler::Scheduler;

/// A running node, as the API sees it.
pub(crate) struct Runtime {
    pub node_id: NodeId,
    pub ids: Arc<IdMint>,
    pub store: Store,
    pub scheduler: Scheduler,
    /// Run blocking tasks.
    pub workers: TaskWorkers,
    /// Runs blocking actor calls: as many threads as CPUs, plus those waiting in a get.
    pub actor_pool: WorkerPool,
    pub actors: Arc<ActorDirectory>,
    /// Placement groups made here.
    pub placement_groups: GroupRegistry,
    pub node_arbiter: actix_rt::ArbiterHandle,
    /// This node's part in a cluster, once joined.
    pub cluster: std::sync::OnceLock<Arc<dyn ClusterPort>>,
    pub(crate) system: actix_rt::System,
    /// What its tasks and actors printed, and lines on their way to other terminals.
    pub logs: Arc<NodeLogs>,
    /// The streaming generators this node consumes.
    pub generators: Arc<super::generator::Generators>,
    /// Letters between the members of collective groups on this node.
    pub mailbox: Arc<super::mailbox::Mailbox>,
    /// What stops with the node, first (the HTTP servers the layers above started).
    pub(crate) on_stop: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    /// State the layers above keep per node (their servers, say), one value per type.
    pub(crate) extensions: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
    pub(crate) node_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Runtime {
    /// The value of type `T` a layer above keeps for this node, if it keeps one.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let extensions = self.extensions.lock().unwrap_or_else(|e| e.into_inner());
        extensions
            .iter()
            .find_map(|e| Arc::clone(e).downcast::<T>().ok())
    }

    /// The value of type `T` this node keeps, made by `make` and kept if there is none yet:
    /// callers racing to make the first one all get the same (checking with [`extension`]
    /// and then setting with [`set_extension`] would let each keep its own, the last one
    /// replacing the others).
    ///
    /// [`extension`]: Runtime::extension
    /// [`set_extension`]: Runtime::set_extension
    pub fn extension_or_insert_with<T: Any + Send + Sync>(
        &self,
        make: impl FnOnce() -> Arc<T>,
    ) -> Arc<T> {
        let mut extensions = self.extensions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = extensions
            .iter()
            .find_map(|e| Arc::clone(e).downcast::<T>().ok())
        {
            return found;
        }
        let made = make();
        extensions.push(Arc::clone(&made) as Arc<dyn Any + Send + Sync>);
        made
    }

    /// Keeps `value` for this node (in place of another value of its type); it is let go
    /// with the node.
    pub fn set_extension<T: Any + Send + Sync>(&self, value: Arc<T>) {
        let mut extensions = self.extensions.lock().unwrap_or_else(|e| e.into_inner());
        extensions.retain(|e| !e.is::<T>());
        extensions.push(value);
    }

    /// Runs `stop` when the node stops, before anything else stops.
    pub fn on_stop(&self, stop: impl FnOnce() + Send + 'static) {
        let mut on_stop = self.on_stop.lock().unwrap_or_else(|e| e.into_inner());
        on_stop.push(Box::new(stop));
    }

    pub fn cancel_task(&self, task: TaskId) {
        self.scheduler.cancel(task);
    }

    /// Stops the node: pending objects fail with `ShutDown`, the node's thread ends, idle
    /// workers exit (a worker still running a blocking body finishes it first). In a cluster,
    /// the node first says it leaves if `leave`; otherwise it just goes silent, as a crashed
    /// machine would, and the others find out from missed heartbeats.
    pub(crate) fn stop(&self, leave: bool) {
        let on_stop = std::mem::take(&mut *self.on_stop.lock().unwrap_or_else(|e| e.into_inner()));
        for stop in on_stop {
            stop();
        }
        if leave && let Some(cluster) = self.cluster.get() {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let cluster = cluster.clone();
            self.node_arbiter.spawn_fn(move || {
                actix_rt::spawn(async move {
                    cluster.leave().await;
                    let _ = done_tx.send(());
                });
            });
            if !context::on_runtime_thread() {
                let _ = done_rx.recv_timeout(std::time::Duration::from_secs(2));
            }
        }
        if !leave {
            // Silent first: with the event loop gone, nothing that fails below (pending
            // objects, queued tasks) reaches another node.
            self.workers.shutdown();
            self.stop_event_loop();
        }
        self.mailbox.stop();
        self.store.close();
        self.actors.clear();
        self.workers.shutdown();
        self.stop_event_loop();
        self.actor_pool.shutdown();
    }

    /// Stops the node's actix system and waits for its thread (unless called on it).
    fn stop_event_loop(&self) {
        self.system.stop();
        let handle = self
            .node_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle
            && !context::on_runtime_thread()
            && handle.join().is_err()
        {
            tracing::error!("the node thread panicked while stopping");
        }
    }
}

/// A placement group made on this node, as the state API lists it; the groups themselves
/// are the layers' above.
pub(crate) trait PlacementGroupRecord: Send + Sync {
    fn describe(&self) -> PlacementGroupInfo;
}

/// The placement groups made on a node, while they live.
pub(crate) type GroupRegistry = Mutex<Vec<Weak<dyn PlacementGroupRecord>>>;

static SLOT: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// What a thread knows of its runtime.
enum Cached {
    /// The process's runtime as of a generation.
    Global(u64, Option<Arc<Runtime>>),
    /// The thread belongs to a node that is not the process's runtime (one node of a
    /// [`LocalCluster`](crate::testing::LocalCluster)): it sees that node only.
    Pinned(Pin),
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

fn slot() -> MutexGuard<'static, Option<Arc<Runtime>>> {
    SLOT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ties a node's threads (its event loop, task workers and actor pool) to that node, for a
/// node started beside the process's runtime. Made before the node starts, filled once its
/// runtime exists; it does not keep the runtime alive.
#[derive(Clone, Default)]
pub(crate) struct Pin(Arc<OnceLock<Weak<Runtime>>>);

impl Pin {
    /// From now on this thread sees the pinned node as its runtime.
    pub fn enter(&self) {
        let pin = self.clone();
        CACHE.with(|cache| {
            if let Ok(mut cached) = cache.try_borrow_mut() {
                *cached = Some(Cached::Pinned(pin));
            }
        });
    }

    /// Names the runtime the pinned threads see.
    pub fn fill(&self, rt: &Arc<Runtime>) {
        let _ = self.0.set(Arc::downgrade(rt));
    }

    fn runtime(&self) -> Option<Arc<Runtime>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

/// Runs `f` with the running runtime, or returns `None` when none runs.
pub(crate) fn with_runtime<R>(f: impl FnOnce(&Runtime) -> R) -> Option<R> {
    let generation = GENERATION.load(Ordering::Acquire);
    CACHE.with(|cache| {
        if let Ok(cached) = cache.try_borrow() {
            match &*cached {
                Some(Cached::Global(g, rt)) if *g == generation => return rt.as_deref().map(f),
                Some(Cached::Pinned(pin)) => {
                    let rt = pin.runtime();
                    drop(cached);
                    return rt.as_deref().map(f);
                }
                _ => {}
            }
        }
        let fresh = slot().clone();
        if let Ok(mut cached) = cache.try_borrow_mut() {
            *cached = Some(Cached::Global(generation, fresh.clone()));
        }
        fresh.as_deref().map(f)
    })
}

/// The runtime this thread sees, if one runs.
pub(crate) fn current() -> Option<Arc<Runtime>> {
    let generation = GENERATION.load(Ordering::Acquire);
    CACHE.with(|cache| match &*cache.borrow() {
        Some(Cached::Global(g, rt)) if *g == generation => rt.clone(),
        Some(Cached::Pinned(pin)) => pin.runtime(),
        _ => slot().clone(),
    })
}

pub(crate) fn is_running() -> bool {
    with_runtime(|_| ()).is_some()
}

pub(crate) fn current_store() -> Option<Store> {
    with_runtime(|rt| rt.store.clone())
}

pub(crate) fn current_node_id() -> Option<NodeId> {
    with_runtime(|rt| rt.node_id)
}

/// Installs a started runtime; fails (returning the running node's id) if one runs.
pub(crate) fn install(
    start: impl FnOnce() -> Result<Runtime, crate::InitError>,
) -> Result<NodeId, crate::InitError> {
    let mut slot = slot();
    if let Some(rt) = &*slot {
        return Err(crate::InitError::AlreadyInitialized {
            node_id: rt.node_id,
        });
    }
    let rt = start()?;
    let node_id = rt.node_id;
    *slot = Some(Arc::new(rt));
    GENERATION.fetch_add(1, Ordering::AcqRel);
    Ok(node_id)
}

/// Stops the running runtime, if it is `only` (or any, when `only` is `None`).
pub(crate) fn uninstall(only: Option<NodeId>) {
    let rt = {
        let mut slot = slot();
        if only.is_some() && slot.as_ref().map(|rt| rt.node_id) != only {
            return;
        }
        let rt = slot.take();
        GENERATION.fetch_add(1, Ordering::AcqRel);
        rt
    };
    if let Some(rt) = rt {
        rt.stop(true);
    }
}

/// While a task waits for an object (a blocking get, or an await in an async task), its
/// CPUs are lent to other tasks, so that a task waiting for tasks it submitted cannot
/// deadlock a full node (Ray does the same for `ray.get` inside a task). Nested and concurrent
/// waits of one task lend once.
pub(crate) struct BlockedInGet {
    lent: Option<(Arc<TaskContext>, Scheduler)>,
    _pool: Option<super::actor_threads::Blocked>,
}

impl BlockedInGet {
    pub fn enter() -> Self {
        let pool = super::actor_threads::blocked();
        let Some(task) = current_task() else {
            return BlockedInGet {
                lent: None,
                _pool: pool,
            };
        };
        let Some(scheduler) = with_runtime(|rt| rt.scheduler.clone()) else {
            return BlockedInGet {
                lent: None,
                _pool: pool,
            };
        };
        if task.waits.fetch_add(1, Ordering::AcqRel) == 0 {
            scheduler.blocked(task.task_id);
        }
        BlockedInGet {
            lent: Some((task, scheduler)),
            _pool: pool,
        }
    }
}

impl Drop for BlockedInGet {
    fn drop(&mut self) {
        if let Some((task, scheduler)) = self.lent.take()
            && task.waits.fetch_sub(1, Ordering::AcqRel) == 1
        {
            scheduler.unblocked(task.task_id);
        }
    }
}
