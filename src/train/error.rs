//! What training can fail with.

use crate::collective::CollectiveError;

/// Why a trainer could not run, or a report was not taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The trainer's settings are wrong (no workers, a train loop that is not a registered
    /// remote function).
    #[error("{0}")]
    Invalid(String),
    /// No runtime runs in this process.
    #[error("mobula is not initialized")]
    NotInitialized,
    /// The workers could not be placed or started.
    #[error("the workers could not be started: {0}")]
    Start(String),
    /// The run was stopped (by Tune's scheduler or a stop criterion): return from the train
    /// loop (the `?` does it).
    #[error("the run was stopped")]
    Stopped,
    /// The run's sink (in the process that called `fit`) could not be reached.
    #[error("the trainer is gone: {0}")]
    Sink(String),
    /// A worker failed more times than `max_failures` allows: the last failure.
    #[error("training failed after {attempts} attempt(s): {reason}")]
    Failed {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's first failure (a worker's error or death).
        reason: String,
    },
    /// A value (the loop's config, a shard, a checkpoint) could not be encoded or decoded.
    #[error("{0}")]
    Codec(String),
    /// A collective operation failed.
    #[error(transparent)]
    Collective(#[from] CollectiveError),
}
