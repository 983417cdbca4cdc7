//! How a trainer runs: its workers (`ScalingConfig`) and its run (`RunConfig`: name,
//! storage, checkpoints kept, failures tolerated).

use std::path::PathBuf;

pub use crate::PlacementStrategy;
pub use crate::tune::{CheckpointConfig, Mode};

/// How many workers, what each holds, and how they spread over nodes (Ray Train's
/// `ScalingConfig`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScalingConfig {
    pub(crate) num_workers: usize,
    pub(crate) cpus_per_worker: f64,
    pub(crate) gpus_per_worker: f64,
    pub(crate) resources_per_worker: Vec<(String, f64)>,
    pub(crate) placement_strategy: PlacementStrategy,
}

impl ScalingConfig {
    /// `num_workers` workers of one CPU each, packed (Ray's defaults).
    pub fn new(num_workers: usize) -> Self {
        ScalingConfig {
            num_workers,
            cpus_per_worker: 1.0,
            gpus_per_worker: 0.0,
            resources_per_worker: Vec::new(),
            placement_strategy: PlacementStrategy::Pack,
        }
    }

    /// CPUs each worker holds.
    pub fn cpus_per_worker(mut self, n: f64) -> Self {
        self.cpus_per_worker = n;
        self
    }

    /// GPUs each worker holds.
    pub fn gpus_per_worker(mut self, n: f64) -> Self {
        self.gpus_per_worker = n;
        self
    }

    /// A custom resource each worker holds.
    pub fn resource_per_worker(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.resources_per_worker.push((name.into(), amount));
        self
    }

    /// How the workers' bundles spread over nodes (Ray's `placement_strategy`, default
    /// `Pack`).
    pub fn placement_strategy(mut self, strategy: PlacementStrategy) -> Self {
        self.placement_strategy = strategy;
        self
    }
}

/// A run's name, where its files go, its checkpoints and how many failures it survives
/// (Ray's `RunConfig` with its `FailureConfig`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct RunConfig {
    pub(crate) name: Option<String>,
    pub(crate) storage_path: Option<PathBuf>,
    pub(crate) checkpoint: CheckpointConfig,
    pub(crate) max_failures: u32,
}

impl RunConfig {
    /// Defaults: named after the train loop and the time, files under `~/mobula_results`,
    /// every checkpoint kept, no failure survived.
    pub fn new() -> Self {
        RunConfig::default()
    }

    /// The run's name (its directory under the storage path).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where runs keep their files (default `~/mobula_results`).
    pub fn storage_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage_path = Some(dir.into());
        self
    }

    /// Which checkpoints are kept (Tune's `CheckpointConfig`: the latest, and the
    /// `num_to_keep` best of the others by `score_attribute`).
    pub fn checkpoint_config(mut self, config: CheckpointConfig) -> Self {
        self.checkpoint = config;
        self
    }

    /// How many times the workers are started again after one fails (Ray's
    /// `FailureConfig(max_failures)`; -1 there is `u32::MAX` here).
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = n;
        self
    }
}
