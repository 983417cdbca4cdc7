//! Data-parallel training (Ray Train): [`DataParallelTrainer`] starts `num_workers` workers
//! as actors gang-scheduled through a placement group (PACK or SPREAD), joins them in a
//! collective group (`mobula::collective`), and runs the train loop on each with its
//! [`TrainContext`]: its ranks, its node, the checkpoint to resume from, its shard of the
//! data, and `report`. Each round's metrics are rank 0's; the checkpoint parts the ranks give
//! in one round are kept together as one [`TrainCheckpoint`], written under the run's
//! directory, the best `num_to_keep` kept. When a worker fails (its loop errs or panics, its
//! actor dies, its node is lost), every worker of the attempt is stopped and a new attempt
//! starts from the latest checkpoint, up to `max_failures` times. [`tuner`] runs a trainer
//! as a Tune trainable, so Tune searches its hyperparameters.
//!
//! The pieces: `config.rs` (scaling and run settings), `trainer.rs` (the trainer and its
//! attempts), `worker.rs` (the worker actor), `context.rs` (what the loop sees), `sink.rs`
//! (the run's state and the actor workers report to), `rounds.rs` (reports into rounds;
//! pure), `checkpoint.rs`, `storage.rs` (the run's files),
//! `tune_trial.rs` (a trainer as a Tune trial).

pub mod checkpoint;
pub mod config;
pub mod context;
pub mod error;
pub mod rounds;
pub(crate) mod sink;
pub mod storage;
pub mod trainer;
mod tune_trial;
pub mod worker;

pub use checkpoint::TrainCheckpoint;
pub use config::{CheckpointConfig, Mode, PlacementStrategy, RunConfig, ScalingConfig};
pub use context::TrainContext;
pub use error::TrainError;
pub use trainer::{DataParallelTrainer, TrainLoop, TrainResult, WORKERS_NAMESPACE, worker_name};
pub use tune_trial::tuner;
pub use worker::{TrainWorker, TrainWorkerHandle};
