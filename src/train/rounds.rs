//! Reports gathered into rounds (pure): every worker reports the same number of times, and
//! the `i`-th report of each makes round `i`. A round is complete once every rank reported
//! it: its metrics are rank 0's, its checkpoint the parts the ranks gave (if any gave one).
//! And which checkpoints to keep.

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

/// Of checkpoints (their round and rank 0's metrics), the rounds to keep: all when `keep`
/// is `None`; else the best `keep` by `score` (higher better when `max`; a checkpoint
/// without the metric ranks last), or the latest `keep` without a score. The latest is
/// always kept, since a restart resumes from it.
pub fn to_keep(
    checkpoints: &[(u64, Metrics)],
    keep: Option<usize>,
    score: Option<&str>,
    max: bool,
) -> Vec<u64> {
    let Some(keep) = keep else {
        return checkpoints.iter().map(|c| c.0).collect();
    };
    let mut ranked: Vec<&(u64, Metrics)> = checkpoints.iter().collect();
    match score {
        Some(name) => ranked.sort_by(|a, b| {
            let (x, y) = (a.1.get(name), b.1.get(name));
            match (x, y) {
                (Some(x), Some(y)) if max => y.total_cmp(x),
                (Some(x), Some(y)) => x.total_cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => b.0.cmp(&a.0),
            }
        }),
        None => ranked.sort_by_key(|c| std::cmp::Reverse(c.0)),
    }
    let mut kept: Vec<u64> = ranked.iter().take(keep).map(|c| c.0).collect();
    if let Some(latest) = checkpoints.iter().map(|c| c.0).max()
        && !kept.contains(&latest)
    {
        kept.push(latest);
    }
    kept.sort_unstable();
    kept
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

    #[test]
    fn the_best_checkpoints_are_kept_and_the_latest_always() {
        let cps = vec![(0, m(5.0)), (1, m(1.0)), (2, m(3.0)), (3, m(4.0))];
        assert_eq!(to_keep(&cps, None, None, false), vec![0, 1, 2, 3]);
        assert_eq!(to_keep(&cps, Some(2), None, false), vec![2, 3]);
        assert_eq!(to_keep(&cps, Some(1), Some("loss"), false), vec![1, 3]);
        assert_eq!(to_keep(&cps, Some(2), Some("loss"), true), vec![0, 3]);
        assert_eq!(to_keep(&cps, Some(1), Some("acc"), true), vec![3]);
    }
}
