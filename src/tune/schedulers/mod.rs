//! Trial schedulers: pure state machines that see each trial's results and decide whether it
//! goes on. They know nothing of actors, tasks or time on the clock; the controller feeds them
//! [`Observation`]s and carries out their [`Decision`]s.

mod asha;
mod hyperband;
mod median;
mod pbt;

pub use asha::Asha;
pub use hyperband::HyperBand;
pub use median::MedianStopping;
pub use pbt::{Mutation, Pbt};

use crate::tune::space::TrialConfig;

/// A trial, as schedulers know it: its number in the experiment.
pub type TrialId = usize;

/// One reported result, as a scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The scheduler's time axis: the trial's iteration count (its number of reports) unless
    /// the scheduler asked for another attribute.
    pub time: f64,
    /// The objective, oriented so that larger is better (a minimised metric is negated).
    /// NaN when the result lacks the metric.
    pub score: f64,
}

/// What a scheduler decides after a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The trial goes on.
    Continue,
    /// The trial stops here (early stopping); its results so far stand.
    Stop,
    /// The trial pauses (its resources freed) until the scheduler lets it go on
    /// ([`TrialScheduler::take_paused_decisions`]); it then runs again from its latest
    /// checkpoint.
    Pause,
    /// The trial goes on from `donor`'s latest checkpoint with `config` (PBT's exploit and
    /// explore). Without a checkpoint of the donor's it just goes on.
    Exploit {
        /// The trial whose checkpoint it continues from.
        donor: TrialId,
        /// Its new hyperparameters.
        config: TrialConfig,
    },
}

/// A trial scheduler (Ray's `TrialScheduler`).
pub trait TrialScheduler: Send {
    /// Its name, for the status output.
    fn name(&self) -> &'static str;

    /// The result attribute the scheduler's time is measured in (`training_iteration`, or a
    /// metric the trainable reports).
    fn time_attr(&self) -> &str {
        "training_iteration"
    }

    /// Checks the scheduler's settings before the experiment starts.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// A trial was added, with its config.
    fn on_trial_add(&mut self, _trial: TrialId, _config: &TrialConfig) {}

    /// A trial reported; returns what it should do.
    fn on_result(&mut self, trial: TrialId, observation: Observation) -> Decision;

    /// A trial ended (finished, stopped or failed for good).
    fn on_trial_complete(&mut self, _trial: TrialId) {}

    /// No more trials will be added.
    fn on_search_finished(&mut self) {}

    /// Paused trials to go on, and paused trials to stop, decided since the last call.
    fn take_paused_decisions(&mut self) -> (Vec<TrialId>, Vec<TrialId>) {
        (Vec::new(), Vec::new())
    }
}

/// Runs every trial to its end (Ray's `FIFOScheduler`).
#[derive(Debug, Clone, Default)]
pub struct Fifo;

impl TrialScheduler for Fifo {
    fn name(&self) -> &'static str {
        "FIFO"
    }

    fn on_result(&mut self, _: TrialId, _: Observation) -> Decision {
        Decision::Continue
    }
}

/// The `q`-quantile (0..=1) of `values` with linear interpolation between the closest ranks,
/// ignoring NaNs (numpy's `nanpercentile`, default method). `None` if nothing is left.
pub(crate) fn nan_quantile(values: impl IntoIterator<Item = f64>, q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_as_numpy_does() {
        assert_eq!(nan_quantile([1.0, 2.0, 3.0, 4.0], 0.75), Some(3.25));
        assert_eq!(nan_quantile([5.0], 0.75), Some(5.0));
        assert_eq!(nan_quantile([f64::NAN, 1.0, 3.0], 0.5), Some(2.0));
        assert_eq!(nan_quantile([f64::NAN], 0.5), None);
        assert_eq!(nan_quantile([4.0, 1.0, 2.0, 3.0], 0.0), Some(1.0));
    }

    #[test]
    fn fifo_never_stops_a_trial() {
        let mut s = Fifo;
        for t in 0..5 {
            let o = Observation {
                time: t as f64,
                score: -(t as f64),
            };
            assert_eq!(s.on_result(t, o), Decision::Continue);
        }
    }
}
