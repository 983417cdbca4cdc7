//! `mobula::train`: a data-parallel trainer's workers, reports, checkpoints and shards; a
//! worker killed mid-run (the run goes on from its latest checkpoint, no round run twice
//! past it); a failing loop past `max_failures`; four workers over two nodes; Tune over a
//! trainer.

mod common;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Gate, turn};
use mobula::collective::{self, ReduceOp};
use mobula::prelude::*;
use mobula::train::{
    CheckpointConfig, DataParallelTrainer, RunConfig, ScalingConfig, TrainContext, TrainError,
    TrainWorker, WORKERS_NAMESPACE, worker_name,
};
use mobula::tune::{self, Checkpoint, Mode, TrialConfig, TuneConfig};
use mobula::{NodeId, PlacementStrategy};
use serde::{Deserialize, Serialize};

fn storage(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mobula-train-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settings {
    steps: u64,
    lr: f64,
    /// Stop rank 1 at this step of the first attempt until the test kills it.
    hold_at: Option<u64>,
}

/// Every step each worker ran: (attempt, rank, step).
static RAN: Mutex<Vec<(u32, usize, u64)>> = Mutex::new(Vec::new());
static HELD: AtomicBool = AtomicBool::new(false);
static GATE: Gate = Gate::new();

/// Fits `w` to the data's mean by gradient descent: each worker's gradient on its shard,
/// averaged over the workers by allreduce; a checkpoint (rank 0's `w`) every round.
#[mobula::remote]
fn fit_mean(settings: Settings, ctx: TrainContext) -> Result<(), TrainError> {
    let shard: Vec<f64> = ctx.shard()?;
    let mean = shard.iter().sum::<f64>() / shard.len().max(1) as f64;
    let mut w: f64 = match ctx.checkpoint() {
        Some(cp) => cp.part(0).unwrap().to_value().unwrap(),
        None => 0.0,
    };
    let first = ctx.next_round();
    for step in first..settings.steps {
        RAN.lock()
            .unwrap()
            .push((ctx.attempt(), ctx.world_rank(), step));
        if settings.hold_at == Some(step) && ctx.attempt() == 1 && ctx.world_rank() == 1 {
            HELD.store(true, Ordering::SeqCst);
            GATE.pass();
        }
        let mut grad = [2.0 * (w - mean)];
        collective::allreduce(&mut grad, ReduceOp::Mean, ctx.group())?;
        w -= settings.lr * grad[0];
        let cp = (ctx.world_rank() == 0).then(|| Checkpoint::from_value(&w).unwrap());
        ctx.report(
            [
                ("w", w),
                ("step", step as f64),
                ("attempt", ctx.attempt() as f64),
                ("shard_len", shard.len() as f64),
                ("rank_node", ctx.node_rank() as f64),
            ],
            cp,
        )?;
    }
    Ok(())
}

/// `w` after `steps` steps from 0 on `data` split evenly in `workers` shards (their mean
/// gradient is the whole data's).
fn expected_w(data: &[f64], steps: u64, lr: f64) -> f64 {
    let mean = data.iter().sum::<f64>() / data.len() as f64;
    let mut w = 0.0;
    for _ in 0..steps {
        w -= lr * 2.0 * (w - mean);
    }
    w
}

#[test]
fn a_trainer_reports_checkpoints_and_shards_its_data() {
    let _node = common::start(Config::default().num_cpus(3));
    let data: Vec<f64> = (0..30).map(f64::from).collect();
    let dir = storage("basic");
    let settings = Settings {
        steps: 6,
        lr: 0.25,
        hold_at: None,
    };
    let result = DataParallelTrainer::new(fit_mean, settings)
        .scaling_config(ScalingConfig::new(3))
        .run_config(
            RunConfig::new()
                .name("basic")
                .storage_path(&dir)
                .checkpoint_config(
                    CheckpointConfig::new()
                        .num_to_keep(1)
                        .score_attribute("w", Mode::Max),
                ),
        )
        .dataset(data.clone())
        .fit()
        .unwrap();
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_eq!(result.attempts, 1);
    let rounds: Vec<u64> = result.metrics_history.iter().map(|h| h.0).collect();
    assert_eq!(rounds, (0..6).collect::<Vec<_>>());
    let w = result.metrics.as_ref().unwrap()["w"];
    assert!((w - expected_w(&data, 6, 0.25)).abs() < 1e-9, "{w}");
    assert_eq!(result.metrics.as_ref().unwrap()["shard_len"], 10.0);
    // Two checkpoints kept (w rises each round, so the best is the latest), files to match.
    let cp = result.checkpoint.as_ref().unwrap();
    assert_eq!(cp.round(), 5);
    assert_eq!(cp.part(0).unwrap().to_value::<f64>().unwrap(), w);
    assert_eq!(result.best_checkpoints.len(), 2);
    assert_eq!(result.best_checkpoints[0].0.round(), 5);
    let path = result.path.clone().unwrap();
    let mut dirs: Vec<String> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint_"))
        .collect();
    dirs.sort();
    assert_eq!(dirs, vec!["checkpoint_000004", "checkpoint_000005"]);
    assert!(path.join("checkpoint_000005/rank_0.bin").exists());
    assert!(!path.join("checkpoint_000005/rank_1.bin").exists());
    let lines = std::fs::read_to_string(path.join("result.json")).unwrap();
    assert_eq!(lines.lines().count(), 6);
    // Resumed from a checkpoint: rounds go on after it.
    let again = DataParallelTrainer::new(
        fit_mean,
        Settings {
            steps: 8,
            lr: 0.25,
            hold_at: None,
        },
    )
    .scaling_config(ScalingConfig::new(3))
    .run_config(RunConfig::new().storage_path(&dir))
    .dataset(data.clone())
    .resume_from_checkpoint(cp.clone())
    .fit()
    .unwrap();
    let rounds: Vec<u64> = again.metrics_history.iter().map(|h| h.0).collect();
    assert_eq!(rounds, vec![6, 7]);
    let w = again.metrics.unwrap()["w"];
    assert!((w - expected_w(&data, 8, 0.25)).abs() < 1e-9, "{w}");
}

#[mobula::remote]
fn always_fails(_x: u8, ctx: TrainContext) -> Result<(), TrainError> {
    if ctx.world_rank() == 1 {
        return Err(TrainError::Invalid(format!(
            "bad data in attempt {}",
            ctx.attempt()
        )));
    }
    collective::barrier(ctx.group())?;
    Ok(())
}

#[test]
fn a_loop_that_keeps_failing_ends_the_run_with_its_error_after_max_failures() {
    let _node = common::start(Config::default().num_cpus(2));
    let result = DataParallelTrainer::new(always_fails, 0u8)
        .scaling_config(ScalingConfig::new(2))
        .run_config(
            RunConfig::new()
                .storage_path(storage("fails"))
                .max_failures(2),
        )
        .fit()
        .unwrap();
    assert_eq!(result.attempts, 3);
    let err = result.error.unwrap().to_string();
    assert!(err.contains("bad data in attempt 3"), "{err}");
    // More workers than the node can ever hold: an error, not a hang.
    let err = DataParallelTrainer::new(always_fails, 0u8)
        .scaling_config(ScalingConfig::new(3).cpus_per_worker(1.0))
        .run_config(RunConfig::new().storage_path(storage("fails")))
        .fit()
        .unwrap()
        .error
        .unwrap();
    assert!(matches!(err, TrainError::Start(_)), "{err}");
    // Zero workers: refused at once.
    assert!(matches!(
        DataParallelTrainer::new(always_fails, 0u8)
            .scaling_config(ScalingConfig::new(0))
            .fit(),
        Err(TrainError::Invalid(_))
    ));
}

#[test]
fn four_workers_on_two_nodes_survive_a_worker_killed_mid_run() {
    let _turn = turn();
    let (_cluster, workers, _driver) = common::local_cluster(
        Config::default().num_cpus(0),
        || Config::default().num_cpus(2),
        2,
        |c| c,
    );
    RAN.lock().unwrap().clear();
    HELD.store(false, Ordering::SeqCst);
    GATE.close();
    let data: Vec<f64> = (0..40).map(|i| f64::from(i % 7)).collect();
    let settings = Settings {
        steps: 10,
        lr: 0.1,
        hold_at: Some(5),
    };
    let fit = {
        let data = data.clone();
        let dir = storage("killed");
        std::thread::spawn(move || {
            DataParallelTrainer::new(fit_mean, settings)
                .scaling_config(ScalingConfig::new(4).placement_strategy(PlacementStrategy::Spread))
                .run_config(
                    RunConfig::new()
                        .name("killed")
                        .storage_path(dir)
                        .max_failures(1),
                )
                .dataset(data)
                .fit()
        })
    };
    common::eventually_or(
        "rank 1 holds at step 5",
        || HELD.load(Ordering::SeqCst),
        || {
            format!(
                "(steps run: {:?}; fit ended: {})",
                RAN.lock().unwrap(),
                fit.is_finished()
            )
        },
    );
    let victim =
        mobula::get_actor_in::<TrainWorker>(WORKERS_NAMESPACE, &worker_name("killed", 1, 1))
            .unwrap();
    let nodes: std::collections::HashSet<NodeId> = (0..4)
        .map(|r| {
            mobula::get_actor_in::<TrainWorker>(WORKERS_NAMESPACE, &worker_name("killed", 1, r))
                .unwrap()
                .node_id()
        })
        .collect();
    assert_eq!(
        nodes,
        workers.iter().copied().collect(),
        "spread over both nodes"
    );
    mobula::kill(&victim);
    let result = fit.join().unwrap().unwrap();
    GATE.open(); // the killed worker's thread, still held, may end now
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_eq!(result.attempts, 2);
    // Every round once, in order; the last ones from the second attempt.
    let rounds: Vec<u64> = result.metrics_history.iter().map(|h| h.0).collect();
    assert_eq!(rounds, (0..10).collect::<Vec<_>>());
    let attempts: Vec<f64> = result
        .metrics_history
        .iter()
        .map(|h| h.1["attempt"])
        .collect();
    assert_eq!(&attempts[..5], &[1.0; 5]);
    assert_eq!(&attempts[5..], &[2.0; 5]);
    // The second attempt began after the latest checkpoint (round 4): no step before 5 ran
    // again, on any rank.
    let ran = RAN.lock().unwrap().clone();
    let second: Vec<u64> = ran.iter().filter(|r| r.0 == 2).map(|r| r.2).collect();
    assert_eq!(second.len(), 4 * 5);
    assert!(second.iter().all(|&s| s >= 5), "{second:?}");
    let w = result.metrics.unwrap()["w"];
    assert!((w - expected_w(&data, 10, 0.1)).abs() < 1e-9, "{w}");
}

/// The loss of a quadratic after 5 steps at the trial's learning rate.
#[mobula::remote]
fn tuned_loop(config: TrialConfig, ctx: TrainContext) -> Result<(), TrainError> {
    let lr: f64 = config
        .get("lr")
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let mut w = 0.0;
    for _ in 0..5 {
        let mut grad = [2.0 * (w - 1.0)];
        collective::allreduce(&mut grad, ReduceOp::Mean, ctx.group())?;
        w -= lr * grad[0];
        ctx.report([("loss", (w - 1.0) * (w - 1.0))], None)?;
    }
    Ok(())
}

#[test]
fn tune_searches_a_trainers_hyperparameters() {
    let _node = common::start(Config::default().num_cpus(4));
    let results = mobula::train::tuner(
        tuned_loop,
        ScalingConfig::new(2),
        RunConfig::new().storage_path(storage("tuned-runs")),
        tune::SearchSpace::new().param("lr", tune::grid_search([0.05, 0.5, 0.2])),
    )
    .tune_config(
        TuneConfig::new()
            .metric("loss")
            .mode(Mode::Min)
            .cpus_per_trial(0.0)
            .max_concurrent_trials(1),
    )
    .run_config(
        tune::RunConfig::new()
            .storage_path(storage("tuned"))
            .verbose(0),
    )
    .fit()
    .unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.errors().is_empty(), "{:?}", results.errors());
    for t in results.trials() {
        assert_eq!(t.iterations(), 5, "every round of rank 0 reached Tune");
    }
    let best: f64 = results.best_config().unwrap().get("lr").unwrap();
    assert_eq!(best, 0.5, "lr 0.5 reaches w = 1 in one step");
}
