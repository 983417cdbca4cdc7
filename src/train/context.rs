//! What a worker's train loop sees: its place in the group, the checkpoint to resume from,
//! its shard of the data, and `report`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::checkpoint::TrainCheckpoint;
use super::error::TrainError;
use super::sink::TrainSinkHandle;
use crate::NodeId;
use crate::tune::{Checkpoint, IntoMetrics};

/// A worker's context (Ray Train's `get_context()` and `train.report`), passed to the train
/// loop.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrainContext {
    pub(crate) world_rank: usize,
    pub(crate) world_size: usize,
    pub(crate) local_rank: usize,
    pub(crate) local_world_size: usize,
    pub(crate) node_rank: usize,
    pub(crate) node: NodeId,
    pub(crate) group: String,
    pub(crate) attempt: u32,
    pub(crate) sink: TrainSinkHandle,
    pub(crate) checkpoint: Option<TrainCheckpoint>,
    pub(crate) shard: Option<Vec<u8>>,
    /// Reports made by this worker in this attempt.
    #[serde(skip)]
    pub(crate) reported: AtomicU64,
}

impl Clone for TrainContext {
    fn clone(&self) -> Self {
        TrainContext {
            world_rank: self.world_rank,
            world_size: self.world_size,
            local_rank: self.local_rank,
            local_world_size: self.local_world_size,
            node_rank: self.node_rank,
            node: self.node,
            group: self.group.clone(),
            attempt: self.attempt,
            sink: self.sink.clone(),
            checkpoint: self.checkpoint.clone(),
            shard: self.shard.clone(),
            reported: AtomicU64::new(self.reported.load(Ordering::Relaxed)),
        }
    }
}

impl TrainContext {
    /// This worker's rank among all workers, from 0.
    pub fn world_rank(&self) -> usize {
        self.world_rank
    }

    /// The number of workers.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// This worker's rank among the workers on its node.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The number of workers on this worker's node.
    pub fn local_world_size(&self) -> usize {
        self.local_world_size
    }

    /// The rank of this worker's node among the workers' nodes.
    pub fn node_rank(&self) -> usize {
        self.node_rank
    }

    /// The node this worker runs on.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The collective group of the workers, for `mobula::collective` operations (a new
    /// group for each attempt).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Which attempt this is: 1, then one more after each failure.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The checkpoint to resume from: the run's latest, when the workers were started again
    /// after a failure (Ray's `train.get_checkpoint()`).
    pub fn checkpoint(&self) -> Option<&TrainCheckpoint> {
        self.checkpoint.as_ref()
    }

    /// The round the next report makes: the checkpoint's round + 1 when resuming, then one
    /// more per report.
    pub fn next_round(&self) -> u64 {
        let first = self.checkpoint.as_ref().map_or(0, |c| c.round() + 1);
        first + self.reported.load(Ordering::Relaxed)
    }

    /// This worker's shard of the trainer's dataset: contiguous, the shards of all workers
    /// together the whole dataset once. Empty when the trainer has none.
    pub fn shard<T: DeserializeOwned>(&self) -> Result<Vec<T>, TrainError> {
        match &self.shard {
            None => Ok(Vec::new()),
            Some(bytes) => postcard::from_bytes(bytes)
                .map_err(|e| TrainError::Codec(format!("this worker's shard: {e}"))),
        }
    }

    /// Reports a round's metrics, with this worker's part of a checkpoint (Ray's
    /// `train.report(metrics, checkpoint=...)`). Every worker reports the same number of
    /// times; rank 0's metrics are the round's, and the parts of one round are kept together
    /// as one checkpoint. `Err(TrainError::Stopped)` asks the loop to return.
    pub fn report(
        &self,
        metrics: impl IntoMetrics,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(), TrainError> {
        let round = self.next_round();
        self.reported.fetch_add(1, Ordering::Relaxed);
        let go_on = self
            .sink
            .report(
                self.attempt,
                round,
                self.world_rank,
                metrics.into_metrics(),
                checkpoint,
            )
            .get()
            .map_err(|e| TrainError::Sink(e.to_string()))?;
        if go_on {
            Ok(())
        } else {
            Err(TrainError::Stopped)
        }
    }
}
