//! Which replica takes a request (Ray Serve's power of two choices), pure: the replicas'
//! ongoing requests and two random draws in, a replica out.
//!
//! Two replicas are drawn at random and the one with fewer ongoing requests takes the
//! request, if it is below its `max_ongoing_requests`; if both are full, the least loaded
//! replica with room does. When every replica is full, the least loaded one takes it into
//! its queue, where it waits for room (the replica's gate bounds that queue by
//! `max_queued_requests` and refuses beyond it: HTTP 503).

/// One replica as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaLoad {
    /// Requests sent to it and not yet answered.
    pub ongoing: u32,
    /// The most it runs at once.
    pub max_ongoing: u32,
}

impl ReplicaLoad {
    fn has_room(&self) -> bool {
        self.ongoing < self.max_ongoing
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the replica at this index, which has room.
    Replica(usize),
    /// Every replica is full: into the queue of the least loaded, at this index.
    Queue(usize),
    /// There is no replica: the request is held until one starts.
    NoReplica,
}

/// Picks a replica for one request: `draw(n)` returns a random index below `n`.
pub fn choose(replicas: &[ReplicaLoad], mut draw: impl FnMut(usize) -> usize) -> Route {
    let n = replicas.len();
    if n == 0 {
        return Route::NoReplica;
    }
    if n > 1 {
        let a = draw(n) % n;
        // A second index, different from the first.
        let b = (a + 1 + draw(n - 1) % (n - 1)) % n;
        let (first, second) = if replicas[b].ongoing < replicas[a].ongoing {
            (b, a)
        } else {
            (a, b)
        };
        for i in [first, second] {
            if replicas[i].has_room() {
                return Route::Replica(i);
            }
        }
    }
    // The least loaded: with room, or into its queue.
    let (i, least) = replicas
        .iter()
        .enumerate()
        .min_by_key(|(_, r)| r.ongoing)
        .expect("there is a replica");
    if least.has_room() {
        Route::Replica(i)
    } else {
        Route::Queue(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(ongoing: &[u32], max: u32) -> Vec<ReplicaLoad> {
        ongoing
            .iter()
            .map(|&ongoing| ReplicaLoad {
                ongoing,
                max_ongoing: max,
            })
            .collect()
    }

    /// Draws from a fixed script.
    fn script(draws: &[usize]) -> impl FnMut(usize) -> usize + '_ {
        let mut i = 0;
        move |_| {
            let d = draws[i % draws.len()];
            i += 1;
            d
        }
    }

    #[test]
    fn the_less_loaded_of_the_two_drawn_takes_it() {
        let r = loads(&[5, 1, 3], 10);
        // Draws 0, then 0 of the two others: replica 1.
        assert_eq!(choose(&r, script(&[0, 0])), Route::Replica(1));
        // Draws 2, then 0 of the others (replica 0): replica 2 has fewer.
        assert_eq!(choose(&r, script(&[2, 0])), Route::Replica(2));
    }

    #[test]
    fn the_two_drawn_are_always_different() {
        let r = loads(&[0, 0], 10);
        for first in 0..2 {
            for second in 0..4 {
                let mut seen = Vec::new();
                let mut draws = [first, second].into_iter();
                let route = choose(&r, |n| {
                    let d = draws.next().unwrap();
                    seen.push((d, n));
                    d
                });
                assert!(matches!(route, Route::Replica(_)));
                assert_eq!(seen[1].1, 1, "the second draw is among the one other");
            }
        }
    }

    #[test]
    fn full_replicas_are_skipped_and_all_full_queues_at_the_least_loaded() {
        let r = loads(&[2, 2, 0], 2);
        assert_eq!(choose(&r, script(&[0, 0])), Route::Replica(2));
        let full = loads(&[3, 2, 4], 2);
        assert_eq!(choose(&full, script(&[0, 0])), Route::Queue(1));
        assert_eq!(choose(&[], script(&[0])), Route::NoReplica);
        assert_eq!(choose(&loads(&[1], 1), script(&[0])), Route::Queue(0));
        assert_eq!(choose(&loads(&[0], 1), script(&[0])), Route::Replica(0));
    }

    /// Under random draws, load spreads: no replica ends far above the others.
    #[test]
    fn random_draws_spread_the_load() {
        let mut r = loads(&[0; 8], u32::MAX);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..8_000 {
            let route = choose(&r, |n| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % n as u64) as usize
            });
            let Route::Replica(i) = route else {
                panic!("no limit: never waits")
            };
            r[i].ongoing += 1;
        }
        let max = r.iter().map(|x| x.ongoing).max().unwrap();
        let min = r.iter().map(|x| x.ongoing).min().unwrap();
        assert!(max - min <= 5, "{r:?}");
    }
}
