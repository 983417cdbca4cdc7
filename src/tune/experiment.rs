//! The experiment's state: its trials, their results and statuses, the scheduler and the stop
//! criteria. Pure: the controller actor calls it for each report, the tuner's loop for each
//! trial that starts or ends; neither I/O nor actors live here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::schedulers::{Decision, Observation, TrialScheduler};
use super::session::{Checkpoint, Metrics};
use super::space::TrialConfig;

/// Maximise or minimise the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Larger is better.
    Max,
    /// Smaller is better.
    Min,
}

impl Mode {
    /// The metric oriented so that larger is better.
    pub(crate) fn orient(self, x: f64) -> f64 {
        match self {
            Mode::Max => x,
            Mode::Min => -x,
        }
    }
}

/// A trial's status (Ray's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrialStatus {
    /// Not started yet.
    Pending,
    /// Running (or waiting for its resources).
    Running,
    /// Paused by its scheduler (its resources given back) until it may go on.
    Paused,
    /// Ended: ran to its end, or stopped early by the scheduler or a stop criterion.
    Terminated,
    /// Failed more often than `max_failures` allows.
    Error,
}

impl std::fmt::Display for TrialStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrialStatus::Pending => "PENDING",
            TrialStatus::Running => "RUNNING",
            TrialStatus::Paused => "PAUSED",
            TrialStatus::Terminated => "TERMINATED",
            TrialStatus::Error => "ERROR",
        })
    }
}

/// One reported result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedResult {
    /// The trial's iteration: 1 for its first report.
    pub training_iteration: u64,
    /// Seconds since the experiment started.
    pub time_total_s: f64,
    /// What the trainable reported.
    pub metrics: Metrics,
}

impl ReportedResult {
    /// A metric, or `training_iteration` / `time_total_s`.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "training_iteration" => Some(self.training_iteration as f64),
            "time_total_s" => Some(self.time_total_s),
            _ => self.metrics.get(name).copied(),
        }
    }
}

/// One trial: its configuration, what it reported, how it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    /// Its number in the experiment.
    pub id: usize,
    /// `<experiment>_<number>`.
    pub name: String,
    /// Its hyperparameters.
    pub config: TrialConfig,
    /// Where it stands.
    pub status: TrialStatus,
    /// Every result it reported, in order (across restarts).
    pub results: Vec<ReportedResult>,
    /// Whether the scheduler or a stop criterion ended it before its trainable returned.
    pub stopped_early: bool,
    /// How often it failed.
    pub failures: u32,
    /// The last failure's message.
    pub error: Option<String>,
    /// Its latest checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// The attempt running now (reports from an older one are told to stop).
    pub attempt: u32,
    /// Its iteration count now (set back to the checkpoint's on a restart).
    pub iteration: u64,
    /// The trials it continued from by PBT's exploit, in order.
    pub exploited: Vec<usize>,
    /// An exploit decided but not yet carried out: the donor, the new config, its checkpoint.
    #[serde(skip)]
    pub(crate) exploit: Option<(usize, TrialConfig, Checkpoint)>,
    /// Told to pause; and, if so, whether it may already go on once its task has ended.
    #[serde(skip)]
    pub(crate) pausing: Option<bool>,
}

impl Trial {
    /// Its latest result.
    pub fn last_result(&self) -> Option<&ReportedResult> {
        self.results.last()
    }
}

/// When trials stop regardless of the scheduler (Ray's `RunConfig(stop=...)`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StopCriteria {
    at_least: Vec<(String, f64)>,
    at_most: Vec<(String, f64)>,
    max_iterations: Option<u64>,
    time_budget: Option<Duration>,
}

impl StopCriteria {
    /// No criteria.
    pub fn new() -> Self {
        StopCriteria::default()
    }

    /// Stop a trial once `metric` reaches `value` or more (Ray's `stop={"metric": value}`).
    pub fn metric_at_least(mut self, metric: impl Into<String>, value: f64) -> Self {
        self.at_least.push((metric.into(), value));
        self
    }

    /// Stop a trial once `metric` falls to `value` or less.
    pub fn metric_at_most(mut self, metric: impl Into<String>, value: f64) -> Self {
        self.at_most.push((metric.into(), value));
        self
    }

    /// Stop a trial after `n` iterations (reports).
    pub fn max_iterations(mut self, n: u64) -> Self {
        self.max_iterations = Some(n);
        self
    }

    /// Stop every trial once the experiment has run this long.
    pub fn time_budget(mut self, budget: Duration) -> Self {
        self.time_budget = Some(budget);
        self
    }

    pub(crate) fn time_budget_value(&self) -> Option<Duration> {
        self.time_budget
    }

    fn met(&self, r: &ReportedResult) -> bool {
        self.at_least
            .iter()
            .any(|(m, v)| r.get(m).is_some_and(|x| x >= *v))
            || self
                .at_most
                .iter()
                .any(|(m, v)| r.get(m).is_some_and(|x| x <= *v))
            || self
                .max_iterations
                .is_some_and(|n| r.training_iteration >= n)
            || self
                .time_budget
                .is_some_and(|b| r.time_total_s >= b.as_secs_f64())
    }
}

/// The name of trial `id` of experiment `experiment`.
pub(crate) fn trial_name(experiment: &str, id: usize) -> String {
    format!("{experiment}_{id:05}")
}

/// What becomes of a trial whose task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It runs again (a restart, an exploit, a pause already lifted).
    Again,
    /// It waits, paused, until its scheduler lets it go on.
    Paused,
    /// It has ended for good.
    Done,
}

/// A result not yet written to the trial's files, with the checkpoint that came with it.
#[derive(Debug, Clone)]
pub(crate) struct Fresh {
    pub trial: usize,
    pub result: ReportedResult,
    pub checkpoint: Option<Checkpoint>,
}

/// The state of an experiment.
pub(crate) struct Experiment {
    pub name: String,
    pub metric: Option<String>,
    pub mode: Mode,
    pub trials: Vec<Trial>,
    pub scheduler: Box<dyn TrialScheduler>,
    pub stop: StopCriteria,
    /// Results (and checkpoints) reported since the tuner last took them, for the files.
    pub fresh: Vec<Fresh>,
    /// Paused trials that may go on, for the tuner to start again.
    pub resumable: Vec<usize>,
}

impl Experiment {
    pub fn new(
        name: String,
        metric: Option<String>,
        mode: Mode,
        scheduler: Box<dyn TrialScheduler>,
        stop: StopCriteria,
    ) -> Self {
        Experiment {
            name,
            metric,
            mode,
            trials: Vec::new(),
            scheduler,
            stop,
            fresh: Vec::new(),
            resumable: Vec::new(),
        }
    }

    /// Adds a pending trial; returns its number.
    pub fn add_trial(&mut self, config: TrialConfig) -> usize {
        let id = self.trials.len();
        self.trials.push(Trial {
            id,
            name: trial_name(&self.name, id),
            config,
            status: TrialStatus::Pending,
            results: Vec::new(),
            stopped_early: false,
            failures: 0,
            error: None,
            checkpoint: None,
            attempt: 0,
            iteration: 0,
            exploited: Vec::new(),
            exploit: None,
            pausing: None,
        });
        self.scheduler.on_trial_add(id, &self.trials[id].config);
        id
    }

    /// Takes back the trials of an experiment being resumed; returns those that were cut
    /// short, to run again. Their results after their latest checkpoint are dropped (they will
    /// be reported again). Every result kept is replayed into the scheduler in the order it
    /// was reported, so that its state is what it was; its decisions then are history.
    pub fn resume(&mut self, mut trials: Vec<Trial>) -> Vec<usize> {
        let mut again = Vec::new();
        for t in &mut trials {
            if !matches!(t.status, TrialStatus::Terminated | TrialStatus::Error) {
                let kept = t.checkpoint.as_ref().map_or(0, Checkpoint::iteration);
                t.results.retain(|r| r.training_iteration <= kept);
                t.status = TrialStatus::Pending;
                again.push(t.id);
            }
            self.scheduler.on_trial_add(t.id, &t.config);
        }
        let mut order: Vec<(f64, usize, usize)> = trials
            .iter()
            .flat_map(|t| {
                t.results
                    .iter()
                    .enumerate()
                    .map(move |(i, r)| (r.time_total_s, t.id, i))
            })
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        self.trials = trials;
        for (_, id, i) in order {
            let r = &self.trials[id].results[i];
            let observation = Observation {
                time: r
                    .get(self.scheduler.time_attr())
                    .unwrap_or(r.training_iteration as f64),
                score: self.score(r),
            };
            let _ = self.scheduler.on_result(id, observation);
        }
        for t in &self.trials {
            if matches!(t.status, TrialStatus::Terminated | TrialStatus::Error) {
                self.scheduler.on_trial_complete(t.id);
            }
        }
        again
    }

    /// The trial starts an attempt (its first, or a restart); returns the attempt's number
    /// and the checkpoint to resume from.
    pub fn start(&mut self, trial: usize) -> (u32, Option<Checkpoint>) {
        let t = &mut self.trials[trial];
        t.status = TrialStatus::Running;
        t.attempt += 1;
        t.iteration = t.checkpoint.as_ref().map_or(0, Checkpoint::iteration);
        (t.attempt, t.checkpoint.clone())
    }

    /// The score the scheduler sees for `r`: the metric oriented to larger-is-better, NaN
    /// without one.
    pub fn score(&self, r: &ReportedResult) -> f64 {
        self.metric
            .as_deref()
            .and_then(|m| r.get(m))
            .map_or(f64::NAN, |x| self.mode.orient(x))
    }

    /// A trial reported: records it and decides whether it goes on (true) or ends now.
    pub fn report(
        &mut self,
        trial: usize,
        attempt: u32,
        metrics: Metrics,
        checkpoint: Option<Checkpoint>,
        elapsed: Duration,
    ) -> bool {
        let Some(t) = self.trials.get_mut(trial) else {
            return false;
        };
        if t.attempt != attempt
            || t.status != TrialStatus::Running
            || t.stopped_early
            || t.exploit.is_some()
            || t.pausing.is_some()
        {
            return false; // an attempt that was replaced, or a trial already told to end
        }
        t.iteration += 1;
        let result = ReportedResult {
            training_iteration: t.iteration,
            time_total_s: elapsed.as_secs_f64(),
            metrics,
        };
        let checkpoint = checkpoint.map(|c| c.at(t.iteration));
        if let Some(c) = &checkpoint {
            t.checkpoint = Some(c.clone());
        }
        t.results.push(result.clone());
        self.fresh.push(Fresh {
            trial,
            result: result.clone(),
            checkpoint,
        });
        let time = result
            .get(self.scheduler.time_attr())
            .unwrap_or(result.training_iteration as f64);
        let observation = Observation {
            time,
            score: self.score(&result),
        };
        let decision = self.scheduler.on_result(trial, observation);
        self.apply_paused_decisions();
        let stop = self.stop.met(&result) || decision == Decision::Stop;
        if stop {
            self.trials[trial].stopped_early = true;
            return false;
        }
        match decision {
            Decision::Pause => {
                self.trials[trial].pausing = Some(false);
                false
            }
            Decision::Exploit { donor, config } => {
                // Only a donor with a checkpoint can be continued from.
                match self.trials.get(donor).and_then(|d| d.checkpoint.clone()) {
                    Some(from) => {
                        self.trials[trial].exploit = Some((donor, config, from));
                        false
                    }
                    None => true,
                }
            }
            _ => true,
        }
    }

    /// The trial's trainable returned (`Ok`) or failed (`Err`): whether it runs again (a
    /// failure within `max_failures`, from its own latest checkpoint; an exploit, from its
    /// donor's with its new config; a pause already lifted), waits paused, or has ended.
    pub fn ended(&mut self, trial: usize, outcome: Result<(), String>, max_failures: u32) -> Ended {
        let t = &mut self.trials[trial];
        if !t.stopped_early
            && let Some(go_on) = t.pausing.take()
        {
            // Paused: it runs again when (or, if already allowed, as soon as) it may go on.
            if go_on {
                t.status = TrialStatus::Pending;
                return Ended::Again;
            }
            t.status = TrialStatus::Paused;
            return Ended::Paused;
        }
        if let Some((donor, config, from)) = t.exploit.take() {
            t.config = config;
            t.checkpoint = Some(from);
            t.exploited.push(donor);
            t.status = TrialStatus::Pending;
            return Ended::Again;
        }
        match outcome {
            Ok(()) => t.status = TrialStatus::Terminated,
            Err(_) if t.stopped_early => t.status = TrialStatus::Terminated,
            Err(message) => {
                t.failures += 1;
                t.error = Some(message);
                if t.failures <= max_failures {
                    t.status = TrialStatus::Pending;
                    return Ended::Again;
                }
                t.status = TrialStatus::Error;
            }
        }
        self.scheduler.on_trial_complete(trial);
        self.apply_paused_decisions();
        Ended::Done
    }

    /// No more trials will be added.
    pub fn search_finished(&mut self) {
        self.scheduler.on_search_finished();
        self.apply_paused_decisions();
    }

    /// Carries out what the scheduler decided for paused trials: those that may go on are
    /// started again (at once if paused, when their task ends if still pausing); those to
    /// stop end.
    fn apply_paused_decisions(&mut self) {
        let (resume, stop) = self.scheduler.take_paused_decisions();
        for id in resume {
            let Some(t) = self.trials.get_mut(id) else {
                continue;
            };
            match (t.status, t.pausing) {
                (TrialStatus::Paused, _) => {
                    t.status = TrialStatus::Pending;
                    self.resumable.push(id);
                }
                (_, Some(_)) => t.pausing = Some(true),
                _ => {}
            }
        }
        for id in stop {
            let Some(t) = self.trials.get_mut(id) else {
                continue;
            };
            t.stopped_early = true;
            if t.status == TrialStatus::Paused {
                t.status = TrialStatus::Terminated;
                t.pausing = None;
            }
        }
    }

    /// Counts by status.
    pub fn counts(&self) -> [(TrialStatus, usize); 5] {
        let n = |s| self.trials.iter().filter(|t| t.status == s).count();
        [
            (TrialStatus::Pending, n(TrialStatus::Pending)),
            (TrialStatus::Running, n(TrialStatus::Running)),
            (TrialStatus::Paused, n(TrialStatus::Paused)),
            (TrialStatus::Terminated, n(TrialStatus::Terminated)),
            (TrialStatus::Error, n(TrialStatus::Error)),
        ]
    }

    /// The best trial by its last result, and that result's metric.
    pub fn best(&self) -> Option<(&Trial, f64)> {
        let metric = self.metric.as_deref()?;
        self.trials
            .iter()
            .filter_map(|t| Some((t, t.last_result()?.get(metric)?)))
            .filter(|(_, x)| !x.is_nan())
            .max_by(|a, b| self.mode.orient(a.1).total_cmp(&self.mode.orient(b.1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::schedulers::{Asha, Fifo};

    fn metrics(score: f64) -> Metrics {
        [("score".to_string(), score)].into_iter().collect()
    }

    #[test]
    fn reports_are_recorded_and_stop_criteria_end_a_trial() {
        let stop = StopCriteria::new().metric_at_least("score", 3.0);
        let mut e = Experiment::new(
            "e".into(),
            Some("score".into()),
            Mode::Max,
            Box::new(Fifo),
            stop,
        );
        let t = e.add_trial(TrialConfig::default());
        assert_eq!(e.trials[t].name, "e_00000");
        let (attempt, ckpt) = e.start(t);
        assert_eq!((attempt, ckpt), (1, None));
        let d = Duration::ZERO;
        assert!(e.report(t, 1, metrics(1.0), None, d));
        assert!(e.report(t, 1, metrics(2.0), None, d));
        assert!(!e.report(t, 1, metrics(3.0), None, d));
        assert!(e.trials[t].stopped_early);
        // Further reports are told to stop and not recorded.
        assert!(!e.report(t, 1, metrics(9.0), None, d));
        assert_eq!(e.trials[t].results.len(), 3);
        assert_eq!(e.trials[t].results[2].training_iteration, 3);
        // The trainable returns the Stopped error: the trial ends well.
        assert_eq!(e.ended(t, Err("stopped".into()), 0), Ended::Done);
        assert_eq!(e.trials[t].status, TrialStatus::Terminated);
        assert_eq!(e.fresh.len(), 3);
    }

    #[test]
    fn a_failed_trial_restarts_from_its_checkpoint_until_max_failures() {
        let mut e = Experiment::new(
            "e".into(),
            Some("loss".into()),
            Mode::Min,
            Box::new(Fifo),
            StopCriteria::new(),
        );
        let t = e.add_trial(TrialConfig::default());
        e.start(t);
        let loss = |x: f64| -> Metrics { [("loss".to_string(), x)].into_iter().collect() };
        let d = Duration::ZERO;
        e.report(t, 1, loss(5.0), None, d);
        let ckpt = Checkpoint::from_value(&42u32).unwrap();
        e.report(t, 1, loss(4.0), Some(ckpt), d);
        e.report(t, 1, loss(3.0), None, d);
        assert_eq!(
            e.ended(t, Err("boom".into()), 1),
            Ended::Again,
            "one failure allowed"
        );
        let (attempt, ckpt) = e.start(t);
        assert_eq!(attempt, 2);
        let ckpt = ckpt.unwrap();
        assert_eq!((ckpt.to_value::<u32>().unwrap(), ckpt.iteration()), (42, 2));
        // A report from the old attempt is refused; the new one counts from the checkpoint.
        assert!(!e.report(t, 1, loss(0.0), None, d));
        e.report(t, 2, loss(2.0), None, d);
        assert_eq!(e.trials[t].results.last().unwrap().training_iteration, 3);
        assert_eq!(e.ended(t, Err("boom again".into()), 1), Ended::Done);
        assert_eq!(e.trials[t].status, TrialStatus::Error);
        assert_eq!(e.trials[t].error.as_deref(), Some("boom again"));
        // Minimised: the best is the lowest last loss.
        assert_eq!(e.best().unwrap().1, 2.0);
    }

    #[test]
    fn an_exploit_continues_the_trial_from_its_donors_checkpoint_with_the_new_config() {
        use crate::tune::schedulers::Pbt;
        use crate::tune::space::{SearchSpace, uniform};
        let pbt = Pbt::new()
            .perturbation_interval(2)
            .quantile_fraction(0.5)
            .mutation("lr", uniform(0.0, 1.0))
            .seed(1);
        let mut e = Experiment::new(
            "e".into(),
            Some("score".into()),
            Mode::Max,
            Box::new(pbt),
            StopCriteria::new(),
        );
        let config = |lr: f64| {
            SearchSpace::new()
                .constant("lr", lr)
                .resolve(&[], &mut crate::tune::rng::Rng::seeded(0))
        };
        let (good, bad) = (e.add_trial(config(0.5)), e.add_trial(config(0.1)));
        e.start(good);
        e.start(bad);
        let d = Duration::ZERO;
        let ck = |i: u32| Some(Checkpoint::from_value(&i).unwrap());
        assert!(e.report(good, 1, metrics(1.0), ck(1), d));
        assert!(e.report(bad, 1, metrics(0.0), ck(1), d));
        assert!(e.report(good, 1, metrics(5.0), ck(2), d));
        // At the interval the bad trial is in the bottom half: told to end, to be continued.
        assert!(!e.report(bad, 1, metrics(0.0), ck(2), d));
        assert!(!e.trials[bad].stopped_early);
        assert_eq!(e.ended(bad, Err("stopped".into()), 0), Ended::Again);
        let t = &e.trials[bad];
        assert_eq!(t.exploited, vec![good]);
        assert_eq!(t.failures, 0);
        assert_ne!(t.config.get::<f64>("lr").unwrap(), 0.1);
        let (attempt, from) = e.start(bad);
        assert_eq!(attempt, 2);
        let from = from.unwrap();
        assert_eq!((from.to_value::<u32>().unwrap(), from.iteration()), (2, 2));
        assert!(e.report(bad, 2, metrics(6.0), None, d));
        assert_eq!(e.trials[bad].results.last().unwrap().training_iteration, 3);
    }

    #[test]
    fn the_scheduler_sees_the_oriented_metric_and_can_stop_a_trial() {
        let asha = Asha::new().max_t(10).grace_period(1).reduction_factor(2);
        let mut e = Experiment::new(
            "e".into(),
            Some("loss".into()),
            Mode::Min,
            Box::new(asha),
            StopCriteria::new(),
        );
        let (a, b) = (
            e.add_trial(TrialConfig::default()),
            e.add_trial(TrialConfig::default()),
        );
        e.start(a);
        e.start(b);
        let loss = |x: f64| -> Metrics { [("loss".to_string(), x)].into_iter().collect() };
        let d = Duration::ZERO;
        assert!(e.report(a, 1, loss(1.0), None, d));
        // Minimising: a larger loss is worse, so b is stopped at the first rung.
        assert!(!e.report(b, 1, loss(2.0), None, d));
    }
}
