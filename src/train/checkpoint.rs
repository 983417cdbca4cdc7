//! A data-parallel checkpoint: the part each rank gave in one round, kept together.

use serde::{Deserialize, Serialize};

use crate::tune::Checkpoint;

/// The checkpoint of one round: each rank's part (a rank may give none; with data
/// parallelism rank 0's is usually the whole model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainCheckpoint {
    round: u64,
    parts: Vec<Option<Checkpoint>>,
}

impl TrainCheckpoint {
    pub(crate) fn new(round: u64, parts: Vec<Option<Checkpoint>>) -> Self {
        TrainCheckpoint { round, parts }
    }

    /// The round it was taken in (the number of the report, from 0).
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Rank `rank`'s part, if it gave one.
    pub fn part(&self, rank: usize) -> Option<&Checkpoint> {
        self.parts.get(rank).and_then(Option::as_ref)
    }

    /// The first part given (rank 0's, when it gave one).
    pub fn first(&self) -> Option<&Checkpoint> {
        self.parts.iter().flatten().next()
    }

    /// How many ranks took part.
    pub fn world_size(&self) -> usize {
        self.parts.len()
    }
}
