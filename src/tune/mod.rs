//! Hyperparameter search (Ray Tune): run many trials of a trainable over a search space,
//! stop the poor ones early, keep the best.
//!
//! - `space`: the search space and the config a trial reads (`uniform`, `choice`, `grid_search`, ...).
//! - `search`: where configs come from ([`RandomSearch`], [`Tpe`], the [`Searcher`] trait).
//! - `schedulers`: pure state machines deciding whether a trial goes on ([`Fifo`], [`Asha`]).
//! - `experiment`: the experiment's state (trials, results, statuses), pure.
//! - `session`: what a trainable gets: [`Session::report`], [`Checkpoint`].
//! - `trainable`: class-style trainables ([`Trainable`]: setup, step, save, restore), and the
//!   actor every trial runs in.
//! - `controller`: the actor trials report to.
//! - `tuner`: [`Tuner`] and [`run`]: the loop that starts trials and collects their ends.
//! - `result`: [`ResultGrid`], the best trial by metric, mode and scope.
//! - `output`: the status table and the results table.
//! - `storage`: the experiment's files, and reading them back to resume it.
//!
//! The lecture's experiment:
//!
//! ```no_run
//! use mobula::tune::{self, ReportError, Session, TrialConfig};
//!
//! #[mobula::remote]
//! fn objective(config: TrialConfig, session: Session) -> Result<(), ReportError> {
//!     let a: f64 = config.get("a").unwrap();
//!     let b: f64 = config.get("b").unwrap();
//!     for step in 0..100 {
//!         session.report([("score", a * step as f64 + b)])?;
//!     }
//!     Ok(())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let _mobula = mobula::init(mobula::Config::default())?;
//! let results = tune::run(
//!     objective,
//!     tune::SearchSpace::new()
//!         .param("a", tune::uniform(0.0, 1.0))
//!         .param("b", tune::uniform(0.0, 20.0)),
//!     tune::TuneConfig::new()
//!         .metric("score")
//!         .mode(tune::Mode::Max)
//!         .num_samples(10)
//!         .scheduler(tune::Asha::new()),
//! )?;
//! println!("best config: {:?}", results.best_config());
//! # Ok(())
//! # }
//! ```

mod config;
mod controller;
mod experiment;
mod output;
mod result;
pub(crate) mod retention;
pub mod rng;
pub mod schedulers;
mod search;
mod session;
mod space;
mod storage;
mod trainable;
mod tuner;

pub use config::{RunConfig, TuneConfig, TuneError};
#[doc(hidden)]
pub use controller::{TuneController, TuneControllerHandle};
pub use experiment::{Mode, ReportedResult, StopCriteria, TrialStatus};
pub use result::{ResultGrid, Scope, TrialResult};
pub use schedulers::{
    Asha, Decision, Fifo, HyperBand, MedianStopping, Mutation, Observation, Pbt, TrialScheduler,
};
pub use search::{RandomSearch, SearchSetup, Searcher, Tpe};
pub use session::{Checkpoint, CheckpointError, IntoMetrics, Metrics, ReportError, Session};
pub use space::{
    ConfigError, Domain, SearchSpace, TrialConfig, choice, grid_search, lograndint, loguniform,
    qloguniform, qrandint, quniform, randint, randn, sample_from, uniform,
};
pub use storage::{CheckpointConfig, RestoreError};
pub use trainable::Trainable;
#[doc(hidden)]
pub use trainable::{Stepper, TrainableClass, TrainableRef, TrialActor, TrialActorHandle};
pub use tuner::{TrainableFn, Tuner, run};
