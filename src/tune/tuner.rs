//! `Tuner`: runs an experiment. Its loop, on the calling thread, draws configurations from
//! the searcher, starts a trial actor for each (with the trial's resources) as room allows,
//! restarts failed ones from their checkpoints, writes the result files and shows the status;
//! the controller actor answers the trials' reports.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::{RunConfig, TuneConfig, TuneError};
use super::controller::{self, Shared, TuneController, TuneControllerHandle};
use super::experiment::{Ended, Experiment, TrialStatus};
use super::output;
use super::result::{ResultGrid, TrialResult};
use super::rng::Rng;
use super::schedulers::Fifo;
use super::search::{RandomSearch, SearchSetup, Searcher};
use super::session::Session;
use super::space::{SearchSpace, TrialConfig};
use super::storage::{Meta, ResultFiles, Writer};
use super::trainable::{TrainableRef, TrialActor, TrialActorHandle};
use crate::base::function::RemoteFunction;
use crate::{ObjectRef, SchedulingStrategy};

/// Runs an experiment (Ray's `Tuner`): `Tuner::new(trainable).param_space(space)
/// .tune_config(...).run_config(...).fit()`.
///
/// The trainable is a remote function taking the trial's config and its session:
///
/// ```no_run
/// use mobula::tune::{self, ReportError, Session, TrialConfig};
///
/// #[mobula::remote]
/// fn objective(config: TrialConfig, session: Session) -> Result<(), ReportError> {
///     let (a, b): (f64, f64) = (config.get("a").unwrap(), config.get("b").unwrap());
///     for step in 0..100 {
///         session.report([("score", a * step as f64 + b)])?;
///     }
///     Ok(())
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let _mobula = mobula::init(mobula::Config::default())?;
/// let space = tune::SearchSpace::new()
///     .param("a", tune::uniform(0.0, 1.0))
///     .param("b", tune::uniform(0.0, 20.0));
/// let results = tune::Tuner::new(objective)
///     .param_space(space)
///     .tune_config(
///         tune::TuneConfig::new()
///             .metric("score")
///             .mode(tune::Mode::Max)
///             .num_samples(10)
///             .scheduler(tune::Asha::new()),
///     )
///     .fit()?;
/// println!("best: {:?}", results.best_config());
/// # Ok(())
/// # }
/// ```
pub struct Tuner {
    trainable: TrainableRef,
    space: SearchSpace,
    tune: TuneConfig,
    run: RunConfig,
    /// The directory of an experiment to resume.
    resume: Option<PathBuf>,
}

/// A trainable function: `#[mobula::remote] fn(TrialConfig, Session) -> Result<(), E>`.
pub trait TrainableFn: RemoteFunction<Params = (TrialConfig, Session), Output = ()> {}

impl<F: RemoteFunction<Params = (TrialConfig, Session), Output = ()>> TrainableFn for F {}

impl Tuner {
    /// A tuner for the trainable function `trainable` with default settings and an empty
    /// space.
    pub fn new<F: TrainableFn>(trainable: F) -> Self {
        let _ = trainable;
        Tuner::of(TrainableRef::Function(F::descriptor().id.to_string()))
    }

    /// A tuner for the class-style trainable `T` (registered with
    /// [`register_trainable!`](crate::register_trainable)): each trial makes a `T` from its
    /// config and steps it, reporting each step's metrics.
    pub fn with_class<T: super::Trainable>() -> Self {
        Tuner::of(TrainableRef::Class {
            name: std::any::type_name::<T>().to_string(),
            checkpoint_every: 1,
        })
    }

    fn of(trainable: TrainableRef) -> Self {
        Tuner {
            trainable,
            space: SearchSpace::new(),
            tune: TuneConfig::new(),
            run: RunConfig::new(),
            resume: None,
        }
    }

    /// Resumes the experiment whose files are in `dir` (Ray's `Tuner.restore`), for instance
    /// after its process was killed: trials that ended keep their results and are not run
    /// again; trials cut short run again from their latest checkpoint (from the start without
    /// one); the searcher gives the trials not yet made. Give the same trainable, and the
    /// space, scheduler and searcher again (`param_space`, `tune_config`); the experiment's
    /// metric, mode, number of samples and seed are read from its files.
    pub fn restore<F: TrainableFn>(
        dir: impl Into<PathBuf>,
        trainable: F,
    ) -> Result<Self, TuneError> {
        Tuner::new(trainable).resuming(dir.into())
    }

    /// Resumes a killed experiment of class `T` (see [`Tuner::restore`]).
    pub fn restore_class<T: super::Trainable>(dir: impl Into<PathBuf>) -> Result<Self, TuneError> {
        Tuner::with_class::<T>().resuming(dir.into())
    }

    fn resuming(mut self, dir: PathBuf) -> Result<Self, TuneError> {
        check_saved(&dir, self.trainable.id())?;
        self.resume = Some(dir);
        Ok(self)
    }

    /// For a class-style trainable: a checkpoint every `n` steps (default 1; 0: only at the
    /// end). A trainable function checkpoints when it reports with one.
    pub fn checkpoint_every(mut self, n: u64) -> Self {
        if let TrainableRef::Class {
            checkpoint_every, ..
        } = &mut self.trainable
        {
            *checkpoint_every = n;
        }
        self
    }

    /// The hyperparameters to search.
    pub fn param_space(mut self, space: SearchSpace) -> Self {
        self.space = space;
        self
    }

    /// How to search.
    pub fn tune_config(mut self, config: TuneConfig) -> Self {
        self.tune = config;
        self
    }

    /// Where results go and when trials stop.
    pub fn run_config(mut self, config: RunConfig) -> Self {
        self.run = config;
        self
    }

    /// Runs the experiment to its end; returns every trial's outcome.
    pub fn fit(self) -> Result<ResultGrid, TuneError> {
        Run::start(self.trainable, self.space, self.tune, self.run, self.resume)?.finish()
    }
}

/// Checks that the experiment in `dir` ran `trainable`.
fn check_saved(dir: &std::path::Path, trainable: &str) -> Result<(), TuneError> {
    let saved = super::storage::load(dir)?;
    if saved.meta.trainable != trainable {
        return Err(TuneError::InvalidConfig(format!(
            "the experiment in {} ran `{}`, not `{trainable}`",
            dir.display(),
            saved.meta.trainable,
        )));
    }
    Ok(())
}

/// Runs `trainable` over `space` (Ray's `tune.run`), with the default run settings but quiet
/// output (the final table only).
pub fn run<F: TrainableFn>(
    trainable: F,
    space: SearchSpace,
    config: TuneConfig,
) -> Result<ResultGrid, TuneError> {
    Tuner::new(trainable)
        .param_space(space)
        .tune_config(config)
        .run_config(RunConfig::new().verbose(1))
        .fit()
}

/// A running experiment: the tuner's side.
struct Run {
    trainable: TrainableRef,
    /// The experiment's key: its controller's, and for reports in place.
    key: u64,
    /// Lets trials on this node report in place while the experiment runs.
    _local: Option<controller::LocalReports>,
    shared: Shared,
    controller: TuneControllerHandle,
    searcher: Box<dyn Searcher>,
    files: Writer,
    tune: TuneConfig,
    run: RunConfig,
    max_concurrent: usize,
    /// Trials running: the ref to their attempt's end, and its actor (kept alive until the
    /// attempt ends).
    running: Vec<(usize, ObjectRef<()>, TrialActorHandle)>,
    restarts: VecDeque<usize>,
    /// Trials whose actor could not be made, with why.
    failed_to_start: Vec<(usize, String)>,
    exhausted: bool,
    shown_lines: usize,
    last_shown: Instant,
}

fn storage_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TuneError + '_ {
    move |source| TuneError::Storage {
        path: path.to_path_buf(),
        source,
    }
}

impl Run {
    fn start(
        trainable: TrainableRef,
        space: SearchSpace,
        mut tune: TuneConfig,
        mut run: RunConfig,
        resume: Option<PathBuf>,
    ) -> Result<Run, TuneError> {
        if !crate::is_initialized() {
            return Err(TuneError::NotInitialized);
        }
        trainable.check_here().map_err(TuneError::InvalidConfig)?;
        let saved = resume.as_deref().map(super::storage::load).transpose()?;
        if let Some(saved) = &saved {
            // A resumed experiment keeps what it was.
            tune.metric = saved.meta.metric.clone();
            tune.mode = saved.meta.mode;
            tune.num_samples = saved.meta.num_samples;
            tune.seed = saved.meta.seed;
            run.name = Some(saved.meta.name.clone());
        }
        if tune.num_samples == 0 {
            return Err(TuneError::InvalidConfig(
                "num_samples must be at least 1".into(),
            ));
        }
        if tune.scheduler.is_some() && tune.metric.is_none() {
            return Err(TuneError::InvalidConfig(
                "a scheduler needs TuneConfig::metric to compare trials".into(),
            ));
        }
        let trainable_id = trainable.id().to_string();
        let short = trainable_id.rsplit("::").next().unwrap_or("trainable");
        let name = run.name.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("{short}_{secs}")
        });
        let dir = match &resume {
            Some(dir) => dir.clone(),
            None => run
                .storage_path
                .clone()
                .unwrap_or_else(|| {
                    std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .unwrap_or_else(std::env::temp_dir)
                        .join("mobula_results")
                })
                .join(&name),
        };
        let meta = Meta {
            name: name.clone(),
            trainable: trainable_id.clone(),
            metric: tune.metric.clone(),
            mode: tune.mode,
            num_samples: tune.num_samples,
            seed: tune.seed,
        };
        let checkpoints = run.checkpoints.clone();
        let files = match &saved {
            Some(saved) => ResultFiles::reopen(dir.clone(), &meta, checkpoints, &saved.trials)
                .map_err(storage_error(&dir))?,
            None => {
                ResultFiles::create(dir.clone(), &meta, checkpoints).map_err(storage_error(&dir))?
            }
        };

        let mut searcher = tune
            .searcher
            .take()
            .unwrap_or_else(|| Box::new(RandomSearch::new()));
        searcher
            .setup(SearchSetup {
                space: &space,
                num_samples: tune.num_samples,
                seed: tune.seed,
            })
            .map_err(TuneError::InvalidConfig)?;
        let scheduler = tune.scheduler.take().unwrap_or_else(|| Box::new(Fifo));
        scheduler.check().map_err(TuneError::InvalidConfig)?;
        let mut experiment = Experiment::new(
            name,
            tune.metric.clone(),
            tune.mode,
            scheduler,
            run.stop.clone(),
        );
        let mut restarts = VecDeque::new();
        let mut files = files;
        if let Some(saved) = saved {
            // The searcher gives again what it gave (seeded: the same configs), skipped; the
            // ended trials tell it how they did.
            for t in &saved.trials {
                let _ = searcher.suggest();
                if matches!(t.status, TrialStatus::Terminated | TrialStatus::Error) {
                    let score = t.last_result().map(|r| experiment.score(r));
                    searcher.on_trial_complete(&t.config, score);
                }
            }
            restarts.extend(experiment.resume(saved.trials));
            files
                .rewrite_results(&experiment.trials)
                .map_err(storage_error(&dir))?;
        }
        let files = files.into_writer();
        let shared: Shared = Arc::new((Mutex::new(experiment), Instant::now()));
        let key = Rng::from_entropy().next_u64();
        controller::hand_off(key, Arc::clone(&shared));
        let mut options = TuneController::options();
        if let Some(here) = crate::context().node_id() {
            options = options.scheduling_strategy(SchedulingStrategy::NodeAffinity {
                node: here,
                soft: false,
            });
        }
        let local = crate::context()
            .node_id()
            .map(|home| controller::LocalReports::open(key, home, &shared));
        let controller = options.num_cpus(0).remote(key).map_err(|e| {
            controller::take_back(key);
            TuneError::Controller(e.to_string())
        })?;

        let max_concurrent = tune.max_concurrent_trials.unwrap_or_else(|| {
            let cpus = crate::node::cluster_resources()
                .get("CPU")
                .copied()
                .unwrap_or(1.0);
            if tune.cpus_per_trial > 0.0 {
                ((cpus / tune.cpus_per_trial).floor() as usize).max(1)
            } else {
                usize::MAX
            }
        });
        Ok(Run {
            trainable,
            key,
            _local: local,
            shared,
            controller,
            searcher,
            files,
            tune,
            run,
            max_concurrent,
            running: Vec::new(),
            restarts,
            failed_to_start: Vec::new(),
            exhausted: false,
            shown_lines: 0,
            last_shown: Instant::now(),
        })
    }

    /// The next trial to start: a failed one first, then a new one from the searcher.
    fn next_trial(&mut self) -> Result<Option<usize>, TuneError> {
        if let Some(t) = self.restarts.pop_front() {
            return Ok(Some(t));
        }
        let over_budget = self
            .run
            .stop
            .time_budget_value()
            .is_some_and(|b| self.shared.1.elapsed() >= b);
        if self.exhausted || over_budget {
            return Ok(None);
        }
        let Some(config) = self.searcher.suggest() else {
            self.exhausted = true;
            let mut e = controller::lock(&self.shared);
            e.search_finished();
            self.restarts.extend(e.resumable.drain(..));
            drop(e);
            return Ok(self.restarts.pop_front());
        };
        // Files are written outside the lock: trials report meanwhile.
        let id = controller::lock(&self.shared).add_trial(config.clone());
        let dir = self.files.dir().to_path_buf();
        self.files
            .add_trial(id, &config)
            .map_err(storage_error(&dir))?;
        Ok(Some(id))
    }

    fn launch(&mut self, trial: usize) {
        let (session, config) = {
            let mut e = controller::lock(&self.shared);
            let (attempt, checkpoint) = e.start(trial);
            let t = &e.trials[trial];
            let session = Session {
                trial,
                name: t.name.clone(),
                attempt,
                controller: self.controller.clone(),
                checkpoint,
                key: self.key,
                local: Default::default(),
            };
            (session, t.config.clone())
        };
        // The trial's actor holds the trial's resources for the attempt's life.
        let made = TrialActor::options()
            .num_cpus(self.tune.cpus_per_trial)
            .num_gpus(self.tune.gpus_per_trial)
            .remote(self.trainable.clone(), config);
        match made {
            Ok(actor) => {
                let end = actor.run(session);
                self.running.push((trial, end, actor));
            }
            Err(e) => self.failed_to_start.push((trial, e.to_string())),
        }
    }

    fn finish(mut self) -> Result<ResultGrid, TuneError> {
        loop {
            // Paused trials their scheduler lets go on.
            let resumable: Vec<usize> =
                controller::lock(&self.shared).resumable.drain(..).collect();
            self.restarts.extend(resumable);
            while self.running.len() < self.max_concurrent {
                match self.next_trial()? {
                    Some(trial) => self.launch(trial),
                    None => break,
                }
            }
            if self.running.is_empty() && self.failed_to_start.is_empty() {
                break;
            }
            let refs: Vec<ObjectRef<()>> = self.running.iter().map(|r| r.1.clone()).collect();
            let wait = self.run.progress_interval.min(Duration::from_millis(500));
            let ready: std::collections::HashSet<_> = match crate::wait(&refs, 1, Some(wait)) {
                Ok((ready, _)) => ready.iter().map(ObjectRef::id).collect(),
                Err(_) => Default::default(),
            };
            let (ended, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.running)
                .into_iter()
                .partition(|(_, r, _)| ready.contains(&r.id()));
            self.running = still;
            let ended = ended
                .into_iter()
                .map(|(trial, r, _actor)| (trial, r.get().map_err(|e| e.to_string())))
                .chain(
                    std::mem::take(&mut self.failed_to_start)
                        .into_iter()
                        .map(|(trial, why)| (trial, Err(why))),
                )
                .collect::<Vec<_>>();
            // A trial's results go to the files before the line saying it ended: killed in
            // between, the experiment must not resume a trial as ended without its results.
            self.flush()?;
            for (trial, outcome) in ended {
                let mut e = controller::lock(&self.shared);
                let ended = e.ended(trial, outcome, self.run.max_failures);
                let t = &e.trials[trial];
                if ended == Ended::Again {
                    self.restarts.push_back(trial);
                } else if ended == Ended::Done {
                    let dir = self.files.dir().to_path_buf();
                    self.files.trial_done(t).map_err(storage_error(&dir))?;
                    let score = t.last_result().map(|r| e.score(r));
                    let config = t.config.clone();
                    drop(e);
                    self.searcher.on_trial_complete(&config, score);
                }
            }
            self.flush()?;
            if self.run.verbose >= 2 && self.last_shown.elapsed() >= self.run.progress_interval {
                self.show_status();
            }
        }
        self.flush()?;
        let e = controller::lock(&self.shared);
        let dir = self.files.dir().to_path_buf();
        self.files.summary(&e).map_err(storage_error(&dir))?;
        // Everything written before the results are handed back.
        self.files.finish().map_err(storage_error(&dir))?;
        let grid = ResultGrid {
            trials: e
                .trials
                .iter()
                .map(|t| TrialResult::of(t, &e.name, self.files.trial_dir(t.id)))
                .collect(),
            metric: e.metric.clone(),
            mode: e.mode,
            path: dir,
        };
        if self.run.verbose >= 1 {
            let elapsed = self.shared.1.elapsed().as_secs_f64();
            let text = output::status(&e, elapsed, 40);
            drop(e);
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", self.erase());
            let _ = writeln!(out, "{text}Results in {}", grid.path.display());
        }
        self.controller.terminate();
        Ok(grid)
    }

    /// New results to the trials' files.
    fn flush(&mut self) -> Result<(), TuneError> {
        let fresh = std::mem::take(&mut controller::lock(&self.shared).fresh);
        if fresh.is_empty() {
            return Ok(());
        }
        if self.searcher.wants_results() {
            let heard: Vec<(TrialConfig, f64)> = {
                let e = controller::lock(&self.shared);
                fresh
                    .iter()
                    .map(|f| (e.trials[f.trial].config.clone(), e.score(&f.result)))
                    .collect()
            };
            for (config, score) in &heard {
                self.searcher.on_trial_result(config, *score);
            }
        }
        // Written on the files' thread: trials report and start meanwhile.
        let dir = self.files.dir().to_path_buf();
        self.files.append(fresh).map_err(storage_error(&dir))
    }

    /// On a terminal: the escape codes that erase the table shown last.
    fn erase(&self) -> String {
        if self.shown_lines > 0 && std::io::stdout().is_terminal() {
            format!("\x1b[{}A\x1b[J", self.shown_lines)
        } else {
            String::new()
        }
    }

    /// The status table: redrawn in place on a terminal, printed again otherwise.
    fn show_status(&mut self) {
        let text = {
            let e = controller::lock(&self.shared);
            output::status(&e, self.shared.1.elapsed().as_secs_f64(), 20)
        };
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{}{text}", self.erase());
        let _ = out.flush();
        self.shown_lines = text.lines().count();
        self.last_shown = Instant::now();
    }
}
