//! Class-style trainables (Ray's `tune.Trainable`): an object set up from the trial's config,
//! stepped by Tune one iteration at a time, saved to checkpoints and restored from them.
//!
//! Every trial, of a function or of a class, is an actor ([`TrialActor`]) placed with the
//! trial's resources on any node. A class's object is made there by name from a registry
//! every node of the binary shares ([`register_trainable!`](crate::register_trainable)),
//! restored from the trial's latest checkpoint if it has one, then stepped; each step's
//! metrics are reported, with a checkpoint every `checkpoint_every` steps (default 1). The
//! trial ends when its scheduler or a stop criterion ends it, or when a step reports
//! `done` >= 1; a restarted, resumed or exploited trial is a new actor, restored.

use super::session::{Checkpoint, Metrics, ReportError, Session};
use serde::{Deserialize, Serialize};

use super::space::TrialConfig;

/// A class-style trainable.
///
/// ```no_run
/// use mobula::tune::{self, Checkpoint, Metrics, Trainable, TrialConfig};
///
/// struct Model { weight: f64, lr: f64 }
///
/// impl Trainable for Model {
///     fn setup(config: &TrialConfig) -> Result<Self, String> {
///         Ok(Model { weight: 0.0, lr: config.get("lr").map_err(|e| e.to_string())? })
///     }
///     fn step(&mut self) -> Result<Metrics, String> {
///         self.weight += self.lr * (1.0 - self.weight);
///         Ok([("weight".to_string(), self.weight)].into_iter().collect())
///     }
///     fn save(&self) -> Option<Checkpoint> {
///         Checkpoint::from_value(&self.weight).ok()
///     }
///     fn restore(&mut self, checkpoint: &Checkpoint) -> Result<(), String> {
///         self.weight = checkpoint.to_value().map_err(|e| e.to_string())?;
///         Ok(())
///     }
/// }
/// mobula::register_trainable!(Model);
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let _mobula = mobula::init(mobula::Config::default())?;
/// let results = tune::Tuner::with_class::<Model>()
///     .param_space(tune::SearchSpace::new().param("lr", tune::loguniform(1e-3, 1.0)))
///     .tune_config(tune::TuneConfig::new().metric("weight").num_samples(4))
///     .run_config(tune::RunConfig::new().stop(tune::StopCriteria::new().max_iterations(20)))
///     .fit()?;
/// # Ok(())
/// # }
/// ```
pub trait Trainable: Sized + Send + 'static {
    /// Makes the object from the trial's config.
    fn setup(config: &TrialConfig) -> Result<Self, String>;

    /// One iteration; returns its metrics (`done` >= 1 ends the trial).
    fn step(&mut self) -> Result<Metrics, String>;

    /// Its state, to resume from (`None`: it cannot be saved, and a restarted or resumed
    /// trial starts over).
    fn save(&self) -> Option<Checkpoint> {
        None
    }

    /// Takes back a state [`save`](Self::save) made.
    fn restore(&mut self, _checkpoint: &Checkpoint) -> Result<(), String> {
        Ok(())
    }
}

/// A trainable object of a registered class, its type erased.
#[doc(hidden)]
pub trait Stepper: Send {
    fn step(&mut self) -> Result<Metrics, String>;
    fn save(&self) -> Option<Checkpoint>;
    fn restore(&mut self, checkpoint: &Checkpoint) -> Result<(), String>;
}

impl<T: Trainable> Stepper for T {
    fn step(&mut self) -> Result<Metrics, String> {
        Trainable::step(self)
    }

    fn save(&self) -> Option<Checkpoint> {
        Trainable::save(self)
    }

    fn restore(&mut self, checkpoint: &Checkpoint) -> Result<(), String> {
        Trainable::restore(self, checkpoint)
    }
}

/// A registered trainable class: its name and how to make one.
#[doc(hidden)]
pub struct TrainableClass {
    pub name: fn() -> &'static str,
    pub make: fn(&TrialConfig) -> Result<Box<dyn Stepper>, String>,
}

fn make<T: Trainable>(config: &TrialConfig) -> Result<Box<dyn Stepper>, String> {
    T::setup(config).map(|t| Box::new(t) as Box<dyn Stepper>)
}

impl TrainableClass {
    /// The entry for class `T`.
    pub const fn of<T: Trainable>() -> Self {
        TrainableClass {
            name: std::any::type_name::<T>,
            make: make::<T>,
        }
    }
}

inventory::collect!(TrainableClass);

/// The class registered under `name`, if this binary has it.
pub(crate) fn find_class(name: &str) -> Option<&'static TrainableClass> {
    inventory::iter::<TrainableClass>
        .into_iter()
        .find(|c| (c.name)() == name)
}

/// Registers a [`Trainable`] class so that any node of this binary can make its trials:
/// `mobula::register_trainable!(Model);` at module level.
#[macro_export]
macro_rules! register_trainable {
    ($t:ty) => {
        $crate::__private::inventory::submit! {
            $crate::tune::TrainableClass::of::<$t>()
        }
    };
}

fn make_by_name(name: &str, config: &TrialConfig) -> Result<Box<dyn Stepper>, String> {
    let class = find_class(name).ok_or_else(|| {
        format!("the trainable class `{name}` is not registered on this node: add `mobula::register_trainable!(...)` for it")
    })?;
    (class.make)(config)
}

/// Restores `trainable` from the session's checkpoint, then steps it and reports each step
/// (with a checkpoint every `every` steps and at the end) until the trial is told to end or
/// a step says `done`.
fn step_until_told(
    trainable: &mut dyn Stepper,
    session: &Session,
    every: u64,
) -> Result<(), String> {
    let mut iteration = 0;
    if let Some(checkpoint) = session.checkpoint() {
        trainable.restore(checkpoint)?;
        iteration = checkpoint.iteration();
    }
    loop {
        let metrics = trainable.step()?;
        iteration += 1;
        let done = metrics.get("done").is_some_and(|d| *d >= 1.0);
        let checkpoint = if done || (every > 0 && iteration % every == 0) {
            trainable.save()
        } else {
            None
        };
        let reported = match checkpoint {
            Some(c) => session.report_with_checkpoint(metrics, c),
            None => session.report(metrics),
        };
        match reported {
            Ok(()) if !done => {}
            Ok(()) | Err(ReportError::Stopped) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// What a trial runs: a trainable function by its registered id, or a trainable class by
/// its registered name with how often its trials checkpoint.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainableRef {
    /// A `#[mobula::remote] fn(TrialConfig, Session) -> Result<(), E>`.
    Function(String),
    /// A [`Trainable`] registered with [`register_trainable!`](crate::register_trainable).
    Class {
        /// Its name (`std::any::type_name`).
        name: String,
        /// A checkpoint every this many steps (0: only at the end).
        checkpoint_every: u64,
    },
}

impl TrainableRef {
    /// The id the experiment's files record.
    pub(crate) fn id(&self) -> &str {
        match self {
            TrainableRef::Function(id) => id,
            TrainableRef::Class { name, .. } => name,
        }
    }

    /// Whether this node can run it (the same binary runs on every node of a cluster).
    pub(crate) fn check_here(&self) -> Result<(), String> {
        match self {
            TrainableRef::Function(id) if crate::runtime::registry::find(id).is_none() => {
                Err(format!(
                    "the trainable function `{id}` is not a registered remote function of this binary"
                ))
            }
            TrainableRef::Class { name, .. } if find_class(name).is_none() => Err(format!(
                "the trainable class `{name}` is not registered: add `mobula::register_trainable!(...)` for it"
            )),
            _ => Ok(()),
        }
    }
}

/// What a trial actor holds.
enum Held {
    /// A trainable function, run in place by its registered id, and the trial's config.
    Function {
        call: crate::runtime::registry::CallHere,
        config: TrialConfig,
    },
    /// The object of a trainable class.
    Class {
        object: std::sync::Mutex<Box<dyn Stepper>>,
        checkpoint_every: u64,
    },
}

/// A trial: an actor placed with the trial's resources on any node, holding what it runs.
/// A trainable function is found there by its registered id and a class's object is made by
/// its class's name (every node runs the same binary). Each attempt of a trial (a restart,
/// a resume, a PBT exploit) is a new actor, started from the trial's latest checkpoint.
#[crate::actor]
pub struct TrialActor {
    held: Held,
}

#[crate::actor]
impl TrialActor {
    fn new(trainable: TrainableRef, config: TrialConfig) -> Result<Self, String> {
        trainable.check_here()?;
        let held = match trainable {
            TrainableRef::Function(id) => Held::Function {
                call: crate::runtime::registry::find(&id)
                    .ok_or("the trainable function vanished")?
                    .call_here,
                config,
            },
            TrainableRef::Class {
                name,
                checkpoint_every,
            } => Held::Class {
                object: std::sync::Mutex::new(make_by_name(&name, &config)?),
                checkpoint_every,
            },
        };
        Ok(TrialActor { held })
    }

    /// Runs the attempt to its end: the function's body, or the object restored, then
    /// stepped and reported until the trial is told to end.
    fn run(&self, session: Session) -> Result<(), String> {
        match &self.held {
            Held::Function { call, config } => {
                let mut args = vec![Vec::new(), Vec::new()];
                crate::object::codec::write(config, &mut args[0])?;
                crate::object::codec::write(&session, &mut args[1])?;
                call(&args).map(drop).map_err(|e| e.0)
            }
            Held::Class {
                object,
                checkpoint_every,
            } => {
                let mut object = object.lock().unwrap_or_else(|e| e.into_inner());
                step_until_told(object.as_mut(), &session, *checkpoint_every)
            }
        }
    }
}
