//! Tuning a real model: logistic regression trained by SGD in pure Rust on a generated
//! two-class dataset, searching the learning rate and the L2 penalty. Once with ASHA (poor
//! trials stopped early) and once with PBT (poor trials continue from good ones' weights with
//! perturbed hyperparameters); each run prints the best config, its validation accuracy and
//! how many epochs were spent against running every trial to the end.
//!
//! Run it with `cargo run --release --example tune`.

#[path = "shared/logistic.rs"]
mod logistic;

use logistic::{FEATURES, accuracy, dataset, epoch};
use mobula::prelude::*;
use mobula::tune::{self, Checkpoint, Mode, ReportError, RunConfig, Session, TrialConfig};

const EPOCHS: u64 = 30;

/// The trainable: an epoch per report, the weights in a checkpoint.
#[mobula::remote]
fn train(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let lr: f64 = config.get("lr").expect("lr");
    let l2: f64 = config.get("l2").expect("l2");
    let train_set = dataset(2000, 1);
    let validation = dataset(1000, 2);
    let (mut w, start) = match session.checkpoint() {
        Some(c) => (c.to_value::<Vec<f64>>().expect("weights"), c.iteration()),
        None => (vec![0.0; FEATURES + 1], 0),
    };
    for _ in start..EPOCHS {
        epoch(&mut w, &train_set, lr, l2);
        let acc = accuracy(&w, &validation);
        session.report_with_checkpoint(
            [("val_accuracy", acc)],
            Checkpoint::from_value(&w).expect("weights encode"),
        )?;
    }
    Ok(())
}

fn space() -> tune::SearchSpace {
    tune::SearchSpace::new()
        .param("lr", tune::loguniform(1e-4, 1.0))
        .param("l2", tune::loguniform(1e-5, 1e-1))
}

fn summary(label: &str, results: &tune::ResultGrid, seconds: f64) -> anyhow::Result<()> {
    let best = results
        .best_result()
        .ok_or_else(|| anyhow::anyhow!("no trial reported"))?;
    let spent: u64 = results.trials().iter().map(|t| t.iterations()).sum();
    let full = results.len() as u64 * EPOCHS;
    println!(
        "{label}: best {} -> val_accuracy {:.3}; {spent} of {full} epochs run ({:.0} % saved) in {seconds:.2} s",
        best.config,
        best.metrics()["val_accuracy"],
        100.0 * (1.0 - spent as f64 / full as f64),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let _mobula = mobula::init(Config::default())?;
    let storage = std::env::temp_dir().join("mobula-example-tune");
    let run = |name: &str| {
        RunConfig::new()
            .name(name)
            .storage_path(&storage)
            .verbose(1)
    };

    // ASHA: 24 random configs; poor ones stop at epoch 1, 3 or 9 (reduction factor 3).
    let t = std::time::Instant::now();
    let asha = tune::Tuner::new(train)
        .param_space(space())
        .tune_config(
            tune::TuneConfig::new()
                .metric("val_accuracy")
                .mode(Mode::Max)
                .num_samples(24)
                .seed(1)
                .scheduler(tune::Asha::new().max_t(EPOCHS as f64).reduction_factor(3)),
        )
        .run_config(run("asha"))
        .fit()?;
    let asha_s = t.elapsed().as_secs_f64();

    // PBT: a population of 8; every 5 epochs the bottom quarter takes over the weights of a
    // top trial with its hyperparameters perturbed.
    let t = std::time::Instant::now();
    let pbt = tune::Tuner::new(train)
        .param_space(space())
        .tune_config(
            tune::TuneConfig::new()
                .metric("val_accuracy")
                .mode(Mode::Max)
                .num_samples(8)
                .seed(2)
                .scheduler(
                    tune::Pbt::new()
                        .perturbation_interval(5)
                        .mutation("lr", tune::loguniform(1e-4, 1.0))
                        .mutation("l2", tune::loguniform(1e-5, 1e-1))
                        .seed(3),
                ),
        )
        .run_config(run("pbt"))
        .fit()?;
    let pbt_s = t.elapsed().as_secs_f64();

    println!();
    summary("ASHA", &asha, asha_s)?;
    summary("PBT ", &pbt, pbt_s)?;
    let exploits: usize = pbt.trials().iter().map(|t| t.exploited_from.len()).sum();
    println!("PBT continued trials from better ones {exploits} times");
    Ok(())
}
