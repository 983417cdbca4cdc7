//! Which checkpoints stay (pure): the latest always, so that a failed or resumed run goes on
//! from it; of the others, the `n` best by score, or the `n` most recent without one. Shared
//! by Tune's trials and Train's runs.

/// Of checkpoints `(iteration, score)` (scores oriented so that larger is better; `None`
/// without the metric), the iterations to keep: every one when `n` is `None`, else the
/// latest and the `n` best of the rest (those with a score before those without, the more
/// recent first among equals).
pub(crate) fn to_keep(checkpoints: &[(u64, Option<f64>)], n: Option<usize>) -> Vec<u64> {
    let mut kept: Vec<u64> = checkpoints.iter().map(|c| c.0).collect();
    let (Some(n), Some(&latest)) = (n, kept.iter().max()) else {
        return kept;
    };
    let mut rest: Vec<(u64, Option<f64>)> = checkpoints
        .iter()
        .copied()
        .filter(|(i, _)| *i != latest)
        .collect();
    rest.sort_by(|a, b| match (a.1, b.1) {
        (Some(x), Some(y)) => y.total_cmp(&x).then(b.0.cmp(&a.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b.0.cmp(&a.0),
    });
    kept = rest.iter().take(n).map(|r| r.0).collect();
    kept.push(latest);
    kept.sort_unstable();
    kept
}

#[cfg(test)]
mod tests {
    use super::to_keep;

    #[test]
    fn the_latest_stays_and_the_best_of_the_rest() {
        let scored = [
            (0, Some(5.0)),
            (1, Some(1.0)),
            (2, Some(3.0)),
            (3, Some(4.0)),
        ];
        assert_eq!(to_keep(&scored, None), vec![0, 1, 2, 3]);
        assert_eq!(to_keep(&scored, Some(1)), vec![0, 3]);
        assert_eq!(to_keep(&scored, Some(2)), vec![0, 2, 3]);
        assert_eq!(to_keep(&scored, Some(0)), vec![3]);
        // Without scores: the most recent.
        let plain = [(0, None), (1, None), (2, None), (3, None)];
        assert_eq!(to_keep(&plain, Some(1)), vec![2, 3]);
        // A checkpoint without the metric ranks after those with it.
        let mixed = [(0, None), (1, Some(-2.0)), (2, None)];
        assert_eq!(to_keep(&mixed, Some(1)), vec![1, 2]);
    }
}
