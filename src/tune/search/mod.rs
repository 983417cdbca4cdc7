//! Search algorithms: where each trial's configuration comes from. The default draws at
//! random and walks grids (Ray's `BasicVariantGenerator`); [`Searcher`] is the trait a
//! model-based searcher implements.

mod tpe;

pub use tpe::Tpe;

use std::collections::VecDeque;

use serde_json::Value as Json;

use super::rng::Rng;
use super::space::{SearchSpace, TrialConfig};

/// What a searcher is told before the first suggestion.
#[derive(Debug, Clone)]
pub struct SearchSetup<'a> {
    /// The space to draw from.
    pub space: &'a SearchSpace,
    /// How many trials the experiment runs at most (for the default searcher: how many times
    /// the grid is repeated).
    pub num_samples: usize,
    /// The seed, if the experiment is to be reproducible.
    pub seed: Option<u64>,
}

/// A search algorithm (Ray's `Searcher`): suggests configurations and hears how they did.
/// Scores are oriented so that larger is better.
pub trait Searcher: Send {
    /// Its name, for the status output.
    fn name(&self) -> &'static str;

    /// Called once before the first suggestion.
    fn setup(&mut self, setup: SearchSetup<'_>) -> Result<(), String>;

    /// The next configuration, or `None` when this searcher has no more trials to give.
    fn suggest(&mut self) -> Option<TrialConfig>;

    /// Whether it wants every intermediate result ([`on_trial_result`](Self::on_trial_result));
    /// saying no spares the tuner a copy of each.
    fn wants_results(&self) -> bool {
        false
    }

    /// A trial reported an intermediate result (if [`wants_results`](Self::wants_results)).
    fn on_trial_result(&mut self, _config: &TrialConfig, _score: f64) {}

    /// A trial ended; `score` is its last score (`None` if it failed without one).
    fn on_trial_complete(&mut self, _config: &TrialConfig, _score: Option<f64>) {}
}

/// Random draws and grids: every combination of the grid parameters, `num_samples` times,
/// the other parameters drawn afresh for each (Ray's `BasicVariantGenerator`).
#[derive(Debug, Default)]
pub struct RandomSearch {
    space: SearchSpace,
    queue: VecDeque<Vec<(Vec<String>, Json)>>,
    rng: Option<Rng>,
}

impl RandomSearch {
    /// The default searcher.
    pub fn new() -> Self {
        RandomSearch::default()
    }
}

impl Searcher for RandomSearch {
    fn name(&self) -> &'static str {
        "random"
    }

    fn setup(&mut self, setup: SearchSetup<'_>) -> Result<(), String> {
        setup.space.check()?;
        self.space = setup.space.clone();
        self.rng = Some(setup.seed.map_or_else(Rng::from_entropy, Rng::seeded));
        let grids = self.space.grids();
        // The cartesian product, the last grid varying fastest.
        let mut combos: Vec<Vec<(Vec<String>, Json)>> = vec![Vec::new()];
        for (path, values) in &grids {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((path.clone(), v.clone()));
                        c
                    })
                })
                .collect();
        }
        for _ in 0..setup.num_samples {
            self.queue.extend(combos.iter().cloned());
        }
        Ok(())
    }

    fn suggest(&mut self) -> Option<TrialConfig> {
        let grid = self.queue.pop_front()?;
        let rng = self.rng.get_or_insert_with(Rng::from_entropy);
        Some(self.space.resolve(&grid, rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::space::{grid_search, uniform};

    fn drawn(seed: Option<u64>, num_samples: usize) -> Vec<TrialConfig> {
        let space = SearchSpace::new()
            .param("x", grid_search([1, 2, 3]))
            .param("y", grid_search(["a", "b"]))
            .param("z", uniform(0.0, 1.0));
        let mut s = RandomSearch::new();
        s.setup(SearchSetup {
            space: &space,
            num_samples,
            seed,
        })
        .unwrap();
        std::iter::from_fn(|| s.suggest()).collect()
    }

    #[test]
    fn grids_give_their_product_num_samples_times_and_a_seed_repeats_the_draws() {
        let configs = drawn(Some(11), 2);
        assert_eq!(configs.len(), 12, "3 x 2 grid, twice");
        let pairs: Vec<(i64, String)> = configs
            .iter()
            .map(|c| (c.get("x").unwrap(), c.get("y").unwrap()))
            .collect();
        let once: Vec<(i64, String)> = [1, 2, 3]
            .iter()
            .flat_map(|&x| ["a", "b"].map(|y| (x, y.to_string())))
            .collect();
        assert_eq!(pairs[..6], once[..]);
        assert_eq!(pairs[6..], once[..]);
        // Seeded: the same draws every time; another seed, others.
        assert_eq!(configs, drawn(Some(11), 2));
        assert_ne!(configs, drawn(Some(12), 2));
        let zs: std::collections::HashSet<u64> = configs
            .iter()
            .map(|c| c.get::<f64>("z").unwrap().to_bits())
            .collect();
        assert_eq!(zs.len(), 12, "z drawn afresh for each trial");
    }
}
