//! What an experiment returns: every trial's configuration, results and end (Ray's
//! `ResultGrid`), and the best of them by a metric.

use std::path::PathBuf;

use super::experiment::{Mode, ReportedResult, Trial, TrialStatus};
use super::session::{Checkpoint, Metrics};
use super::space::TrialConfig;

/// Which of a trial's results count when comparing trials (Ray's `scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Its last result.
    Last,
    /// The mean over all its results.
    Avg,
    /// The mean over its last `k` results.
    LastAvg(usize),
    /// Its best result ever.
    All,
}

/// One trial's outcome.
#[derive(Debug, Clone)]
pub struct TrialResult {
    /// `<experiment>_<number>`.
    pub name: String,
    /// Its hyperparameters.
    pub config: TrialConfig,
    /// How it ended.
    pub status: TrialStatus,
    /// Whether the scheduler or a stop criterion ended it early.
    pub stopped_early: bool,
    /// Every result it reported, in order.
    pub history: Vec<ReportedResult>,
    /// The last failure's message, if it failed.
    pub error: Option<String>,
    /// How often it failed (restarts included).
    pub failures: u32,
    /// Its latest checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// Its directory, where its checkpoints are (made only if it saved one); its results
    /// are in the experiment's `result.jsonl` and `progress.csv`, under its name and number.
    pub path: PathBuf,
    /// The trials it continued from by PBT's exploit, in order.
    pub exploited_from: Vec<String>,
}

impl TrialResult {
    pub(crate) fn of(trial: &Trial, experiment: &str, dir: PathBuf) -> Self {
        TrialResult {
            name: trial.name.clone(),
            config: trial.config.clone(),
            status: trial.status,
            stopped_early: trial.stopped_early,
            history: trial.results.clone(),
            error: trial.error.clone(),
            failures: trial.failures,
            checkpoint: trial.checkpoint.clone(),
            path: dir,
            exploited_from: trial
                .exploited
                .iter()
                .map(|&d| super::experiment::trial_name(experiment, d))
                .collect(),
        }
    }

    /// Its last result's metrics (empty if it reported none).
    pub fn metrics(&self) -> Metrics {
        self.history
            .last()
            .map(|r| r.metrics.clone())
            .unwrap_or_default()
    }

    /// The iterations it ran.
    pub fn iterations(&self) -> u64 {
        self.history.last().map_or(0, |r| r.training_iteration)
    }

    /// `metric` under `scope` (`None` if it never reported it).
    pub fn value(&self, metric: &str, mode: Mode, scope: Scope) -> Option<f64> {
        let values: Vec<f64> = self
            .history
            .iter()
            .filter_map(|r| r.get(metric))
            .filter(|x| !x.is_nan())
            .collect();
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        match scope {
            Scope::Last => values.last().copied(),
            Scope::Avg => mean(&values),
            Scope::LastAvg(k) => mean(&values[values.len().saturating_sub(k)..]),
            Scope::All => values
                .iter()
                .copied()
                .max_by(|a, b| mode.orient(*a).total_cmp(&mode.orient(*b))),
        }
    }
}

/// Every trial of an experiment (Ray's `ResultGrid`).
#[derive(Debug, Clone)]
pub struct ResultGrid {
    pub(crate) trials: Vec<TrialResult>,
    pub(crate) metric: Option<String>,
    pub(crate) mode: Mode,
    pub(crate) path: PathBuf,
}

impl ResultGrid {
    /// The trials, in the order they were made.
    pub fn trials(&self) -> &[TrialResult] {
        &self.trials
    }

    /// How many trials there are.
    pub fn len(&self) -> usize {
        self.trials.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.trials.is_empty()
    }

    /// The trials that failed for good.
    pub fn errors(&self) -> Vec<&TrialResult> {
        self.trials
            .iter()
            .filter(|t| t.status == TrialStatus::Error)
            .collect()
    }

    /// The experiment's directory (result files, summary).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The best trial by `metric` and `mode` under `scope`, among those that reported it.
    pub fn best_result_by(&self, metric: &str, mode: Mode, scope: Scope) -> Option<&TrialResult> {
        self.trials
            .iter()
            .filter_map(|t| Some((t, t.value(metric, mode, scope)?)))
            .max_by(|a, b| mode.orient(a.1).total_cmp(&mode.orient(b.1)))
            .map(|(t, _)| t)
    }

    /// The best trial by the experiment's own metric and mode, by last result (Ray's
    /// `get_best_result()`); `None` without a metric or results.
    pub fn best_result(&self) -> Option<&TrialResult> {
        self.best_result_by(self.metric.as_deref()?, self.mode, Scope::Last)
    }

    /// The best trial's configuration.
    pub fn best_config(&self) -> Option<&TrialConfig> {
        self.best_result().map(|t| &t.config)
    }

    /// The trials as a text table: name, status, iterations, parameters and last metrics.
    pub fn table(&self) -> String {
        super::output::results_table(&self.trials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(name: &str, scores: &[f64]) -> TrialResult {
        TrialResult {
            name: name.into(),
            config: TrialConfig::default(),
            status: TrialStatus::Terminated,
            stopped_early: false,
            history: scores
                .iter()
                .enumerate()
                .map(|(i, &s)| ReportedResult {
                    training_iteration: i as u64 + 1,
                    time_total_s: 0.0,
                    metrics: [("score".to_string(), s)].into_iter().collect(),
                })
                .collect(),
            error: None,
            failures: 0,
            checkpoint: None,
            path: PathBuf::new(),
            exploited_from: Vec::new(),
        }
    }

    #[test]
    fn the_best_depends_on_metric_mode_and_scope() {
        let grid = ResultGrid {
            trials: vec![trial("a", &[1.0, 9.0, 2.0]), trial("b", &[4.0, 4.0, 3.0])],
            metric: Some("score".into()),
            mode: Mode::Max,
            path: PathBuf::new(),
        };
        let best = |mode, scope| {
            grid.best_result_by("score", mode, scope)
                .unwrap()
                .name
                .clone()
        };
        assert_eq!(best(Mode::Max, Scope::Last), "b");
        assert_eq!(best(Mode::Max, Scope::All), "a");
        assert_eq!(best(Mode::Max, Scope::Avg), "a"); // 4.0 against 3.67
        assert_eq!(best(Mode::Max, Scope::LastAvg(2)), "a"); // 5.5 against 3.5
        assert_eq!(best(Mode::Min, Scope::Last), "a");
        assert_eq!(best(Mode::Min, Scope::All), "a"); // 1.0
        assert_eq!(best(Mode::Min, Scope::LastAvg(1)), "a");
        assert_eq!(grid.best_result().unwrap().name, "b");
        assert!(
            grid.best_result_by("nope", Mode::Max, Scope::Last)
                .is_none()
        );
        assert_eq!(grid.trials[0].iterations(), 3);
    }
}
