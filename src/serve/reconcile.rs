//! What the controller does to a deployment's replicas to reach the number it wants, pure:
//! the replicas (their version, state and load) and the target in, replicas to start and to
//! stop out.
//!
//! Replicas of an older version are replaced one by one: new ones start at once, and an old
//! one stops only when the running replicas stay at the target without it, so the
//! deployment never runs fewer than it wants during a rolling update. Extras stop the ones
//! still starting first, then the least loaded. A new replica goes to the node holding the
//! fewest of the deployment's replicas.

use super::status::ReplicaState;

/// One replica as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaView {
    /// Its number.
    pub number: u64,
    /// The deployment version it runs.
    pub version: u64,
    /// Its state.
    pub state: ReplicaState,
    /// Requests it holds.
    pub ongoing: u32,
}

/// What to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    /// Replicas of the current version to start.
    pub start: u32,
    /// Replicas to stop, by number.
    pub stop: Vec<u64>,
}

/// The actions that bring `replicas` toward `target` replicas of `version`.
pub fn reconcile(replicas: &[ReplicaView], version: u64, target: u32) -> Actions {
    let live = |r: &&ReplicaView| r.state != ReplicaState::Stopping;
    let mut current: Vec<&ReplicaView> = replicas
        .iter()
        .filter(live)
        .filter(|r| r.version == version)
        .collect();
    let old: Vec<&ReplicaView> = replicas
        .iter()
        .filter(live)
        .filter(|r| r.version != version)
        .collect();
    let target_n = target as usize;
    let mut actions = Actions::default();
    if current.len() < target_n {
        actions.start = (target_n - current.len()) as u32;
    } else if current.len() > target_n {
        // Starting ones first, then the least loaded.
        current.sort_by_key(|r| (r.state == ReplicaState::Running, r.ongoing, r.number));
        actions
            .stop
            .extend(current[..current.len() - target_n].iter().map(|r| r.number));
        current.drain(..current.len() - target_n);
    }
    // Old replicas: those still starting serve nothing; running ones go while the running
    // replicas stay at the target without them.
    let running_current = current
        .iter()
        .filter(|r| r.state == ReplicaState::Running)
        .count();
    let mut running_old: Vec<&&ReplicaView> = old
        .iter()
        .filter(|r| r.state == ReplicaState::Running)
        .collect();
    actions.stop.extend(
        old.iter()
            .filter(|r| r.state == ReplicaState::Starting)
            .map(|r| r.number),
    );
    running_old.sort_by_key(|r| (r.ongoing, r.number));
    let spare = (running_current + running_old.len()).saturating_sub(target_n);
    let spare = if target_n == 0 {
        running_old.len()
    } else {
        spare
    };
    actions
        .stop
        .extend(running_old.iter().take(spare).map(|r| r.number));
    actions
}

/// The node a new replica goes to: of the nodes that can take it, the one holding fewest of
/// the deployment's replicas (the first of those on a tie), so replicas spread over nodes.
pub fn place<N: PartialEq + Copy>(candidates: &[N], placed: &[N]) -> Option<N> {
    candidates
        .iter()
        .min_by_key(|c| placed.iter().filter(|p| p == c).count())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReplicaState::*;

    fn r(number: u64, version: u64, state: ReplicaState, ongoing: u32) -> ReplicaView {
        ReplicaView {
            number,
            version,
            state,
            ongoing,
        }
    }

    #[test]
    fn missing_replicas_start_and_extras_stop_starting_first_then_least_loaded() {
        assert_eq!(reconcile(&[], 1, 3).start, 3);
        let reps = [
            r(1, 1, Running, 4),
            r(2, 1, Running, 1),
            r(3, 1, Starting, 0),
            r(4, 1, Running, 2),
        ];
        let a = reconcile(&reps, 1, 2);
        assert_eq!(
            a,
            Actions {
                start: 0,
                stop: vec![3, 2]
            }
        );
        assert_eq!(reconcile(&reps, 1, 4), Actions::default());
        // Stopping replicas do not count.
        let with_stopping = [r(1, 1, Stopping, 0), r(2, 1, Running, 0)];
        assert_eq!(reconcile(&with_stopping, 1, 2).start, 1);
    }

    /// A rolling update never runs fewer than the target, and ends with only new replicas.
    #[test]
    fn a_rolling_update_keeps_the_target_running() {
        let target = 3;
        let mut reps: Vec<ReplicaView> = (1..=3).map(|n| r(n, 1, Running, 0)).collect();
        let mut next = 4;
        for _round in 0..20 {
            let a = reconcile(&reps, 2, target);
            for _ in 0..a.start {
                reps.push(r(next, 2, Starting, 0));
                next += 1;
            }
            reps.retain(|x| !a.stop.contains(&x.number));
            let running = reps.iter().filter(|x| x.state == Running).count();
            assert!(running >= target as usize, "{reps:?}");
            // One starting replica becomes ready per round.
            if let Some(s) = reps.iter_mut().find(|x| x.state == Starting) {
                s.state = Running;
            }
        }
        assert_eq!(reps.len(), 3);
        assert!(reps.iter().all(|x| x.version == 2 && x.state == Running));
    }

    #[test]
    fn new_replicas_go_to_the_node_with_fewest() {
        assert_eq!(place::<u8>(&[], &[]), None);
        assert_eq!(place(&[1, 2, 3], &[]), Some(1));
        assert_eq!(place(&[1, 2, 3], &[1, 1, 2]), Some(3));
        assert_eq!(place(&[1, 2], &[1, 2, 9, 9]), Some(1));
        // Spread one by one: each node gets one before any gets two.
        let mut placed = Vec::new();
        for _ in 0..6 {
            placed.push(place(&[7, 8, 9], &placed).unwrap());
        }
        for n in [7, 8, 9] {
            assert_eq!(placed.iter().filter(|p| **p == n).count(), 2);
        }
    }

    #[test]
    fn scale_to_zero_stops_every_replica() {
        let reps = [r(1, 1, Running, 0), r(2, 0, Running, 0)];
        let mut a = reconcile(&reps, 1, 0);
        a.stop.sort();
        assert_eq!(
            a,
            Actions {
                start: 0,
                stop: vec![1, 2]
            }
        );
    }
}
