//! The all-to-all operators (repartition, random_shuffle, sort, groupby, zip) as map and
//! reduce tasks, as Ray Data shuffles: no operator gathers the dataset in the driver, which
//! holds only refs and a sample of sort keys.
//!
//! - `repartition` and `zip` know every block's row count, so each output block is one task
//!   over the slices of the input blocks that make it, in order.
//! - `random_shuffle`, `sort` and `map_groups` run a map task per input block that cuts it
//!   into one part per output block (a generator: each part is an object of its own), then a
//!   reduce task per output block over its parts. `sort` and `map_groups` cut by key ranges
//!   taken from a sample of every block, so output block `j` holds keys before block `j + 1`'s
//!   and a key's rows are all in one block.
//! - `groupby(...).aggregate(...)` reduces each block to partial aggregates in a task; the
//!   driver merges the partials (one row per key).
//!
//! The parts wait in the object store, which spills what does not fit.

use std::collections::BTreeSet;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, SortOptions};
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::DataError;
use super::aggregate::{self, Agg, Partial};
use super::batch::Batch;
use super::exec::{BlockMeta, BlockRef, finish, runtime_reason};
use super::stage::{self, Stage};
use super::stats::Stats;
use crate::{ObjectRef, Split};

/// An all-to-all operator.
#[derive(Clone, Debug)]
pub(crate) enum AllToAll {
    Repartition(usize),
    Shuffle(u64),
    Sort(Vec<String>, bool),
    GroupBy(Vec<String>, Vec<Agg>),
    MapGroups(Vec<String>, String),
}

impl AllToAll {
    /// The columns it needs of its input to give `needed` of its output (`None`: all).
    pub fn needs(&self, needed: Option<BTreeSet<String>>) -> Option<BTreeSet<String>> {
        match self {
            AllToAll::Repartition(_) | AllToAll::Shuffle(_) => needed,
            AllToAll::Sort(keys, _) => needed.map(|mut n| {
                n.extend(keys.iter().cloned());
                n
            }),
            AllToAll::GroupBy(keys, aggs) => Some(
                keys.iter()
                    .cloned()
                    .chain(aggs.iter().filter_map(|a| a.column().map(str::to_string)))
                    .collect(),
            ),
            AllToAll::MapGroups(..) => None,
        }
    }

    /// The operator's name, as errors and stats give it.
    pub fn name(&self) -> String {
        match self {
            AllToAll::Repartition(n) => format!("repartition({n})"),
            AllToAll::Shuffle(seed) => format!("random_shuffle(seed {seed})"),
            AllToAll::Sort(k, d) => format!(
                "sort({}{})",
                k.join(", "),
                if *d { ", descending" } else { "" }
            ),
            AllToAll::GroupBy(k, a) => format!(
                "groupby({}).aggregate({})",
                k.join(", "),
                a.iter()
                    .map(Agg::output_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            AllToAll::MapGroups(k, f) => format!("groupby({}).map_groups({f})", k.join(", ")),
        }
    }
}

/// Rows `offset..offset + len` of input block `block`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Piece {
    pub block: usize,
    pub offset: usize,
    pub len: usize,
}

/// The pieces of blocks of `rows` rows each that hold rows `start..start + len` of their
/// concatenation, in order.
pub(crate) fn pieces(rows: &[u64], start: u64, len: u64) -> Vec<Piece> {
    let end = start + len;
    let mut out = Vec::new();
    let mut at = 0u64;
    for (block, &n) in rows.iter().enumerate() {
        let (lo, hi) = (start.max(at), end.min(at + n));
        if lo < hi {
            out.push(Piece {
                block,
                offset: (lo - at) as usize,
                len: (hi - lo) as usize,
            });
        }
        at += n;
        if at >= end {
            break;
        }
    }
    out
}

/// How a map task cuts its block.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Cut {
    /// Each row to a part drawn at random (from the seed and the block's index).
    Random { seed: u64 },
    /// Each row to the part of its key range; `bounds` holds the `n - 1` keys between parts.
    Ranges {
        keys: Vec<String>,
        descending: bool,
        bounds: Batch,
    },
}

/// What a reduce task makes of its parts.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Reduce {
    /// The pieces, concatenated in order.
    Pieces(Vec<Piece>),
    /// The parts' rows in an order drawn from the seed and the output block's index.
    Shuffle(u64),
    /// The parts' rows sorted.
    Sort(Vec<String>, bool),
    /// The function on each group of the parts' rows, the groups in key order.
    MapGroups(Vec<String>, String),
}

/// The seeded generator for block `index` of an operator seeded with `seed`.
fn rng_for(seed: u64, index: usize) -> crate::tune::rng::Rng {
    crate::tune::rng::Rng::seeded(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// A permutation of `0..n` (Fisher-Yates).
fn permutation(n: usize, rng: &mut crate::tune::rng::Rng) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn sort_options(descending: bool) -> SortOptions {
    SortOptions {
        descending,
        nulls_first: false,
    }
}

fn key_columns(
    batch: &RecordBatch,
    keys: &[String],
) -> Result<Vec<arrow::array::ArrayRef>, String> {
    keys.iter()
        .map(|k| {
            batch.column_by_name(k).cloned().ok_or_else(|| {
                format!(
                    "no column \"{k}\"; there are {:?}",
                    batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect::<Vec<_>>()
                )
            })
        })
        .collect()
}

/// The rows of `batch` sorted by `keys` (nulls last).
pub(crate) fn sort_batch(
    batch: &RecordBatch,
    keys: &[String],
    descending: bool,
) -> Result<RecordBatch, String> {
    if batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let columns = key_columns(batch, keys)?
        .into_iter()
        .map(|values| SortColumn {
            values,
            options: Some(sort_options(descending)),
        })
        .collect::<Vec<_>>();
    let idx = arrow::compute::lexsort_to_indices(&columns, None).map_err(|e| e.to_string())?;
    arrow::compute::take_record_batch(batch, &idx).map_err(|e| e.to_string())
}

/// `(start, len)` of each run of equal keys in a batch sorted by them.
fn group_runs(batch: &RecordBatch, keys: &[String]) -> Result<Vec<(usize, usize)>, String> {
    let cols = key_columns(batch, keys)?;
    let ranges = arrow::compute::partition(&cols).map_err(|e| e.to_string())?;
    Ok(ranges
        .ranges()
        .into_iter()
        .map(|r| (r.start, r.end - r.start))
        .collect())
}

/// The part of each row of `batch` under `cut`, for `n` parts.
fn parts_of_rows(
    batch: &RecordBatch,
    cut: &Cut,
    n: usize,
    block: usize,
) -> Result<Vec<u32>, String> {
    match cut {
        Cut::Random { seed } => {
            let mut rng = rng_for(*seed, block);
            Ok((0..batch.num_rows())
                .map(|_| (rng.next_u64() % n as u64) as u32)
                .collect())
        }
        Cut::Ranges {
            keys,
            descending,
            bounds,
        } => {
            let cols = key_columns(batch, keys)?;
            let converter = RowConverter::new(
                cols.iter()
                    .map(|c| {
                        SortField::new_with_options(
                            c.data_type().clone(),
                            sort_options(*descending),
                        )
                    })
                    .collect(),
            )
            .map_err(|e| e.to_string())?;
            let rows = converter
                .convert_columns(&cols)
                .map_err(|e| e.to_string())?;
            let bound_rows = converter
                .convert_columns(&key_columns(bounds, keys)?)
                .map_err(|e| format!("the sort keys' types differ between blocks: {e}"))?;
            let bounds: Vec<_> = bound_rows.iter().collect();
            Ok(rows
                .iter()
                .map(|r| bounds.partition_point(|b| *b <= r) as u32)
                .collect())
        }
    }
}

/// `batch` cut into `n` parts by the part of each row.
fn cut_into(batch: &RecordBatch, part: &[u32], n: usize) -> Result<Vec<RecordBatch>, String> {
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (row, &p) in part.iter().enumerate() {
        indices[p as usize].push(row as u32);
    }
    indices
        .into_iter()
        .map(|idx| {
            arrow::compute::take_record_batch(batch, &UInt32Array::from(idx))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// `k` rows of `block`'s key columns, evenly spaced (the sample that sets a sort's ranges).
#[crate::remote(num_cpus = 0)]
fn sample_keys(block: Batch, keys: Vec<String>, k: usize) -> Result<Batch, String> {
    let cols = key_columns(&block, &keys)?;
    let n = block.num_rows();
    let k = k.min(n);
    let idx = UInt32Array::from((0..k).map(|i| (i * n / k) as u32).collect::<Vec<_>>());
    let fields: Vec<_> = keys
        .iter()
        .map(|name| block.schema().field_with_name(name).cloned())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let taken = cols
        .iter()
        .map(|c| arrow::compute::take(c, &idx, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        taken,
    )
    .map(Batch::new)
    .map_err(|e| e.to_string())
}

/// Cuts input block `block` into `n` parts, one per output block (the map side).
#[crate::remote]
fn cut_block(
    block: Batch,
    cut: Cut,
    n: usize,
    index: usize,
) -> impl Iterator<Item = Result<Batch, String>> {
    let parts = parts_of_rows(&block, &cut, n, index).and_then(|p| cut_into(&block, &p, n));
    let items: Vec<Result<Batch, String>> = match parts {
        Ok(parts) => parts.into_iter().map(|p| Ok(Batch::new(p))).collect(),
        Err(e) => vec![Err(e)],
    };
    items.into_iter()
}

fn reduce_parts(parts: Vec<Batch>, how: &Reduce, index: usize) -> Result<RecordBatch, String> {
    let batches: Vec<RecordBatch> = match how {
        Reduce::Pieces(pieces) => pieces
            .iter()
            .map(|p| parts[p.block].slice(p.offset, p.len))
            .collect(),
        _ => parts.into_iter().map(Batch::into_inner).collect(),
    };
    let all = stage::concat(&batches)?;
    match how {
        Reduce::Pieces(_) => Ok(all),
        Reduce::Shuffle(seed) => {
            let order = permutation(all.num_rows(), &mut rng_for(*seed, index));
            arrow::compute::take_record_batch(&all, &UInt32Array::from(order))
                .map_err(|e| e.to_string())
        }
        Reduce::Sort(keys, descending) => sort_batch(&all, keys, *descending),
        Reduce::MapGroups(keys, function) => {
            let sorted = sort_batch(&all, keys, false)?;
            let stage = Stage::MapBatches {
                function: function.clone(),
                batch_size: None,
            };
            let mut out = Vec::new();
            for (start, len) in group_runs(&sorted, keys)? {
                out.push(stage.apply(sorted.slice(start, len))?);
            }
            stage::concat(&out)
        }
    }
}

/// The block a reduce task made, or why it could not (naming the operator and the block).
fn described(
    made: Result<RecordBatch, String>,
    operator: &str,
    block: usize,
) -> (Batch, BlockMeta) {
    let made = made.map_err(|reason| DataError::Operator {
        operator: operator.to_string(),
        block,
        file: None,
        reason,
    });
    finish(made, None)
}

/// Makes output block `index` from its parts (the reduce side).
#[crate::remote(num_returns = 2)]
fn reduce_block(
    parts: Vec<Batch>,
    how: Reduce,
    operator: String,
    index: usize,
) -> (Batch, BlockMeta) {
    described(reduce_parts(parts, &how, index), &operator, index)
}

/// Left block `index` beside the same rows of the right side, cut from its blocks.
#[crate::remote(num_returns = 2)]
fn zip_block(
    left: Batch,
    right: Vec<Batch>,
    pieces: Vec<Piece>,
    index: usize,
) -> (Batch, BlockMeta) {
    let made = reduce_parts(right, &Reduce::Pieces(pieces), index)
        .and_then(|r| zip_columns(left.record_batch(), &r));
    described(made, "zip", index)
}

/// The columns of `a` then those of `b`, a name taken twice suffixed `_1`.
fn zip_columns(a: &RecordBatch, b: &RecordBatch) -> Result<RecordBatch, String> {
    let mut fields: Vec<_> = a.schema().fields().iter().cloned().collect();
    let mut columns = a.columns().to_vec();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        let mut name = f.name().clone();
        while fields.iter().any(|x| x.name() == &name) {
            name.push_str("_1");
        }
        fields.push(std::sync::Arc::new(f.as_ref().clone().with_name(name)));
        columns.push(c.clone());
    }
    RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )
    .map_err(|e| e.to_string())
}

/// Reduces each block to partial aggregates per key.
#[crate::remote]
pub(crate) fn partial_block(
    input: Batch,
    keys: Vec<String>,
    aggs: Vec<Agg>,
) -> Result<Partial, String> {
    aggregate::partial(&input, &keys, &aggs)
}

/// How many sample rows each block gives a sort.
const SAMPLE_PER_BLOCK: usize = 16;

/// Runs `op` over `blocks`; the output blocks, in order.
pub(crate) fn run(
    blocks: Vec<BlockRef>,
    op: &AllToAll,
    stats: &Stats,
) -> Result<Vec<BlockRef>, DataError> {
    let name = op.name();
    let op_stats = stats.operator(&name);
    op_stats.started();
    let failed = |block: usize, file: Option<String>, reason: String| DataError::Operator {
        operator: name.clone(),
        block,
        file,
        reason,
    };
    // Blocks with no rows take no part (an empty source's block has no columns either).
    let total: u64 = blocks.iter().map(|b| b.rows).sum();
    let full: Vec<BlockRef> = blocks.iter().filter(|b| b.rows > 0).cloned().collect();
    let out = match op {
        AllToAll::GroupBy(keys, aggs) => {
            let pending: Vec<_> = full
                .iter()
                .map(|b| partial_block.remote(&b.batch, keys.clone(), aggs.clone()))
                .collect();
            let mut partials = Vec::with_capacity(pending.len());
            for (i, p) in pending.into_iter().enumerate() {
                let partial = p
                    .get()
                    .map_err(|e| failed(i, full[i].file.clone(), runtime_reason(&e)))?;
                partials.push(partial);
            }
            let merged = aggregate::merge(partials, keys, aggs).map_err(|r| failed(0, None, r))?;
            let batch = Batch::new(merged);
            let (rows, bytes) = (batch.num_rows() as u64, batch.memory_size());
            vec![BlockRef {
                batch: crate::put(batch).map_err(|e| DataError::Runtime(e.to_string()))?,
                rows,
                bytes,
                file: None,
            }]
        }
        _ if total == 0 => match op {
            AllToAll::MapGroups(..) => Vec::new(),
            _ => blocks,
        },
        AllToAll::Repartition(n) => {
            let n = (*n).max(1);
            let rows: Vec<u64> = blocks.iter().map(|b| b.rows).collect();
            let made = (0..n)
                .map(|j| {
                    let (start, end) = (
                        total * j as u64 / n as u64,
                        total * (j as u64 + 1) / n as u64,
                    );
                    let mut ps = pieces(&rows, start, end - start);
                    if ps.is_empty() {
                        // An empty output block keeps the columns.
                        let first = rows.iter().position(|&r| r > 0).unwrap_or(0);
                        ps.push(Piece {
                            block: first,
                            offset: 0,
                            len: 0,
                        });
                    }
                    let inputs: Vec<&ObjectRef<Batch>> =
                        ps.iter().map(|p| &blocks[p.block].batch).collect();
                    let local = ps
                        .iter()
                        .enumerate()
                        .map(|(i, p)| Piece { block: i, ..*p })
                        .collect();
                    reduce_block
                        .options()
                        .num_cpus(0)
                        .remote(
                            crate::gather(inputs),
                            Reduce::Pieces(local),
                            name.clone(),
                            j,
                        )
                        .split()
                })
                .collect();
            collect(made, &name)?
        }
        AllToAll::Shuffle(seed) => {
            let n = blocks.len();
            let parts = cut_all(&full, Cut::Random { seed: *seed }, n, &name)?;
            reduce_all(parts, |_| Reduce::Shuffle(*seed), &name)?
        }
        AllToAll::Sort(keys, descending) => {
            let n = blocks.len();
            let bounds = bounds(&full, keys, *descending, n, &name)?;
            let cut = Cut::Ranges {
                keys: keys.clone(),
                descending: *descending,
                bounds,
            };
            let parts = cut_all(&full, cut, n, &name)?;
            reduce_all(parts, |_| Reduce::Sort(keys.clone(), *descending), &name)?
        }
        AllToAll::MapGroups(keys, function) => {
            let n = blocks.len();
            let bounds = bounds(&full, keys, false, n, &name)?;
            let cut = Cut::Ranges {
                keys: keys.clone(),
                descending: false,
                bounds,
            };
            let parts = cut_all(&full, cut, n, &name)?;
            reduce_all(
                parts,
                |_| Reduce::MapGroups(keys.clone(), function.clone()),
                &name,
            )?
        }
    };
    for b in &out {
        op_stats.finished(b.rows, b.bytes);
    }
    Ok(out)
}

/// The `n - 1` keys between the key ranges of `n` output blocks, from a sample of every block.
fn bounds(
    blocks: &[BlockRef],
    keys: &[String],
    descending: bool,
    n: usize,
    name: &str,
) -> Result<Batch, DataError> {
    let samples: Vec<_> = blocks
        .iter()
        .map(|b| sample_keys.remote(&b.batch, keys.to_vec(), SAMPLE_PER_BLOCK))
        .collect();
    let mut taken = Vec::with_capacity(samples.len());
    for (i, s) in samples.into_iter().enumerate() {
        let sample = s.get().map_err(|e| DataError::Operator {
            operator: name.to_string(),
            block: i,
            file: blocks[i].file.clone(),
            reason: runtime_reason(&e),
        })?;
        taken.push(sample.into_inner());
    }
    let invalid = |reason: String| DataError::Operator {
        operator: name.to_string(),
        block: 0,
        file: None,
        reason,
    };
    let all = stage::concat(&taken).map_err(invalid)?;
    let sorted = sort_batch(&all, keys, descending).map_err(invalid)?;
    let s = sorted.num_rows();
    let idx = UInt32Array::from((1..n).map(|i| (i * s / n) as u32).collect::<Vec<_>>());
    arrow::compute::take_record_batch(&sorted, &idx)
        .map(Batch::new)
        .map_err(|e| invalid(e.to_string()))
}

/// Runs a map task per block; `parts[j]` are the parts for output block `j`, in block order.
fn cut_all(
    blocks: &[BlockRef],
    cut: Cut,
    n: usize,
    name: &str,
) -> Result<Vec<Vec<ObjectRef<Batch>>>, DataError> {
    // Each map task may make all its parts before the driver takes any (half a generator's
    // window is answered ahead), so none holds a CPU waiting for the driver to reach it.
    let window = u32::try_from(2 * n).unwrap_or(u32::MAX).max(2);
    let generators: Vec<_> = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            cut_block
                .options()
                .generator_backpressure(window)
                .remote(&b.batch, cut.clone(), n, i)
        })
        .collect();
    let mut parts: Vec<Vec<ObjectRef<Batch>>> = vec![Vec::with_capacity(blocks.len()); n];
    for (i, g) in generators.into_iter().enumerate() {
        let made: Vec<ObjectRef<Batch>> = g.collect();
        if made.len() != n {
            // The generator ended early: its last ref holds why.
            let reason = match made.last().map(ObjectRef::get) {
                Some(Err(e)) => runtime_reason(&e),
                _ => format!("cut into {} parts, not {n}", made.len()),
            };
            return Err(DataError::Operator {
                operator: name.to_string(),
                block: i,
                file: blocks[i].file.clone(),
                reason,
            });
        }
        for (j, part) in made.into_iter().enumerate() {
            parts[j].push(part);
        }
    }
    Ok(parts)
}

/// Runs a reduce task per output block over its parts.
fn reduce_all(
    parts: Vec<Vec<ObjectRef<Batch>>>,
    how: impl Fn(usize) -> Reduce,
    name: &str,
) -> Result<Vec<BlockRef>, DataError> {
    let made = parts
        .into_iter()
        .enumerate()
        .map(|(j, p)| reduce_block.remote(crate::gather(p), how(j), name.to_string(), j))
        .collect();
    collect(made, name)
}

/// The output blocks of reduce tasks, once each has ended.
fn collect(
    made: Vec<(ObjectRef<Batch>, ObjectRef<BlockMeta>)>,
    name: &str,
) -> Result<Vec<BlockRef>, DataError> {
    made.into_iter()
        .enumerate()
        .map(|(j, (batch, meta))| {
            let meta = meta.get().map_err(|e| DataError::Operator {
                operator: name.to_string(),
                block: j,
                file: None,
                reason: runtime_reason(&e),
            })?;
            if let Some(e) = meta.error {
                return Err(e);
            }
            Ok(BlockRef {
                batch,
                rows: meta.rows,
                bytes: meta.bytes,
                file: None,
            })
        })
        .collect()
}

/// The columns of `a`'s rows beside `b`'s, block by block of `a`.
pub(crate) fn zip(
    a: Vec<BlockRef>,
    b: Vec<BlockRef>,
    stats: &Stats,
) -> Result<Vec<BlockRef>, DataError> {
    let (ra, rb): (u64, u64) = (
        a.iter().map(|x| x.rows).sum(),
        b.iter().map(|x| x.rows).sum(),
    );
    if ra != rb {
        return Err(DataError::Schema {
            reason: format!("zip needs the same number of rows on both sides: {ra} and {rb}"),
        });
    }
    let op_stats = stats.operator("zip");
    op_stats.started();
    let rows: Vec<u64> = b.iter().map(|x| x.rows).collect();
    let mut start = 0;
    let made = a
        .iter()
        .enumerate()
        .map(|(i, left)| {
            let ps = pieces(&rows, start, left.rows);
            start += left.rows;
            let inputs: Vec<&ObjectRef<Batch>> = ps.iter().map(|p| &b[p.block].batch).collect();
            let local = ps
                .iter()
                .enumerate()
                .map(|(k, p)| Piece { block: k, ..*p })
                .collect::<Vec<_>>();
            zip_block
                .options()
                .num_cpus(0)
                .remote(&left.batch, crate::gather(inputs), local, i)
                .split()
        })
        .collect();
    let out = collect(made, "zip")?;
    for o in &out {
        op_stats.finished(o.rows, o.bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn pieces_cover_a_row_range_across_blocks() {
        let rows = [3, 0, 4, 2];
        let p = |block, offset, len| Piece { block, offset, len };
        assert_eq!(
            pieces(&rows, 0, 9),
            vec![p(0, 0, 3), p(2, 0, 4), p(3, 0, 2)]
        );
        assert_eq!(pieces(&rows, 2, 3), vec![p(0, 2, 1), p(2, 0, 2)]);
        assert_eq!(pieces(&rows, 7, 2), vec![p(3, 0, 2)]);
        assert_eq!(pieces(&rows, 4, 0), vec![]);
        assert_eq!(pieces(&[], 0, 0), vec![]);
    }

    fn ints(v: Vec<Option<i64>>) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "k",
            Arc::new(arrow::array::Int64Array::from(v)) as arrow::array::ArrayRef,
        )])
        .unwrap()
    }

    #[test]
    fn ranges_send_each_key_to_one_part_in_order() {
        let batch = ints(vec![Some(5), None, Some(1), Some(9), Some(5), Some(3)]);
        let asc = Cut::Ranges {
            keys: vec!["k".into()],
            descending: false,
            bounds: Batch::new(ints(vec![Some(3), Some(5)])),
        };
        // Ascending: below 3, 3 up to 5, 5 and above; nulls last.
        assert_eq!(
            parts_of_rows(&batch, &asc, 3, 0).unwrap(),
            vec![2, 2, 0, 2, 2, 1]
        );
        let desc = Cut::Ranges {
            keys: vec!["k".into()],
            descending: true,
            bounds: Batch::new(ints(vec![Some(5), Some(3)])),
        };
        assert_eq!(
            parts_of_rows(&batch, &desc, 3, 0).unwrap(),
            vec![1, 2, 2, 0, 1, 2]
        );
    }

    #[test]
    fn random_cuts_are_seeded_and_lose_no_row() {
        let batch = ints((0..100).map(Some).collect());
        let cut = Cut::Random { seed: 4 };
        let a = parts_of_rows(&batch, &cut, 5, 0).unwrap();
        assert_eq!(a, parts_of_rows(&batch, &cut, 5, 0).unwrap());
        assert_ne!(a, parts_of_rows(&batch, &cut, 5, 1).unwrap());
        let parts = cut_into(&batch, &a, 5).unwrap();
        assert_eq!(parts.iter().map(RecordBatch::num_rows).sum::<usize>(), 100);
        assert!(parts.iter().all(|p| p.num_rows() > 0));
    }
}
