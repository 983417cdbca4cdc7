//! The examples' model: logistic regression trained by SGD on a generated two-class
//! dataset (used by `tune.rs` to search its hyperparameters and by `serve.rs` to serve it).

#![allow(dead_code)]

use mobula::tune::rng::Rng;

/// Features per point.
pub const FEATURES: usize = 20;

/// One labelled point.
pub type Point = ([f64; FEATURES], f64);

/// A fixed dataset: points around two centres, labels flipped with 10 % noise.
pub fn dataset(n: usize, seed: u64) -> Vec<Point> {
    let mut rng = Rng::seeded(seed);
    let mut centre = [0.0; FEATURES];
    let mut centre_rng = Rng::seeded(7);
    for c in centre.iter_mut() {
        *c = centre_rng.normal() * 0.35;
    }
    (0..n)
        .map(|_| {
            let label = if rng.unit() < 0.5 { 1.0 } else { 0.0 };
            let sign = if label == 1.0 { 1.0 } else { -1.0 };
            let mut x = [0.0; FEATURES];
            for (xi, ci) in x.iter_mut().zip(centre) {
                *xi = sign * ci + rng.normal();
            }
            let noisy = if rng.unit() < 0.1 { 1.0 - label } else { label };
            (x, noisy)
        })
        .collect()
}

/// The probability of class 1: weights are `FEATURES` coefficients then the bias.
pub fn predict(w: &[f64], x: &[f64]) -> f64 {
    let z = w[FEATURES] + w[..FEATURES].iter().zip(x).map(|(a, b)| a * b).sum::<f64>();
    1.0 / (1.0 + (-z).exp())
}

/// One SGD pass with L2 penalty.
pub fn epoch(w: &mut [f64], data: &[Point], lr: f64, l2: f64) {
    for (x, y) in data {
        let err = predict(w, x) - y;
        for j in 0..FEATURES {
            w[j] -= lr * (err * x[j] + l2 * w[j]);
        }
        w[FEATURES] -= lr * err;
    }
}

/// The fraction of points classified right.
pub fn accuracy(w: &[f64], data: &[Point]) -> f64 {
    let right = data
        .iter()
        .filter(|(x, y)| (predict(w, x) >= 0.5) == (*y == 1.0))
        .count();
    right as f64 / data.len() as f64
}
