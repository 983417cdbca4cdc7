//! ASHA, asynchronous successive halving (Ray's `ASHAScheduler` / `AsyncHyperBandScheduler`).
//!
//! Each bracket has rungs at `grace_period * rf^k` (k counting up from the bracket's index)
//! below `max_t`. A trial that reaches a rung it has not yet passed records its score there;
//! it is stopped if that score is below the `1 - 1/rf` quantile of the scores recorded at the
//! rung before it. A trial that reaches `max_t` stops (it has had its whole budget). With
//! several brackets a new trial joins one at random, weighted towards those with more rungs.
//!
//! The paper's promotion variant is [`Asha::promotion`]: a trial is kept at a rung only if
//! it is in the top `1/rf` of the scores recorded there so far, counting itself; otherwise
//! it stops.

use std::collections::HashMap;

use super::{Decision, Observation, TrialId, TrialScheduler, nan_quantile};
use crate::tune::rng::Rng;
use crate::tune::space::{TrialConfig, lt};

/// The ASHA scheduler. Defaults as Ray's: `max_t` 100, `grace_period` 1,
/// `reduction_factor` 4, one bracket.
#[derive(Debug, Clone)]
pub struct Asha {
    time_attr: String,
    max_t: f64,
    grace_period: f64,
    reduction_factor: f64,
    brackets: usize,
    promotion: bool,
    seed: u64,
    state: Option<State>,
}

#[derive(Debug, Clone)]
struct State {
    brackets: Vec<Bracket>,
    trial_bracket: HashMap<TrialId, usize>,
    rng: Rng,
}

#[derive(Debug, Clone)]
struct Bracket {
    /// (milestone, scores recorded there by trial), highest milestone first.
    rungs: Vec<(f64, HashMap<TrialId, f64>)>,
}

impl Default for Asha {
    fn default() -> Self {
        Asha {
            time_attr: "training_iteration".into(),
            max_t: 100.0,
            grace_period: 1.0,
            reduction_factor: 4.0,
            brackets: 1,
            promotion: false,
            seed: 0,
            state: None,
        }
    }
}

impl Asha {
    /// ASHA with Ray's defaults.
    pub fn new() -> Self {
        Asha::default()
    }

    /// The most time a trial gets (in `time_attr` units).
    pub fn max_t(mut self, t: impl Into<f64>) -> Self {
        self.max_t = t.into();
        self
    }

    /// The least time a trial gets before it can be stopped.
    pub fn grace_period(mut self, t: impl Into<f64>) -> Self {
        self.grace_period = t.into();
        self
    }

    /// Keep about `1/rf` of the trials at each rung.
    pub fn reduction_factor(mut self, rf: impl Into<f64>) -> Self {
        self.reduction_factor = rf.into();
        self
    }

    /// How many brackets (each starts its rungs one step higher).
    pub fn brackets(mut self, n: usize) -> Self {
        self.brackets = n.max(1);
        self
    }

    /// The result attribute time is measured in (default `training_iteration`).
    pub fn time_attr(mut self, name: impl Into<String>) -> Self {
        self.time_attr = name.into();
        self
    }

    /// The paper's rule instead of Ray's: keep a trial at a rung only if it is in the top
    /// `1/rf` there, counting itself.
    pub fn promotion(mut self, yes: bool) -> Self {
        self.promotion = yes;
        self
    }

    /// Seeds the choice of bracket.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn validate(&self) -> Result<(), String> {
        if !(lt(0.0, self.grace_period) && lt(self.grace_period, self.max_t)) {
            return Err(format!(
                "ASHA needs 0 < grace_period < max_t, got {} and {}",
                self.grace_period, self.max_t
            ));
        }
        if !lt(1.0, self.reduction_factor) {
            return Err(format!(
                "ASHA needs reduction_factor > 1, got {}",
                self.reduction_factor
            ));
        }
        Ok(())
    }

    fn state(&mut self) -> &mut State {
        let (min_t, max_t, rf) = (self.grace_period, self.max_t, self.reduction_factor);
        let (brackets, seed) = (self.brackets, self.seed);
        self.state.get_or_insert_with(|| {
            let max_rungs = ((max_t / min_t).ln() / rf.ln() + 1.0).floor().max(1.0) as usize;
            let brackets = (0..brackets)
                .map(|s| Bracket {
                    rungs: (0..max_rungs.saturating_sub(s))
                        .rev()
                        .map(|k| (min_t * rf.powi((k + s) as i32), HashMap::new()))
                        .collect(),
                })
                .collect();
            State {
                brackets,
                trial_bracket: HashMap::new(),
                rng: Rng::seeded(seed),
            }
        })
    }

    /// The milestones of bracket `b`, lowest first (for tests and the status output).
    pub fn milestones(&mut self, b: usize) -> Vec<f64> {
        let mut m: Vec<f64> = self.state().brackets[b].rungs.iter().map(|r| r.0).collect();
        m.reverse();
        m
    }
}

impl TrialScheduler for Asha {
    fn name(&self) -> &'static str {
        "ASHA"
    }

    fn time_attr(&self) -> &str {
        &self.time_attr
    }

    fn check(&self) -> Result<(), String> {
        self.validate()
    }

    fn on_trial_add(&mut self, trial: TrialId, _config: &TrialConfig) {
        let state = self.state();
        let sizes: Vec<f64> = state
            .brackets
            .iter()
            .map(|b| b.rungs.len() as f64)
            .collect();
        let top = sizes.iter().copied().fold(f64::MIN, f64::max);
        let weights: Vec<f64> = sizes.iter().map(|s| (s - top).exp()).collect();
        let mut pick = state.rng.unit() * weights.iter().sum::<f64>();
        let mut chosen = weights.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                chosen = i;
                break;
            }
            pick -= w;
        }
        state.trial_bracket.insert(trial, chosen);
    }

    fn on_result(&mut self, trial: TrialId, o: Observation) -> Decision {
        let (max_t, rf, promotion) = (self.max_t, self.reduction_factor, self.promotion);
        if !self.state().trial_bracket.contains_key(&trial) {
            self.on_trial_add(trial, &TrialConfig::default());
        }
        if o.time >= max_t {
            return Decision::Stop; // its whole budget is spent
        }
        let state = self.state();
        let bracket = &mut state.brackets[state.trial_bracket[&trial]];
        let mut decision = Decision::Continue;
        for (milestone, recorded) in bracket.rungs.iter_mut() {
            if o.time < *milestone || recorded.contains_key(&trial) {
                continue;
            }
            if promotion {
                // Keep the trial if it is within the top 1/rf here, itself included.
                let better = recorded.values().filter(|&&s| s > o.score).count();
                let keep = ((recorded.len() + 1) as f64 / rf).ceil().max(1.0) as usize;
                if o.score.is_nan() || better >= keep {
                    decision = Decision::Stop;
                }
            } else if let Some(cutoff) = nan_quantile(recorded.values().copied(), 1.0 - 1.0 / rf)
                && o.score < cutoff
            {
                decision = Decision::Stop;
            }
            recorded.insert(trial, o.score);
            break;
        }
        decision
    }

    fn on_trial_complete(&mut self, trial: TrialId) {
        // Its scores stay recorded at the rungs it passed: later trials are judged against them.
        let _ = trial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(time: f64, score: f64) -> Observation {
        Observation { time, score }
    }

    #[test]
    fn rungs_sit_at_grace_period_times_powers_of_rf_below_max_t() {
        let mut a = Asha::new().max_t(100).grace_period(1).reduction_factor(4);
        assert_eq!(a.milestones(0), vec![1.0, 4.0, 16.0, 64.0]);
        let mut b = Asha::new()
            .max_t(81)
            .grace_period(1)
            .reduction_factor(3)
            .brackets(3);
        assert_eq!(b.milestones(0), vec![1.0, 3.0, 9.0, 27.0, 81.0]);
        assert_eq!(b.milestones(1), vec![3.0, 9.0, 27.0, 81.0]);
        assert_eq!(b.milestones(2), vec![9.0, 27.0, 81.0]);
        assert!(Asha::new().reduction_factor(1).check().is_err());
        assert!(Asha::new().grace_period(200).check().is_err());
    }

    #[test]
    fn a_trial_below_the_rungs_quantile_stops_and_the_rest_go_on() {
        let mut a = Asha::new().max_t(100).grace_period(1).reduction_factor(2);
        // Rungs at 1, 2, 4, ..., 64. Four trials reach rung 1 with scores 10, 20, 30, 5.
        assert_eq!(a.on_result(0, obs(1.0, 10.0)), Decision::Continue); // first: no cutoff
        assert_eq!(a.on_result(1, obs(1.0, 20.0)), Decision::Continue); // cutoff 10
        assert_eq!(a.on_result(2, obs(1.0, 30.0)), Decision::Continue); // cutoff 15
        assert_eq!(a.on_result(3, obs(1.0, 5.0)), Decision::Stop); // cutoff 20
        // Between rungs nothing is decided.
        assert_eq!(a.on_result(0, obs(1.5, -100.0)), Decision::Continue);
        // At rung 2: 0 records 10, then 1 with 9 is below the median of [10] = 10.
        assert_eq!(a.on_result(0, obs(2.0, 10.0)), Decision::Continue);
        assert_eq!(a.on_result(1, obs(2.0, 9.0)), Decision::Stop);
        // A trial is judged once per rung: reporting again at the same time passes.
        assert_eq!(a.on_result(1, obs(2.0, 9.0)), Decision::Continue);
        // Reaching max_t stops the trial (its budget is spent).
        assert_eq!(a.on_result(2, obs(100.0, 1e9)), Decision::Stop);
    }

    #[test]
    fn a_jump_past_several_rungs_is_judged_at_the_highest_reached() {
        let mut a = Asha::new().max_t(100).grace_period(1).reduction_factor(4);
        assert_eq!(a.on_result(0, obs(16.0, 1.0)), Decision::Continue);
        // Trial 1 reaches 20: judged at rung 16 against [1.0], not at 1 or 4.
        assert_eq!(a.on_result(1, obs(20.0, 0.5)), Decision::Stop);
        assert_eq!(
            a.on_result(2, obs(1.0, 0.0)),
            Decision::Continue,
            "rung 1 is empty"
        );
    }

    #[test]
    fn the_promotion_variant_keeps_only_the_top_fraction_at_each_rung() {
        let mut a = Asha::new()
            .max_t(100)
            .grace_period(1)
            .reduction_factor(2)
            .promotion(true);
        assert_eq!(a.on_result(0, obs(1.0, 10.0)), Decision::Continue); // 1 of 1: keep 1
        assert_eq!(a.on_result(1, obs(1.0, 5.0)), Decision::Stop); // 2 of 2: keep 1, one better
        assert_eq!(a.on_result(2, obs(1.0, 7.0)), Decision::Continue); // 3: keep 2, one better
        assert_eq!(a.on_result(3, obs(1.0, 6.0)), Decision::Stop); // 4: keep 2, two better
        assert_eq!(a.on_result(4, obs(1.0, f64::NAN)), Decision::Stop);
    }

    #[test]
    fn brackets_are_chosen_reproducibly_from_the_seed() {
        let picks = |seed| {
            let mut a = Asha::new().brackets(3).seed(seed);
            (0..50)
                .map(|t| {
                    a.on_trial_add(t, &TrialConfig::default());
                    a.state().trial_bracket[&t]
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(5), picks(5));
        let p = picks(5);
        assert!(p.iter().all(|&b| b < 3));
        // Weighted towards the bracket with the most rungs.
        let first = p.iter().filter(|&&b| b == 0).count();
        assert!(first > 25, "{first}");
    }
}
