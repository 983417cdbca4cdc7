//! Where the workers' reports go: the run's state, in the process that called `fit`, and
//! the small actor (`TrainSink`) through which workers on any node reach it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::checkpoint::TrainCheckpoint;
use super::config::CheckpointConfig;
use super::rounds::{Completed, Rounds};
use super::storage::RunDir;
use crate::tune::{Checkpoint, Metrics};

/// Called with each completed round (the Tune trial forwards it); `false` stops the run.
pub(crate) type OnRound = Box<dyn FnMut(&Completed) -> bool + Send>;

/// What a run knows: the current attempt's rounds, the history, the kept checkpoints.
pub(crate) struct RunState {
    attempt: u32,
    rounds: Rounds,
    pub history: Vec<(u64, Metrics)>,
    /// Kept checkpoints with rank 0's metrics, oldest first.
    pub kept: Vec<(u64, Metrics, TrainCheckpoint)>,
    config: CheckpointConfig,
    dir: Option<RunDir>,
    /// The first error writing the run's files (training goes on; the result says it).
    pub storage_error: Option<String>,
    on_round: Option<OnRound>,
    pub stopped: bool,
}

impl RunState {
    pub fn new(config: CheckpointConfig, dir: Option<RunDir>, on_round: Option<OnRound>) -> Self {
        RunState {
            attempt: 0,
            rounds: Rounds::new(0),
            history: Vec::new(),
            kept: Vec::new(),
            config,
            dir,
            storage_error: None,
            on_round,
            stopped: false,
        }
    }

    /// A new attempt of `world` workers: reports of earlier attempts are ignored from now.
    pub fn begin(&mut self, attempt: u32, world: usize) {
        self.attempt = attempt;
        self.rounds = Rounds::new(world);
    }

    /// The run starts from `checkpoint` (taken by an earlier run).
    pub fn resume_from(&mut self, checkpoint: TrainCheckpoint) {
        self.kept
            .push((checkpoint.round(), Metrics::new(), checkpoint));
    }

    /// The checkpoint a new attempt resumes from.
    pub fn latest(&self) -> Option<TrainCheckpoint> {
        self.kept.last().map(|k| k.2.clone())
    }

    /// A report from rank `rank` of attempt `attempt`; whether the run goes on.
    pub fn report(
        &mut self,
        attempt: u32,
        round: u64,
        rank: usize,
        metrics: Metrics,
        checkpoint: Option<Checkpoint>,
    ) -> bool {
        if attempt != self.attempt {
            return false; // a worker of an attempt that ended: it should stop
        }
        if let Some(done) = self.rounds.report(round, rank, metrics, checkpoint) {
            self.complete(done);
        }
        !self.stopped
    }

    fn complete(&mut self, done: Completed) {
        // A round at or before one already recorded (a restarted attempt resumes after its
        // checkpoint, so this does not happen unless a loop reports out of step): kept once.
        if self.history.last().is_some_and(|(r, _)| *r >= done.round) {
            self.history.retain(|(r, _)| *r < done.round);
        }
        self.history.push((done.round, done.metrics.clone()));
        if let Some(dir) = &self.dir
            && let Err(e) = dir.append_result(done.round, &done.metrics)
        {
            self.storage_error.get_or_insert(e.to_string());
        }
        if let Some(cp) = &done.checkpoint {
            if let Some(dir) = &self.dir
                && let Err(e) = dir.write_checkpoint(cp, &done.metrics)
            {
                self.storage_error.get_or_insert(e.to_string());
            }
            self.kept.retain(|k| k.0 < done.round);
            self.kept
                .push((done.round, done.metrics.clone(), cp.clone()));
            let scored: Vec<(u64, Option<f64>)> = self
                .kept
                .iter()
                .map(|k| (k.0, self.config.score(&k.1)))
                .collect();
            let keep = crate::tune::retention::to_keep(&scored, self.config.num_to_keep);
            let dir = self.dir.clone();
            self.kept.retain(|k| {
                let kept = keep.contains(&k.0);
                if !kept && let Some(dir) = &dir {
                    dir.delete_checkpoint(k.0);
                }
                kept
            });
        }
        if let Some(on_round) = &mut self.on_round
            && !on_round(&done)
        {
            self.stopped = true;
        }
    }

    /// The best kept checkpoint by the configured score (the latest without one).
    pub fn best(&self) -> Option<&(u64, Metrics, TrainCheckpoint)> {
        if self.config.score_attribute.is_none() {
            return self.kept.last();
        }
        self.kept
            .iter()
            .filter_map(|k| Some((self.config.score(&k.1)?, k)))
            .max_by(|a, b| a.0.total_cmp(&b.0).then(a.1.0.cmp(&b.1.0)))
            .map(|(_, k)| k)
            .or(self.kept.last())
    }
}

/// A run's state, shared by `fit` and the sink actor.
pub(crate) type Shared = Arc<Mutex<RunState>>;

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, RunState> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn handed() -> &'static Mutex<HashMap<u64, Shared>> {
    static HANDED: OnceLock<Mutex<HashMap<u64, Shared>>> = OnceLock::new();
    HANDED.get_or_init(Mutex::default)
}

/// Hands a run's state to the sink about to be made in this process, under `key`.
pub(crate) fn hand_off(key: u64, shared: Shared) {
    handed()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, shared);
}

/// The actor the workers report to; it lives in the process that called `fit`.
#[crate::actor(num_cpus = 0, max_concurrency = 64)]
pub struct TrainSink {
    shared: Shared,
}

#[crate::actor]
impl TrainSink {
    fn new(key: u64) -> Result<Self, String> {
        let shared = handed()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key)
            .ok_or("a trainer's sink must run in the process that called fit")?;
        Ok(TrainSink { shared })
    }

    /// A worker's report; whether the run goes on.
    fn report(
        &self,
        attempt: u32,
        round: u64,
        rank: usize,
        metrics: Metrics,
        checkpoint: Option<Checkpoint>,
    ) -> bool {
        lock(&self.shared).report(attempt, round, rank, metrics, checkpoint)
    }
}
