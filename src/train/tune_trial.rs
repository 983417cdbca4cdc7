//! A trainer as a Tune trainable (Ray's `Tuner(trainer, param_space=...)`): each trial runs
//! the trainer with the trial's config as the train loop's config, forwards rank 0's
//! metrics of each round to Tune (with the round's checkpoint), and resumes from the
//! trial's checkpoint when Tune runs it again.

use serde::{Deserialize, Serialize};

use super::checkpoint::TrainCheckpoint;
use super::config::{RunConfig, ScalingConfig};
use super::error::TrainError;
use super::trainer::{DataParallelTrainer, TrainLoop};
use crate::tune::{Checkpoint, SearchSpace, Session, TrialConfig, Tuner};

/// The config key that carries the trainer's settings to each trial.
const KEY: &str = "__mobula_trainer";

#[derive(Serialize, Deserialize)]
struct Spec {
    function: String,
    scaling: ScalingConfig,
    run: RunConfig,
}

/// A tuner whose trials each run data-parallel training: `train_loop` gets the trial's
/// config (drawn from `space`), on the workers of `scaling`; `run` gives each trial's
/// failures tolerated and checkpoints kept (its name and storage are the trial's). Set the
/// Tune config and the tuner's own run config on the returned tuner.
pub fn tuner<F: TrainLoop<TrialConfig>>(
    train_loop: F,
    scaling: ScalingConfig,
    run: RunConfig,
    space: SearchSpace,
) -> Tuner {
    let _ = train_loop;
    let spec = Spec {
        function: F::descriptor().id.to_string(),
        scaling,
        run,
    };
    Tuner::new(train_trial).param_space(space.constant(KEY, spec))
}

/// One Tune trial of a trainer.
#[crate::remote]
fn train_trial(config: TrialConfig, session: Session) -> Result<(), TrainError> {
    let spec: Spec = config
        .get(KEY)
        .map_err(|e| TrainError::Invalid(format!("a trainer trial's settings: {e}")))?;
    let mut json = config.as_json().clone();
    if let Some(map) = json.as_object_mut() {
        map.remove(KEY);
    }
    let loop_config = TrialConfig::from_json(json);
    let mut bytes = Vec::new();
    let encoded = crate::object::codec::write(&loop_config, &mut bytes).map(|()| bytes);
    let run = spec
        .run
        .clone()
        .name(format!("{}_train", session.trial_name()));
    let mut trainer = DataParallelTrainer::with_function(spec.function, encoded)
        .scaling_config(spec.scaling)
        .run_config(run);
    if let Some(cp) = session.checkpoint() {
        let resumed: TrainCheckpoint = cp
            .to_value()
            .map_err(|e| TrainError::Codec(format!("the trial's checkpoint: {e}")))?;
        trainer = trainer.resume_from_checkpoint(resumed);
    }
    let forward = session.clone();
    let trainer = trainer.on_round(Box::new(move |done| {
        let reported = match &done.checkpoint {
            Some(cp) => match Checkpoint::from_value(cp) {
                Ok(cp) => forward.report_with_checkpoint(done.metrics.clone(), cp),
                Err(_) => forward.report(done.metrics.clone()),
            },
            None => forward.report(done.metrics.clone()),
        };
        reported.is_ok()
    }));
    let result = trainer.fit()?;
    match result.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
