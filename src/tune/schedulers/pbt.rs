//! Population based training (Ray's `PopulationBasedTraining`).
//!
//! Every `perturbation_interval` (in the scheduler's time), a trial that reports is ranked
//! among the trials' latest scores. If it is in the bottom `quantile_fraction`, it exploits a
//! trial drawn from the top one: it continues from that trial's checkpoint with that trial's
//! config, explored: each mutated hyperparameter is resampled with probability
//! `resample_probability` (or when its value is not among its listed values); otherwise a
//! listed value moves to a neighbour and a number is multiplied by a perturbation factor
//! (1.2 or 0.8).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::{Decision, Observation, TrialId, TrialScheduler};
use crate::tune::rng::Rng;
use crate::tune::space::{Domain, TrialConfig, lt};

/// How PBT changes one hyperparameter.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Resampled from this domain, or multiplied by a perturbation factor.
    Domain(Domain),
    /// Resampled from these values, or moved to a neighbouring one.
    Values(Vec<Json>),
}

impl From<Domain> for Mutation {
    fn from(d: Domain) -> Self {
        Mutation::Domain(d)
    }
}

impl<T: serde::Serialize> From<Vec<T>> for Mutation {
    fn from(values: Vec<T>) -> Self {
        Mutation::Values(
            values
                .into_iter()
                .map(|v| serde_json::to_value(v).unwrap_or(Json::Null))
                .collect(),
        )
    }
}

/// The PBT scheduler.
#[derive(Debug, Clone)]
pub struct Pbt {
    time_attr: String,
    interval: f64,
    quantile_fraction: f64,
    resample_probability: f64,
    factors: (f64, f64),
    mutations: BTreeMap<String, Mutation>,
    rng: Rng,
    trials: HashMap<TrialId, Member>,
}

#[derive(Debug, Clone)]
struct Member {
    config: TrialConfig,
    last_perturbation: f64,
    last_score: Option<f64>,
}

impl Default for Pbt {
    fn default() -> Self {
        Pbt {
            time_attr: "training_iteration".into(),
            interval: 60.0,
            quantile_fraction: 0.25,
            resample_probability: 0.25,
            factors: (1.2, 0.8),
            mutations: BTreeMap::new(),
            rng: Rng::seeded(0),
            trials: HashMap::new(),
        }
    }
}

impl Pbt {
    /// PBT with Ray's defaults (interval 60, quantile 0.25, resample probability 0.25).
    pub fn new() -> Self {
        Pbt::default()
    }

    /// How often (in `time_attr` units) a trial may be perturbed.
    pub fn perturbation_interval(mut self, t: impl Into<f64>) -> Self {
        self.interval = t.into();
        self
    }

    /// The fraction of trials in the bottom (which exploit) and the top (which are copied).
    pub fn quantile_fraction(mut self, q: f64) -> Self {
        self.quantile_fraction = q;
        self
    }

    /// The chance that an explored hyperparameter is resampled rather than perturbed.
    pub fn resample_probability(mut self, p: f64) -> Self {
        self.resample_probability = p;
        self
    }

    /// The factors a number is multiplied by when perturbed (default 1.2 and 0.8).
    pub fn perturbation_factors(mut self, up: f64, down: f64) -> Self {
        self.factors = (up, down);
        self
    }

    /// How hyperparameter `name` (a dotted path) changes when explored.
    pub fn mutation(mut self, name: impl Into<String>, how: impl Into<Mutation>) -> Self {
        self.mutations.insert(name.into(), how.into());
        self
    }

    /// The result attribute time is measured in (default `training_iteration`).
    pub fn time_attr(mut self, name: impl Into<String>) -> Self {
        self.time_attr = name.into();
        self
    }

    /// Seeds the draws (which donor, which change).
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Rng::seeded(seed);
        self
    }

    /// The bottom and top trials by their latest scores.
    fn quantiles(&self) -> (Vec<TrialId>, Vec<TrialId>) {
        let mut scored: Vec<(TrialId, f64)> = self
            .trials
            .iter()
            .filter_map(|(&t, m)| Some((t, m.last_score?)))
            .collect();
        if scored.len() <= 1 {
            return (Vec::new(), Vec::new());
        }
        scored.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let mut n = (scored.len() as f64 * self.quantile_fraction).ceil() as usize;
        if n > scored.len() / 2 {
            n = scored.len() / 2;
        }
        let bottom = scored[..n].iter().map(|s| s.0).collect();
        let top = scored[scored.len() - n..].iter().map(|s| s.0).collect();
        (bottom, top)
    }

    /// `config` with the mutated hyperparameters explored.
    pub(crate) fn explore(&mut self, config: &TrialConfig) -> TrialConfig {
        let mut out = config.clone();
        let mutations = self.mutations.clone();
        for (key, how) in &mutations {
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            let current = config.lookup(key).cloned().unwrap_or(Json::Null);
            let resample = self.rng.unit() < self.resample_probability;
            let value = match how {
                Mutation::Values(values) => {
                    let at = values.iter().position(|v| *v == current);
                    match at {
                        Some(i) if !resample => {
                            let up = self.rng.unit() < 0.5;
                            let j = if up {
                                (i + 1).min(values.len() - 1)
                            } else {
                                i.saturating_sub(1)
                            };
                            values[j].clone()
                        }
                        _ => values[self.rng.below(0, values.len() as i64) as usize].clone(),
                    }
                }
                Mutation::Domain(domain) => match current.as_f64() {
                    Some(x) if !resample => {
                        let factor = if self.rng.unit() < 0.5 {
                            self.factors.0
                        } else {
                            self.factors.1
                        };
                        if current.is_i64() || current.is_u64() {
                            Json::from((x * factor) as i64)
                        } else {
                            Json::from(x * factor)
                        }
                    }
                    _ => domain.sample(&mut self.rng),
                },
            };
            out.set(&path, value);
        }
        out
    }
}

impl TrialScheduler for Pbt {
    fn name(&self) -> &'static str {
        "PBT"
    }

    fn time_attr(&self) -> &str {
        &self.time_attr
    }

    fn check(&self) -> Result<(), String> {
        if !lt(0.0, self.interval) {
            return Err(format!(
                "PBT needs perturbation_interval > 0, got {}",
                self.interval
            ));
        }
        if !(lt(0.0, self.quantile_fraction) && self.quantile_fraction <= 0.5) {
            return Err(format!(
                "PBT needs 0 < quantile_fraction <= 0.5, got {}",
                self.quantile_fraction
            ));
        }
        if self.mutations.is_empty() {
            return Err("PBT needs at least one mutation (Pbt::mutation)".into());
        }
        Ok(())
    }

    fn on_trial_add(&mut self, trial: TrialId, config: &TrialConfig) {
        self.trials.insert(
            trial,
            Member {
                config: config.clone(),
                last_perturbation: 0.0,
                last_score: None,
            },
        );
    }

    fn on_result(&mut self, trial: TrialId, o: Observation) -> Decision {
        let Some(member) = self.trials.get_mut(&trial) else {
            return Decision::Continue;
        };
        if o.time - member.last_perturbation < self.interval {
            return Decision::Continue;
        }
        member.last_perturbation = o.time;
        member.last_score = (!o.score.is_nan()).then_some(o.score);
        let (bottom, top) = self.quantiles();
        if !bottom.contains(&trial) || top.is_empty() {
            return Decision::Continue;
        }
        let donor = top[self.rng.below(0, top.len() as i64) as usize];
        let donor_config = self.trials[&donor].config.clone();
        let config = self.explore(&donor_config);
        if let Some(m) = self.trials.get_mut(&trial) {
            m.config = config.clone();
        }
        Decision::Exploit { donor, config }
    }

    fn on_trial_complete(&mut self, trial: TrialId) {
        // A finished trial stays ranked by its last score (it can still be copied), as Ray's.
        let _ = trial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::space::{SearchSpace, uniform};

    fn config(lr: f64, layers: i64) -> TrialConfig {
        SearchSpace::new()
            .constant("lr", lr)
            .constant("layers", layers)
            .resolve(&[], &mut Rng::seeded(0))
    }

    fn pbt() -> Pbt {
        Pbt::new()
            .perturbation_interval(4)
            .mutation("lr", uniform(0.001, 0.1))
            .mutation("layers", vec![1, 2, 3, 4])
            .seed(3)
    }

    #[test]
    fn the_bottom_quarter_copies_a_top_trial_at_each_interval() {
        let mut p = pbt();
        for t in 0..4 {
            p.on_trial_add(t, &config(0.01 * (t + 1) as f64, 2));
        }
        let at = |time: f64, score: f64| Observation { time, score };
        // Before the interval nothing happens.
        assert_eq!(p.on_result(0, at(3.0, 0.0)), Decision::Continue);
        // At 4: scores 1, 2, 3 for trials 1..3; trial 0 reports 0 last and is the bottom.
        for t in 1..4 {
            assert_eq!(p.on_result(t, at(4.0, t as f64)), Decision::Continue);
        }
        match p.on_result(0, at(4.0, 0.0)) {
            Decision::Exploit { donor, config } => {
                assert_eq!(donor, 3, "the top quarter of four is trial 3");
                let lr: f64 = config.get("lr").unwrap();
                let layers: i64 = config.get("layers").unwrap();
                // Perturbed (x1.2 or x0.8) or resampled in [0.001, 0.1).
                assert!((0.001..0.1).contains(&lr), "{lr}");
                assert!((1..=4).contains(&layers), "{layers}");
            }
            other => panic!("expected an exploit, got {other:?}"),
        }
        // Not again before another interval has passed for it.
        assert_eq!(p.on_result(0, at(5.0, -1.0)), Decision::Continue);
        // A top trial is never told to exploit.
        assert_eq!(p.on_result(3, at(8.0, 10.0)), Decision::Continue);
        assert!(p.check().is_ok());
        assert!(Pbt::new().check().is_err(), "no mutations");
    }

    #[test]
    fn explore_perturbs_or_resamples_each_mutated_value_and_keeps_the_rest() {
        let mut p = pbt().resample_probability(0.0);
        let base = SearchSpace::new()
            .constant("lr", 0.05)
            .constant("layers", 2)
            .constant("fixed", "keep")
            .resolve(&[], &mut Rng::seeded(0));
        for _ in 0..50 {
            let c = p.explore(&base);
            let lr: f64 = c.get("lr").unwrap();
            assert!(
                (lr - 0.06).abs() < 1e-12 || (lr - 0.04).abs() < 1e-12,
                "{lr}"
            );
            let layers: i64 = c.get("layers").unwrap();
            assert!(layers == 1 || layers == 3, "{layers}");
            assert_eq!(c.get::<String>("fixed").unwrap(), "keep");
        }
        let mut always = pbt().resample_probability(1.0);
        let seen: std::collections::HashSet<i64> = (0..100)
            .map(|_| always.explore(&base).get::<i64>("layers").unwrap())
            .collect();
        assert_eq!(seen.len(), 4, "resampling reaches every value");
    }
}
