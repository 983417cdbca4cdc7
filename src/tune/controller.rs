//! The experiment's controller: the actor trials report to. It holds the experiment's state
//! (shared with the tuner's loop on the driver, which creates it on its own node) and answers
//! each report with the scheduler's decision. A trial running on the tuner's own node skips
//! the call: it records its report in place, under the same lock ([`local`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use super::experiment::Experiment;
use super::session::{Checkpoint, Metrics};
use crate::base::id::NodeId;

/// The experiment's state, shared by the controller and the tuner's loop.
pub(crate) type Shared = Arc<(Mutex<Experiment>, Instant)>;

/// Experiments handed from a tuner to the controller it creates on the same node.
static HANDOFF: Mutex<Option<HashMap<u64, Shared>>> = Mutex::new(None);

pub(crate) fn hand_off(key: u64, shared: Shared) {
    HANDOFF
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, shared);
}

/// Takes back an experiment handed off whose controller did not start.
pub(crate) fn take_back(key: u64) {
    if let Some(map) = HANDOFF.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        map.remove(&key);
    }
}

/// Experiments running in this process, by key, with the node their tuner runs on: a trial
/// on that node reports in place, without a call to the controller.
static LOCAL: Mutex<Option<HashMap<u64, (NodeId, WeakShared)>>> = Mutex::new(None);

type WeakShared = Weak<(Mutex<Experiment>, Instant)>;

/// Keeps an experiment open to in-place reports until dropped.
pub(crate) struct LocalReports(u64);

impl LocalReports {
    pub fn open(key: u64, home: NodeId, shared: &Shared) -> Self {
        LOCAL
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(key, (home, Arc::downgrade(shared)));
        LocalReports(key)
    }
}

impl Drop for LocalReports {
    fn drop(&mut self) {
        if let Some(map) = LOCAL.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            map.remove(&self.0);
        }
    }
}

/// The experiment under `key`, if the caller runs on its tuner's node in this process.
pub(crate) fn local(key: u64) -> Option<Shared> {
    let here = crate::context().node_id()?;
    let map = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    let (home, shared) = map.as_ref()?.get(&key)?;
    if *home != here {
        return None;
    }
    shared.upgrade()
}

/// Records a trial's result; returns whether the trial goes on.
pub(crate) fn report(
    shared: &Shared,
    trial: usize,
    attempt: u32,
    metrics: Metrics,
    checkpoint: Option<Checkpoint>,
) -> bool {
    let elapsed = shared.1.elapsed();
    lock(shared).report(trial, attempt, metrics, checkpoint, elapsed)
}

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, Experiment> {
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// The actor that trials report to.
#[crate::actor]
pub struct TuneController {
    shared: Shared,
}

#[crate::actor]
impl TuneController {
    fn new(key: u64) -> Result<Self, String> {
        let shared = HANDOFF
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|m| m.remove(&key))
            .ok_or("the controller must be created on the tuner's node")?;
        Ok(TuneController { shared })
    }

    /// A trial's result: recorded; returns whether the trial goes on.
    fn report(
        &self,
        trial: usize,
        attempt: u32,
        metrics: Metrics,
        checkpoint: Option<Checkpoint>,
    ) -> bool {
        report(&self.shared, trial, attempt, metrics, checkpoint)
    }
}
