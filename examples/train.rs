//! Data-parallel training of a real model: a two-layer perceptron in candle (Hugging Face's
//! Rust ML crate, on CPU) learns to tell three overlapping clouds of points apart. Trained
//! twice with the same global batch: on one worker, then on two workers each taking half of
//! every batch, their gradients averaged by `mobula::collective::allreduce` each step. Data
//! parallelism with equal halves computes the same gradient as one worker, so the two runs
//! print the same falling loss and end with the same accuracy.
//!
//!     cargo run --release --example train --features candle
//!     cargo run --release --example train --features candle -- --quick   # fewer steps

use anyhow::{Context as _, Result};
use candle_core::{D, DType, Device, Tensor, Var};
use mobula::collective::{self, ReduceOp};
use mobula::prelude::*;
use mobula::train::{
    CheckpointConfig, DataParallelTrainer, Mode, RunConfig, ScalingConfig, TrainContext,
    TrainResult,
};
use mobula::tune::Checkpoint;
use mobula::tune::rng::Rng;
use serde::{Deserialize, Serialize};

const CLASSES: usize = 3;
const HIDDEN: usize = 32;
const POINTS: usize = 3000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settings {
    steps: u64,
    global_batch: usize,
    lr: f64,
    seed: u64,
}

/// Three clouds of 2-D points around the corners of a triangle, overlapping a little.
fn dataset(seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::seeded(seed);
    let centres = [(0.0, 1.2), (-1.0, -0.6), (1.0, -0.6)];
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for i in 0..POINTS {
        let label = i % CLASSES;
        let (cx, cy) = centres[label];
        xs.push((cx + 0.55 * rng.normal()) as f32);
        xs.push((cy + 0.55 * rng.normal()) as f32);
        ys.push(label as u32);
    }
    (xs, ys)
}

/// The model's parameters, as candle variables: two layers.
struct Model {
    vars: Vec<Var>,
}

impl Model {
    /// Parameters from `flat` (as [`Model::flat`] gives them).
    fn from_flat(flat: &[f32], dev: &Device) -> Result<Model> {
        let shapes: [&[usize]; 4] = [&[HIDDEN, 2], &[HIDDEN], &[CLASSES, HIDDEN], &[CLASSES]];
        let mut at = 0;
        let mut vars = Vec::new();
        for shape in shapes {
            let n: usize = shape.iter().product();
            let t = Tensor::from_slice(&flat[at..at + n], shape, dev)?;
            vars.push(Var::from_tensor(&t)?);
            at += n;
        }
        Ok(Model { vars })
    }

    /// Random parameters (scaled by fan-in), the same for a seed.
    fn init(seed: u64) -> Vec<f32> {
        let mut rng = Rng::seeded(seed);
        let mut flat = Vec::new();
        for (n, fan_in) in [
            (HIDDEN * 2, 2),
            (HIDDEN, 0),
            (CLASSES * HIDDEN, HIDDEN),
            (CLASSES, 0),
        ] {
            for _ in 0..n {
                let scale = if fan_in == 0 {
                    0.0
                } else {
                    (1.0 / fan_in as f64).sqrt()
                };
                flat.push((rng.normal() * scale) as f32);
            }
        }
        flat
    }

    fn flat(&self) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for v in &self.vars {
            out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let [w1, b1, w2, b2] = [0, 1, 2, 3].map(|i| self.vars[i].as_tensor());
        let h = x.matmul(&w1.t()?)?.broadcast_add(b1)?.relu()?;
        Ok(h.matmul(&w2.t()?)?.broadcast_add(b2)?)
    }

    fn accuracy(&self, x: &Tensor, y: &Tensor) -> Result<f64> {
        let predicted = self.logits(x)?.argmax(D::Minus1)?;
        let right = predicted
            .eq(y)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()?;
        Ok(f64::from(right) / y.dims1()? as f64)
    }
}

/// One worker: every step it takes its part of the global batch, computes the loss and its
/// gradients with candle, averages the gradients (and the loss, for the report) over the
/// workers, and takes an SGD step. Rank 0 checkpoints the parameters every 100 steps.
#[mobula::remote]
fn train_loop(settings: Settings, ctx: TrainContext) -> Result<()> {
    let dev = Device::Cpu;
    let (xs, ys) = dataset(settings.seed);
    let x_all = Tensor::from_slice(&xs, (POINTS, 2), &dev)?;
    let y_all = Tensor::from_slice(&ys, POINTS, &dev)?;
    // The starting parameters: the checkpoint's, or rank 0's broadcast to every worker.
    let mut flat = match ctx.checkpoint().and_then(|c| c.part(0)) {
        Some(cp) => cp.to_value::<Vec<f32>>()?,
        None => Model::init(settings.seed),
    };
    collective::broadcast(&mut flat, 0, ctx.group())?;
    let model = Model::from_flat(&flat, &dev)?;
    let (world, rank) = (ctx.world_size(), ctx.world_rank());
    let local = settings.global_batch / world;
    for step in ctx.next_round()..settings.steps {
        // Global batch `step` is a fixed window of the data; this worker takes its part.
        let window = (step as usize * settings.global_batch) % (POINTS - settings.global_batch);
        let start = window + rank * local;
        let x = x_all.narrow(0, start, local)?;
        let y = y_all.narrow(0, start, local)?;
        let loss = candle_nn::loss::cross_entropy(&model.logits(&x)?, &y)?;
        let grads = loss.backward()?;
        let mut g = Vec::with_capacity(flat.len());
        for v in &model.vars {
            let grad = grads.get(v).context("a parameter without a gradient")?;
            g.extend(grad.flatten_all()?.to_vec1::<f32>()?);
        }
        let mut loss_value = [loss.to_scalar::<f32>()?];
        collective::allreduce(&mut g, ReduceOp::Mean, ctx.group())?;
        collective::allreduce(&mut loss_value, ReduceOp::Mean, ctx.group())?;
        let mut at = 0;
        for v in &model.vars {
            let n = v.elem_count();
            let grad = Tensor::from_slice(&g[at..at + n], v.shape(), &dev)?;
            v.set(&(v.as_tensor() - (grad * settings.lr)?)?)?;
            at += n;
        }
        let last = step + 1 == settings.steps;
        let mut metrics = vec![("loss", f64::from(loss_value[0]))];
        if last {
            metrics.push(("accuracy", model.accuracy(&x_all, &y_all)?));
        }
        let checkpoint = if rank == 0 && ((step + 1) % 100 == 0 || last) {
            Some(Checkpoint::from_value(&model.flat()?)?)
        } else {
            None
        };
        ctx.report(metrics, checkpoint)?;
    }
    Ok(())
}

fn train(workers: usize, settings: &Settings) -> Result<TrainResult> {
    let result = DataParallelTrainer::new(train_loop, settings.clone())
        .scaling_config(ScalingConfig::new(workers))
        .run_config(
            RunConfig::new()
                .name(format!("mlp_{workers}_workers"))
                .storage_path(std::env::temp_dir().join("mobula-train-example"))
                .checkpoint_config(
                    CheckpointConfig::new()
                        .num_to_keep(1)
                        .score_attribute("loss", Mode::Min),
                )
                .max_failures(1),
        )
        .fit()?;
    if let Some(e) = &result.error {
        anyhow::bail!("training on {workers} worker(s) failed: {e}");
    }
    Ok(result)
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let settings = Settings {
        steps: if quick { 100 } else { 400 },
        global_batch: 64,
        lr: 0.2,
        seed: 11,
    };
    let _mobula = mobula::init(Config::default().num_cpus(2))?;
    let one = train(1, &settings)?;
    let two = train(2, &settings)?;
    let first = |r: &TrainResult| r.metrics_history.first().map_or(f64::NAN, |h| h.1["loss"]);
    println!(
        "loss at step 0: 1 worker {:.4}, 2 workers {:.4}",
        first(&one),
        first(&two)
    );
    // The mean loss over each tenth of the run.
    println!("steps       loss (1 worker, batch 64)   loss (2 workers, 32 each)");
    let tenth = (settings.steps / 10) as usize;
    for (a, b) in one
        .metrics_history
        .chunks(tenth)
        .zip(two.metrics_history.chunks(tenth))
    {
        let mean = |c: &[(u64, mobula::tune::Metrics)]| {
            c.iter().map(|h| h.1["loss"]).sum::<f64>() / c.len() as f64
        };
        let (first, last) = (a[0].0, a[a.len() - 1].0);
        println!(
            "{first:>4}-{last:<4}   {:>26.4}   {:>25.4}",
            mean(a),
            mean(b)
        );
    }
    let accuracy = |r: &TrainResult| r.metrics.as_ref().map_or(f64::NAN, |m| m["accuracy"]);
    let (acc1, acc2) = (accuracy(&one), accuracy(&two));
    println!("final accuracy: 1 worker {acc1:.4}, 2 workers {acc2:.4}");
    let start = first(&one);
    let end = one.metrics.as_ref().map_or(f64::NAN, |m| m["loss"]);
    anyhow::ensure!(end < start / 2.0, "the loss did not fall: {start} -> {end}");
    anyhow::ensure!(
        (acc1 - acc2).abs() < 0.005,
        "one and two workers ended differently: {acc1} vs {acc2}"
    );
    println!(
        "checkpoints kept for 2 workers (best first): rounds {:?}, under {}",
        two.best_checkpoints
            .iter()
            .map(|c| c.0.round())
            .collect::<Vec<_>>(),
        two.path
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string())
    );
    Ok(())
}
