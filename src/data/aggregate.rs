//! Aggregations: `groupby(keys).aggregate(...)` and a whole dataset's `sum`, `min`, `max`,
//! `mean`, `std`. Each block is reduced to a partial in its own task; the driver merges
//! the partials (small: one accumulator per group and aggregate) into one block.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::batch::Batch;

/// One aggregation of a column (Ray Data's `Count`, `Sum`, `Mean`, `Min`, `Max`, `Std`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Agg {
    /// Rows in the group: column `count()`.
    Count,
    /// Sum of the column's non-null values: `sum(col)`.
    Sum(String),
    /// Mean of the non-null values: `mean(col)`.
    Mean(String),
    /// Smallest non-null value: `min(col)`.
    Min(String),
    /// Largest non-null value: `max(col)`.
    Max(String),
    /// Sample standard deviation (ddof 1, as Ray) of the non-null values: `std(col)`.
    Std(String),
}

impl Agg {
    /// The output column's name.
    pub fn output_name(&self) -> String {
        match self {
            Agg::Count => "count()".into(),
            Agg::Sum(c) => format!("sum({c})"),
            Agg::Mean(c) => format!("mean({c})"),
            Agg::Min(c) => format!("min({c})"),
            Agg::Max(c) => format!("max({c})"),
            Agg::Std(c) => format!("std({c})"),
        }
    }

    /// The column it reads (none for a count).
    pub(crate) fn column(&self) -> Option<&str> {
        match self {
            Agg::Count => None,
            Agg::Sum(c) | Agg::Mean(c) | Agg::Min(c) | Agg::Max(c) | Agg::Std(c) => Some(c),
        }
    }
}

/// What is kept of one column of one group: enough to merge and to finish every aggregate.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Acc {
    /// Non-null values seen (rows, for `Count`).
    n: u64,
    sum: f64,
    /// Welford's running mean and sum of squared differences (for `Std`).
    mean: f64,
    m2: f64,
    min: Option<f64>,
    max: Option<f64>,
}

impl Acc {
    fn push(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
    }

    fn merge(&mut self, o: &Acc) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        self.mean += d * o.n as f64 / n as f64;
        self.m2 += o.m2 + d * d * (self.n as f64) * (o.n as f64) / n as f64;
        self.n = n;
        self.sum += o.sum;
        self.min = match (self.min, o.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, o.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    fn finish(&self, agg: &Agg) -> Option<f64> {
        match agg {
            Agg::Count => Some(self.n as f64),
            Agg::Sum(_) => Some(self.sum),
            Agg::Mean(_) => (self.n > 0).then(|| self.sum / self.n as f64),
            Agg::Min(_) => self.min,
            Agg::Max(_) => self.max,
            Agg::Std(_) => (self.n > 1).then(|| (self.m2 / (self.n - 1) as f64).sqrt()),
        }
    }
}

/// One block's groups: their keys (a batch of the key columns, one row per group) and one
/// accumulator per group and aggregate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Partial {
    keys: Option<Batch>,
    accs: Vec<Vec<Acc>>,
}

/// The partial of one block.
pub(crate) fn partial(
    batch: &RecordBatch,
    keys: &[String],
    aggs: &[Agg],
) -> Result<Partial, String> {
    let values = aggs
        .iter()
        .map(|a| match a.column() {
            None => Ok(None),
            Some(c) => {
                let col = batch
                    .column_by_name(c)
                    .ok_or_else(|| format!("no column \"{c}\" to aggregate"))?;
                arrow::compute::cast(col, &DataType::Float64)
                    .map(Some)
                    .map_err(|e| format!("column \"{c}\" is not numeric: {e}"))
            }
        })
        .collect::<Result<Vec<Option<ArrayRef>>, String>>()?;
    let values: Vec<Option<&Float64Array>> = values
        .iter()
        .map(|v| {
            v.as_ref()
                .map(|a| a.as_any().downcast_ref::<Float64Array>().expect("cast"))
        })
        .collect();
    let push = |accs: &mut Vec<Acc>, row: usize| {
        for (acc, v) in accs.iter_mut().zip(&values) {
            match v {
                None => acc.n += 1,
                Some(v) if v.is_valid(row) => acc.push(v.value(row)),
                Some(_) => {}
            }
        }
    };
    if keys.is_empty() {
        let mut accs = vec![Acc::default(); aggs.len()];
        for row in 0..batch.num_rows() {
            push(&mut accs, row);
        }
        return Ok(Partial {
            keys: None,
            accs: vec![accs],
        });
    }
    let key_cols = key_columns(batch, keys)?;
    let mut firsts: Vec<u32> = Vec::new();
    let mut accs: Vec<Vec<Acc>> = Vec::new();
    // A new group, first seen at `row`.
    let mut new_group = |row: usize| -> usize {
        firsts.push(row as u32);
        accs.push(vec![Acc::default(); aggs.len()]);
        accs.len() - 1
    };
    let mut groups_by_row = Vec::with_capacity(batch.num_rows());
    // One string or integer key without nulls (the common case): hashed as it is.
    let single = key_cols
        .first()
        .filter(|c| key_cols.len() == 1 && c.null_count() == 0);
    if let Some(strings) =
        single.and_then(|c| c.as_any().downcast_ref::<arrow::array::StringArray>())
    {
        let mut index: FastMap<&str, usize> = FastMap::default();
        for row in 0..batch.num_rows() {
            groups_by_row.push(find(&mut index, strings.value(row), || new_group(row)));
        }
    } else if let Some(ints) = single.and_then(|c| c.as_any().downcast_ref::<Int64Array>()) {
        let mut index: FastMap<i64, usize> = FastMap::default();
        for (row, k) in ints.values().iter().enumerate() {
            groups_by_row.push(find(&mut index, *k, || new_group(row)));
        }
    } else {
        let converter = converter(&key_cols)?;
        let rows = converter
            .convert_columns(&key_cols)
            .map_err(|e| e.to_string())?;
        let mut index: FastMap<arrow::row::Row<'_>, usize> = FastMap::default();
        for row in 0..batch.num_rows() {
            groups_by_row.push(find(&mut index, rows.row(row), || new_group(row)));
        }
    }
    for (row, g) in groups_by_row.into_iter().enumerate() {
        push(&mut accs[g], row);
    }
    let take = arrow::array::UInt32Array::from(firsts);
    let key_batch = arrow::compute::take_record_batch(
        &batch
            .project(&key_indices(batch, keys)?)
            .map_err(|e| e.to_string())?,
        &take,
    )
    .map_err(|e| e.to_string())?;
    Ok(Partial {
        keys: Some(Batch::new(key_batch)),
        accs,
    })
}

/// A hash map with a fast hash (the keys are the user's data, hashed in one task).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The group of `key`: found in `index` (one hash), or made by `make` and recorded.
fn find<K: std::hash::Hash + Eq>(
    index: &mut FastMap<K, usize>,
    key: K,
    make: impl FnOnce() -> usize,
) -> usize {
    if let Some(g) = index.get(&key) {
        return *g;
    }
    let g = make();
    index.insert(key, g);
    g
}

fn key_indices(batch: &RecordBatch, keys: &[String]) -> Result<Vec<usize>, String> {
    let schema = batch.schema();
    keys.iter()
        .map(|k| {
            schema
                .index_of(k)
                .map_err(|_| format!("no column \"{k}\" to group by"))
        })
        .collect()
}

fn key_columns(batch: &RecordBatch, keys: &[String]) -> Result<Vec<ArrayRef>, String> {
    Ok(key_indices(batch, keys)?
        .into_iter()
        .map(|i| batch.column(i).clone())
        .collect())
}

fn converter(cols: &[ArrayRef]) -> Result<RowConverter, String> {
    RowConverter::new(
        cols.iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )
    .map_err(|e| e.to_string())
}

/// The partials merged into the result: the key columns (sorted by key) then one column
/// per aggregate (`count()` as Int64, the others as Float64, null where undefined).
pub(crate) fn merge(
    partials: Vec<Partial>,
    keys: &[String],
    aggs: &[Agg],
) -> Result<RecordBatch, String> {
    let agg_fields = || {
        aggs.iter().map(|a| {
            let t = if *a == Agg::Count {
                DataType::Int64
            } else {
                DataType::Float64
            };
            Arc::new(Field::new(a.output_name(), t, true))
        })
    };
    if keys.is_empty() {
        let mut total = vec![Acc::default(); aggs.len()];
        for p in &partials {
            for accs in &p.accs {
                for (t, a) in total.iter_mut().zip(accs) {
                    t.merge(a);
                }
            }
        }
        let columns = finish(&[total], aggs);
        return RecordBatch::try_new(
            Arc::new(Schema::new(agg_fields().collect::<Vec<_>>())),
            columns,
        )
        .map_err(|e| e.to_string());
    }
    // Every partial's keys in one converter (the first partial with keys sets the types).
    let Some(first) = partials.iter().find_map(|p| p.keys.as_ref()) else {
        let key_fields: Vec<_> = keys
            .iter()
            .map(|k| Arc::new(Field::new(k, DataType::Null, true)))
            .collect();
        let schema = Schema::new(
            key_fields
                .into_iter()
                .chain(agg_fields())
                .collect::<Vec<_>>(),
        );
        return Ok(RecordBatch::new_empty(Arc::new(schema)));
    };
    let key_schema = first.schema();
    let converter = converter(first.columns())?;
    let mut groups: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut owned: Vec<arrow::row::OwnedRow> = Vec::new();
    let mut accs: Vec<Vec<Acc>> = Vec::new();
    for p in &partials {
        let Some(kb) = &p.keys else { continue };
        if kb.schema().fields() != key_schema.fields() {
            return Err("blocks disagree on the key columns' types".into());
        }
        let rows = converter
            .convert_columns(kb.columns())
            .map_err(|e| e.to_string())?;
        for (i, part) in p.accs.iter().enumerate() {
            let row = rows.row(i);
            let g = *groups.entry(row.as_ref().to_vec()).or_insert_with(|| {
                owned.push(row.owned());
                accs.push(vec![Acc::default(); aggs.len()]);
                accs.len() - 1
            });
            for (t, a) in accs[g].iter_mut().zip(part) {
                t.merge(a);
            }
        }
    }
    // Sorted by key: the row format sorts as the keys do.
    let mut order: Vec<usize> = (0..owned.len()).collect();
    order.sort_by(|a, b| owned[*a].row().cmp(&owned[*b].row()));
    let key_arrays = converter
        .convert_rows(order.iter().map(|i| owned[*i].row()))
        .map_err(|e| e.to_string())?;
    let sorted: Vec<Vec<Acc>> = order.iter().map(|i| accs[*i].clone()).collect();
    let mut columns = key_arrays;
    columns.extend(finish(&sorted, aggs));
    let fields: Vec<_> = key_schema
        .fields()
        .iter()
        .cloned()
        .chain(agg_fields())
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}

fn finish(groups: &[Vec<Acc>], aggs: &[Agg]) -> Vec<ArrayRef> {
    aggs.iter()
        .enumerate()
        .map(|(j, a)| -> ArrayRef {
            if *a == Agg::Count {
                Arc::new(Int64Array::from_iter_values(
                    groups.iter().map(|g| g[j].n as i64),
                ))
            } else {
                Arc::new(Float64Array::from_iter(
                    groups.iter().map(|g| g[j].finish(a)),
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    fn block(keys: &[&str], xs: &[Option<f64>]) -> RecordBatch {
        RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(keys.to_vec())) as ArrayRef),
            ("x", Arc::new(Float64Array::from(xs.to_vec())) as _),
        ])
        .unwrap()
    }

    #[test]
    fn partials_merge_to_the_plain_answer() {
        let aggs = vec![
            Agg::Count,
            Agg::Sum("x".into()),
            Agg::Mean("x".into()),
            Agg::Min("x".into()),
            Agg::Max("x".into()),
            Agg::Std("x".into()),
        ];
        let keys = vec!["k".to_string()];
        let a = block(&["b", "a", "b"], &[Some(1.0), Some(2.0), None]);
        let b = block(&["a", "b", "c"], &[Some(4.0), Some(3.0), Some(5.0)]);
        let parts = vec![
            partial(&a, &keys, &aggs).unwrap(),
            partial(&b, &keys, &aggs).unwrap(),
        ];
        let out = merge(parts, &keys, &aggs).unwrap();
        let k = out
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            k.iter().collect::<Vec<_>>(),
            vec![Some("a"), Some("b"), Some("c")]
        );
        let f = |i: usize| -> Vec<Option<f64>> {
            out.column(i)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .iter()
                .collect()
        };
        let count = out.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(count.values().to_vec(), vec![2, 3, 1]);
        assert_eq!(f(2), vec![Some(6.0), Some(4.0), Some(5.0)]);
        assert_eq!(f(3), vec![Some(3.0), Some(2.0), Some(5.0)]);
        assert_eq!(f(4), vec![Some(2.0), Some(1.0), Some(5.0)]);
        assert_eq!(f(5), vec![Some(4.0), Some(3.0), Some(5.0)]);
        let std = f(6);
        assert!((std[0].unwrap() - 2f64.sqrt()).abs() < 1e-12);
        assert!((std[1].unwrap() - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(std[2], None);
    }

    #[test]
    fn no_keys_aggregates_everything() {
        let aggs = vec![Agg::Sum("x".into()), Agg::Count];
        let a = block(&["b", "a"], &[Some(1.0), Some(2.0)]);
        let out = merge(vec![partial(&a, &[], &aggs).unwrap()], &[], &aggs).unwrap();
        assert_eq!(out.num_rows(), 1);
        let s = out
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(s.value(0), 3.0);
    }
}
