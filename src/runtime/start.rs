//! Starting a node: its thread, its supervision tree, its runtime handle.
//!
//! ```text
//! NodeSupervisor
//! └── StoreSupervisor ── ShardActor x16 ── Spiller (on the store's I/O thread)
//! ActorHost (one per user actor)               TaskActor (one per running async task)
//! worker arbiters ── TaskActor (the blocking task each runs)
//! ```
//!
//! Actors run on the node's own thread ("mobula-node"); blocking tasks run in task actors on
//! worker threads (arbiters of the node's system); blocking actor calls on the actor pool;
//! spill I/O on the store's thread. The scheduler is shared state that all of them call into
//! ([`Scheduler`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use super::actor_threads::WorkerPool;
use super::context;
use super::global::{Pin, Runtime};
use super::task_threads::TaskWorkers;
use crate::base::error::InitError;
use crate::base::id::{IdMint, NodeId};
use crate::base::node_config::NodeConfig;
use crate::base::scheduling::resources::UNIT;
use crate::base::scheduling::task_queue::LocalQueue;
use crate::object::store::Store;
use crate::object::supervisor::StoreSupervisor;
use crate::runtime::logs::NodeLogs;
use crate::runtime::scheduler::Scheduler;

/// The root of a node's supervision tree.
pub(crate) struct NodeSupervisor {
    node_id: NodeId,
    _store: Addr<StoreSupervisor>,
}

impl Actor for NodeSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        tracing::info!(node = %self.node_id, "node started");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::info!(node = %self.node_id, "node stopped");
    }
}

/// Starts a node in this process. A node started beside the process's runtime has a `pin`,
/// which its threads enter so that API calls made on them (from its tasks and actors) reach it.
pub(crate) fn start(config: NodeConfig, pin: Option<Pin>) -> Result<Runtime, InitError> {
    let node_id = NodeId::random();
    let spill_dir = config.spill_root.join(format!("mobula-{node_id}"));
    prepare_spill_dir(&spill_dir).map_err(|source| InitError::SpillDir {
        path: spill_dir.clone(),
        source,
    })?;
    let store = Store::new(node_id, config.object_store_memory, spill_dir);
    let cpus = ((config.cpu_units + UNIT - 1) / UNIT).max(1) as usize;
    let actor_pool = WorkerPool::bounded(cpus.max(2), pin.clone());
    let queue = LocalQueue::new(config.resources.clone());

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let node_store = store.clone();
    let node_pin = pin.clone();
    let thread = std::thread::Builder::new()
        .name("mobula-node".into())
        .spawn(move || {
            context::mark_runtime_thread();
            if let Some(pin) = &node_pin {
                pin.enter();
            }
            let system = actix_rt::System::new();
            system.block_on(async move {
                let store_supervisor = StoreSupervisor::start_tree(node_store.clone());
                let (system, arbiter) = (actix_rt::System::current(), actix_rt::Arbiter::current());
                let workers = TaskWorkers::new(system.clone(), cpus, node_pin);
                let scheduler =
                    Scheduler::new(node_id, queue, node_store, workers, arbiter.clone());
                NodeSupervisor {
                    node_id,
                    _store: store_supervisor,
                }
                .start();
                let _ = ready_tx.send((system, scheduler, arbiter));
            });
            if let Err(e) = system.run() {
                tracing::error!(error = %e, "the node's event loop failed");
            }
        })
        .map_err(|e| InitError::Start(format!("cannot start the node thread: {e}")))?;
    let (system, scheduler, node_arbiter) = ready_rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| InitError::Start("the node thread did not come up".into()))?;
    let actors: Arc<crate::runtime::actor::directory::ActorDirectory> = Arc::default();
    let mailbox = Arc::new(super::mailbox::Mailbox::new(node_id, node_arbiter.clone()));
    {
        let mailbox = Arc::clone(&mailbox);
        actors.on_gone(Box::new(move |id| mailbox.actor_gone(id)));
    }
    store.install_actor_refs(actors.clone());
    let ids = Arc::new(IdMint::new(node_id));
    let generators = Arc::new(super::generator::Generators::new(
        store.clone(),
        Arc::clone(&ids),
    ));
    Ok(Runtime {
        node_id,
        ids,
        store,
        workers: scheduler.workers().clone(),
        scheduler,
        actor_pool,
        actors,
        placement_groups: Default::default(),
        node_arbiter,
        cluster: std::sync::OnceLock::new(),
        system,
        node_thread: Mutex::new(Some(thread)),
        on_stop: Mutex::default(),
        extensions: Mutex::default(),
        logs: Arc::new(NodeLogs::new(config.log_to_driver)),
        generators,
        mailbox,
    })
}

/// Makes the node's spill directory, readable by this user only (0700, inside the shared
/// spill root), and checks that files can be written in it.
fn prepare_spill_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if let Some(root) = dir.parent() {
        std::fs::create_dir_all(root)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // One that was there already (a node id seen before) is made private too.
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let probe = dir.join(".probe");
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(probe)
}
