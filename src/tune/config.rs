//! How an experiment is set up: what to search (`TuneConfig`), where results go and when
//! trials stop (`RunConfig`), and why an experiment could not run (`TuneError`).

use std::path::PathBuf;
use std::time::Duration;

use super::experiment::{Mode, StopCriteria};
use super::schedulers::TrialScheduler;
use super::search::Searcher;
use super::storage::CheckpointConfig;

/// Why an experiment could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TuneError {
    /// A setting is wrong (the message says which).
    #[error("invalid tune settings: {0}")]
    InvalidConfig(String),
    /// `mobula::init` was not called.
    #[error("Mobula is not running: call mobula::init first")]
    NotInitialized,
    /// The experiment's controller actor could not be started.
    #[error("the experiment's controller could not start: {0}")]
    Controller(String),
    /// The experiment to resume could not be read back.
    #[error(transparent)]
    Restore(#[from] super::storage::RestoreError),
    /// A result file could not be written.
    #[error("cannot write the experiment's files in {path}: {source}")]
    Storage {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
}

/// How to search (Ray's `TuneConfig`).
pub struct TuneConfig {
    pub(super) metric: Option<String>,
    pub(super) mode: Mode,
    pub(super) num_samples: usize,
    pub(super) max_concurrent_trials: Option<usize>,
    pub(super) scheduler: Option<Box<dyn TrialScheduler>>,
    pub(super) searcher: Option<Box<dyn Searcher>>,
    pub(super) seed: Option<u64>,
    pub(super) cpus_per_trial: f64,
    pub(super) gpus_per_trial: f64,
}

impl Default for TuneConfig {
    fn default() -> Self {
        TuneConfig {
            metric: None,
            mode: Mode::Max,
            num_samples: 1,
            max_concurrent_trials: None,
            scheduler: None,
            searcher: None,
            seed: None,
            cpus_per_trial: 1.0,
            gpus_per_trial: 0.0,
        }
    }
}

impl std::fmt::Debug for TuneConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TuneConfig")
            .field("metric", &self.metric)
            .field("mode", &self.mode)
            .field("num_samples", &self.num_samples)
            .field("max_concurrent_trials", &self.max_concurrent_trials)
            .field("scheduler", &self.scheduler.as_ref().map(|s| s.name()))
            .field("searcher", &self.searcher.as_ref().map(|s| s.name()))
            .field("seed", &self.seed)
            .finish()
    }
}

impl TuneConfig {
    /// Defaults: one sample, FIFO, random search, one CPU per trial, maximise.
    pub fn new() -> Self {
        TuneConfig::default()
    }

    /// The metric to optimise.
    pub fn metric(mut self, name: impl Into<String>) -> Self {
        self.metric = Some(name.into());
        self
    }

    /// Maximise or minimise it.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// How many trials (with grids: how many times the grid is repeated).
    pub fn num_samples(mut self, n: usize) -> Self {
        self.num_samples = n;
        self
    }

    /// At most this many trials at once (default: as many as the cluster's CPUs hold).
    pub fn max_concurrent_trials(mut self, n: usize) -> Self {
        self.max_concurrent_trials = Some(n.max(1));
        self
    }

    /// The trial scheduler (default FIFO).
    pub fn scheduler(mut self, scheduler: impl TrialScheduler + 'static) -> Self {
        self.scheduler = Some(Box::new(scheduler));
        self
    }

    /// The search algorithm (default random and grid).
    pub fn search_alg(mut self, searcher: impl Searcher + 'static) -> Self {
        self.searcher = Some(Box::new(searcher));
        self
    }

    /// Seeds the search, so that the same configurations are drawn on every run.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The CPUs each trial holds while it runs (default 1).
    pub fn cpus_per_trial(mut self, n: f64) -> Self {
        self.cpus_per_trial = n;
        self
    }

    /// The GPUs each trial holds while it runs (default 0).
    pub fn gpus_per_trial(mut self, n: f64) -> Self {
        self.gpus_per_trial = n;
        self
    }
}

/// Where results go and when trials stop (Ray's `RunConfig`).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub(super) checkpoints: CheckpointConfig,
    pub(super) name: Option<String>,
    pub(super) storage_path: Option<PathBuf>,
    pub(super) stop: StopCriteria,
    pub(super) max_failures: u32,
    pub(super) verbose: u8,
    pub(super) progress_interval: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            checkpoints: CheckpointConfig::new(),
            name: None,
            storage_path: None,
            stop: StopCriteria::new(),
            max_failures: 0,
            verbose: 2,
            progress_interval: Duration::from_secs(5),
        }
    }
}

impl RunConfig {
    /// Defaults: results under `~/mobula_results/<trainable>_<time>`, no stop criteria,
    /// no restarts, the status table every 5 s.
    pub fn new() -> Self {
        RunConfig::default()
    }

    /// The experiment's name (its directory under the storage path).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where experiments keep their files (default `~/mobula_results`).
    pub fn storage_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage_path = Some(dir.into());
        self
    }

    /// When trials stop regardless of the scheduler.
    pub fn stop(mut self, criteria: StopCriteria) -> Self {
        self.stop = criteria;
        self
    }

    /// Which checkpoints trials keep on disk (default: all).
    pub fn checkpoint_config(mut self, config: CheckpointConfig) -> Self {
        self.checkpoints = config;
        self
    }

    /// How often a trial may fail and run again from its latest checkpoint (default 0).
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = n;
        self
    }

    /// 0: silent; 1: the final table only; 2 (default): the status while it runs too.
    pub fn verbose(mut self, level: u8) -> Self {
        self.verbose = level;
        self
    }

    /// How often the status is shown.
    pub fn progress_interval(mut self, every: Duration) -> Self {
        self.progress_interval = every;
        self
    }
}
