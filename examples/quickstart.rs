//! The lecture's walkthrough in Mobula (sections 2 to 6 of `ray-intro-lecture.txt`): start a
//! node, run four slow tasks in parallel, keep state in an actor, share a large matrix
//! through the object store, tune two hyperparameters with ASHA. Each section prints its
//! result and how long it took.
//!
//! Run it with `cargo run --release --example quickstart`.

use std::time::{Duration, Instant};

use mobula::prelude::*;
use mobula::tune::{self, ReportError, Session, TrialConfig};

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

/// The lecture's Tune objective: `score = a * step + b`, reported at each of 100 steps. The
/// `?` ends the trial when ASHA stops it early.
#[mobula::remote]
fn objective(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let a: f64 = config.get("a").expect("a is in the search space");
    let b: f64 = config.get("b").expect("b is in the search space");
    for step in 0..100 {
        session.report([("score", a * step as f64 + b)])?;
    }
    Ok(())
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

    // 6. Tune: a from U(0, 1), b from U(0, 20), 10 samples, ASHA maximising the score.
    let t = Instant::now();
    let analysis = tune::run(
        objective,
        tune::SearchSpace::new()
            .param("a", tune::uniform(0.0, 1.0))
            .param("b", tune::uniform(0.0, 20.0)),
        tune::TuneConfig::new()
            .metric("score")
            .mode(tune::Mode::Max)
            .num_samples(10)
            .scheduler(tune::Asha::new()),
    )?;
    let best = analysis
        .best_result()
        .ok_or_else(|| anyhow::anyhow!("no trial reported a score"))?;
    let reports: u64 = analysis.trials().iter().map(|t| t.iterations()).sum();
    println!(
        "[6] tune: best config {} (score {:.3}), {} trials, {reports} of 1000 steps run, in {:.4} s",
        best.config,
        best.metrics()["score"],
        analysis.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
