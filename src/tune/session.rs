//! What a trainable sees: its session (report results, read the checkpoint to resume from)
//! and checkpoints.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::controller::TuneControllerHandle;
use crate::GetError;

/// A result's metrics by name (Ray's result dictionary, numbers only).
pub type Metrics = BTreeMap<String, f64>;

/// Anything that lists metrics: `[("score", 1.0)]`, a `Vec` of pairs, a [`Metrics`] map.
pub trait IntoMetrics {
    /// The metrics.
    fn into_metrics(self) -> Metrics;
}

impl<K: Into<String>, const N: usize> IntoMetrics for [(K, f64); N] {
    fn into_metrics(self) -> Metrics {
        self.into_iter().map(|(k, v)| (k.into(), v)).collect()
    }
}

impl<K: Into<String>> IntoMetrics for Vec<(K, f64)> {
    fn into_metrics(self) -> Metrics {
        self.into_iter().map(|(k, v)| (k.into(), v)).collect()
    }
}

impl IntoMetrics for Metrics {
    fn into_metrics(self) -> Metrics {
        self
    }
}

/// A trial's saved state, to resume from after a failure (or to clone, for PBT): any
/// serializable value, stored as bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    bytes: Vec<u8>,
    /// The trial's iteration when it was taken.
    iteration: u64,
}

impl Checkpoint {
    /// A checkpoint holding `value`.
    pub fn from_value<T: Serialize>(value: &T) -> Result<Self, CheckpointError> {
        postcard::to_allocvec(value)
            .map(Checkpoint::from_bytes)
            .map_err(|e| CheckpointError(e.to_string()))
    }

    /// A checkpoint holding these bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Checkpoint {
            bytes,
            iteration: 0,
        }
    }

    /// The value it holds.
    pub fn to_value<T: DeserializeOwned>(&self) -> Result<T, CheckpointError> {
        postcard::from_bytes(&self.bytes).map_err(|e| CheckpointError(e.to_string()))
    }

    /// The bytes it holds.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The iteration of the trial when it was taken.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    pub(crate) fn at(mut self, iteration: u64) -> Self {
        self.iteration = iteration;
        self
    }
}

/// A checkpoint's value could not be encoded or decoded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("a checkpoint could not be encoded or decoded: {0}")]
pub struct CheckpointError(pub String);

/// Why [`Session::report`] asks the trainable to end.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The scheduler or a stop criterion ended the trial (or PBT will continue it from
    /// another trial's checkpoint): return (the `?` does it).
    #[error("the trial was stopped (by its scheduler or a stop criterion)")]
    Stopped,
    /// The experiment's controller could not be reached.
    #[error("the experiment's controller is gone: {0}")]
    Controller(#[from] GetError),
}

/// A trial's link to its experiment, passed to the trainable: report results through it and
/// resume from [`checkpoint`](Self::checkpoint).
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    pub(crate) trial: usize,
    pub(crate) name: String,
    pub(crate) attempt: u32,
    pub(crate) controller: TuneControllerHandle,
    pub(crate) checkpoint: Option<Checkpoint>,
    /// The experiment's key, to report in place on the tuner's node.
    pub(crate) key: u64,
    /// The experiment, once found in this process (on the tuner's node).
    #[serde(skip)]
    pub(crate) local: std::sync::OnceLock<Option<super::controller::Shared>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("trial", &self.name)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl Session {
    /// Reports one result (Ray's `tune.report`). Returns `Err(ReportError::Stopped)` when
    /// the trial should end now: `session.report([("score", s)])?;` in the training loop.
    pub fn report(&self, metrics: impl IntoMetrics) -> Result<(), ReportError> {
        self.send(metrics.into_metrics(), None)
    }

    /// Reports a result with a checkpoint of the trial's state (a failed trial restarts from
    /// its latest one).
    pub fn report_with_checkpoint(
        &self,
        metrics: impl IntoMetrics,
        checkpoint: Checkpoint,
    ) -> Result<(), ReportError> {
        self.send(metrics.into_metrics(), Some(checkpoint))
    }

    fn send(&self, metrics: Metrics, checkpoint: Option<Checkpoint>) -> Result<(), ReportError> {
        let local = self
            .local
            .get_or_init(|| super::controller::local(self.key));
        let go_on = match local {
            Some(shared) => {
                super::controller::report(shared, self.trial, self.attempt, metrics, checkpoint)
            }
            None => self
                .controller
                .report(self.trial, self.attempt, metrics, checkpoint)
                .get()?,
        };
        if go_on {
            Ok(())
        } else {
            Err(ReportError::Stopped)
        }
    }

    /// The checkpoint to resume from: the trial's latest, when it runs again after a failure.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()
    }

    /// The trial's name (`<experiment>_<number>`).
    pub fn trial_name(&self) -> &str {
        &self.name
    }

    /// Which attempt this is: 1, then one more after each failure.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}
