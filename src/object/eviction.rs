//! Which objects to spill when the store is over its memory limit: a pure decision.

use super::table::Candidate;

/// How far under the limit a reclaim aims, so that reclaims do not run on every put.
pub(crate) const LOW_WATER_PERCENT: u64 = 90;

/// Bytes to free so that `used` drops to the low-water mark of `limit` (0 if under the limit).
pub(crate) fn bytes_to_free(used: u64, limit: u64) -> u64 {
    if used <= limit {
        return 0;
    }
    used - limit / 100 * LOW_WATER_PERCENT - (limit % 100) * LOW_WATER_PERCENT / 100
}

/// The least recently used candidates whose sizes add up to at least `need` bytes (all of
/// them when they do not). Ties are broken by id, so the choice is deterministic.
pub(crate) fn choose_victims(mut candidates: Vec<Candidate>, need: u64) -> Vec<Candidate> {
    candidates.sort_unstable();
    let mut freed = 0u64;
    let mut chosen = Vec::new();
    for c in candidates {
        if freed >= need {
            break;
        }
        freed += c.size;
        chosen.push(c);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::id::ObjectId;

    fn cand(last_used: u64, seq: u64, size: u64) -> Candidate {
        Candidate {
            last_used,
            id: ObjectId::from_parts(1, seq),
            size,
        }
    }

    #[test]
    fn nothing_to_free_under_the_limit() {
        assert_eq!(bytes_to_free(100, 100), 0);
        assert_eq!(bytes_to_free(0, 0), 0);
    }

    #[test]
    fn frees_down_to_the_low_water_mark() {
        assert_eq!(bytes_to_free(1100, 1000), 200);
        assert_eq!(bytes_to_free(5, 0), 5);
    }

    #[test]
    fn oldest_first_until_enough() {
        let c = vec![
            cand(5, 1, 10),
            cand(1, 2, 10),
            cand(3, 3, 10),
            cand(2, 4, 10),
        ];
        let chosen: Vec<u64> = choose_victims(c, 15).iter().map(|c| c.last_used).collect();
        assert_eq!(chosen, vec![1, 2]);
    }

    #[test]
    fn all_when_not_enough() {
        let c = vec![cand(2, 1, 1), cand(1, 2, 1)];
        assert_eq!(choose_victims(c, 100).len(), 2);
        assert!(choose_victims(vec![cand(1, 1, 1)], 0).is_empty());
    }
}
