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

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::PlacementGroupError;
use crate::object::id::{NodeId, TaskId};
use crate::runtime::global;
use crate::scheduler::bundles::{self, Room};
use crate::scheduler::handle::Scheduler;
use crate::scheduler::placement::SchedulingStrategy;
use crate::scheduler::resources::ResourceRequest;

pub use crate::scheduler::bundles::PlacementStrategy;

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
        let name = name.into();
        self.resources.retain(|(n, _)| *n != name);
        self.resources.push((name, amount.into()));
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

struct Group {
    name: String,
    bundles: Vec<ResourceRequest>,
    nodes: Vec<NodeId>,
    strategy: PlacementStrategy,
    /// One scheduler reservation per bundle.
    reservations: Vec<TaskId>,
    state: Mutex<State>,
    changed: Condvar,
    scheduler: Scheduler,
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

    /// What a task or actor placed into bundle `index` (any bundle: `None`) asks for
    /// instead of `req`, and where it must run.
    pub(crate) fn place(
        &self,
        index: Option<usize>,
        req: &ResourceRequest,
    ) -> Result<(ResourceRequest, SchedulingStrategy), String> {
        if let Some(i) = index
            && i >= self.inner.bundles.len()
        {
            return Err(format!(
                "bundle index {i} is out of range: placement group {} has {} bundles",
                self.inner.name,
                self.inner.bundles.len()
            ));
        }
        let node = self.inner.nodes[index.unwrap_or(0)];
        let strategy = SchedulingStrategy::NodeAffinity { node, soft: false };
        Ok((bundles::in_group(&self.inner.name, index, req), strategy))
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
            (State::Pending { .. }, Err(why)) => *state = State::Failed(why),
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
        if rt.cluster.get().is_some() {
            return Err(PlacementGroupError::Failed(
                "placement groups across the nodes of a cluster are not supported yet".into(),
            ));
        }
        let rooms = [local_room(rt.node_id, &rt.scheduler)];
        let nodes =
            bundles::plan(&requests, strategy, &rooms).map_err(PlacementGroupError::Failed)?;
        let id = rt.ids.task();
        let name = format!("{id}");
        let reservations = requests.iter().map(|_| rt.ids.task()).collect();
        let group = PlacementGroup {
            inner: Arc::new(Group {
                name,
                nodes,
                strategy,
                reservations,
                state: Mutex::new(State::Pending {
                    left: requests.len(),
                }),
                changed: Condvar::new(),
                scheduler: rt.scheduler.clone(),
                bundles: requests,
            }),
        };
        reserve(&group);
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

/// Announces each bundle's resources on its node, then reserves the bundle; once reserved,
/// its resources become free for the tasks placed into it.
fn reserve(group: &PlacementGroup) {
    let g = &group.inner;
    for (i, bundle) in g.bundles.iter().enumerate() {
        let names = bundles::group_resources(&g.name, i, bundle);
        g.scheduler.add_resources(&names, false);
    }
    for (i, bundle) in g.bundles.iter().enumerate() {
        let done = group.clone();
        let names = bundles::group_resources(&g.name, i, bundle);
        g.scheduler.place_actor(
            g.reservations[i],
            bundle,
            bundle,
            Box::new(move |placed| match placed {
                Ok(_) => {
                    if *done.state() == State::Removed {
                        return;
                    }
                    done.inner.scheduler.add_resources(&names, true);
                    done.settle(Ok(()));
                }
                Err(why) => done.settle(Err(format!("bundle {i}: {why}"))),
            }),
        );
    }
}

/// Gives a placement group's resources back (Ray's `remove_placement_group`). Tasks and
/// actors waiting for its bundles fail as infeasible; those running finish. Removing twice
/// does nothing.
pub fn remove_placement_group(group: &PlacementGroup) {
    let g = &group.inner;
    let was = std::mem::replace(&mut *group.state(), State::Removed);
    if was == State::Removed {
        return;
    }
    group.inner.changed.notify_all();
    for (i, bundle) in g.bundles.iter().enumerate() {
        g.scheduler.actor_gone(g.reservations[i]);
        let names = bundles::group_resources(&g.name, i, bundle);
        // Announced totals go; what was freed (reserved bundles) goes with them.
        g.scheduler.remove_resources(&names);
    }
}
