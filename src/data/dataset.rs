//! `Dataset`: a lazy plan of operators over blocks; consuming it runs the plan as a stream.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DataError;
use super::aggregate::{self, Agg, Partial};
use super::all_to_all::{AllToAll, partial_block};
use super::batch::Batch;
use super::exec::{BlockRef, Blocks, PoolPlan, TaskResources, Tolerance, runtime_reason};
use super::expr::Expr;
use super::plan::{self, Plan};
use super::row::{self, Row};
use super::source::{self, Read};
use super::stage::{self, Stage};
use super::stats::{DatasetStats, Stats};
use super::write::{self, Format};
use crate::ObjectRef;
use crate::base::function::RemoteFunction;

/// How `map_batches` runs on actors (Ray Data's `ActorPoolStrategy`): between `min` and
/// `max` actors, each made by the given constructor, with blocks cut to `batch_size` rows.
#[derive(Clone, Debug)]
pub struct ActorPoolStrategy {
    min: usize,
    max: usize,
    batch_size: Option<usize>,
}

impl ActorPoolStrategy {
    /// A pool of exactly `size` actors.
    pub fn new(size: usize) -> Self {
        ActorPoolStrategy {
            min: size.max(1),
            max: size.max(1),
            batch_size: None,
        }
    }

    /// A pool that starts with `min` actors and grows to `max` while work waits.
    pub fn autoscaling(min: usize, max: usize) -> Self {
        ActorPoolStrategy {
            min: min.max(1),
            max: max.max(min).max(1),
            batch_size: None,
        }
    }

    /// Calls get at most `rows` rows each.
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = Some(rows.max(1));
        self
    }
}

/// Options of the tasks of `map_batches` and the other per-block operators.
#[derive(Clone, Debug, Default)]
pub struct MapOptions {
    batch_size: Option<usize>,
    resources: TaskResources,
}

impl MapOptions {
    /// Options as Ray Data's defaults: one CPU per task. Without a batch size, a call gets
    /// the rows as they come: fused with a read, each chunk the read decodes (at most
    /// 65,536 rows); otherwise a whole block.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls get at most `rows` rows each.
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = Some(rows.max(1));
        self
    }

    /// CPUs per task (default 1).
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.resources.num_cpus = Some(n);
        self
    }

    /// GPUs per task.
    pub fn num_gpus(mut self, n: f64) -> Self {
        self.resources.num_gpus = Some(n);
        self
    }

    /// Runs again after a system failure (a lost node), as tasks' `max_retries` (default 3).
    pub fn max_retries(mut self, n: i64) -> Self {
        self.resources.max_retries = Some(n);
        self
    }
}

/// A registered `#[mobula::remote] fn(Batch) -> Batch` (or `-> Result<Batch, E>`).
pub trait BatchFn: RemoteFunction<Params = (Batch,), Output = Batch> {}
impl<F: RemoteFunction<Params = (Batch,), Output = Batch>> BatchFn for F {}

/// A registered `#[mobula::remote] fn(Row) -> Row`.
pub trait RowFn: RemoteFunction<Params = (Row,), Output = Row> {}
impl<F: RemoteFunction<Params = (Row,), Output = Row>> RowFn for F {}

/// A registered `#[mobula::remote] fn(Row) -> Vec<Row>`.
pub trait FlatRowFn: RemoteFunction<Params = (Row,), Output = Vec<Row>> {}
impl<F: RemoteFunction<Params = (Row,), Output = Vec<Row>>> FlatRowFn for F {}

/// A registered `#[mobula::remote] fn(Row) -> bool`.
pub trait RowPredicate: RemoteFunction<Params = (Row,), Output = bool> {}
impl<F: RemoteFunction<Params = (Row,), Output = bool>> RowPredicate for F {}

fn id_of<F: RemoteFunction>() -> String {
    F::descriptor().id.to_string()
}

/// A distributed dataset of Arrow blocks (Ray Data's `Dataset`). Transformations are lazy
/// and return a new dataset; consuming one (`take`, `count`, `iter_batches`,
/// `write_parquet`, ...) runs its plan as a stream of tasks.
///
/// ```
/// use mobula::prelude::*;
/// use mobula::data::{self, col};
///
/// # fn main() -> anyhow::Result<()> {
/// let _mobula = mobula::init(Config::default().num_cpus(2))?;
/// let ds = data::range(1000).filter(col("id").lt(10));
/// assert_eq!(ds.count()?, 10);
/// assert_eq!(ds.sum("id")?, 45.0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Dataset {
    plan: Arc<Plan>,
    max_errored_blocks: usize,
    last: Arc<Mutex<Option<Stats>>>,
}

/// `n` rows with column `id` = 0..n (Int64).
pub fn range(n: u64) -> Dataset {
    Dataset::from_plan(Plan::Read(source::range_reads(n)))
}

/// A dataset of `items`, one row each, columns from their fields (serde).
pub fn from_items<T: Serialize + DeserializeOwned>(items: &[T]) -> Result<Dataset, DataError> {
    let per = items
        .len()
        .div_ceil(super::exec::default_window().max(1))
        .max(1);
    let mut batches = Vec::new();
    for chunk in items.chunks(per) {
        batches.push(Batch::from_items(chunk)?.into_inner());
    }
    if batches.is_empty() {
        batches.push(Batch::from_items::<T>(&[])?.into_inner());
    }
    from_batches(batches)
}

/// A dataset of these Arrow batches, one block each.
pub fn from_batches(batches: Vec<RecordBatch>) -> Result<Dataset, DataError> {
    let blocks = batches
        .into_iter()
        .map(|b| {
            let batch = Batch::new(b);
            let (rows, bytes) = (batch.num_rows() as u64, batch.memory_size());
            Ok(BlockRef {
                batch: crate::put(batch).map_err(|e| DataError::Runtime(e.to_string()))?,
                rows,
                bytes,
                file: None,
            })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    Ok(Dataset::from_plan(Plan::Blocks(blocks)))
}

/// The Parquet files at `path` (a file, a directory or a glob), about 128 MiB of row
/// groups per block.
pub fn read_parquet(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    Ok(Dataset::from_plan(Plan::Read(source::parquet_reads(
        &lossy(path.as_ref()),
    )?)))
}

/// The CSV files at `path` (with a header row), a block per file or per part of about
/// 128 MiB of a larger one (cut at line ends: a quoted field may not hold a line break in a
/// file that large).
pub fn read_csv(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    line_reads(path, |path, bytes| Read::Csv { path, bytes })
}

/// The newline-delimited JSON files at `path`, a block per file or per part of about
/// 128 MiB of a larger one.
pub fn read_json(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    line_reads(path, |path, bytes| Read::Json { path, bytes })
}

/// The text files at `path`, a row per line (column `text`), a block per file or per part
/// of about 128 MiB of a larger one.
pub fn read_text(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    line_reads(path, |path, bytes| Read::Text { path, bytes })
}

/// The files at `path`, a row per file (columns `path` and `bytes`).
pub fn read_binary_files(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    reads(path, |path| Read::Binary { path })
}

fn line_reads(
    path: impl AsRef<Path>,
    make: impl Fn(String, Option<(u64, u64)>) -> Read,
) -> Result<Dataset, DataError> {
    Ok(Dataset::from_plan(Plan::Read(source::line_reads(
        &lossy(path.as_ref()),
        source::TARGET_BLOCK_BYTES,
        make,
    )?)))
}

fn reads(path: impl AsRef<Path>, make: impl Fn(String) -> Read) -> Result<Dataset, DataError> {
    Ok(Dataset::from_plan(Plan::Read(source::file_reads(
        &lossy(path.as_ref()),
        make,
    )?)))
}

fn lossy(p: &Path) -> String {
    p.to_string_lossy().to_string()
}

impl Dataset {
    fn from_plan(plan: Plan) -> Self {
        Dataset {
            plan: Arc::new(plan),
            max_errored_blocks: 0,
            last: Arc::new(Mutex::new(None)),
        }
    }

    fn with(&self, plan: Plan) -> Self {
        Dataset {
            plan: Arc::new(plan),
            max_errored_blocks: self.max_errored_blocks,
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// Appends a per-block operator, fused with the ones before it when their tasks ask for
    /// the same resources.
    fn stage(&self, stage: Stage, resources: TaskResources) -> Self {
        if let Plan::Stages {
            input,
            stages,
            resources: r,
        } = &*self.plan
            && r.num_cpus == resources.num_cpus
            && r.num_gpus == resources.num_gpus
            && r.max_retries == resources.max_retries
        {
            let mut stages = stages.clone();
            stages.push(stage);
            return self.with(Plan::Stages {
                input: input.clone(),
                stages,
                resources,
            });
        }
        self.with(Plan::Stages {
            input: self.plan.clone(),
            stages: vec![stage],
            resources,
        })
    }

    /// Tolerates up to `n` blocks that fail (read errors, a function's error or panic):
    /// they are left out, logged, and listed in `stats().errored_blocks`.
    pub fn max_errored_blocks(mut self, n: usize) -> Self {
        self.max_errored_blocks = n;
        self
    }

    // ---- transformations ----

    /// Runs registered `f` on every block (on slices of `options`' batch size), as tasks.
    pub fn map_batches<F: BatchFn>(&self, f: F, options: MapOptions) -> Self {
        let _ = f;
        self.stage(
            Stage::MapBatches {
                function: id_of::<F>(),
                batch_size: options.batch_size,
            },
            options.resources,
        )
    }

    /// Runs blocks through a pool of actors: `make` starts one (for example
    /// `|| Model::options().num_cpus(0.5).remote()`), `call` hands it a block and gives
    /// the ref of the result (`|model, batch| model.predict(batch)`).
    pub fn map_batches_on<H: Send + Sync + 'static>(
        &self,
        pool: ActorPoolStrategy,
        make: impl Fn() -> Result<H, crate::ActorError> + Send + Sync + 'static,
        call: impl Fn(&H, ObjectRef<Batch>) -> ObjectRef<Batch> + Send + Sync + 'static,
    ) -> Self {
        let name = format!(
            "map_batches({}, actor pool {}..{})",
            std::any::type_name::<H>(),
            pool.min,
            pool.max
        );
        self.with(Plan::Pool(
            self.plan.clone(),
            Arc::new(PoolPlan {
                name,
                make: Arc::new(make),
                call: Arc::new(call),
                min: pool.min,
                max: pool.max,
                batch_size: pool.batch_size,
            }),
        ))
    }

    /// Runs registered `f` on every row.
    pub fn map<F: RowFn>(&self, f: F) -> Self {
        let _ = f;
        self.stage(
            Stage::Map {
                function: id_of::<F>(),
            },
            TaskResources::default(),
        )
    }

    /// Runs registered `f` on every row, each giving any number of rows.
    pub fn flat_map<F: FlatRowFn>(&self, f: F) -> Self {
        let _ = f;
        self.stage(
            Stage::FlatMap {
                function: id_of::<F>(),
            },
            TaskResources::default(),
        )
    }

    /// The rows registered `f` is true for.
    pub fn filter_rows<F: RowPredicate>(&self, f: F) -> Self {
        let _ = f;
        self.stage(
            Stage::FilterRows {
                function: id_of::<F>(),
            },
            TaskResources::default(),
        )
    }

    /// The rows where `predicate` is true (null counts as false), evaluated on whole
    /// blocks (Ray's `filter(expr=...)`).
    pub fn filter(&self, predicate: Expr) -> Self {
        self.stage(Stage::Filter(predicate), TaskResources::default())
    }

    /// Adds (or replaces) column `name`, computed by `expr`.
    pub fn add_column(&self, name: &str, expr: Expr) -> Self {
        self.stage(
            Stage::AddColumn {
                name: name.to_string(),
                expr,
            },
            TaskResources::default(),
        )
    }

    /// Only these columns, in this order.
    pub fn select_columns(&self, columns: &[&str]) -> Self {
        self.stage(
            Stage::Select(columns.iter().map(|c| c.to_string()).collect()),
            TaskResources::default(),
        )
    }

    /// All columns but these.
    pub fn drop_columns(&self, columns: &[&str]) -> Self {
        self.stage(
            Stage::Drop(columns.iter().map(|c| c.to_string()).collect()),
            TaskResources::default(),
        )
    }

    /// The first `n` rows; nothing past them is computed.
    pub fn limit(&self, n: u64) -> Self {
        self.with(Plan::Limit(self.plan.clone(), n))
    }

    /// The same rows in `n` blocks of about equal size.
    pub fn repartition(&self, n: usize) -> Self {
        self.with(Plan::AllToAll(
            self.plan.clone(),
            AllToAll::Repartition(n.max(1)),
        ))
    }

    /// The rows in a random order, the same for the same `seed`.
    pub fn random_shuffle(&self, seed: u64) -> Self {
        self.with(Plan::AllToAll(self.plan.clone(), AllToAll::Shuffle(seed)))
    }

    /// The rows sorted by `keys` (nulls last), descending if asked.
    pub fn sort(&self, keys: &[&str], descending: bool) -> Self {
        self.with(Plan::AllToAll(
            self.plan.clone(),
            AllToAll::Sort(keys.iter().map(|k| k.to_string()).collect(), descending),
        ))
    }

    /// Groups rows by `keys` (Ray's `groupby`): then `aggregate`, `count`, `mean`, ... or
    /// `map_groups`.
    pub fn groupby(&self, keys: &[&str]) -> GroupedData {
        GroupedData {
            ds: self.clone(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
        }
    }

    /// These rows, then `others`' rows.
    pub fn union(&self, others: &[Dataset]) -> Self {
        let mut plans = vec![self.plan.clone()];
        plans.extend(others.iter().map(|d| d.plan.clone()));
        self.with(Plan::Union(plans))
    }

    /// Row i of this beside row i of `other` (same row count; `other`'s columns after
    /// this one's, renamed with a suffix `_1` where the names clash).
    pub fn zip(&self, other: &Dataset) -> Self {
        self.with(Plan::Zip(self.plan.clone(), other.plan.clone()))
    }

    // ---- consuming ----

    /// The plan as it will run, from its sources to its last operator, Parquet reads cut to
    /// the columns used (Polars' `explain`): e.g. `read_parquet(8 blocks, columns [key, x])
    /// -> filter(x > 0.5) -> groupby(key).aggregate(mean(x))`.
    pub fn explain(&self) -> String {
        plan::explain(&plan::prune(&self.plan, None))
    }

    /// Runs the plan: the stream of its blocks.
    fn execute(&self) -> Result<(Blocks, Stats, Tolerance), DataError> {
        self.execute_for(None)
    }

    /// Runs the plan for a consumer that uses only `needed` columns (`None`: all).
    fn execute_for(
        &self,
        needed: Option<BTreeSet<String>>,
    ) -> Result<(Blocks, Stats, Tolerance), DataError> {
        let stats = Stats::new();
        let tolerance = Tolerance {
            allowed: self.max_errored_blocks,
            seen: stats.errors(),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats.clone());
        let blocks = plan::run(&plan::prune(&self.plan, needed), &stats, &tolerance)?;
        Ok((blocks, stats, tolerance))
    }

    /// Every block, computed (Ray's `materialize`): a dataset whose blocks are in the store.
    pub fn materialize(&self) -> Result<Dataset, DataError> {
        let (blocks, stats, _) = self.execute()?;
        let blocks = blocks.collect::<Result<Vec<_>, _>>()?;
        stats.finish();
        let mut ds = self.with(Plan::Blocks(blocks));
        ds.last = self.last.clone();
        Ok(ds)
    }

    /// The number of rows (from the blocks' metadata: no block is fetched).
    pub fn count(&self) -> Result<u64, DataError> {
        let (blocks, stats, _) = self.execute()?;
        let mut n = 0;
        for b in blocks {
            n += b?.rows;
        }
        stats.finish();
        Ok(n)
    }

    /// The blocks as Arrow batches, in order, re-cut to `batch_size` rows when given (the
    /// last may be shorter). Blocks are computed ahead while the caller works (prefetch).
    pub fn iter_batches(
        &self,
        batch_size: Option<usize>,
    ) -> Result<impl Iterator<Item = Result<RecordBatch, DataError>> + Send + use<>, DataError>
    {
        let (blocks, stats, _) = self.execute()?;
        Ok(Rebatch {
            blocks,
            size: batch_size.map(|s| s.max(1)),
            held: Vec::new(),
            held_rows: 0,
            stats: Some(stats),
        })
    }

    /// The rows, in order.
    pub fn iter_rows(
        &self,
    ) -> Result<impl Iterator<Item = Result<Row, DataError>> + use<>, DataError> {
        let batches = self.iter_batches(None)?;
        Ok(batches.flat_map(|b| {
            let rows: Vec<Result<Row, DataError>> = match b
                .and_then(|b| row::rows_of(&b).map_err(|reason| DataError::Rows { reason }))
            {
                Ok(rows) => rows.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            rows
        }))
    }

    /// The first `n` rows as one batch.
    pub fn take_batch(&self, n: u64) -> Result<RecordBatch, DataError> {
        let batches = self
            .limit(n)
            .iter_batches(None)?
            .collect::<Result<Vec<_>, _>>()?;
        stage::concat(&batches).map_err(|reason| DataError::Schema { reason })
    }

    /// Every row as one batch.
    pub fn to_batch(&self) -> Result<RecordBatch, DataError> {
        let batches = self.iter_batches(None)?.collect::<Result<Vec<_>, _>>()?;
        stage::concat(&batches).map_err(|reason| DataError::Schema { reason })
    }

    /// The first `n` rows.
    pub fn take(&self, n: u64) -> Result<Vec<Row>, DataError> {
        self.limit(n).iter_rows()?.collect()
    }

    /// Every row.
    pub fn take_all(&self) -> Result<Vec<Row>, DataError> {
        self.iter_rows()?.collect()
    }

    /// Every row as a `T` (serde, by column name).
    pub fn take_all_as<T: DeserializeOwned>(&self) -> Result<Vec<T>, DataError> {
        let mut out = Vec::new();
        for b in self.iter_batches(None)? {
            out.extend(Batch::new(b?).to_items::<T>()?);
        }
        Ok(out)
    }

    /// The columns (of the first block).
    pub fn schema(&self) -> Result<SchemaRef, DataError> {
        Ok(self.take_batch(1)?.schema())
    }

    /// Prints the first `n` rows, one JSON object per line.
    pub fn show(&self, n: u64) -> Result<(), DataError> {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for r in self.take(n)? {
            // A closed stdout loses the lines, as a print would.
            let _ = writeln!(out, "{}", serde_json::Value::Object(r.0));
        }
        Ok(())
    }

    /// Runs `aggs` over every row: one row of results.
    pub fn aggregate(&self, aggs: &[Agg]) -> Result<RecordBatch, DataError> {
        let partials = self.partials(&[], aggs)?;
        aggregate::merge(partials, &[], aggs).map_err(|reason| DataError::Schema { reason })
    }

    fn partials(&self, keys: &[String], aggs: &[Agg]) -> Result<Vec<Partial>, DataError> {
        let needed = AllToAll::GroupBy(keys.to_vec(), aggs.to_vec()).needs(None);
        let (blocks, stats, _) = self.execute_for(needed)?;
        let op = stats.operator(&format!(
            "aggregate({})",
            aggs.iter()
                .map(Agg::output_name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut pending = Vec::new();
        for (i, b) in blocks.enumerate() {
            let b = b?;
            op.started();
            pending.push((
                i,
                b.file.clone(),
                partial_block.remote(&b.batch, keys.to_vec(), aggs.to_vec()),
            ));
        }
        let mut out = Vec::new();
        for (i, file, p) in pending {
            let p = p.get().map_err(|e| DataError::Operator {
                operator: op.name(),
                block: i,
                file,
                reason: runtime_reason(&e),
            })?;
            op.finished(0, 0);
            out.push(p);
        }
        stats.finish();
        Ok(out)
    }

    fn one(&self, agg: Agg) -> Result<Option<f64>, DataError> {
        let out = self.aggregate(&[agg])?;
        let c = out.column(0);
        let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Float64).map_err(|e| {
            DataError::Schema {
                reason: e.to_string(),
            }
        })?;
        let c = c
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .expect("cast to f64");
        Ok(arrow::array::Array::is_valid(c, 0).then(|| c.value(0)))
    }

    /// The sum of column `column`'s non-null values (0 for none).
    pub fn sum(&self, column: &str) -> Result<f64, DataError> {
        Ok(self.one(Agg::Sum(column.into()))?.unwrap_or(0.0))
    }

    /// The smallest non-null value of `column` (`None` for none).
    pub fn min(&self, column: &str) -> Result<Option<f64>, DataError> {
        self.one(Agg::Min(column.into()))
    }

    /// The largest non-null value of `column` (`None` for none).
    pub fn max(&self, column: &str) -> Result<Option<f64>, DataError> {
        self.one(Agg::Max(column.into()))
    }

    /// The mean of `column`'s non-null values (`None` for none).
    pub fn mean(&self, column: &str) -> Result<Option<f64>, DataError> {
        self.one(Agg::Mean(column.into()))
    }

    /// The sample standard deviation (ddof 1) of `column` (`None` for fewer than 2 values).
    pub fn std(&self, column: &str) -> Result<Option<f64>, DataError> {
        self.one(Agg::Std(column.into()))
    }

    /// Writes each block as a Parquet file `dir/part-NNNNN.parquet` (in its task, on its
    /// node); returns the rows written.
    pub fn write_parquet(&self, dir: impl AsRef<Path>) -> Result<u64, DataError> {
        self.write(dir.as_ref(), Format::Parquet)
    }

    /// Writes each block as a CSV file with a header row.
    pub fn write_csv(&self, dir: impl AsRef<Path>) -> Result<u64, DataError> {
        self.write(dir.as_ref(), Format::Csv)
    }

    /// Writes each block as a newline-delimited JSON file.
    pub fn write_json(&self, dir: impl AsRef<Path>) -> Result<u64, DataError> {
        self.write(dir.as_ref(), Format::Json)
    }

    fn write(&self, dir: &Path, format: Format) -> Result<u64, DataError> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::Write {
            path: lossy(dir),
            reason: e.to_string(),
        })?;
        let (blocks, stats, _) = self.execute()?;
        let op = stats.operator(&format!("write_{}", format.extension()));
        let window = super::exec::default_window();
        let mut flight = std::collections::VecDeque::new();
        let mut rows = 0;
        // Each block written: its index, its file, its bytes in memory, the rows written.
        let wait = |f: (usize, String, u64, ObjectRef<u64>)| -> Result<u64, DataError> {
            let (i, path, bytes, r) = f;
            let n = r.get().map_err(|e| DataError::Write {
                path: path.clone(),
                reason: format!("block {i}: {}", runtime_reason(&e)),
            })?;
            op.finished(n, bytes);
            Ok(n)
        };
        for (i, b) in blocks.enumerate() {
            let b = b?;
            let path = lossy(&dir.join(format!("part-{i:05}.{}", format.extension())));
            op.started();
            flight.push_back((
                i,
                path.clone(),
                b.bytes,
                write::write_block.remote(&b.batch, path, format),
            ));
            if flight.len() >= window {
                rows += wait(flight.pop_front().expect("non-empty"))?;
            }
        }
        for f in flight {
            rows += wait(f)?;
        }
        stats.finish();
        Ok(rows)
    }

    /// `n` iterators that share this dataset's blocks between them, each block going to
    /// exactly one of them, as each asks for more (Ray's `streaming_split`, for `n` training
    /// workers). The dataset runs once, as they pull.
    pub fn streaming_split(&self, n: usize) -> Result<Vec<DataIterator>, DataError> {
        let (blocks, _, _) = self.execute()?;
        let shared = Arc::new(Mutex::new(blocks));
        Ok((0..n.max(1))
            .map(|_| DataIterator {
                shared: shared.clone(),
            })
            .collect())
    }

    /// What the last execution of this dataset did, per operator.
    pub fn stats(&self) -> DatasetStats {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Stats::snapshot)
            .unwrap_or_default()
    }
}

/// One consumer's share of a [`Dataset::streaming_split`]: its blocks, as batches.
pub struct DataIterator {
    shared: Arc<Mutex<Blocks>>,
}

impl Iterator for DataIterator {
    type Item = Result<RecordBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let block = self
            .shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next()?;
        Some(block.and_then(|b| fetch(&b)))
    }
}

fn fetch(b: &BlockRef) -> Result<RecordBatch, DataError> {
    b.batch
        .get()
        .map(Batch::into_inner)
        .map_err(|e| DataError::Runtime(format!("block lost: {e}")))
}

struct Rebatch {
    blocks: Blocks,
    size: Option<usize>,
    held: Vec<RecordBatch>,
    held_rows: usize,
    stats: Option<Stats>,
}

impl Iterator for Rebatch {
    type Item = Result<RecordBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(size) = self.size
                && self.held_rows >= size
            {
                return Some(self.cut(size));
            }
            match self.blocks.next() {
                Some(Ok(b)) => {
                    let batch = match fetch(&b) {
                        Ok(batch) => batch,
                        Err(e) => return Some(Err(e)),
                    };
                    if self.size.is_none() {
                        return Some(Ok(batch));
                    }
                    if batch.num_rows() > 0 {
                        self.held_rows += batch.num_rows();
                        self.held.push(batch);
                    }
                }
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    if let Some(stats) = self.stats.take() {
                        stats.finish();
                    }
                    if self.held_rows > 0 {
                        let n = self.held_rows;
                        return Some(self.cut(n));
                    }
                    return None;
                }
            }
        }
    }
}

impl Rebatch {
    fn cut(&mut self, size: usize) -> Result<RecordBatch, DataError> {
        let all = stage::concat(&self.held).map_err(|reason| DataError::Schema { reason })?;
        let out = all.slice(0, size);
        let rest = all.slice(size, all.num_rows() - size);
        self.held_rows = rest.num_rows();
        self.held = if rest.num_rows() > 0 {
            vec![rest]
        } else {
            Vec::new()
        };
        Ok(out)
    }
}

/// Rows grouped by key columns (Ray's `GroupedData`).
pub struct GroupedData {
    ds: Dataset,
    keys: Vec<String>,
}

impl GroupedData {
    /// One row per group: the keys, then one column per aggregate, sorted by key.
    pub fn aggregate(&self, aggs: &[Agg]) -> Dataset {
        self.ds.with(Plan::AllToAll(
            self.ds.plan.clone(),
            AllToAll::GroupBy(self.keys.clone(), aggs.to_vec()),
        ))
    }

    /// Rows per group (column `count()`).
    pub fn count(&self) -> Dataset {
        self.aggregate(&[Agg::Count])
    }

    /// The sum of `column` per group.
    pub fn sum(&self, column: &str) -> Dataset {
        self.aggregate(&[Agg::Sum(column.into())])
    }

    /// The mean of `column` per group.
    pub fn mean(&self, column: &str) -> Dataset {
        self.aggregate(&[Agg::Mean(column.into())])
    }

    /// The smallest `column` per group.
    pub fn min(&self, column: &str) -> Dataset {
        self.aggregate(&[Agg::Min(column.into())])
    }

    /// The largest `column` per group.
    pub fn max(&self, column: &str) -> Dataset {
        self.aggregate(&[Agg::Max(column.into())])
    }

    /// The sample standard deviation of `column` per group.
    pub fn std(&self, column: &str) -> Dataset {
        self.aggregate(&[Agg::Std(column.into())])
    }

    /// Runs registered `f` on each group's rows (one batch per group, groups in key
    /// order); its results are the blocks of the new dataset.
    pub fn map_groups<F: BatchFn>(&self, f: F) -> Dataset {
        let _ = f;
        self.ds.with(Plan::AllToAll(
            self.ds.plan.clone(),
            AllToAll::MapGroups(self.keys.clone(), id_of::<F>()),
        ))
    }
}
