//! `mobula::data`: distributed datasets of Arrow record batches (Ray Data).
//!
//! A [`Dataset`] is a lazy plan. Its blocks are Arrow record batches ([`Batch`]) kept in
//! Mobula's object store; its operators run as Mobula tasks (or on a pool of actors), and
//! consecutive per-block operators are fused into one task per block. Consuming a dataset
//! runs it as a stream: each operator keeps a bounded window of tasks in flight and more
//! work starts only as the consumer pulls, so a dataset larger than memory flows through
//! with bounded memory.
//!
//! ```
//! use mobula::prelude::*;
//! use mobula::data::{self, Batch, MapOptions, col};
//! use arrow::array::{Int64Array, RecordBatch};
//! use std::sync::Arc;
//!
//! #[mobula::remote]
//! fn double(batch: Batch) -> anyhow::Result<Batch> {
//!     let id = batch.column_by_name("id").unwrap();
//!     let id = arrow::compute::kernels::numeric::mul(id, &Int64Array::new_scalar(2))?;
//!     Ok(Batch::new(RecordBatch::try_from_iter([("id", id)])?))
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! let _mobula = mobula::init(Config::default().num_cpus(2))?;
//! let ds = data::range(10_000).map_batches(double, MapOptions::new()).filter(col("id").lt(10));
//! assert_eq!(ds.sum("id")?, 20.0); // 0 + 2 + 4 + 6 + 8
//! # Ok(())
//! # }
//! ```

mod aggregate;
mod all_to_all;
mod batch;
mod dataset;
mod error;
mod exec;
mod expr;
mod plan;
mod row;
mod source;
mod stage;
mod stats;
mod write;

pub use aggregate::Agg;
pub use batch::Batch;
pub use dataset::{
    ActorPoolStrategy, BatchFn, DataIterator, Dataset, FlatRowFn, GroupedData, MapOptions, RowFn,
    RowPredicate, from_batches, from_items, range, read_binary_files, read_csv, read_json,
    read_parquet, read_text,
};
pub use error::DataError;
pub use expr::{ArithOp, CompareOp, Expr, IntoExpr, Literal, col, lit};
pub use row::Row;
pub use stats::{DatasetStats, OperatorStats};
