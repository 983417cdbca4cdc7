//! Class-style trainables (Ray's `tune.Trainable`): an object set up from the trial's config,
//! stepped by Tune one iteration at a time, saved to checkpoints and restored from them.
//!
//! A trial of a class is an actor ([`ClassTrial`]) holding the object, placed with the trial's
//! resources on any node: the object is made there by name from a registry every node of the
//! binary shares ([`register_trainable!`](crate::register_trainable)), restored from the
//! trial's latest checkpoint if it has one, then stepped; each step's metrics are reported,
//! with a checkpoint every `checkpoint_every` steps (default 1). The trial ends when its
//! scheduler or a stop criterion ends it, or when a step reports `done` >= 1; a restarted,
//! resumed or exploited trial is a new actor, restored.

use super::session::{Checkpoint, Metrics, ReportError, Session};
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

/// What Tuner::with_class is built on: a trainable function that runs class `class` of the
/// session in this task. The tuner does not call it (it runs each trial of a class as a
/// [`ClassTrial`] actor); it is kept for running one trial of a class as a plain task.
#[crate::remote]
pub fn class_trial(config: TrialConfig, session: Session) -> Result<(), String> {
    let (name, every) = session
        .class
        .clone()
        .ok_or("this trial has no trainable class")?;
    let mut trainable = make_by_name(&name, &config)?;
    step_until_told(trainable.as_mut(), &session, every)
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

/// A trial of a class-style trainable: an actor holding the object, placed with the trial's
/// resources on any node (the object is made there by its class's name). Each attempt of the
/// trial is a new actor, restored from the trial's latest checkpoint.
#[crate::actor]
pub struct ClassTrial {
    trainable: std::sync::Mutex<Box<dyn Stepper>>,
}

#[crate::actor]
impl ClassTrial {
    fn new(class: String, config: TrialConfig) -> Result<Self, String> {
        Ok(ClassTrial {
            trainable: std::sync::Mutex::new(make_by_name(&class, &config)?),
        })
    }

    /// Runs the attempt: restore, then step and report until told to end.
    fn run(&self, session: Session, every: u64) -> Result<(), String> {
        let mut trainable = self.trainable.lock().unwrap_or_else(|e| e.into_inner());
        step_until_told(trainable.as_mut(), &session, every)
    }
}
