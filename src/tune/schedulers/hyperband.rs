//! HyperBand (Li et al., 2018; Ray's synchronous `HyperBandScheduler`).
//!
//! Trials are dealt into brackets: bracket `s` (from `s_max` down to 0, then a new band)
//! takes `ceil(s_max1 / (s + 1) * eta^s)` trials and gives each `max_t / eta^s` time first.
//! A trial that reaches its bracket's milestone pauses there. When every trial still in the
//! bracket has reached it (and the bracket is full, or no more trials will come), the best
//! `1/eta` of them go on to a milestone `eta` times further and the rest stop: successive
//! halving, in lockstep. A paused trial goes on from its latest checkpoint (from its start
//! without one). Trials stop at `max_t`.

use std::collections::{BTreeMap, BTreeSet};

use super::{Decision, Observation, TrialId, TrialScheduler};
use crate::tune::space::{TrialConfig, lt};

/// The HyperBand scheduler. Defaults as Ray's: `max_t` 81, reduction factor 3.
#[derive(Debug, Clone)]
pub struct HyperBand {
    time_attr: String,
    max_t: f64,
    eta: f64,
    brackets: Vec<Bracket>,
    trial_bracket: BTreeMap<TrialId, usize>,
    /// Trials paused that may go on, and paused trials that are to stop.
    resume: Vec<TrialId>,
    stop: Vec<TrialId>,
    no_more_trials: bool,
}

#[derive(Debug, Clone)]
struct Bracket {
    /// How many trials it takes.
    size: usize,
    members: Vec<TrialId>,
    /// Members not stopped or ended.
    live: BTreeSet<TrialId>,
    /// The time the live members run to now.
    milestone: f64,
    /// Scores recorded at the milestone.
    recorded: BTreeMap<TrialId, f64>,
    /// Members waiting at the milestone.
    paused: BTreeSet<TrialId>,
}

impl Default for HyperBand {
    fn default() -> Self {
        HyperBand {
            time_attr: "training_iteration".into(),
            max_t: 81.0,
            eta: 3.0,
            brackets: Vec::new(),
            trial_bracket: BTreeMap::new(),
            resume: Vec::new(),
            stop: Vec::new(),
            no_more_trials: false,
        }
    }
}

impl HyperBand {
    /// HyperBand with Ray's defaults.
    pub fn new() -> Self {
        HyperBand::default()
    }

    /// The most time a trial gets.
    pub fn max_t(mut self, t: impl Into<f64>) -> Self {
        self.max_t = t.into();
        self
    }

    /// Keep the best `1/eta` at each halving.
    pub fn reduction_factor(mut self, eta: impl Into<f64>) -> Self {
        self.eta = eta.into();
        self
    }

    /// The result attribute time is measured in (default `training_iteration`).
    pub fn time_attr(mut self, name: impl Into<String>) -> Self {
        self.time_attr = name.into();
        self
    }

    /// How many brackets a band has.
    fn s_max1(&self) -> usize {
        ((self.max_t.ln() / self.eta.ln()).round() as usize) + 1
    }

    /// The bracket the `k`-th bracket ever made is: its size and first milestone.
    fn shape(&self, k: usize) -> (usize, f64) {
        let s_max1 = self.s_max1();
        let s = s_max1 - 1 - (k % s_max1);
        let size = (s_max1 as f64 / (s + 1) as f64 * self.eta.powi(s as i32)).ceil() as usize;
        let r = (self.max_t / self.eta.powi(s as i32)).max(1.0);
        (size, r)
    }

    /// The sizes and first milestones of the first `n` brackets (for tests and the docs).
    pub fn bracket_shapes(&self, n: usize) -> Vec<(usize, f64)> {
        (0..n).map(|k| self.shape(k)).collect()
    }

    /// Halves bracket `b` if every live member has reached its milestone.
    fn maybe_halve(&mut self, b: usize) {
        let full = self.no_more_trials || {
            let br = &self.brackets[b];
            br.members.len() >= br.size
        };
        let br = &mut self.brackets[b];
        if !full || br.live.is_empty() || !br.live.iter().all(|t| br.recorded.contains_key(t)) {
            return;
        }
        let mut ranked: Vec<(TrialId, f64)> =
            br.live.iter().map(|t| (*t, br.recorded[t])).collect();
        ranked.sort_by(|a, b| {
            let (x, y) = (
                if a.1.is_nan() { f64::NEG_INFINITY } else { a.1 },
                if b.1.is_nan() { f64::NEG_INFINITY } else { b.1 },
            );
            y.total_cmp(&x).then(a.0.cmp(&b.0))
        });
        let keep = ((ranked.len() as f64 / self.eta).floor() as usize).max(1);
        for (t, _) in &ranked[keep..] {
            br.live.remove(t);
            if br.paused.remove(t) {
                self.stop.push(*t);
            }
        }
        for (t, _) in &ranked[..keep] {
            if br.paused.remove(t) {
                self.resume.push(*t);
            }
        }
        br.recorded.clear();
        br.milestone = (br.milestone * self.eta).min(self.max_t);
    }
}

impl TrialScheduler for HyperBand {
    fn name(&self) -> &'static str {
        "HyperBand"
    }

    fn time_attr(&self) -> &str {
        &self.time_attr
    }

    fn check(&self) -> Result<(), String> {
        if !(lt(1.0, self.eta) && lt(0.0, self.max_t)) {
            return Err(format!(
                "HyperBand needs max_t > 0 and reduction_factor > 1, got {} and {}",
                self.max_t, self.eta
            ));
        }
        Ok(())
    }

    fn on_trial_add(&mut self, trial: TrialId, _config: &TrialConfig) {
        let open = self
            .brackets
            .last()
            .is_some_and(|b| b.members.len() < b.size);
        if !open {
            let (size, milestone) = self.shape(self.brackets.len());
            self.brackets.push(Bracket {
                size,
                members: Vec::new(),
                live: BTreeSet::new(),
                milestone,
                recorded: BTreeMap::new(),
                paused: BTreeSet::new(),
            });
        }
        let b = self.brackets.len() - 1;
        self.brackets[b].members.push(trial);
        self.brackets[b].live.insert(trial);
        self.trial_bracket.insert(trial, b);
    }

    fn on_result(&mut self, trial: TrialId, o: Observation) -> Decision {
        let Some(&b) = self.trial_bracket.get(&trial) else {
            return Decision::Continue;
        };
        if !self.brackets[b].live.contains(&trial) {
            return Decision::Stop;
        }
        if o.time >= self.max_t {
            self.brackets[b].live.remove(&trial);
            self.maybe_halve(b);
            return Decision::Stop;
        }
        if o.time < self.brackets[b].milestone {
            return Decision::Continue;
        }
        self.brackets[b].recorded.insert(trial, o.score);
        self.brackets[b].paused.insert(trial);
        self.maybe_halve(b);
        // It was just ranked: it goes on, or it was stopped; otherwise it waits.
        if let Some(i) = self.resume.iter().position(|t| *t == trial) {
            self.resume.remove(i);
            Decision::Continue
        } else if let Some(i) = self.stop.iter().position(|t| *t == trial) {
            self.stop.remove(i);
            Decision::Stop
        } else {
            Decision::Pause
        }
    }

    fn on_trial_complete(&mut self, trial: TrialId) {
        if let Some(&b) = self.trial_bracket.get(&trial) {
            let br = &mut self.brackets[b];
            br.live.remove(&trial);
            br.recorded.remove(&trial);
            br.paused.remove(&trial);
            self.maybe_halve(b);
        }
    }

    fn on_search_finished(&mut self) {
        self.no_more_trials = true;
        for b in 0..self.brackets.len() {
            self.maybe_halve(b);
        }
    }

    fn take_paused_decisions(&mut self) -> (Vec<TrialId>, Vec<TrialId>) {
        (
            std::mem::take(&mut self.resume),
            std::mem::take(&mut self.stop),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: f64, score: f64) -> Observation {
        Observation { time, score }
    }

    #[test]
    fn brackets_have_hyperbands_sizes_and_milestones() {
        let h = HyperBand::new().max_t(81).reduction_factor(3);
        // s = 4..0: n = ceil(5/(s+1) * 3^s), r = 81 / 3^s; then a new band.
        assert_eq!(
            h.bracket_shapes(6),
            vec![
                (81, 1.0),
                (34, 3.0),
                (15, 9.0),
                (8, 27.0),
                (5, 81.0),
                (81, 1.0)
            ]
        );
        assert!(HyperBand::new().reduction_factor(1).check().is_err());
    }

    #[test]
    fn a_full_bracket_halves_in_lockstep_pausing_until_all_reach_the_milestone() {
        // max_t 9, eta 3: brackets (9 trials, r 1), (5, 3), (3, 9).
        let mut h = HyperBand::new().max_t(9).reduction_factor(3);
        for t in 0..9 {
            h.on_trial_add(t, &TrialConfig::default());
        }
        // Eight of nine reach time 1: each pauses.
        for t in 0..8 {
            assert_eq!(h.on_result(t, at(1.0, t as f64)), Decision::Pause);
        }
        assert_eq!(h.take_paused_decisions(), (vec![], vec![]));
        // The ninth, the best, arrives: the top 3 (8, 7, 6) go on, the rest stop.
        assert_eq!(h.on_result(8, at(1.0, 100.0)), Decision::Continue);
        let (resume, stop) = h.take_paused_decisions();
        assert_eq!(resume, vec![7, 6]);
        assert_eq!(stop, vec![5, 4, 3, 2, 1, 0]);
        // Next milestone 3: the best of three goes on to 9.
        assert_eq!(h.on_result(8, at(2.0, 1.0)), Decision::Continue);
        assert_eq!(h.on_result(8, at(3.0, 1.0)), Decision::Pause);
        assert_eq!(h.on_result(6, at(3.0, 5.0)), Decision::Pause);
        // The last to arrive completes the rung: 6 (5.0) goes on, 7 (2.0) and 8 (1.0) stop.
        assert_eq!(h.on_result(7, at(3.0, 2.0)), Decision::Stop);
        let (resume, stop) = h.take_paused_decisions();
        assert_eq!((resume, stop), (vec![6], vec![8]));
    }

    #[test]
    fn the_last_bracket_halves_when_no_more_trials_come() {
        let mut h = HyperBand::new().max_t(9).reduction_factor(3);
        for t in 0..3 {
            h.on_trial_add(t, &TrialConfig::default());
        }
        for t in 0..3 {
            assert_eq!(h.on_result(t, at(1.0, t as f64)), Decision::Pause);
        }
        h.on_search_finished();
        assert_eq!(h.take_paused_decisions(), (vec![2], vec![1, 0]));
        // A trial that ends before its milestone leaves the bracket; the others are judged.
        let mut h = HyperBand::new().max_t(9).reduction_factor(3);
        for t in 0..3 {
            h.on_trial_add(t, &TrialConfig::default());
        }
        h.on_search_finished();
        h.on_result(0, at(1.0, 5.0));
        h.on_result(1, at(1.0, 1.0));
        h.on_trial_complete(2);
        assert_eq!(h.take_paused_decisions(), (vec![0], vec![1]));
    }
}
