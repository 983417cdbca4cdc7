//! Placement groups (Ray's `ray.util.placement_group`): reserve bundles of resources
//! together, then place tasks and actors into them.
//!
//! ```no_run
//! use mobula::prelude::*;
//! use mobula::{Bundle, PlacementStrategy};
//!
//! #[mobula::remote]
//! fn train(shard: u32) -> u32 { shard }
//!
//! # fn main() -> anyhow::Result<()> {
//! let _mobula = mobula::init(Config::default().num_cpus(4))?;
//! let pg = mobula::placement_group(vec![Bundle::new().num_cpus(2); 2], PlacementStrategy::Pack)?;
//! pg.ready()?;                                         // both bundles reserved
//! let r = train.options().placement_group(&pg, Some(1)).num_cpus(2).remote(7);
//! assert_eq!(r.get()?, 7);
//! mobula::remove_placement_group(&pg);
//! # Ok(())
//! # }
//! ```

use crate::base::rows::{PlacementGroupInfo, PlacementGroupState};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::base::error::PlacementGroupError;
use crate::base::id::{NodeId, TaskId};
use crate::base::options::{ActorOptions, BundleRef, TaskOptions};
use crate::base::scheduling::bundles::{self, Room};
use crate::base::scheduling::resources::{ResourceRequest, set_amount};
use crate::cluster::node::ClusterNode;
use crate::runtime::global::{self, PlacementGroupRecord};
use crate::runtime::scheduler::Scheduler;
use crate::runtime::scheduler::bundles::{LocalBundle, release_here, reserve_here};
use crate::wire::{Message, WireBundle};

pub use crate::base::scheduling::bundles::PlacementStrategy;

impl TaskOptions {
    /// Runs the task in bundle `index` of a placement group (any bundle: `None`), on the
    /// resources reserved there (Ray's `PlacementGroupSchedulingStrategy`). Its resources
    /// must fit the bundle; it waits while the group is not ready.
    pub fn placement_group(mut self, group: &PlacementGroup, index: Option<usize>) -> Self {
        self.placement = Some(group.bundle_ref(index));
        self
    }
}

impl ActorOptions {
    /// Creates the actor in bundle `index` of a placement group (any bundle: `None`); it
    /// holds its resources from the bundle's.
    pub fn placement_group(mut self, group: &PlacementGroup, index: Option<usize>) -> Self {
        self.placement = Some(group.bundle_ref(index));
        self
    }
}

/// Resources reserved together: one bundle of a placement group (Ray's `{"CPU": 1}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bundle {
    num_cpus: f64,
    num_gpus: f64,
    resources: Vec<(String, f64)>,
}

impl Bundle {
    /// An empty bundle; add to it with the methods below.
    pub fn new() -> Self {
        Self::default()
    }

    /// CPUs in the bundle.
    pub fn num_cpus(mut self, n: impl Into<f64>) -> Self {
        self.num_cpus = n.into();
        self
    }

    /// GPUs in the bundle.
    pub fn num_gpus(mut self, n: impl Into<f64>) -> Self {
        self.num_gpus = n.into();
        self
    }

    /// An amount of a custom resource in the bundle.
    pub fn resource(mut self, name: impl Into<String>, amount: impl Into<f64>) -> Self {
        set_amount(&mut self.resources, name.into(), amount.into());
        self
    }

    fn request(&self) -> Result<ResourceRequest, String> {
        let req = ResourceRequest::new(self.num_cpus, self.num_gpus, &self.resources)?;
        if req.cpu == 0 && req.gpu == 0 && req.custom.is_empty() {
            return Err("a bundle must hold some resource".into());
        }
        Ok(req)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Bundles not yet reserved.
    Pending {
        left: usize,
    },
    Ready,
    Failed(String),
    Removed,
}

pub(crate) struct Group {
    name: String,
    bundles: Vec<ResourceRequest>,
    nodes: Vec<NodeId>,
    strategy: PlacementStrategy,
    /// One scheduler reservation per bundle (used on this node).
    reservations: Vec<TaskId>,
    state: Mutex<State>,
    changed: Condvar,
    scheduler: Scheduler,
    here: NodeId,
    /// To reach the nodes of bundles elsewhere, in a cluster.
    cluster: Option<(Arc<ClusterNode>, actix_rt::ArbiterHandle)>,
}

/// A placement group: bundles of resources reserved together. Cheap to clone; every clone
/// names the same group. It stays reserved until [`remove_placement_group`] (or shutdown).
#[derive(Clone)]
pub struct PlacementGroup {
    inner: Arc<Group>,
}

impl fmt::Debug for PlacementGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PlacementGroup({}, {:?}, {} bundles)",
            self.inner.name,
            self.inner.strategy,
            self.inner.bundles.len()
        )
    }
}

impl PartialEq for PlacementGroup {
    fn eq(&self, other: &Self) -> bool {
        self.inner.name == other.inner.name
    }
}

impl PlacementGroup {
    /// The group's id, as it appears in its resources' names (`CPU_group_<id>`).
    pub fn id(&self) -> &str {
        &self.inner.name
    }

    /// How many bundles it has.
    pub fn bundle_count(&self) -> usize {
        self.inner.bundles.len()
    }

    /// The strategy it was made with.
    pub fn strategy(&self) -> PlacementStrategy {
        self.inner.strategy
    }

    /// The node that holds bundle `index`.
    pub fn bundle_node(&self, index: usize) -> Option<NodeId> {
        self.inner.nodes.get(index).copied()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until every bundle is reserved (Ray's `ray.get(pg.ready())`).
    pub fn ready(&self) -> Result<(), PlacementGroupError> {
        let mut state = self.state();
        loop {
            match &*state {
                State::Ready => return Ok(()),
                State::Failed(why) => return Err(PlacementGroupError::Failed(why.clone())),
                State::Removed => {
                    return Err(PlacementGroupError::Removed(self.inner.name.clone()));
                }
                State::Pending { .. } => {
                    state = self
                        .inner
                        .changed
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// Waits up to `timeout` for every bundle to be reserved; true if they are (Ray's
    /// `pg.wait(timeout_seconds)`).
    pub fn wait(&self, timeout: Duration) -> Result<bool, PlacementGroupError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            match &*state {
                State::Ready => return Ok(true),
                State::Failed(why) => return Err(PlacementGroupError::Failed(why.clone())),
                State::Removed => {
                    return Err(PlacementGroupError::Removed(self.inner.name.clone()));
                }
                State::Pending { .. } => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    state = self
                        .inner
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    /// Bundle `index` (any: `None`) as options carry it.
    pub(crate) fn bundle_ref(&self, index: Option<usize>) -> BundleRef {
        BundleRef {
            group: self.inner.name.clone(),
            index,
            nodes: self.inner.nodes.clone(),
        }
    }

    fn settle(&self, result: Result<(), String>) {
        let mut state = self.state();
        match (&mut *state, result) {
            (State::Pending { left }, Ok(())) => {
                *left -= 1;
                if *left == 0 {
                    *state = State::Ready;
                }
            }
            (State::Pending { .. }, Err(why)) => {
                *state = State::Failed(why);
                drop(state);
                // What was reserved elsewhere goes back.
                release(self);
            }
            _ => {}
        }
        self.inner.changed.notify_all();
    }
}

/// Reserves `bundles` together with `strategy` (Ray's `placement_group(bundles, strategy)`).
/// Returns at once; [`PlacementGroup::ready`] waits until every bundle is reserved (bundles
/// wait for resources that tasks hold now). A group that can never be placed is an error at
/// once.
pub fn placement_group(
    bundles: Vec<Bundle>,
    strategy: PlacementStrategy,
) -> Result<PlacementGroup, PlacementGroupError> {
    let requests = bundles
        .iter()
        .enumerate()
        .map(|(i, b)| b.request().map_err(|e| format!("bundle {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(PlacementGroupError::Invalid)?;
    global::with_runtime(|rt| {
        let cluster = crate::cluster::node_of(rt);
        let rooms = match &cluster {
            Some(c) => c.rooms(),
            None => vec![local_room(rt.node_id, &rt.scheduler)],
        };
        let nodes =
            bundles::plan(&requests, strategy, &rooms).map_err(PlacementGroupError::Failed)?;
        let id = rt.ids.task();
        let reservations = requests.iter().map(|_| rt.ids.task()).collect();
        // In a cluster, the head records the group too, before it is ready.
        let left = requests.len() + usize::from(cluster.is_some());
        let group = PlacementGroup {
            inner: Arc::new(Group {
                name: format!("{id}"),
                nodes,
                strategy,
                reservations,
                state: Mutex::new(State::Pending { left }),
                changed: Condvar::new(),
                scheduler: rt.scheduler.clone(),
                here: rt.node_id,
                cluster: cluster.map(|c| (c, rt.node_arbiter.clone())),
                bundles: requests,
            }),
        };
        reserve(&group);
        record(&group);
        let mut made = rt
            .placement_groups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        made.retain(|g| g.strong_count() > 0);
        let record: Arc<dyn PlacementGroupRecord> = group.inner.clone();
        made.push(Arc::downgrade(&record));
        Ok(group)
    })
    .unwrap_or(Err(PlacementGroupError::NotInitialized))
}

fn local_room(node: NodeId, scheduler: &Scheduler) -> Room {
    let (cpu, gpu, custom) = scheduler.totals();
    Room {
        node,
        cpu,
        gpu,
        custom,
    }
}

impl Group {
    fn bundles_here(&self) -> Vec<LocalBundle> {
        (0..self.bundles.len())
            .filter(|&i| self.nodes[i] == self.here)
            .map(|i| (i, self.bundles[i].clone(), self.reservations[i]))
            .collect()
    }

    /// Bundles on other nodes, by node.
    fn elsewhere(&self) -> Vec<(NodeId, Vec<WireBundle>)> {
        let mut out: Vec<(NodeId, Vec<WireBundle>)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if *node == self.here {
                continue;
            }
            let bundle = (i as u32, self.bundles[i].to_list());
            match out.iter_mut().find(|(n, _)| n == node) {
                Some((_, list)) => list.push(bundle),
                None => out.push((*node, vec![bundle])),
            }
        }
        out
    }
}

/// Reserves every bundle: those of this node here, the others through their nodes.
fn reserve(group: &PlacementGroup) {
    let g = &group.inner;
    let done_group = group.clone();
    let done: Arc<dyn Fn(usize, Result<(), String>) + Send + Sync> =
        Arc::new(move |_, result| done_group.settle(result));
    reserve_here(&g.scheduler, &g.name, &g.bundles_here(), done.clone());
    let Some((cluster, arbiter)) = &g.cluster else {
        return;
    };
    for (node, list) in g.elsewhere() {
        let (cluster, done, name) = (cluster.clone(), done.clone(), g.name.clone());
        let count = list.len();
        arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                let answer = cluster.reserve_bundles(node, name, list).await;
                for i in 0..count {
                    done(i, answer.clone());
                }
            });
        });
    }
}

/// Has the head record the group (in a cluster): one more step before it is ready. While
/// the head is away, it is waited for (up to `head_timeout`), on the node's event loop.
fn record(group: &PlacementGroup) {
    let Some((cluster, arbiter)) = group.inner.cluster.clone() else {
        return;
    };
    let mut info = group.inner.describe();
    info.state = PlacementGroupState::Created;
    let group = group.clone();
    let (head, on) = (cluster.clone(), arbiter.clone());
    let recorded = move |answer: Result<Message, String>| {
        let answer = match answer {
            Ok(Message::Ack) => Ok(()),
            Ok(Message::Refused { reason }) => Err(reason),
            Ok(other) => Err(format!("it answered {}", other.name())),
            Err(e) => Err(e),
        };
        let recorded = answer.is_ok();
        group.settle(answer.map_err(|e| format!("the head did not record the group: {e}")));
        // Removed (or failed) while the record was on its way: the head forgets it again.
        let gone = matches!(*group.state(), State::Removed | State::Failed(_));
        if recorded && gone {
            forget(head, &on, group.inner.name.clone());
        }
    };
    cluster.ask_head_then(&arbiter, Message::RecordGroup(info), recorded);
}

/// Has the head forget a group (without waiting).
fn forget(cluster: Arc<ClusterNode>, arbiter: &actix_rt::ArbiterHandle, group: String) {
    let forgot = |answer: Result<Message, String>| {
        if let Err(e) = answer {
            tracing::warn!("the head did not forget a placement group: {e}");
        }
    };
    cluster.ask_head_then(arbiter, Message::ForgetGroup { group }, forgot);
}

/// Gives a placement group's resources back (Ray's `remove_placement_group`). Tasks and
/// actors waiting for its bundles fail as infeasible; those running finish. Removing twice
/// does nothing.
pub fn remove_placement_group(group: &PlacementGroup) {
    let was = std::mem::replace(&mut *group.state(), State::Removed);
    if was == State::Removed {
        return;
    }
    group.inner.changed.notify_all();
    release(group);
}

impl PlacementGroupRecord for Group {
    /// The group as the state API shows it.
    fn describe(&self) -> PlacementGroupInfo {
        let state = match &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            State::Pending { .. } => PlacementGroupState::Pending,
            State::Ready => PlacementGroupState::Created,
            State::Failed(_) => PlacementGroupState::Failed,
            State::Removed => PlacementGroupState::Removed,
        };
        PlacementGroupInfo {
            id: self.name.clone(),
            strategy: match self.strategy {
                PlacementStrategy::Pack => "PACK",
                PlacementStrategy::Spread => "SPREAD",
                PlacementStrategy::StrictPack => "STRICT_PACK",
                PlacementStrategy::StrictSpread => "STRICT_SPREAD",
            }
            .to_string(),
            state,
            bundles: self.bundles.iter().map(|b| b.to_string()).collect(),
            nodes: self.nodes.clone(),
            creator: self.here,
        }
    }
}

/// Releases every bundle, here and on other nodes, and has the head forget the group.
fn release(group: &PlacementGroup) {
    let g = &group.inner;
    release_here(&g.scheduler, &g.name, &g.bundles_here());
    if let Some((cluster, arbiter)) = &g.cluster {
        forget(cluster.clone(), arbiter, g.name.clone());
        for (node, _) in g.elsewhere() {
            let (cluster, name) = (cluster.clone(), g.name.clone());
            arbiter.spawn_fn(move || {
                actix_rt::spawn(async move { cluster.release_bundles(node, name).await });
            });
        }
    }
}
