//! The experiment's controller: the actor trials report to. It holds the experiment's state
//! (shared with the tuner's loop on the driver, which creates it on its own node) and answers
//! each report with the scheduler's decision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::experiment::Experiment;
use super::session::{Checkpoint, Metrics};

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
        let elapsed = self.shared.1.elapsed();
        lock(&self.shared).report(trial, attempt, metrics, checkpoint, elapsed)
    }
}
