//! The lecture's walkthrough in Mobula (sections 2 to 5 of `ray-intro-lecture.txt`): start a
//! node, run four slow tasks in parallel, keep state in an actor, share a large matrix
//! through the object store. Each section prints its result and how long it took.
//!
//! Run it with `cargo run --release --example quickstart`.

use std::time::{Duration, Instant};

use mobula::prelude::*;

/// A slow operation: sleeps one second, returns the square.
#[mobula::remote]
fn slow_function(i: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    i * i
}

/// A stateful worker: the lecture's Counter.
#[mobula::actor]
struct Counter {
    value: i64,
}

#[mobula::actor]
impl Counter {
    fn new() -> Self {
        Counter { value: 0 }
    }

    fn increment(&mut self) -> i64 {
        self.value += 1;
        self.value
    }
}

/// Sums a matrix (given as its values, row after row).
#[mobula::remote]
fn matrix_sum(matrix: Vec<f64>) -> f64 {
    matrix.iter().sum()
}

/// A small deterministic pseudo-random generator, so the example needs no extra crate.
fn random_matrix(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    // 2. Setting up: start a node with 4 CPUs.
    let t = Instant::now();
    let _mobula = mobula::init(Config::default().num_cpus(4))?;
    println!(
        "[2] init: node {} started in {:.3} s",
        _mobula.node_id(),
        t.elapsed().as_secs_f64()
    );

    // 3. Remote functions run in parallel: four 1-second tasks take about 1 second.
    let t = Instant::now();
    let refs: Vec<ObjectRef<u64>> = (0..4).map(|i| slow_function.remote(i)).collect();
    let results = mobula::get_all(&refs)?;
    println!(
        "[3] tasks: results {results:?} in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(results, vec![0, 1, 4, 9]);

    // 4. Actors keep state between calls: five increments give 1 to 5.
    let t = Instant::now();
    let counter = Counter::remote()?;
    let values = mobula::get_all(&(0..5).map(|_| counter.increment()).collect::<Vec<_>>())?;
    println!(
        "[4] actors: counter values {values:?} in {:.4} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(values, vec![1, 2, 3, 4, 5]);

    // 5. The object store: put a 1000x1000 matrix once, pass its ref to a task.
    let matrix = random_matrix(1000 * 1000, 42);
    let expected: f64 = matrix.iter().sum();
    let t = Instant::now();
    let matrix_ref = mobula::put(matrix)?;
    let sum = matrix_sum.remote(&matrix_ref).get()?;
    println!(
        "[5] objects: sum of matrix elements {sum:.3} in {:.4} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(sum, expected);
    Ok(())
}
