//! Where blocks come from: read tasks (a range of ids, a file or part of one), each run as
//! one task that makes one block.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use super::DataError;
use super::stage::concat;

/// Ray Data's target block size: a read task makes about this much.
pub(crate) const TARGET_BLOCK_BYTES: u64 = 128 << 20;

/// One read task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Read {
    /// Ids `start..end` in column `id`.
    Range { start: u64, end: u64 },
    /// Row groups `groups` of a Parquet file (all when `None`), only `columns` of it (all
    /// when `None`).
    Parquet {
        path: String,
        groups: Option<Vec<usize>>,
        columns: Option<Vec<String>>,
    },
    /// A CSV file with a header row: the lines that start in `bytes` (all when `None`).
    Csv {
        path: String,
        bytes: Option<(u64, u64)>,
    },
    /// A newline-delimited JSON file: the lines that start in `bytes` (all when `None`).
    Json {
        path: String,
        bytes: Option<(u64, u64)>,
    },
    /// A text file, one row per line in column `text`: the lines that start in `bytes`
    /// (all when `None`).
    Text {
        path: String,
        bytes: Option<(u64, u64)>,
    },
    /// A whole file as one row: columns `path` and `bytes`.
    Binary { path: String },
}

impl Read {
    /// The file it reads, if any.
    pub fn file(&self) -> Option<&str> {
        match self {
            Read::Range { .. } => None,
            Read::Parquet { path, .. }
            | Read::Csv { path, .. }
            | Read::Json { path, .. }
            | Read::Text { path, .. }
            | Read::Binary { path } => Some(path),
        }
    }

    /// This read, decoding only `columns` of a Parquet file (other reads make every
    /// column).
    pub fn only(&self, columns: &std::collections::BTreeSet<String>) -> Read {
        match self {
            Read::Parquet { path, groups, .. } => Read::Parquet {
                path: path.clone(),
                groups: groups.clone(),
                columns: Some(columns.iter().cloned().collect()),
            },
            other => other.clone(),
        }
    }

    /// The columns it decodes, if not all.
    pub fn columns(&self) -> Option<&[String]> {
        match self {
            Read::Parquet {
                columns: Some(c), ..
            } => Some(c),
            _ => None,
        }
    }

    /// The name of the read operator.
    pub fn operator(&self) -> &'static str {
        match self {
            Read::Range { .. } => "range",
            Read::Parquet { .. } => "read_parquet",
            Read::Csv { .. } => "read_csv",
            Read::Json { .. } => "read_json",
            Read::Text { .. } => "read_text",
            Read::Binary { .. } => "read_binary_files",
        }
    }

    /// Makes the block, as one batch.
    pub fn run(&self) -> Result<RecordBatch, DataError> {
        match self {
            // One batch of every row read: no copy to put batches together.
            Read::Parquet {
                path,
                groups,
                columns,
            } => {
                let (reader, schema) = parquet_reader(path, groups, columns, None)?;
                let batches = reader
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| read_err(path, &e))?;
                if batches.is_empty() {
                    Ok(RecordBatch::new_empty(schema))
                } else {
                    concat(&batches).map_err(|e| read_err(path, &e))
                }
            }
            Read::Range { .. } | Read::Csv { .. } | Read::Json { .. } => {
                let chunks = self.chunks()?;
                let batches = chunks.batches.collect::<Result<Vec<_>, _>>()?;
                if batches.is_empty() {
                    return Ok(RecordBatch::new_empty(chunks.schema));
                }
                concat(&batches).map_err(|e| DataError::Read {
                    path: self.file().unwrap_or("range").to_string(),
                    reason: e,
                })
            }
            Read::Text { path, bytes } => {
                let (lines, _) = part(path, *bytes).map_err(|e| read_err(path, &e))?;
                let text = String::from_utf8(lines).map_err(|e| read_err(path, &e))?;
                let lines: StringArray = text.lines().map(Some).collect();
                RecordBatch::try_from_iter([("text", Arc::new(lines) as _)])
                    .map_err(|e| read_err(path, &e))
            }
            Read::Binary { path } => {
                let bytes = std::fs::read(path).map_err(|e| read_err(path, &e))?;
                let schema = Schema::new(vec![
                    Field::new("path", DataType::Utf8, false),
                    Field::new("bytes", DataType::Binary, false),
                ]);
                RecordBatch::try_new(
                    Arc::new(schema),
                    vec![
                        Arc::new(StringArray::from(vec![path.as_str()])),
                        Arc::new(arrow::array::BinaryArray::from(vec![bytes.as_slice()])),
                    ],
                )
                .map_err(|e| read_err(path, &e))
            }
        }
    }

    /// The block as it is decoded, in batches of at most [`CHUNK_ROWS`] rows (a text or
    /// binary read: one batch), for fused operators to work on while they are in cache.
    pub fn chunks(&self) -> Result<Chunks, DataError> {
        match self {
            Read::Range { start, end } => {
                let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
                let (start, end) = (*start, *end);
                let s = schema.clone();
                let batches = (start..end).step_by(CHUNK_ROWS).map(move |from| {
                    let to = (from + CHUNK_ROWS as u64).min(end);
                    let ids: Int64Array = (from as i64..to as i64).collect();
                    RecordBatch::try_new(s.clone(), vec![Arc::new(ids)])
                        .map_err(|e| DataError::Invalid(e.to_string()))
                });
                Ok(Chunks {
                    schema,
                    batches: Box::new(batches),
                })
            }
            Read::Parquet {
                path,
                groups,
                columns,
            } => {
                let (reader, schema) = parquet_reader(path, groups, columns, Some(CHUNK_ROWS))?;
                let path = path.clone();
                Ok(Chunks {
                    schema,
                    batches: Box::new(reader.map(move |b| b.map_err(|e| read_err(&path, &e)))),
                })
            }
            Read::Csv { path, bytes } => {
                // Every part of a file takes the types inferred from its start.
                let mut file = std::fs::File::open(path).map_err(|e| read_err(path, &e))?;
                let (schema, _) = arrow::csv::reader::Format::default()
                    .with_header(true)
                    .infer_schema(&mut file, Some(10_000))
                    .map_err(|e| read_err(path, &e))?;
                let schema = Arc::new(schema);
                let (lines, first) = part(path, *bytes).map_err(|e| read_err(path, &e))?;
                let reader = arrow::csv::ReaderBuilder::new(schema.clone())
                    .with_header(first)
                    .with_batch_size(CHUNK_ROWS)
                    .build(std::io::Cursor::new(lines))
                    .map_err(|e| read_err(path, &e))?;
                let path = path.clone();
                Ok(Chunks {
                    schema,
                    batches: Box::new(reader.map(move |b| b.map_err(|e| read_err(&path, &e)))),
                })
            }
            Read::Json { path, bytes } => {
                // A whole file's types come from all of it; a part's from the file's first
                // 10,000 lines, the same for every part.
                let file = std::fs::File::open(path).map_err(|e| read_err(path, &e))?;
                let mut buffered = std::io::BufReader::new(file);
                let sample = bytes.map(|_| 10_000);
                let (schema, _) =
                    arrow::json::reader::infer_json_schema_from_seekable(&mut buffered, sample)
                        .map_err(|e| read_err(path, &e))?;
                let schema = Arc::new(schema);
                let (lines, _) = part(path, *bytes).map_err(|e| read_err(path, &e))?;
                let reader = arrow::json::ReaderBuilder::new(schema.clone())
                    .with_batch_size(CHUNK_ROWS)
                    .build(std::io::Cursor::new(lines))
                    .map_err(|e| read_err(path, &e))?;
                let path = path.clone();
                Ok(Chunks {
                    schema,
                    batches: Box::new(reader.map(move |b| b.map_err(|e| read_err(&path, &e)))),
                })
            }
            Read::Text { .. } | Read::Binary { .. } => {
                let batch = self.run()?;
                Ok(Chunks {
                    schema: batch.schema(),
                    batches: Box::new(std::iter::once(Ok(batch))),
                })
            }
        }
    }
}

/// The rows a read hands the operators fused with it at a time.
pub(crate) const CHUNK_ROWS: usize = 1 << 16;

/// A read's batches as they are decoded, and their schema (for a read of no rows).
pub(crate) struct Chunks {
    pub schema: arrow::datatypes::SchemaRef,
    pub batches: Box<dyn Iterator<Item = Result<RecordBatch, DataError>>>,
}

fn read_err(path: &str, e: &dyn std::fmt::Display) -> DataError {
    DataError::Read {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

/// A reader of row groups `groups` (all when `None`) of a Parquet file, decoding only the
/// listed `columns` it has (all when `None`), in batches of `batch` rows (all when `None`).
fn parquet_reader(
    path: &str,
    groups: &Option<Vec<usize>>,
    columns: &Option<Vec<String>>,
    batch: Option<usize>,
) -> Result<
    (
        parquet::arrow::arrow_reader::ParquetRecordBatchReader,
        arrow::datatypes::SchemaRef,
    ),
    DataError,
> {
    let file = std::fs::File::open(path).map_err(|e| read_err(path, &e))?;
    let mut builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| read_err(path, &e))?;
    let meta = builder.metadata().clone();
    let rows: i64 = match groups {
        Some(groups) => groups
            .iter()
            .filter_map(|g| meta.row_groups().get(*g))
            .map(|g| g.num_rows())
            .sum(),
        None => meta.file_metadata().num_rows(),
    };
    if let Some(groups) = groups {
        builder = builder.with_row_groups(groups.clone());
    }
    if let Some(columns) = columns {
        // Only these columns are decoded (projection pushdown), in the file's order; one
        // the file lacks is left to the operator that uses it to name.
        let schema = builder.schema().clone();
        let roots: Vec<usize> = columns
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .collect();
        let mask =
            parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
        builder = builder.with_projection(mask);
    }
    let reader = builder
        .with_batch_size(batch.unwrap_or(rows.max(1) as usize))
        .build()
        .map_err(|e| read_err(path, &e))?;
    let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
    Ok((reader, schema))
}

/// The files `pattern` names: a file, every file under a directory (recursively, sorted,
/// hidden files left out), or the files a glob pattern matches. Nothing found is an error.
pub(crate) fn files(pattern: &str) -> Result<Vec<PathBuf>, DataError> {
    let err = |reason: String| DataError::Read {
        path: pattern.to_string(),
        reason,
    };
    let path = Path::new(pattern);
    let mut out = Vec::new();
    if pattern.contains(['*', '?', '[']) {
        for entry in glob::glob(pattern).map_err(|e| err(e.to_string()))? {
            let p = entry.map_err(|e| err(e.to_string()))?;
            if p.is_file() {
                out.push(p);
            }
        }
        if out.is_empty() {
            return Err(err("no file matches the pattern".into()));
        }
    } else if path.is_dir() {
        walk(path, &mut out).map_err(|e| err(e.to_string()))?;
        if out.is_empty() {
            return Err(err("the directory has no files".into()));
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    } else {
        return Err(err("no such file or directory".into()));
    }
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(['.', '_']) {
            continue;
        }
        let p = entry.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Read tasks for the Parquet files `pattern` names: each file's row groups in runs of
/// about [`TARGET_BLOCK_BYTES`] (uncompressed).
pub(crate) fn parquet_reads(pattern: &str) -> Result<Vec<Read>, DataError> {
    let mut reads = Vec::new();
    for path in files(pattern)? {
        let p = path.to_string_lossy().to_string();
        let file = std::fs::File::open(&path).map_err(|e| DataError::Read {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        let reader =
            parquet::file::serialized_reader::SerializedFileReader::new(file).map_err(|e| {
                DataError::Read {
                    path: p.clone(),
                    reason: e.to_string(),
                }
            })?;
        use parquet::file::reader::FileReader;
        let meta = reader.metadata();
        let sizes: Vec<u64> = meta
            .row_groups()
            .iter()
            .map(|g| g.total_byte_size().max(0) as u64)
            .collect();
        for groups in runs(&sizes, TARGET_BLOCK_BYTES) {
            reads.push(Read::Parquet {
                path: p.clone(),
                groups: (groups.len() != sizes.len()).then_some(groups),
                columns: None,
            });
        }
        if sizes.is_empty() {
            reads.push(Read::Parquet {
                path: p.clone(),
                groups: None,
                columns: None,
            });
        }
    }
    Ok(reads)
}

/// Consecutive indices of `sizes` grouped so that each group holds about `target` (a
/// group has at least one index).
pub(crate) fn runs(sizes: &[u64], target: u64) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut held = 0u64;
    for (i, s) in sizes.iter().enumerate() {
        match out.last_mut() {
            Some(run) if held + s <= target => {
                run.push(i);
                held += s;
            }
            _ => {
                out.push(vec![i]);
                held = *s;
            }
        }
    }
    out
}

/// Read tasks for `range(n)`: blocks of about `n / 200` ids (Ray's default of 200 read
/// blocks), at least 1,000 and at most a target block's worth.
pub(crate) fn range_reads(n: u64) -> Vec<Read> {
    let per = (n / 200).clamp(1_000, TARGET_BLOCK_BYTES / 8);
    (0..n)
        .step_by(per as usize)
        .map(|start| Read::Range {
            start,
            end: (start + per).min(n),
        })
        .collect()
}

/// One read task per file, built by `make`.
pub(crate) fn file_reads(
    pattern: &str,
    make: impl Fn(String) -> Read,
) -> Result<Vec<Read>, DataError> {
    Ok(files(pattern)?
        .into_iter()
        .map(|p| make(p.to_string_lossy().to_string()))
        .collect())
}

/// A read per part of about `target` bytes of each file at `pattern` (a file no larger is
/// one part): for formats of a record per line.
pub(crate) fn line_reads(
    pattern: &str,
    target: u64,
    make: impl Fn(String, Option<(u64, u64)>) -> Read,
) -> Result<Vec<Read>, DataError> {
    let mut reads = Vec::new();
    for p in files(pattern)? {
        let path = p.to_string_lossy().to_string();
        let size = std::fs::metadata(&p)
            .map_err(|e| DataError::Read {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .len();
        let parts = byte_parts(size, target);
        if parts.len() <= 1 {
            reads.push(make(path, None));
        } else {
            reads.extend(parts.into_iter().map(|b| make(path.clone(), Some(b))));
        }
    }
    Ok(reads)
}

/// `0..size` cut into parts of about `target` bytes.
fn byte_parts(size: u64, target: u64) -> Vec<(u64, u64)> {
    let n = size.div_ceil(target.max(1)).max(1);
    (0..n).map(|i| (size * i / n, size * (i + 1) / n)).collect()
}

/// The bytes of the lines of `path` that start in `bytes` (every line when `None`), and
/// whether they begin the file. A line belongs to the part its first byte is in, so parts
/// that cover a file give each line once.
fn part(path: &str, bytes: Option<(u64, u64)>) -> std::io::Result<(Vec<u8>, bool)> {
    use std::io::{BufRead, Seek, SeekFrom};
    let Some((start, end)) = bytes else {
        return Ok((std::fs::read(path)?, true));
    };
    let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut at = start;
    if start > 0 {
        // The line running into `start` belongs to the part before.
        file.seek(SeekFrom::Start(start - 1))?;
        let mut skipped = Vec::new();
        at = start - 1 + file.read_until(b'\n', &mut skipped)? as u64;
    }
    let mut out = Vec::with_capacity((end - start) as usize);
    while at < end {
        let n = file.read_until(b'\n', &mut out)?;
        if n == 0 {
            break;
        }
        at += n as u64;
    }
    Ok((out, start == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_file_give_each_line_once() {
        let d = std::env::temp_dir().join(format!("mobula-parts-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("lines.txt");
        let text = "a\nbb\n\nccc\ndddddddddd\ne\nlast-without-newline";
        std::fs::write(&f, text).unwrap();
        let path = f.to_string_lossy().to_string();
        let want: Vec<&str> = text.split('\n').collect();
        for target in 1..=text.len() as u64 + 1 {
            let mut got = String::new();
            for b in byte_parts(text.len() as u64, target) {
                got.push_str(&String::from_utf8(part(&path, Some(b)).unwrap().0).unwrap());
            }
            assert_eq!(got.split('\n').collect::<Vec<_>>(), want, "target {target}");
        }
        assert_eq!(byte_parts(10, 4), vec![(0, 3), (3, 6), (6, 10)]);
        assert_eq!(byte_parts(0, 4), vec![(0, 0)]);
        // A CSV file in parts: the header read once, from the file's start.
        let csv = d.join("t.csv");
        let body: String = (0..500).map(|i| format!("{i},{}\n", i * 2)).collect();
        std::fs::write(&csv, format!("a,b\n{body}")).unwrap();
        let reads = line_reads(&csv.to_string_lossy(), 512, |path, bytes| Read::Csv {
            path,
            bytes,
        })
        .unwrap();
        assert!(reads.len() > 5, "{} parts", reads.len());
        let mut a = Vec::new();
        for r in &reads {
            let b = r.run().unwrap();
            assert_eq!(b.schema().field(0).name(), "a");
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            a.extend(col.values().iter().copied());
        }
        assert_eq!(a, (0..500).collect::<Vec<i64>>());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn runs_group_up_to_the_target() {
        assert_eq!(
            runs(&[5, 5, 5, 20, 1], 10),
            vec![vec![0, 1], vec![2], vec![3], vec![4]]
        );
        assert!(runs(&[], 10).is_empty());
    }

    #[test]
    fn range_blocks_cover_every_id_once() {
        for n in [0u64, 1, 999, 1000, 1001, 250_000, 10_000_000] {
            let reads = range_reads(n);
            let mut next = 0;
            for r in &reads {
                let Read::Range { start, end } = r else {
                    panic!()
                };
                assert_eq!(*start, next);
                assert!(end > start);
                next = *end;
            }
            assert_eq!(next, n);
        }
        assert_eq!(range_reads(10_000_000).len(), 200);
    }

    #[test]
    fn a_missing_path_is_a_read_error_naming_it() {
        let e = files("/no/such/place").unwrap_err();
        assert!(e.to_string().contains("/no/such/place"), "{e}");
        let e = files("/no/such/*.parquet").unwrap_err();
        assert!(e.to_string().contains("no file matches"), "{e}");
    }
}
