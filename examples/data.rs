//! Batch inference with `mobula::data`, as Ray Data is used for it: a Parquet table is
//! read, cleaned (rows with a missing feature dropped), featurized (features clipped to
//! ±3 standard deviations, a column of squared norms added), scored by the examples'
//! logistic regression held by a pool of two actors, and written back as Parquet. Then the
//! scored table is read again and summarized per predicted class, and the statistics of
//! each run are printed.
//!
//! Run it with `cargo run --release --example data --features data` (`-- --quick` for a
//! small table).

#[path = "shared/logistic.rs"]
mod logistic;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use logistic::{FEATURES, dataset, epoch, predict};
use mobula::data::{self, ActorPoolStrategy, Agg, Batch, MapOptions, col};
use mobula::prelude::*;

/// One row of the raw table.
#[derive(serde::Serialize, serde::Deserialize)]
struct Raw {
    id: i64,
    label: f64,
    /// `f0` .. `f19`, flattened into columns below.
    #[serde(flatten)]
    features: std::collections::BTreeMap<String, Option<f64>>,
}

fn feature(j: usize) -> String {
    format!("f{j:02}")
}

/// Features clipped to ±3, and their squared norm as a new column.
#[mobula::remote]
fn featurize(batch: Batch) -> anyhow::Result<Batch> {
    let mut columns: Vec<(String, ArrayRef)> = Vec::new();
    let mut norm = vec![0.0; batch.num_rows()];
    for field in batch.schema().fields() {
        let c = batch.column_by_name(field.name()).expect("its own column");
        if field.name().starts_with('f') {
            let f = c
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("f64 features");
            let clipped: Float64Array = f.values().iter().map(|v| v.clamp(-3.0, 3.0)).collect();
            for (n, v) in norm.iter_mut().zip(clipped.values()) {
                *n += v * v;
            }
            columns.push((field.name().clone(), Arc::new(clipped)));
        } else {
            columns.push((field.name().clone(), c.clone()));
        }
    }
    columns.push(("norm2".into(), Arc::new(Float64Array::from(norm))));
    Ok(Batch::new(RecordBatch::try_from_iter(columns)?))
}

/// The model, loaded once per actor: its weights.
#[mobula::actor]
struct Scorer {
    w: Vec<f64>,
}

#[mobula::actor]
impl Scorer {
    fn new(w: Vec<f64>) -> Self {
        Scorer { w }
    }

    /// Adds `p` (probability of class 1) and `pred` (0 or 1) to the batch.
    fn score(&self, batch: Batch) -> anyhow::Result<Batch> {
        let feats: Vec<&Float64Array> = (0..FEATURES)
            .map(|j| {
                batch
                    .column_by_name(&feature(j))
                    .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
                    .ok_or_else(|| anyhow::anyhow!("no f64 column {}", feature(j)))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut x = [0.0; FEATURES];
        let p: Float64Array = (0..batch.num_rows())
            .map(|i| {
                for (xj, f) in x.iter_mut().zip(&feats) {
                    *xj = f.value(i);
                }
                predict(&self.w, &x)
            })
            .collect();
        let pred: Int64Array = p.values().iter().map(|p| i64::from(*p >= 0.5)).collect();
        let mut columns: Vec<(String, ArrayRef)> = ["id", "label"]
            .iter()
            .map(|c| {
                (
                    c.to_string(),
                    batch.column_by_name(c).expect("kept").clone(),
                )
            })
            .collect();
        columns.push(("p".into(), Arc::new(p)));
        columns.push(("pred".into(), Arc::new(pred)));
        Ok(Batch::new(RecordBatch::try_from_iter(columns)?))
    }
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rows = if quick { 20_000 } else { 1_000_000 };
    let _mobula = mobula::init(Config::default().num_cpus(2))?;
    let dir = std::env::temp_dir().join(format!("mobula-data-example-{}", std::process::id()));

    // A raw table: the examples' two-class points, every 50th row missing its f03.
    let points = dataset(rows, 11);
    let raw: Vec<Raw> = points
        .iter()
        .enumerate()
        .map(|(i, (x, y))| Raw {
            id: i as i64,
            label: *y,
            features: (0..FEATURES)
                .map(|j| (feature(j), (!(j == 3 && i % 50 == 0)).then_some(x[j])))
                .collect(),
        })
        .collect();
    let written = data::from_items(&raw)?.write_parquet(dir.join("raw"))?;
    println!("wrote {written} raw rows to {}", dir.join("raw").display());

    // The model: trained on a small sample here, as a model file would be loaded.
    let mut w = vec![0.0; FEATURES + 1];
    let train = dataset(2000, 1);
    for _ in 0..20 {
        epoch(&mut w, &train, 0.05, 1e-4);
    }

    // Read, clean, featurize, score on an actor pool, write.
    let scored = data::read_parquet(dir.join("raw"))?
        .filter(col("f03").is_null().not())
        .map_batches(featurize, MapOptions::new())
        .map_batches_on(
            ActorPoolStrategy::new(2).batch_size(8192),
            move || Scorer::options().num_cpus(0.5).remote(w.clone()),
            |scorer, batch| scorer.score(batch),
        );
    let n = scored.write_parquet(dir.join("scored"))?;
    println!("scored and wrote {n} rows");
    println!("{}", scored.stats());

    // Read the scores back: accuracy, and a summary per predicted class.
    let back =
        data::read_parquet(dir.join("scored"))?.add_column("right", col("pred").eq(col("label")));
    let right = back.filter(col("right")).count()?;
    let accuracy = right as f64 / n as f64;
    println!("accuracy {accuracy:.4} over {n} rows");
    back.groupby(&["pred"])
        .aggregate(&[Agg::Count, Agg::Mean("p".into()), Agg::Mean("label".into())])
        .show(10)?;

    let dropped = rows as u64 - n;
    anyhow::ensure!(
        dropped == (rows as u64).div_ceil(50),
        "{dropped} rows dropped"
    );
    anyhow::ensure!(accuracy > 0.8, "accuracy {accuracy}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
