//! mobula::data beside Ray Data (`../shared/bench/ray/data_pipelines.py`) and Polars
//! (`benches/compare_data_polars.py`): the same four pipelines on the same generated
//! Parquet table (8 files; columns id int64, x float64, key string of 100 values, f0..f15
//! float32).
//!
//!     cargo bench --bench data --features data                   # 10M rows, table in /tmp/mobula-data-bench
//!     cargo bench --bench data --features data -- --quick        # 200,000 rows, a table of its own (CI)
//!     cargo bench --bench data --features data -- --only groupby # names containing "groupby"
//!     /tmp/rayenv/bin/python ../shared/bench/ray/data_pipelines.py
//!     /tmp/rayenv/bin/python benches/compare_data_polars.py
//!
//! The table is made by the Ray script (pyarrow) when it is run first; otherwise this makes
//! one of the same shape itself. Prints, as the Ray script does, one line per pipeline:
//! `data NAME rows=N s=T rows_per_s=R`, then the process's peak RSS. Two more pipelines,
//! `parquet_expr_*`, write the groupby and write pipelines with column expressions instead
//! of a registered function, as Polars' side does: the plan then sees which columns are
//! used and decodes only those (an opaque function, in Ray's script and in the four
//! pipelines, may use any column, so every one is decoded).

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow::compute::kernels::numeric;
use mobula::data::{self, ActorPoolStrategy, Batch, MapOptions, col};
use mobula::prelude::*;

#[mobula::remote]
fn double_id(b: Batch) -> anyhow::Result<Batch> {
    let id = numeric::mul(b.column_by_name("id").unwrap(), &Int64Array::new_scalar(2))?;
    Ok(Batch::new(RecordBatch::try_from_iter([("id", id)])?))
}

#[mobula::remote]
fn key_y(b: Batch) -> anyhow::Result<Batch> {
    let y = numeric::mul(
        b.column_by_name("x").unwrap(),
        &Float64Array::new_scalar(2.0),
    )?;
    Ok(Batch::new(RecordBatch::try_from_iter([
        ("key", b.column_by_name("key").unwrap().clone()),
        ("y", y),
    ])?))
}

#[mobula::remote]
fn id_x2(b: Batch) -> anyhow::Result<Batch> {
    let x = b.column_by_name("x").unwrap();
    let x2 = numeric::mul(x, x)?;
    Ok(Batch::new(RecordBatch::try_from_iter([
        ("id", b.column_by_name("id").unwrap().clone()),
        ("x2", x2),
    ])?))
}

/// The batch-inference model: a 16 -> 8 matrix, argmax of the scores.
#[mobula::actor]
struct Model {
    w: Vec<f32>,
}

#[mobula::actor]
impl Model {
    fn new() -> Self {
        let mut rng = Rng(1);
        Model {
            w: (0..16 * 8).map(|_| rng.next_f32()).collect(),
        }
    }

    fn predict(&self, b: Batch) -> anyhow::Result<Batch> {
        let n = b.num_rows();
        let feats: Vec<&Float32Array> = (0..16)
            .map(|j| {
                b.column_by_name(&format!("f{j}"))
                    .unwrap()
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .unwrap()
            })
            .collect();
        let mut scores = vec![0f32; n * 8];
        for (j, f) in feats.iter().enumerate() {
            let w = &self.w[j * 8..j * 8 + 8];
            for (i, v) in f.values().iter().enumerate() {
                let s = &mut scores[i * 8..i * 8 + 8];
                for k in 0..8 {
                    s[k] += v * w[k];
                }
            }
        }
        let label: UInt32Array = scores
            .chunks_exact(8)
            .map(|s| {
                let mut best = 0;
                for k in 1..8 {
                    if s[k] > s[best] {
                        best = k;
                    }
                }
                best as u32
            })
            .collect();
        Ok(Batch::new(RecordBatch::try_from_iter([
            ("id", b.column_by_name("id").unwrap().clone()),
            ("label", Arc::new(label) as ArrayRef),
        ])?))
    }
}

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The table, as the Ray script makes it, if it is not there.
fn make_table(dir: &std::path::Path, rows: usize) -> anyhow::Result<()> {
    if dir.is_dir() && std::fs::read_dir(dir)?.count() == 8 {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let per = rows / 8;
    let mut rng = Rng(0);
    for i in 0..8 {
        let ids: Int64Array = ((i * per) as i64..((i + 1) * per) as i64).collect();
        let x: Float64Array = (0..per).map(|_| rng.next_f64()).collect();
        let key: StringArray = ids
            .values()
            .iter()
            .map(|v| Some(format!("k{}", v % 100)))
            .collect();
        let mut cols: Vec<(String, ArrayRef)> = vec![
            ("id".into(), Arc::new(ids)),
            ("x".into(), Arc::new(x)),
            ("key".into(), Arc::new(key)),
        ];
        for j in 0..16 {
            let f: Float32Array = (0..per).map(|_| rng.next_f32()).collect();
            cols.push((format!("f{j}"), Arc::new(f)));
        }
        let batch = RecordBatch::try_from_iter(cols)?;
        let file = std::fs::File::create(dir.join(format!("part-{i:03}.parquet")))?;
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
        w.write(&batch)?;
        w.close()?;
    }
    Ok(())
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let rows: usize = arg("--rows")
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 200_000 } else { 10_000_000 });
    let only = arg("--only").unwrap_or_default();
    let base = std::path::PathBuf::from(arg("--dir").unwrap_or_else(|| {
        if quick {
            std::env::temp_dir()
                .join(format!("mobula-data-quick-{}", std::process::id()))
                .to_string_lossy()
                .to_string()
        } else {
            "/tmp/mobula-data-bench".into()
        }
    }));
    let table = base.join("table");
    make_table(&table, rows)?;
    let _m = mobula::init(Config::default().num_cpus(2))?;

    let timed = |name: &str, f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
        if !name.contains(only.as_str()) {
            return Ok(());
        }
        let t = Instant::now();
        f()?;
        let dt = t.elapsed().as_secs_f64();
        println!(
            "data {name} rows={rows} s={dt:.3} rows_per_s={:.0}",
            rows as f64 / dt
        );
        Ok(())
    };

    timed("range_map_sum", &mut || {
        let s = data::range(rows as u64)
            .map_batches(double_id, MapOptions::new())
            .sum("id")?;
        let n = rows as f64;
        anyhow::ensure!(s == n * (n - 1.0), "sum {s}");
        Ok(())
    })?;
    timed("parquet_filter_map_groupby", &mut || {
        let out = data::read_parquet(&table)?
            .filter(col("x").gt(0.5))
            .map_batches(key_y, MapOptions::new())
            .groupby(&["key"])
            .mean("y")
            .take_all()?;
        anyhow::ensure!(out.len() == 100, "{} groups", out.len());
        Ok(())
    })?;
    // The floor under the groupby pipeline as Ray's script writes it: reading (decoding)
    // every column of the table, which an opaque function obliges, and nothing else.
    timed("parquet_read_all_columns", &mut || {
        let n = data::read_parquet(&table)?.count()?;
        anyhow::ensure!(n as usize == rows / 8 * 8, "{n} rows");
        Ok(())
    })?;
    // The same written with column expressions, as Polars' side is: the plan sees which
    // columns it uses, and only those are decoded.
    timed("parquet_expr_filter_groupby", &mut || {
        let out = data::read_parquet(&table)?
            .filter(col("x").gt(0.5))
            .add_column("y", col("x").mul(2.0))
            .groupby(&["key"])
            .mean("y")
            .take_all()?;
        anyhow::ensure!(out.len() == 100, "{} groups", out.len());
        Ok(())
    })?;
    let out = base.join("out-mobula");
    let _ = std::fs::remove_dir_all(&out);
    timed("parquet_map_write", &mut || {
        let n = data::read_parquet(&table)?
            .map_batches(id_x2, MapOptions::new())
            .write_parquet(&out)?;
        anyhow::ensure!(n as usize == rows / 8 * 8, "{n} rows written");
        Ok(())
    })?;
    let _ = std::fs::remove_dir_all(&out);
    timed("parquet_expr_write", &mut || {
        let n = data::read_parquet(&table)?
            .add_column("x2", col("x").mul(col("x")))
            .select_columns(&["id", "x2"])
            .write_parquet(&out)?;
        anyhow::ensure!(n as usize == rows / 8 * 8, "{n} rows written");
        Ok(())
    })?;
    timed("batch_inference_actor_pool", &mut || {
        let n = data::read_parquet(&table)?
            .map_batches_on(
                ActorPoolStrategy::new(2).batch_size(65536),
                || Model::options().num_cpus(0.5).remote(),
                |m, b| m.predict(b),
            )
            .count()?;
        anyhow::ensure!(n as usize == rows / 8 * 8, "{n} rows");
        Ok(())
    })?;
    println!("peak RSS {:.0} MB", peak_rss_mb());
    if quick {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(())
}
