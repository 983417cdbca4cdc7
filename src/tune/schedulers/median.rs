//! The median stopping rule (Ray's `MedianStoppingRule`): after a grace period, a trial whose
//! best score so far is below the median of the other trials' running means (their mean
//! score up to the same time) is stopped, once enough other trials have reported.

use std::collections::HashMap;

use super::{Decision, Observation, TrialId, TrialScheduler, nan_quantile};
use crate::tune::space::lt;

/// The median stopping rule. Defaults: time in `training_iteration`, grace period 1, at least
/// 3 other trials before anyone is stopped.
#[derive(Debug, Clone)]
pub struct MedianStopping {
    time_attr: String,
    grace_period: f64,
    min_samples_required: usize,
    /// Each trial's (time, score) results, in order.
    history: HashMap<TrialId, Vec<(f64, f64)>>,
}

impl Default for MedianStopping {
    fn default() -> Self {
        MedianStopping {
            time_attr: "training_iteration".into(),
            grace_period: 1.0,
            min_samples_required: 3,
            history: HashMap::new(),
        }
    }
}

impl MedianStopping {
    /// The rule with the defaults.
    pub fn new() -> Self {
        MedianStopping::default()
    }

    /// No trial is stopped before this time.
    pub fn grace_period(mut self, t: impl Into<f64>) -> Self {
        self.grace_period = t.into();
        self
    }

    /// How many other trials must have reported before a trial can be stopped.
    pub fn min_samples_required(mut self, n: usize) -> Self {
        self.min_samples_required = n.max(1);
        self
    }

    /// The result attribute time is measured in (default `training_iteration`).
    pub fn time_attr(mut self, name: impl Into<String>) -> Self {
        self.time_attr = name.into();
        self
    }

    fn running_mean(results: &[(f64, f64)], until: f64) -> Option<f64> {
        let scores: Vec<f64> = results
            .iter()
            .filter(|(t, s)| *t <= until && !s.is_nan())
            .map(|r| r.1)
            .collect();
        (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
    }
}

impl TrialScheduler for MedianStopping {
    fn name(&self) -> &'static str {
        "MedianStopping"
    }

    fn time_attr(&self) -> &str {
        &self.time_attr
    }

    fn check(&self) -> Result<(), String> {
        if lt(self.grace_period, 0.0) {
            return Err(format!(
                "MedianStopping needs grace_period >= 0, got {}",
                self.grace_period
            ));
        }
        Ok(())
    }

    fn on_result(&mut self, trial: TrialId, o: Observation) -> Decision {
        self.history
            .entry(trial)
            .or_default()
            .push((o.time, o.score));
        if o.time < self.grace_period {
            return Decision::Continue;
        }
        let others: Vec<f64> = self
            .history
            .iter()
            .filter(|(t, _)| **t != trial)
            .filter_map(|(_, results)| Self::running_mean(results, o.time))
            .collect();
        if others.len() < self.min_samples_required {
            return Decision::Continue;
        }
        let Some(median) = nan_quantile(others, 0.5) else {
            return Decision::Continue;
        };
        let best = self.history[&trial]
            .iter()
            .map(|r| r.1)
            .filter(|s| !s.is_nan())
            .fold(f64::NEG_INFINITY, f64::max);
        if best < median {
            Decision::Stop
        } else {
            Decision::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: f64, score: f64) -> Observation {
        Observation { time, score }
    }

    #[test]
    fn a_trial_whose_best_is_below_the_median_of_running_means_stops() {
        let mut m = MedianStopping::new()
            .grace_period(2)
            .min_samples_required(2);
        // Trials 0 and 1 report 10 and 20 at times 1 and 2.
        for t in [1.0, 2.0] {
            assert_eq!(m.on_result(0, at(t, 10.0)), Decision::Continue);
            assert_eq!(m.on_result(1, at(t, 20.0)), Decision::Continue);
        }
        // Trial 2 within its grace period goes on whatever it scores.
        assert_eq!(m.on_result(2, at(1.0, 0.0)), Decision::Continue);
        // At time 2: the others' running means are 10 and 20, median 15; its best is 12.
        assert_eq!(m.on_result(2, at(2.0, 12.0)), Decision::Stop);
        // Trial 3 with a best of 16 goes on.
        assert_eq!(m.on_result(3, at(2.0, 16.0)), Decision::Continue);
        assert!(MedianStopping::new().grace_period(-1).check().is_err());
    }

    #[test]
    fn too_few_other_trials_stop_nobody() {
        let mut m = MedianStopping::new()
            .grace_period(0)
            .min_samples_required(3);
        m.on_result(0, at(1.0, 100.0));
        m.on_result(1, at(1.0, 100.0));
        assert_eq!(m.on_result(2, at(1.0, -5.0)), Decision::Continue);
        // A third other trial: now it can be stopped.
        m.on_result(3, at(1.0, 100.0));
        assert_eq!(m.on_result(2, at(2.0, -5.0)), Decision::Stop);
    }
}
