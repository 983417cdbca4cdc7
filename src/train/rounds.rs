//! Reports gathered into rounds (pure): every worker reports the same number of times, and
//! the `i`-th report of each makes round `i`. A round is complete once every rank reported
//! it: its metrics are rank 0's, its checkpoint the parts the ranks gave (if any gave one).

use std::collections::BTreeMap;

use super::checkpoint::TrainCheckpoint;
use crate::tune::{Checkpoint, Metrics};

/// One round, as reports come.
#[derive(Debug, Default)]
struct Round {
    reported: Vec<bool>,
    metrics: Option<Metrics>,
    parts: Vec<Option<Checkpoint>>,
}

/// A complete round.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    /// Its number, from 0 over the whole run (a restarted attempt goes on from its
    /// checkpoint's round).
    pub round: u64,
    /// Rank 0's metrics.
    pub metrics: Metrics,
    /// The ranks' checkpoint parts, when any rank gave one.
    pub checkpoint: Option<TrainCheckpoint>,
}

/// The rounds of one attempt of a run.
#[derive(Debug)]
pub struct Rounds {
    world: usize,
    open: BTreeMap<u64, Round>,
}

impl Rounds {
    /// Rounds of `world` workers.
    pub fn new(world: usize) -> Self {
        Rounds {
            world,
            open: BTreeMap::new(),
        }
    }

    /// Rank `rank` reported round `round`; returns the round if that completed it. A
    /// second report of one round by one rank, or a rank out of range, is ignored.
    pub fn report(
        &mut self,
        round: u64,
        rank: usize,
        metrics: Metrics,
        checkpoint: Option<Checkpoint>,
    ) -> Option<Completed> {
        if rank >= self.world {
            return None;
        }
        let world = self.world;
        let r = self.open.entry(round).or_insert_with(|| Round {
            reported: vec![false; world],
            metrics: None,
            parts: vec![None; world],
        });
        if r.reported[rank] {
            return None;
        }
        r.reported[rank] = true;
        if rank == 0 {
            r.metrics = Some(metrics);
        }
        r.parts[rank] = checkpoint;
        if !r.reported.iter().all(|x| *x) {
            return None;
        }
        let r = self.open.remove(&round)?;
        let checkpoint = r
            .parts
            .iter()
            .any(Option::is_some)
            .then(|| TrainCheckpoint::new(round, r.parts));
        Some(Completed {
            round,
            metrics: r.metrics.unwrap_or_default(),
            checkpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(loss: f64) -> Metrics {
        [("loss".to_string(), loss)].into_iter().collect()
    }

    #[test]
    fn a_round_completes_when_every_rank_reported_it_with_rank_0s_metrics() {
        let mut rounds = Rounds::new(3);
        assert_eq!(rounds.report(0, 2, m(9.0), None), None);
        assert_eq!(
            rounds.report(0, 0, m(1.0), Some(Checkpoint::from_bytes(vec![0]))),
            None
        );
        assert_eq!(
            rounds.report(0, 0, m(5.0), None),
            None,
            "a second report is ignored"
        );
        assert_eq!(rounds.report(1, 1, m(7.0), None), None, "another round");
        let done = rounds.report(0, 1, m(8.0), None).unwrap();
        assert_eq!(done.round, 0);
        assert_eq!(done.metrics, m(1.0));
        let cp = done.checkpoint.unwrap();
        assert_eq!(cp.part(0).unwrap().bytes(), &[0]);
        assert!(cp.part(1).is_none());
        // Without any part, no checkpoint.
        rounds.report(1, 0, m(2.0), None);
        assert_eq!(rounds.report(1, 2, m(2.0), None).unwrap().checkpoint, None);
        assert_eq!(rounds.report(0, 7, m(0.0), None), None, "rank out of range");
    }
}
