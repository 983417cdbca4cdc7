//! mobula::tune against Ray Tune: the lecture's experiment (10 trials of `score = a * step + b`
//! for 100 steps, ASHA, 4 CPUs), as `../shared/bench/ray/seed_ray.py` times it, and a large
//! experiment (1,000 trials x 100 reports, FIFO) for Tune's own overhead.
//!
//!     cargo bench --bench tune                 # 5 rounds each, medians
//!     cargo bench --bench tune -- --quick      # one round, 100 trials in the large case (CI)
//!     cargo bench --bench tune -- --storage /dev/shm   # result files elsewhere (default: temp dir)
//!
//! Prints one JSON object of medians: `tune_lecture_s`, `tune_1000x100_s`.

use std::time::Instant;

use mobula::prelude::*;
use mobula::tune::{self, ReportError, RunConfig, Session, TrialConfig, TuneConfig, Tuner};

#[mobula::remote]
fn objective(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let a: f64 = config.get("a").expect("a");
    let b: f64 = config.get("b").expect("b");
    for step in 0..100 {
        session.report([("score", a * step as f64 + b)])?;
    }
    Ok(())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 5 };
    let args: Vec<String> = std::env::args().collect();
    let root = args
        .iter()
        .position(|a| a == "--storage")
        .and_then(|i| args.get(i + 1))
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let storage = root.join(format!("mobula-bench-tune-{}", std::process::id()));
    let _mobula = mobula::init(Config::default().num_cpus(4))?;
    let space = || {
        tune::SearchSpace::new()
            .param("a", tune::uniform(0.0, 1.0))
            .param("b", tune::uniform(0.0, 20.0))
    };

    let mut lecture = Vec::new();
    for round in 0..rounds {
        let t = Instant::now();
        let results = Tuner::new(objective)
            .param_space(space())
            .tune_config(
                TuneConfig::new()
                    .metric("score")
                    .mode(tune::Mode::Max)
                    .num_samples(10)
                    .scheduler(tune::Asha::new()),
            )
            .run_config(
                RunConfig::new()
                    .storage_path(&storage)
                    .name(format!("lecture{round}"))
                    .verbose(0),
            )
            .fit()?;
        lecture.push(t.elapsed().as_secs_f64());
        assert_eq!(results.len(), 10);
        assert!(results.best_result().is_some());
    }

    let trials = if quick { 100 } else { 1000 };
    let mut large = Vec::new();
    for round in 0..rounds {
        let t = Instant::now();
        let results = Tuner::new(objective)
            .param_space(space())
            .tune_config(TuneConfig::new().metric("score").num_samples(trials))
            .run_config(
                RunConfig::new()
                    .storage_path(&storage)
                    .name(format!("large{round}"))
                    .verbose(0),
            )
            .fit()?;
        large.push(t.elapsed().as_secs_f64());
        let reports: u64 = results.trials().iter().map(|t| t.iterations()).sum();
        assert_eq!(reports, trials as u64 * 100);
    }
    let _ = std::fs::remove_dir_all(&storage);
    println!(
        "tune_lecture_s: median {:.4} of {lecture:.4?}",
        median(lecture.clone())
    );
    println!(
        "tune_{trials}x100_s: median {:.3} of {large:.3?}",
        median(large.clone())
    );
    println!(
        "{{\"tune_lecture_s\": {:.4}, \"tune_{trials}x100_s\": {:.3}}}",
        median(lecture),
        median(large)
    );
    Ok(())
}
