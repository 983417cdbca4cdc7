//! The per-block operators: what one task does to one block, in order. Consecutive
//! operators of a dataset run fused in one task per block (Ray Data's operator fusion).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use serde::{Deserialize, Serialize};

use super::batch::Batch;
use super::expr::Expr;
use super::row::{self, Row};
use crate::runtime::registry;

/// One per-block operator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Stage {
    /// A registered `fn(Batch) -> Batch` on slices of at most `batch_size` rows.
    MapBatches {
        function: String,
        batch_size: Option<usize>,
    },
    /// A registered `fn(Row) -> Row` on every row.
    Map { function: String },
    /// A registered `fn(Row) -> Vec<Row>` on every row.
    FlatMap { function: String },
    /// A registered `fn(Row) -> bool` on every row: the rows it is true for.
    FilterRows { function: String },
    /// The rows where the expression is true.
    Filter(Expr),
    /// A new column (or a replaced one) computed by the expression.
    AddColumn { name: String, expr: Expr },
    /// Only these columns, in this order.
    Select(Vec<String>),
    /// All but these columns.
    Drop(Vec<String>),
    /// At most this many rows of the block (the dataset's limit is kept by the executor).
    Limit(usize),
}

impl Stage {
    /// The operator's name, as errors and stats give it.
    pub fn name(&self) -> String {
        match self {
            Stage::MapBatches { function, .. } => format!("map_batches({function})"),
            Stage::Map { function } => format!("map({function})"),
            Stage::FlatMap { function } => format!("flat_map({function})"),
            Stage::FilterRows { function } => format!("filter_rows({function})"),
            Stage::Filter(e) => format!("filter({e})"),
            Stage::AddColumn { name, .. } => format!("add_column({name})"),
            Stage::Select(c) => format!("select_columns({})", c.join(", ")),
            Stage::Drop(c) => format!("drop_columns({})", c.join(", ")),
            Stage::Limit(n) => format!("limit({n})"),
        }
    }

    /// The columns it needs of its input to give `needed` of its output (`None`: all of
    /// them, or not known, as for a function's).
    pub fn needs(&self, needed: Option<BTreeSet<String>>) -> Option<BTreeSet<String>> {
        match self {
            Stage::Select(columns) => Some(columns.iter().cloned().collect()),
            Stage::Drop(_) | Stage::Limit(_) => needed,
            Stage::AddColumn { name, expr } => needed.map(|mut n| {
                n.remove(name);
                expr.columns_into(&mut n);
                n
            }),
            Stage::Filter(e) => needed.map(|mut n| {
                e.columns_into(&mut n);
                n
            }),
            Stage::MapBatches { .. }
            | Stage::Map { .. }
            | Stage::FlatMap { .. }
            | Stage::FilterRows { .. } => None,
        }
    }

    /// Whether the registered functions it names exist in this binary.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Stage::MapBatches {
                batch_size: Some(0),
                ..
            } => Err("batch_size 0".into()),
            Stage::MapBatches { function, .. }
            | Stage::Map { function }
            | Stage::FlatMap { function }
            | Stage::FilterRows { function } => registry::find(function)
                .map(drop)
                .ok_or_else(|| format!("`{function}` is not a registered remote function")),
            _ => Ok(()),
        }
    }

    /// Whether the operator works row by row, so it may run on a block's rows a chunk at a
    /// time with the same result put together (a function without a batch size sees the
    /// rows as they come: a read's chunk, or a whole block).
    pub fn row_local(&self) -> bool {
        match self {
            Stage::MapBatches { batch_size, .. } => batch_size.is_none(),
            Stage::Map { .. }
            | Stage::FlatMap { .. }
            | Stage::FilterRows { .. }
            | Stage::Filter(_)
            | Stage::AddColumn { .. }
            | Stage::Select(_)
            | Stage::Drop(_) => true,
            Stage::Limit(_) => false,
        }
    }

    /// The operator on one block.
    pub fn apply(&self, batch: RecordBatch) -> Result<RecordBatch, String> {
        match self {
            Stage::MapBatches {
                function,
                batch_size,
            } => {
                let n = batch.num_rows();
                let size = batch_size.unwrap_or(n).max(1);
                if n <= size {
                    return call::<Batch, Batch>(function, Batch::new(batch))
                        .map(Batch::into_inner);
                }
                let mut outs = Vec::with_capacity(n.div_ceil(size));
                for offset in (0..n).step_by(size) {
                    let part = batch.slice(offset, size.min(n - offset));
                    outs.push(call::<Batch, Batch>(function, Batch::new(part))?.into_inner());
                }
                concat(&outs)
            }
            Stage::Map { function } => {
                let rows = row::rows_of(&batch)?;
                let out = rows
                    .into_iter()
                    .map(|r| call::<Row, Row>(function, r))
                    .collect::<Result<Vec<_>, _>>()?;
                row::batch_of(&out)
            }
            Stage::FlatMap { function } => {
                let rows = row::rows_of(&batch)?;
                let mut out = Vec::new();
                for r in rows {
                    out.extend(call::<Row, Vec<Row>>(function, r)?);
                }
                row::batch_of(&out)
            }
            Stage::FilterRows { function } => {
                let rows = row::rows_of(&batch)?;
                let mut keep = Vec::with_capacity(rows.len());
                for r in rows {
                    keep.push(call::<Row, bool>(function, r)?);
                }
                let mask = arrow::array::BooleanArray::from(keep);
                arrow::compute::filter_record_batch(&batch, &mask).map_err(|e| e.to_string())
            }
            Stage::Filter(expr) => {
                let mask = expr.mask(&batch)?;
                arrow::compute::filter_record_batch(&batch, &mask).map_err(|e| e.to_string())
            }
            Stage::AddColumn { name, expr } => add_column(&batch, name, expr.evaluate(&batch)?),
            Stage::Select(columns) => {
                let schema = batch.schema();
                let indices = columns
                    .iter()
                    .map(|c| {
                        schema
                            .index_of(c)
                            .map_err(|_| format!("no column \"{c}\" to select"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                batch.project(&indices).map_err(|e| e.to_string())
            }
            Stage::Drop(columns) => {
                let schema = batch.schema();
                for c in columns {
                    if schema.index_of(c).is_err() {
                        return Err(format!("no column \"{c}\" to drop"));
                    }
                }
                let keep: Vec<usize> = (0..schema.fields().len())
                    .filter(|i| !columns.contains(schema.field(*i).name()))
                    .collect();
                batch.project(&keep).map_err(|e| e.to_string())
            }
            Stage::Limit(n) => Ok(batch.slice(0, (*n).min(batch.num_rows()))),
        }
    }
}

/// `batch` with column `name` set to `values` (replaced where it exists, else added last).
fn add_column(batch: &RecordBatch, name: &str, values: ArrayRef) -> Result<RecordBatch, String> {
    let schema = batch.schema();
    let field = Arc::new(Field::new(name, values.data_type().clone(), true));
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    let mut columns = batch.columns().to_vec();
    match schema.index_of(name) {
        Ok(i) => {
            fields[i] = field;
            columns[i] = values;
        }
        Err(_) => {
            fields.push(field);
            columns.push(values);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}

/// Batches of one schema as one (their schemas must agree).
pub(crate) fn concat(batches: &[RecordBatch]) -> Result<RecordBatch, String> {
    match batches {
        [] => Ok(RecordBatch::new_empty(Arc::new(Schema::empty()))),
        [one] => Ok(one.clone()),
        [first, ..] => {
            // Blocks with no rows and no columns (an empty source) take no part.
            let parts: Vec<&RecordBatch> = batches
                .iter()
                .filter(|b| !(b.num_rows() == 0 && b.num_columns() == 0))
                .collect();
            let schema = parts.first().map_or(first.schema(), |b| b.schema());
            for b in &parts {
                if b.schema().fields() != schema.fields() {
                    return Err(format!(
                        "blocks have different columns: {} and {}",
                        describe(&schema),
                        describe(&b.schema())
                    ));
                }
            }
            arrow::compute::concat_batches(&schema, parts).map_err(|e| e.to_string())
        }
    }
}

fn describe(schema: &Schema) -> String {
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("[{}]", cols.join(", "))
}

/// Runs registered function `id` here with its one argument, expecting an `R` back.
fn call<A: Send + Sync + 'static, R: 'static>(id: &str, arg: A) -> Result<R, String> {
    let f = registry::find(id)
        .ok_or_else(|| format!("`{id}` is not a registered remote function of this binary"))?;
    let args = (crate::runtime::args::Resolved::Owned(arg),);
    let out = crate::runtime::panic::catching(|| (f.call_typed)(Box::new(args)))
        .map_err(|panic| format!("it panicked: {panic}"))?
        .map_err(|e| e.0)?;
    out.downcast::<R>().map(|b| *b).map_err(|_| {
        format!(
            "`{id}` returns another type than the {} expected here",
            std::any::type_name::<R>()
        )
    })
}
