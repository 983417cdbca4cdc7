//! The tree-structured Parzen estimator (TPE; Bergstra et al., 2011), a model-based searcher.
//!
//! After `n_initial_points` random configs, the finished trials are split by score: the best
//! `gamma` fraction is "good", the rest "bad". For each hyperparameter, independently, a
//! density is fitted to its good values, l(x), and one to its bad values, g(x) (a Gaussian at
//! each value, widths from the gaps to its neighbours, plus a wide prior; counts plus one for
//! a choice); `candidates` values are drawn from l and the one with the largest l(x) / g(x) is
//! suggested. Log domains are modelled on the log scale.

use serde_json::Value as Json;

use super::{SearchSetup, Searcher};
use crate::tune::rng::Rng;
use crate::tune::space::{Domain, SearchSpace, TrialConfig};

/// The TPE searcher. Defaults: 10 initial random points, gamma 0.25, 24 candidates.
#[derive(Debug)]
pub struct Tpe {
    n_initial: usize,
    gamma: f64,
    candidates: usize,
    space: SearchSpace,
    params: Vec<(Vec<String>, Kind)>,
    rng: Rng,
    remaining: usize,
    observed: Vec<(TrialConfig, f64)>,
}

impl Default for Tpe {
    fn default() -> Self {
        Tpe {
            n_initial: 10,
            gamma: 0.25,
            candidates: 24,
            space: SearchSpace::new(),
            params: Vec::new(),
            rng: Rng::seeded(0),
            remaining: 0,
            observed: Vec::new(),
        }
    }
}

/// How TPE models one hyperparameter.
#[derive(Debug, Clone)]
enum Kind {
    /// A number on [low, high] (on the log scale if `log`), rounded to `q`, an integer if `int`.
    Real {
        low: f64,
        high: f64,
        log: bool,
        q: Option<f64>,
        int: bool,
    },
    Choice(Vec<Json>),
}

fn kind(domain: &Domain) -> Result<Option<Kind>, String> {
    Ok(Some(match domain {
        Domain::Uniform { low, high, q } => Kind::Real {
            low: *low,
            high: *high,
            log: false,
            q: *q,
            int: false,
        },
        Domain::LogUniform { low, high, q } => Kind::Real {
            low: low.ln(),
            high: high.ln(),
            log: true,
            q: *q,
            int: false,
        },
        Domain::Randn { mean, sd } => Kind::Real {
            low: mean - 4.0 * sd,
            high: mean + 4.0 * sd,
            log: false,
            q: None,
            int: false,
        },
        Domain::RandInt { low, high, q } => Kind::Real {
            low: *low as f64,
            high: if q.is_some() { *high } else { high - 1 } as f64,
            log: false,
            q: q.map(|q| q as f64),
            int: true,
        },
        Domain::LogRandInt { low, high } => Kind::Real {
            low: (*low as f64).ln(),
            high: ((high - 1) as f64).ln(),
            log: true,
            q: None,
            int: true,
        },
        Domain::Choice(values) => Kind::Choice(values.clone()),
        Domain::Grid(_) => {
            return Err("TPE does not take grid_search parameters: use choice".into());
        }
        Domain::SampleFrom(_) => return Ok(None),
    }))
}

/// A truncated Gaussian mixture over [low, high].
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    low: f64,
    high: f64,
}

impl Parzen {
    fn fit(points: &[f64], low: f64, high: f64) -> Parzen {
        let span = (high - low).max(f64::MIN_POSITIVE);
        let mut sorted: Vec<f64> = points.iter().map(|p| p.clamp(low, high)).collect();
        sorted.sort_by(f64::total_cmp);
        let min_sigma = span / (sorted.len() as f64 + 1.0).min(100.0);
        let mut mus = Vec::with_capacity(sorted.len() + 1);
        let mut sigmas = Vec::with_capacity(sorted.len() + 1);
        for (i, &p) in sorted.iter().enumerate() {
            let left = if i == 0 { low } else { sorted[i - 1] };
            let right = sorted.get(i + 1).copied().unwrap_or(high);
            mus.push(p);
            sigmas.push((p - left).max(right - p).clamp(min_sigma, span));
        }
        // The prior: one wide component in the middle.
        mus.push((low + high) / 2.0);
        sigmas.push(span);
        Parzen {
            mus,
            sigmas,
            low,
            high,
        }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        let i = rng.below(0, self.mus.len() as i64) as usize;
        for _ in 0..16 {
            let x = self.mus[i] + self.sigmas[i] * rng.normal();
            if (self.low..=self.high).contains(&x) {
                return x;
            }
        }
        self.mus[i].clamp(self.low, self.high)
    }

    fn log_density(&self, x: f64) -> f64 {
        let n = self.mus.len() as f64;
        let sum: f64 = self
            .mus
            .iter()
            .zip(&self.sigmas)
            .map(|(mu, s)| {
                let z = (x - mu) / s;
                (-0.5 * z * z).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
            })
            .sum();
        (sum / n).max(f64::MIN_POSITIVE).ln()
    }
}

impl Tpe {
    /// TPE with the defaults.
    pub fn new() -> Self {
        Tpe::default()
    }

    /// How many random configs come before the model is used.
    pub fn n_initial_points(mut self, n: usize) -> Self {
        self.n_initial = n.max(1);
        self
    }

    /// The fraction of finished trials counted as good.
    pub fn gamma(mut self, gamma: f64) -> Self {
        self.gamma = gamma.clamp(0.01, 0.99);
        self
    }

    /// How many candidates are drawn from the good density per suggestion.
    pub fn candidates(mut self, n: usize) -> Self {
        self.candidates = n.max(1);
        self
    }

    /// The value at `path` in `config`, on the model's scale.
    fn internal(kind: &Kind, value: &Json) -> Option<f64> {
        match kind {
            Kind::Real { log: true, .. } => value.as_f64().filter(|x| *x > 0.0).map(f64::ln),
            Kind::Real { .. } => value.as_f64(),
            Kind::Choice(_) => None,
        }
    }

    fn external(kind: &Kind, x: f64) -> Json {
        let Kind::Real { log, q, int, .. } = kind else {
            return Json::Null;
        };
        let mut v = if *log { x.exp() } else { x };
        if let Some(q) = q {
            v = (v / q).round() * q;
        }
        if *int {
            Json::from(v.round() as i64)
        } else {
            Json::from(v)
        }
    }

    /// The value for one hyperparameter that maximises l(x) / g(x) among the candidates.
    fn choose(
        &mut self,
        path: &[String],
        kind: &Kind,
        good: &[&TrialConfig],
        bad: &[&TrialConfig],
    ) -> Json {
        let key = path.join(".");
        let values = |set: &[&TrialConfig]| -> Vec<Json> {
            set.iter().filter_map(|c| c.lookup(&key).cloned()).collect()
        };
        let (good, bad) = (values(good), values(bad));
        match kind {
            Kind::Real { low, high, .. } => {
                let pts = |v: &[Json]| -> Vec<f64> {
                    v.iter().filter_map(|x| Self::internal(kind, x)).collect()
                };
                let (l, g) = (
                    Parzen::fit(&pts(&good), *low, *high),
                    Parzen::fit(&pts(&bad), *low, *high),
                );
                let best = (0..self.candidates)
                    .map(|_| l.sample(&mut self.rng))
                    .max_by(|a, b| {
                        let ra = l.log_density(*a) - g.log_density(*a);
                        let rb = l.log_density(*b) - g.log_density(*b);
                        ra.total_cmp(&rb)
                    })
                    .unwrap_or((low + high) / 2.0);
                Self::external(kind, best)
            }
            Kind::Choice(options) => {
                let weights = |v: &[Json]| -> Vec<f64> {
                    options
                        .iter()
                        .map(|o| {
                            (v.iter().filter(|x| *x == o).count() as f64 + 1.0)
                                / (v.len() + options.len()) as f64
                        })
                        .collect()
                };
                let (l, g) = (weights(&good), weights(&bad));
                let total: f64 = l.iter().sum();
                let mut best: Option<(usize, f64)> = None;
                for _ in 0..self.candidates {
                    let mut pick = self.rng.unit() * total;
                    let mut k = options.len() - 1;
                    for (i, w) in l.iter().enumerate() {
                        if pick < *w {
                            k = i;
                            break;
                        }
                        pick -= w;
                    }
                    let ratio = l[k].ln() - g[k].ln();
                    if best.is_none_or(|(_, r)| ratio > r) {
                        best = Some((k, ratio));
                    }
                }
                options[best.map_or(0, |b| b.0)].clone()
            }
        }
    }
}

impl Searcher for Tpe {
    fn name(&self) -> &'static str {
        "TPE"
    }

    fn setup(&mut self, setup: SearchSetup<'_>) -> Result<(), String> {
        setup.space.check()?;
        self.space = setup.space.clone();
        self.params = Vec::new();
        for (path, domain) in setup.space.domains() {
            if let Some(k) = kind(&domain)? {
                self.params.push((path, k));
            }
        }
        self.rng = setup.seed.map_or_else(Rng::from_entropy, Rng::seeded);
        self.remaining = setup.num_samples;
        Ok(())
    }

    fn suggest(&mut self) -> Option<TrialConfig> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        if self.observed.len() < self.n_initial {
            return Some(self.space.resolve(&[], &mut self.rng));
        }
        let mut ranked: Vec<&(TrialConfig, f64)> = self.observed.iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let n_good =
            ((ranked.len() as f64 * self.gamma).ceil() as usize).clamp(1, ranked.len() - 1);
        let good: Vec<TrialConfig> = ranked[..n_good].iter().map(|o| o.0.clone()).collect();
        let bad: Vec<TrialConfig> = ranked[n_good..].iter().map(|o| o.0.clone()).collect();
        let (good, bad): (Vec<&TrialConfig>, Vec<&TrialConfig>) =
            (good.iter().collect(), bad.iter().collect());
        let params = self.params.clone();
        let fixed: Vec<(Vec<String>, Json)> = params
            .iter()
            .map(|(path, kind)| (path.clone(), self.choose(path, kind, &good, &bad)))
            .collect();
        Some(self.space.resolve(&fixed, &mut self.rng))
    }

    fn on_trial_complete(&mut self, config: &TrialConfig, score: Option<f64>) {
        if let Some(s) = score.filter(|s| !s.is_nan()) {
            self.observed.push((config.clone(), s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::space::{choice, uniform};

    /// Runs `n` trials one at a time, scoring each config with `f`; returns the configs.
    fn drive(
        tpe: &mut Tpe,
        space: &SearchSpace,
        n: usize,
        f: impl Fn(&TrialConfig) -> f64,
    ) -> Vec<TrialConfig> {
        tpe.setup(SearchSetup {
            space,
            num_samples: n,
            seed: Some(9),
        })
        .unwrap();
        let mut out = Vec::new();
        while let Some(c) = tpe.suggest() {
            let s = f(&c);
            tpe.on_trial_complete(&c, Some(s));
            out.push(c);
        }
        out
    }

    #[test]
    fn tpe_concentrates_near_the_optimum_of_a_smooth_objective() {
        let space = SearchSpace::new()
            .param("x", uniform(0.0, 1.0))
            .param("lr", crate::tune::space::loguniform(1e-5, 1.0));
        let score = |c: &TrialConfig| {
            let x: f64 = c.get("x").unwrap();
            let lr: f64 = c.get("lr").unwrap();
            -(x - 0.7).powi(2) - (lr.log10() + 2.0).powi(2) / 10.0
        };
        let configs = drive(&mut Tpe::new(), &space, 60, score);
        assert_eq!(configs.len(), 60);
        let err = |c: &TrialConfig| (c.get::<f64>("x").unwrap() - 0.7).abs();
        let random: f64 = configs[..10].iter().map(err).sum::<f64>() / 10.0;
        let model: f64 = configs[40..].iter().map(err).sum::<f64>() / 20.0;
        assert!(
            model < random / 2.0,
            "TPE's late draws {model} against random {random}"
        );
        let best = configs.iter().map(score).fold(f64::MIN, f64::max);
        assert!(best > -0.01, "{best}");
        // Every suggestion is inside the space.
        for c in &configs {
            assert!((0.0..1.0).contains(&c.get::<f64>("x").unwrap()));
            assert!((1e-5..=1.0).contains(&c.get::<f64>("lr").unwrap()));
        }
        // Seeded: the same run again gives the same configs.
        assert_eq!(drive(&mut Tpe::new(), &space, 60, score), configs);
    }

    #[test]
    fn tpe_prefers_the_best_choice_and_refuses_grids() {
        let space = SearchSpace::new().param("opt", choice(["sgd", "adam", "rmsprop"]));
        let configs = drive(&mut Tpe::new(), &space, 40, |c| {
            if c.get::<String>("opt").unwrap() == "adam" {
                1.0
            } else {
                0.0
            }
        });
        let adam = configs[10..]
            .iter()
            .filter(|c| c.get::<String>("opt").unwrap() == "adam")
            .count();
        assert!(adam >= 20, "{adam} of 30");
        let grid = SearchSpace::new().param("g", crate::tune::space::grid_search([1, 2]));
        let err = Tpe::new()
            .setup(SearchSetup {
                space: &grid,
                num_samples: 1,
                seed: None,
            })
            .unwrap_err();
        assert!(err.contains("grid_search"), "{err}");
    }
}
