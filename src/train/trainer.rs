//! `DataParallelTrainer`: workers gang-scheduled through a placement group, joined in a
//! collective group, each running the train loop; restarted together from the latest
//! checkpoint when one fails, up to `max_failures` times.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use serde::Serialize;

use super::checkpoint::TrainCheckpoint;
use super::config::{RunConfig, ScalingConfig};
use super::context::TrainContext;
use super::error::TrainError;
use super::sink::{self, OnRound, RunState, Shared, TrainSink, TrainSinkHandle};
use super::storage::RunDir;
use super::worker::{TrainWorker, TrainWorkerHandle};
use crate::base::function::RemoteFunction;
use crate::base::value::Value;
use crate::collective::{self, ring};
use crate::tune::Metrics;
use crate::{Bundle, NodeId, ObjectRef, SchedulingStrategy};

/// A train loop: `#[mobula::remote] fn(C, TrainContext) -> Result<(), E>`.
pub trait TrainLoop<C>: RemoteFunction<Params = (C, TrainContext), Output = ()> {}

impl<C, F: RemoteFunction<Params = (C, TrainContext), Output = ()>> TrainLoop<C> for F {}

/// Data-parallel training (Ray Train's `DataParallelTrainer`).
///
/// ```no_run
/// use mobula::train::{DataParallelTrainer, ScalingConfig, TrainContext, TrainError};
/// use mobula::tune::Checkpoint;
///
/// #[mobula::remote]
/// fn train_loop(lr: f64, ctx: TrainContext) -> Result<(), TrainError> {
///     let mut w = match ctx.checkpoint() {
///         Some(cp) => cp.first().unwrap().to_value::<f64>().unwrap(),
///         None => 0.0,
///     };
///     for _ in 0..10 {
///         let mut grad = [2.0 * (w - 3.0)];
///         mobula::collective::allreduce(&mut grad, mobula::collective::ReduceOp::Mean, ctx.group())?;
///         w -= lr * grad[0];
///         let cp = (ctx.world_rank() == 0).then(|| Checkpoint::from_value(&w).unwrap());
///         ctx.report([("w", w)], cp)?;
///     }
///     Ok(())
/// }
///
/// # fn main() -> anyhow::Result<()> {
/// let _mobula = mobula::init(mobula::Config::default())?;
/// let result = DataParallelTrainer::new(train_loop, 0.1)
///     .scaling_config(ScalingConfig::new(2))
///     .fit()?;
/// println!("{:?}", result.metrics);
/// # Ok(())
/// # }
/// ```
pub struct DataParallelTrainer {
    pub(crate) function: String,
    pub(crate) config: Result<Vec<u8>, String>,
    pub(crate) scaling: ScalingConfig,
    pub(crate) run: RunConfig,
    shards: Option<Vec<Vec<u8>>>,
    dataset: Option<Splitter>,
    on_round: Option<OnRound>,
    resume_from: Option<TrainCheckpoint>,
    start_timeout: Duration,
}

/// Splits a dataset into one encoded shard per worker.
type Splitter = Box<dyn Fn(usize) -> Result<Vec<Vec<u8>>, TrainError> + Send>;

/// What a run ended with (Ray Train's `Result`).
#[derive(Debug, Clone)]
pub struct TrainResult {
    /// The last round's metrics (rank 0's).
    pub metrics: Option<Metrics>,
    /// Every completed round's metrics, by round.
    pub metrics_history: Vec<(u64, Metrics)>,
    /// The latest checkpoint.
    pub checkpoint: Option<TrainCheckpoint>,
    /// The kept checkpoints with their metrics, best first (by the configured score; the
    /// latest first without one).
    pub best_checkpoints: Vec<(TrainCheckpoint, Metrics)>,
    /// Why the run failed, if it did (after `max_failures` restarts).
    pub error: Option<TrainError>,
    /// Attempts made (1 + restarts).
    pub attempts: u32,
    /// The run's directory, when its files could be written.
    pub path: Option<PathBuf>,
    /// The first error writing the run's files, if any (training went on).
    pub storage_error: Option<String>,
}

impl DataParallelTrainer {
    /// A trainer running `train_loop` with `config` on every worker.
    pub fn new<C: Value + Serialize, F: TrainLoop<C>>(train_loop: F, config: C) -> Self {
        let _ = train_loop;
        let mut bytes = Vec::new();
        let config = crate::object::codec::write(&config, &mut bytes).map(|()| bytes);
        DataParallelTrainer::with_function(F::descriptor().id.to_string(), config)
    }

    pub(crate) fn with_function(function: String, config: Result<Vec<u8>, String>) -> Self {
        DataParallelTrainer {
            function,
            config,
            scaling: ScalingConfig::new(1),
            run: RunConfig::new(),
            shards: None,
            dataset: None,
            on_round: None,
            resume_from: None,
            start_timeout: Duration::from_secs(60),
        }
    }

    /// How many workers and what each holds.
    pub fn scaling_config(mut self, scaling: ScalingConfig) -> Self {
        self.scaling = scaling;
        self
    }

    /// The run's name, storage, checkpoints and failures tolerated.
    pub fn run_config(mut self, run: RunConfig) -> Self {
        self.run = run;
        self
    }

    /// A dataset split among the workers: each gets a contiguous shard
    /// ([`TrainContext::shard`]).
    pub fn dataset<T: Serialize + Clone + Send + Sync + 'static>(mut self, items: Vec<T>) -> Self {
        let items = Arc::new(items);
        self.dataset = Some(Box::new(move |n| {
            (0..n)
                .map(|rank| {
                    postcard::to_allocvec(&items[ring::chunk(items.len(), n, rank)])
                        .map_err(|e| TrainError::Codec(format!("shard {rank}: {e}")))
                })
                .collect()
        }));
        self
    }

    /// Starts from `checkpoint` (Ray's `resume_from_checkpoint`): the workers see it as
    /// [`TrainContext::checkpoint`], and rounds go on after its round.
    pub fn resume_from_checkpoint(mut self, checkpoint: TrainCheckpoint) -> Self {
        self.resume_from = Some(checkpoint);
        self
    }

    /// How long `fit` waits for the workers' placement group (default 60 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Called with each completed round; `false` stops the run (Tune's trial uses it).
    pub(crate) fn on_round(mut self, f: OnRound) -> Self {
        self.on_round = Some(f);
        self
    }

    /// Runs the training to its end (Ray's `trainer.fit()`): the result holds the error if
    /// the workers failed more than `max_failures` times; `Err` is for a trainer that could
    /// not run at all.
    pub fn fit(mut self) -> Result<TrainResult, TrainError> {
        let n = self.scaling.num_workers;
        if n == 0 {
            return Err(TrainError::Invalid(
                "a trainer needs at least one worker".into(),
            ));
        }
        if let Err(e) = &self.config {
            return Err(TrainError::Codec(format!("the train loop's config: {e}")));
        }
        if crate::runtime::registry::find(&self.function).is_none() {
            return Err(TrainError::Invalid(format!(
                "the train loop `{}` is not a registered remote function",
                self.function
            )));
        }
        let node = crate::context()
            .node_id()
            .ok_or(TrainError::NotInitialized)?;
        self.shards = match &self.dataset {
            Some(split) => Some(split(n)?),
            None => None,
        };
        let name = self.run.name.clone().unwrap_or_else(|| {
            let short = self.function.rsplit("::").next().unwrap_or(&self.function);
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("{short}_{secs}")
        });
        let root = self
            .run
            .storage_path
            .clone()
            .unwrap_or_else(default_storage);
        let (dir, dir_error) = match RunDir::create(root.join(&name)) {
            Ok(dir) => (Some(dir), None),
            Err(e) => (None, Some(format!("{}: {e}", root.join(&name).display()))),
        };
        let mut state = RunState::new(
            self.run.checkpoint.clone(),
            dir.clone(),
            self.on_round.take(),
        );
        if let Some(cp) = self.resume_from.take() {
            state.resume_from(cp);
        }
        let shared: Shared = Arc::new(std::sync::Mutex::new(state));
        sink::lock(&shared).storage_error = dir_error;
        let key = uuid::Uuid::new_v4().as_u64_pair().0;
        sink::hand_off(key, Arc::clone(&shared));
        let sink = TrainSink::options()
            .scheduling_strategy(SchedulingStrategy::NodeAffinity { node, soft: false })
            .remote(key)
            .map_err(|e| TrainError::Start(e.to_string()))?;

        let mut attempts = 0;
        let error = loop {
            attempts += 1;
            let outcome = self.attempt(attempts, &name, &shared, &sink);
            let stopped = sink::lock(&shared).stopped;
            match outcome {
                Ok(()) => break None,
                Err(_) if stopped => break None,
                Err(e @ TrainError::Start(_)) => break Some(e),
                Err(e) if attempts > self.run.max_failures => {
                    break Some(TrainError::Failed {
                        attempts,
                        reason: e.to_string(),
                    });
                }
                Err(e) => {
                    tracing::warn!(
                        attempt = attempts,
                        "a training worker failed; restarting from the latest checkpoint: {e}"
                    );
                }
            }
        };
        crate::kill(&sink);
        let state = sink::lock(&shared);
        let mut best: Vec<(TrainCheckpoint, Metrics)> = Vec::new();
        if let Some(b) = state.best() {
            best.push((b.2.clone(), b.1.clone()));
        }
        for k in state.kept.iter().rev() {
            if best.first().is_none_or(|b| b.0.round() != k.0) {
                best.push((k.2.clone(), k.1.clone()));
            }
        }
        Ok(TrainResult {
            metrics: state.history.last().map(|h| h.1.clone()),
            metrics_history: state.history.clone(),
            checkpoint: state.latest(),
            best_checkpoints: best,
            error,
            attempts,
            path: dir.map(|d| d.path().to_path_buf()),
            storage_error: state.storage_error.clone(),
        })
    }

    /// One attempt: place the workers, join them, run the loop on each; the first failure
    /// ends the attempt (every worker is stopped).
    fn attempt(
        &self,
        attempt: u32,
        name: &str,
        shared: &Shared,
        sink: &TrainSinkHandle,
    ) -> Result<(), TrainError> {
        let n = self.scaling.num_workers;
        let s = &self.scaling;
        let mut bundle = Bundle::new().num_cpus(s.cpus_per_worker);
        if s.gpus_per_worker > 0.0 {
            bundle = bundle.num_gpus(s.gpus_per_worker);
        }
        for (r, a) in &s.resources_per_worker {
            bundle = bundle.resource(r.clone(), *a);
        }
        let pg = crate::placement_group(vec![bundle; n], s.placement_strategy)
            .map_err(|e| TrainError::Start(e.to_string()))?;
        let placed = pg
            .wait(self.start_timeout)
            .map_err(|e| TrainError::Start(e.to_string()));
        let result = match placed {
            Ok(true) => self.run_workers(attempt, name, shared, sink, &pg),
            Ok(false) => Err(TrainError::Start(format!(
                "{n} workers could not be placed within {:?}",
                self.start_timeout
            ))),
            Err(e) => Err(e),
        };
        crate::remove_placement_group(&pg);
        result
    }

    fn run_workers(
        &self,
        attempt: u32,
        name: &str,
        shared: &Shared,
        sink: &TrainSinkHandle,
        pg: &crate::PlacementGroup,
    ) -> Result<(), TrainError> {
        let n = self.scaling.num_workers;
        let s = &self.scaling;
        let workers: Vec<TrainWorkerHandle> = (0..n)
            .map(|i| {
                let mut options = TrainWorker::options()
                    .name(worker_name(name, attempt, i))
                    .namespace(WORKERS_NAMESPACE)
                    .num_cpus(s.cpus_per_worker)
                    .placement_group(pg, Some(i));
                if s.gpus_per_worker > 0.0 {
                    options = options.num_gpus(s.gpus_per_worker);
                }
                for (r, a) in &s.resources_per_worker {
                    options = options.resource(r.clone(), *a);
                }
                options.remote(self.function.to_string())
            })
            .collect::<Result<_, _>>()
            .map_err(|e| TrainError::Start(e.to_string()))?;
        let stop = |workers: &[TrainWorkerHandle]| {
            for w in workers {
                crate::kill(w);
            }
        };
        let nodes: Vec<NodeId> = match workers
            .iter()
            .map(|w| w.node())
            .collect::<Vec<_>>()
            .iter()
            .map(ObjectRef::get)
            .collect::<Result<_, _>>()
        {
            Ok(nodes) => nodes,
            Err(e) => {
                stop(&workers);
                return Err(TrainError::Start(e.to_string()));
            }
        };
        let group = format!(
            "train:{name}:{attempt}:{:x}",
            uuid::Uuid::new_v4().as_u64_pair().0
        );
        if let Err(e) = collective::create_collective_group(&workers, &group) {
            stop(&workers);
            return Err(TrainError::Start(e.to_string()));
        }
        let checkpoint = {
            let mut state = sink::lock(shared);
            state.begin(attempt, n);
            state.latest()
        };
        let mut node_order: Vec<NodeId> = Vec::new();
        for node in &nodes {
            if !node_order.contains(node) {
                node_order.push(*node);
            }
        }
        let mut runs = Vec::with_capacity(n);
        for (rank, worker) in workers.iter().enumerate() {
            let context = TrainContext {
                world_rank: rank,
                world_size: n,
                local_rank: nodes[..rank].iter().filter(|x| **x == nodes[rank]).count(),
                local_world_size: nodes.iter().filter(|x| **x == nodes[rank]).count(),
                node_rank: node_order
                    .iter()
                    .position(|x| *x == nodes[rank])
                    .unwrap_or(0),
                node: nodes[rank],
                group: group.clone(),
                attempt,
                sink: sink.clone(),
                checkpoint: checkpoint.clone(),
                shard: self.shards.as_ref().map(|s| s[rank].clone()),
                reported: AtomicU64::new(0),
            };
            let mut bytes = Vec::new();
            crate::object::codec::write(&context, &mut bytes).map_err(TrainError::Codec)?;
            let config = self.config.clone().map_err(TrainError::Codec)?;
            runs.push(worker.run(config, bytes));
        }
        // The first failure ends the attempt: the others are stopped rather than waited for.
        let mut pending = runs;
        let mut failure: Option<(bool, String)> = None;
        while !pending.is_empty() {
            let (ready, rest) = crate::wait_anywhere(pending, 1, None)
                .map_err(|e| TrainError::Start(e.to_string()))?;
            pending = rest;
            for r in ready {
                if let Err(e) = r.get() {
                    let text = e.to_string();
                    // A member's own failure says more than the group failing after it.
                    let secondary = text.contains("collective group") && text.contains("failed:");
                    if failure.as_ref().is_none_or(|(sec, _)| *sec && !secondary) {
                        failure = Some((secondary, text));
                    }
                }
            }
            if failure.is_some() {
                stop(&workers);
            }
        }
        let _ = collective::destroy_collective_group(&group);
        stop(&workers);
        match failure {
            None => Ok(()),
            Some((_, reason)) => Err(TrainError::Failed {
                attempts: attempt,
                reason,
            }),
        }
    }
}

/// The namespace of training workers' names.
pub const WORKERS_NAMESPACE: &str = "mobula.train";

/// The name of rank `rank`'s worker in attempt `attempt` of run `run`, in
/// [`WORKERS_NAMESPACE`]: `<run>/<attempt>/<rank>` (to find one with `get_actor_in`).
pub fn worker_name(run: &str, attempt: u32, rank: usize) -> String {
    format!("{run}/{attempt}/{rank}")
}

/// `~/mobula_results`, or the temporary directory without a home.
fn default_storage() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("mobula_results")
}
