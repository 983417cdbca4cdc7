//! mobula::data: every operator checked against a plain computation on the same rows
//! (empty blocks, nulls, one row, many blocks), read and write round trips for every format,
//! a dataset 4x the object store's memory streamed with the store's use measured, a node
//! killed mid-run on a LocalCluster, streaming_split, and errors that say where.

#![cfg(feature = "data")]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use common::turn;
use mobula::SchedulingStrategy;
use mobula::data::{self, ActorPoolStrategy, Agg, Batch, DataError, MapOptions, Row, col};
use mobula::prelude::*;

fn start() -> mobula::InitGuard {
    mobula::init(Config::default().num_cpus(2)).expect("init")
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mobula-data-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Item {
    id: i64,
    key: String,
    x: Option<f64>,
}

/// `n` items: keys of 3 kinds, every 5th x null.
fn items(n: i64) -> Vec<Item> {
    (0..n)
        .map(|i| Item {
            id: i,
            key: format!("k{}", i % 3),
            x: (i % 5 != 0).then_some(i as f64 * 0.5),
        })
        .collect()
}

fn ids(b: &RecordBatch, name: &str) -> Vec<i64> {
    let c = b.column_by_name(name).unwrap();
    let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Int64).unwrap();
    c.as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

#[mobula::remote]
fn double_id(batch: Batch) -> anyhow::Result<Batch> {
    let id = batch.column_by_name("id").unwrap();
    let id = arrow::compute::kernels::numeric::mul(id, &Int64Array::new_scalar(2))?;
    Ok(Batch::new(RecordBatch::try_from_iter([("id", id)])?))
}

#[mobula::remote]
fn rows_seen(batch: Batch) -> Batch {
    // One row per call: how many rows the call got.
    let n = Int64Array::from(vec![batch.num_rows() as i64]);
    Batch::new(RecordBatch::try_from_iter([("n", Arc::new(n) as _)]).unwrap())
}

#[mobula::remote]
fn explode_on_seven(batch: Batch) -> Result<Batch, String> {
    let ids = batch.column_by_name("id").unwrap();
    let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
    if ids.values().contains(&7) {
        panic!("seven is not allowed");
    }
    Ok(batch)
}

/// Adds column `node`: the node that ran the task.
#[mobula::remote]
fn tag_node(batch: Batch) -> anyhow::Result<Batch> {
    with_node(batch)
}

/// The batch with a column `node`: the node that made it.
fn with_node(batch: Batch) -> anyhow::Result<Batch> {
    let node = mobula::context().node_id().expect("a runtime").to_string();
    let column = StringArray::from(vec![node.as_str(); batch.num_rows()]);
    let mut columns: Vec<(String, arrow::array::ArrayRef)> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .zip(batch.columns().iter().cloned())
        .collect();
    columns.push(("node".into(), Arc::new(column)));
    Ok(Batch::new(RecordBatch::try_from_iter(columns)?))
}

#[mobula::remote]
fn tag_row(mut row: Row) -> Row {
    let id: i64 = row.get("id").unwrap();
    row.set("tag", format!("#{id}"));
    row
}

#[mobula::remote]
fn twice(row: Row) -> Vec<Row> {
    vec![row.clone(), row]
}

#[mobula::remote]
fn even(row: Row) -> bool {
    row.get::<i64>("id").unwrap() % 2 == 0
}

#[mobula::remote]
fn group_size(batch: Batch) -> Batch {
    let key = batch.column_by_name("key").unwrap().slice(0, 1);
    let n = Int64Array::from(vec![batch.num_rows() as i64]);
    Batch::new(RecordBatch::try_from_iter([("key", key), ("n", Arc::new(n) as _)]).unwrap())
}

#[test]
fn per_block_operators_match_a_plain_computation() {
    let _turn = turn();
    let _m = start();
    let all = items(1001);
    let ds = data::from_items(&all).unwrap();

    // filter by expression: null x is not kept.
    let got: Vec<Item> = ds.filter(col("x").gt(100.0)).take_all_as().unwrap();
    let want: Vec<Item> = all
        .iter()
        .filter(|i| i.x.is_some_and(|x| x > 100.0))
        .cloned()
        .collect();
    assert_eq!(got, want);

    // add_column, select, drop.
    let b = ds
        .add_column("y", col("id").mul(3))
        .select_columns(&["y", "id"])
        .to_batch()
        .unwrap();
    assert_eq!(b.schema().fields().len(), 2);
    assert_eq!(ids(&b, "y"), (0..1001).map(|i| i * 3).collect::<Vec<_>>());
    let b = ds.drop_columns(&["x", "key"]).to_batch().unwrap();
    assert_eq!(b.schema().fields().len(), 1);
    assert_eq!(ids(&b, "id"), (0..1001).collect::<Vec<_>>());

    // map_batches on tasks, whole blocks and cut to a batch size.
    let b = data::range(10_000)
        .map_batches(double_id, MapOptions::new())
        .to_batch()
        .unwrap();
    assert_eq!(
        ids(&b, "id"),
        (0..10_000).map(|i| i * 2).collect::<Vec<_>>()
    );
    let sizes = ids(
        &data::range(2500)
            .map_batches(rows_seen, MapOptions::new().batch_size(300))
            .to_batch()
            .unwrap(),
        "n",
    );
    assert_eq!(sizes.iter().sum::<i64>(), 2500);
    assert!(sizes.iter().all(|n| *n <= 300), "{sizes:?}");

    // map, flat_map, filter_rows on rows.
    let rows = ds.limit(4).map(tag_row).take_all().unwrap();
    let tags: Vec<String> = rows.iter().map(|r| r.get("tag").unwrap()).collect();
    assert_eq!(tags, vec!["#0", "#1", "#2", "#3"]);
    assert_eq!(ds.flat_map(twice).count().unwrap(), 2002);
    let evens = ds.filter_rows(even).take_all_as::<Item>().unwrap();
    assert_eq!(
        evens,
        all.iter()
            .filter(|i| i.id % 2 == 0)
            .cloned()
            .collect::<Vec<_>>()
    );

    // limit: exactly n rows, in order, across blocks.
    let b = data::range(10_000).limit(2345).to_batch().unwrap();
    assert_eq!(ids(&b, "id"), (0..2345).collect::<Vec<_>>());
    assert_eq!(data::range(10).limit(0).count().unwrap(), 0);

    // one row; empty.
    assert_eq!(data::range(1).sum("id").unwrap(), 0.0);
    assert_eq!(data::range(0).count().unwrap(), 0);
    assert_eq!(ds.filter(col("id").lt(0)).count().unwrap(), 0);
    assert_eq!(ds.filter(col("id").lt(0)).mean("x").unwrap(), None);
}

#[test]
fn aggregates_and_all_to_all_operators_match_a_plain_computation() {
    let _turn = turn();
    let _m = start();
    let all = items(2000);
    // Many blocks, one of them empty.
    let ds = data::from_items(&all)
        .unwrap()
        .union(&[data::from_items::<Item>(&[]).unwrap()]);

    let xs: Vec<f64> = all.iter().filter_map(|i| i.x).collect();
    let sum: f64 = xs.iter().sum();
    assert_eq!(ds.sum("x").unwrap(), sum);
    assert_eq!(ds.min("x").unwrap(), Some(0.5));
    assert_eq!(ds.max("x").unwrap(), Some(999.5));
    assert!((ds.mean("x").unwrap().unwrap() - sum / xs.len() as f64).abs() < 1e-9);
    let mean = sum / xs.len() as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    assert!((ds.std("x").unwrap().unwrap() - var.sqrt()).abs() < 1e-9);
    assert_eq!(ds.count().unwrap(), 2000);

    // groupby: per key count, sum, mean, min, max, std against a BTreeMap.
    let out = ds
        .groupby(&["key"])
        .aggregate(&[
            Agg::Count,
            Agg::Sum("x".into()),
            Agg::Mean("x".into()),
            Agg::Min("x".into()),
            Agg::Max("x".into()),
        ])
        .to_batch()
        .unwrap();
    let mut plain: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for i in &all {
        plain.entry(i.key.clone()).or_default().push(i.x);
    }
    let keys = out
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| k.unwrap().to_string())
            .collect::<Vec<_>>(),
        plain.keys().cloned().collect::<Vec<_>>()
    );
    let f = |i: usize| {
        out.column(i)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .clone()
    };
    for (g, (_, vals)) in plain.iter().enumerate() {
        let present: Vec<f64> = vals.iter().flatten().copied().collect();
        assert_eq!(ids(&out, "count()")[g], vals.len() as i64);
        assert_eq!(f(2).value(g), present.iter().sum::<f64>());
        assert_eq!(
            f(4).value(g),
            present.iter().cloned().fold(f64::INFINITY, f64::min)
        );
        assert_eq!(
            f(5).value(g),
            present.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        );
    }

    // map_groups: one call per group, with all its rows.
    let sizes = ds
        .groupby(&["key"])
        .map_groups(group_size)
        .to_batch()
        .unwrap();
    assert_eq!(
        ids(&sizes, "n"),
        plain.values().map(|v| v.len() as i64).collect::<Vec<_>>()
    );

    // sort, both ways.
    let sorted = ds.sort(&["x"], true).to_batch().unwrap();
    let got = sorted
        .column_by_name("x")
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .clone();
    let mut want: Vec<Option<f64>> = all.iter().map(|i| i.x).collect();
    want.sort_by(|a, b| match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(a),
        (None, None) => std::cmp::Ordering::Equal,
        (None, _) => std::cmp::Ordering::Greater,
        (_, None) => std::cmp::Ordering::Less,
    });
    assert_eq!(got.iter().collect::<Vec<_>>(), want);

    // random_shuffle: the same rows, another order, the same for the same seed.
    let a = ids(&ds.random_shuffle(7).to_batch().unwrap(), "id");
    let b = ids(&ds.random_shuffle(7).to_batch().unwrap(), "id");
    let c = ids(&ds.random_shuffle(8).to_batch().unwrap(), "id");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, (0..2000).collect::<Vec<_>>());
    let mut s = a.clone();
    s.sort();
    assert_eq!(s, (0..2000).collect::<Vec<_>>());

    // repartition: n blocks, same rows.
    let r = ds.repartition(7).materialize().unwrap();
    let made = r.stats();
    let op = made
        .operators
        .iter()
        .find(|o| o.name.starts_with("repartition"))
        .unwrap();
    assert_eq!((op.blocks, op.rows), (7, 2000));
    assert_eq!(r.count().unwrap(), 2000);

    // sort on two keys, ties broken by the second.
    let by_two = ds.sort(&["key", "id"], false).to_batch().unwrap();
    let mut want: Vec<(String, i64)> = all.iter().map(|i| (i.key.clone(), i.id)).collect();
    want.sort();
    assert_eq!(
        ids(&by_two, "id"),
        want.iter().map(|w| w.1).collect::<Vec<_>>()
    );

    // repartition keeps the rows' order.
    assert_eq!(
        ids(&ds.repartition(7).to_batch().unwrap(), "id"),
        (0..2000).collect::<Vec<_>>()
    );

    // union and zip.
    let u = data::range(5).union(&[data::range(3)]).to_batch().unwrap();
    assert_eq!(ids(&u, "id"), vec![0, 1, 2, 3, 4, 0, 1, 2]);
    let z = data::range(4)
        .zip(&data::range(4).add_column("sq", col("id").mul(col("id"))))
        .to_batch()
        .unwrap();
    assert_eq!(ids(&z, "id"), vec![0, 1, 2, 3]);
    assert_eq!(ids(&z, "id_1"), vec![0, 1, 2, 3]);
    assert_eq!(ids(&z, "sq"), vec![0, 1, 4, 9]);
    // zip of sides cut into blocks differently.
    let z = data::range(10_000)
        .zip(
            &data::range(10_000)
                .repartition(3)
                .add_column("sq", col("id").mul(col("id"))),
        )
        .to_batch()
        .unwrap();
    assert_eq!(ids(&z, "id"), (0..10_000).collect::<Vec<_>>());
    assert_eq!(ids(&z, "id_1"), (0..10_000).collect::<Vec<_>>());
    assert_eq!(
        ids(&z, "sq"),
        (0..10_000i64).map(|i| i * i).collect::<Vec<_>>()
    );
    assert!(matches!(
        data::range(4).zip(&data::range(5)).count(),
        Err(DataError::Schema { .. })
    ));
}

#[test]
fn every_format_round_trips() {
    let _turn = turn();
    let _m = start();
    let all = items(777);
    let ds = data::from_items(&all).unwrap().repartition(3);
    let d = dir("formats");

    assert_eq!(ds.write_parquet(d.join("pq")).unwrap(), 777);
    let written = ds.stats();
    let op = written
        .operators
        .iter()
        .find(|o| o.name == "write_parquet")
        .unwrap();
    assert_eq!((op.tasks, op.blocks, op.rows), (3, 3, 777));
    assert!(op.bytes > 0, "{op:?}");
    assert_eq!(std::fs::read_dir(d.join("pq")).unwrap().count(), 3);
    let back: Vec<Item> = data::read_parquet(d.join("pq"))
        .unwrap()
        .take_all_as()
        .unwrap();
    assert_eq!(back, all);
    // Columns selected after the read: only they come, in the order asked for.
    let picked = data::read_parquet(d.join("pq"))
        .unwrap()
        .select_columns(&["x", "id"])
        .to_batch()
        .unwrap();
    let names: Vec<_> = picked
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["x", "id"]);
    assert_eq!(ids(&picked, "id"), (0..777).collect::<Vec<_>>());
    // A pipeline decodes only the columns its expressions, keys and aggregates use.
    let grouped = data::read_parquet(d.join("pq"))
        .unwrap()
        .filter(col("x").gt(100.0))
        .add_column("y", col("x").mul(2))
        .groupby(&["key"])
        .mean("y");
    let plan = grouped.explain();
    assert!(
        plan.starts_with("read_parquet(3 blocks, columns [key, x]) -> filter("),
        "{plan}"
    );
    let out = grouped.to_batch().unwrap();
    let mut plain: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for i in all.iter().filter(|i| i.x.is_some_and(|x| x > 100.0)) {
        let e = plain.entry(i.key.clone()).or_default();
        e.0 += i.x.unwrap() * 2.0;
        e.1 += 1.0;
    }
    let means = out
        .column_by_name("mean(y)")
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(
        means.values().to_vec(),
        plain.values().map(|(s, n)| s / n).collect::<Vec<_>>()
    );
    // Above a registered function every column is read: it may use any.
    let opaque = data::read_parquet(d.join("pq"))
        .unwrap()
        .map_batches(rows_seen, MapOptions::new())
        .select_columns(&["id"]);
    assert!(
        opaque
            .explain()
            .starts_with("read_parquet(3 blocks) -> map_batches("),
        "{}",
        opaque.explain()
    );
    let e = data::read_parquet(d.join("pq"))
        .unwrap()
        .select_columns(&["nope"])
        .count()
        .unwrap_err();
    assert!(e.to_string().contains("no column \"nope\""), "{e}");

    assert_eq!(ds.write_json(d.join("json")).unwrap(), 777);
    let back: Vec<Item> = data::read_json(d.join("json"))
        .unwrap()
        .take_all_as()
        .unwrap();
    assert_eq!(back, all);

    // CSV: nulls come back as empty fields, read as nulls.
    assert_eq!(ds.write_csv(d.join("csv")).unwrap(), 777);
    let back: Vec<Item> = data::read_csv(d.join("csv/*.csv"))
        .unwrap()
        .take_all_as()
        .unwrap();
    assert_eq!(back, all);

    std::fs::create_dir_all(d.join("text")).unwrap();
    std::fs::write(d.join("text/a.txt"), "one\ntwo\n").unwrap();
    std::fs::write(d.join("text/b.txt"), "three\n").unwrap();
    let lines: Vec<String> = data::read_text(d.join("text"))
        .unwrap()
        .take_all()
        .unwrap()
        .iter()
        .map(|r| r.get("text").unwrap())
        .collect();
    assert_eq!(lines, vec!["one", "two", "three"]);
    let files = data::read_binary_files(d.join("text/*.txt"))
        .unwrap()
        .to_batch()
        .unwrap();
    let bytes = files
        .column_by_name("bytes")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::BinaryArray>()
        .unwrap();
    assert_eq!(bytes.value(0), b"one\ntwo\n");
    assert_eq!(bytes.value(1), b"three\n");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn fused_operators_run_on_a_reads_chunks_as_decoded() {
    let _turn = turn();
    let _m = start();
    let d = dir("chunks");
    // One file, one row group, one block of 200,000 rows: read in chunks of 65,536.
    let n = 200_000i64;
    let id: Int64Array = (0..n).collect();
    let x: Float64Array = (0..n).map(|i| (i % 10) as f64).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(id) as arrow::array::ArrayRef),
        ("x", Arc::new(x) as _),
    ])
    .unwrap();
    let file = std::fs::File::create(d.join("t.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let ds = data::read_parquet(d.join("t.parquet")).unwrap();

    // A filter, a function and an expression on each chunk: the rows of a plain
    // computation, in order.
    let b = ds
        .filter(col("id").rem(7).gt(0))
        .map_batches(double_id, MapOptions::new())
        .add_column("z", col("id").add(1))
        .to_batch()
        .unwrap();
    let want: Vec<i64> = (0..n).filter(|i| i % 7 > 0).map(|i| i * 2).collect();
    assert_eq!(ids(&b, "id"), want);
    assert_eq!(ids(&b, "z"), want.iter().map(|i| i + 1).collect::<Vec<_>>());

    // Without a batch size, a function gets the read's chunks: every row once, at most
    // 65,536 at a time; with one, slices of the block of at most that size.
    let sizes = ids(
        &ds.map_batches(rows_seen, MapOptions::new())
            .to_batch()
            .unwrap(),
        "n",
    );
    assert_eq!(sizes, vec![65_536, 65_536, 65_536, 3_392]);
    let sizes = ids(
        &ds.map_batches(rows_seen, MapOptions::new().batch_size(100_000))
            .to_batch()
            .unwrap(),
        "n",
    );
    assert_eq!(sizes, vec![100_000, 100_000]);

    // A filter that keeps nothing, and a file of no rows: no rows, the columns kept.
    let none = ds.filter(col("x").gt(100.0)).to_batch().unwrap();
    assert_eq!((none.num_rows(), none.num_columns()), (0, 2));
    let empty = RecordBatch::new_empty(batch.schema());
    let file = std::fs::File::create(d.join("empty.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, empty.schema(), None).unwrap();
    w.write(&empty).unwrap();
    w.close().unwrap();
    let e = data::read_parquet(d.join("empty.parquet"))
        .unwrap()
        .filter(col("x").gt(1.0))
        .add_column("y", col("x").mul(2.0))
        .to_batch()
        .unwrap();
    assert_eq!((e.num_rows(), e.num_columns()), (0, 3));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn errors_say_which_operator_block_and_file() {
    let _turn = turn();
    let _m = start();
    let d = dir("errors");

    let e = data::read_parquet(d.join("missing.parquet")).err().unwrap();
    assert!(
        matches!(&e, DataError::Read { path, .. } if path.contains("missing.parquet")),
        "{e}"
    );

    std::fs::write(d.join("bad.parquet"), b"this is not parquet").unwrap();
    let e = data::read_parquet(d.join("bad.parquet")).err().unwrap();
    assert!(e.to_string().contains("bad.parquet"), "{e}");

    std::fs::write(d.join("a.json"), "{\"id\": 1}\n{\"id\": 2}\n").unwrap();
    std::fs::write(d.join("b.json"), "{\"id\": 3}\nnot json at all\n").unwrap();
    let e = data::read_json(d.join("*.json"))
        .unwrap()
        .count()
        .unwrap_err();
    match &e {
        DataError::Read { path, .. } => assert!(path.ends_with("b.json"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Tolerated: the bad file's block is left out and listed.
    let ds = data::read_json(d.join("*.json"))
        .unwrap()
        .max_errored_blocks(1);
    assert_eq!(ds.count().unwrap(), 2);
    assert_eq!(ds.stats().errored_blocks.len(), 1);

    // A panic in a map function names the operator and the block; the runtime goes on.
    let e = data::range(5000)
        .map_batches(explode_on_seven, MapOptions::new())
        .count()
        .unwrap_err();
    match &e {
        DataError::Operator {
            operator,
            block,
            reason,
            ..
        } => {
            assert!(operator.contains("explode_on_seven"), "{e}");
            assert_eq!(*block, 0);
            assert!(reason.contains("seven is not allowed"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(data::range(10).count().unwrap(), 10);

    // A missing column names the columns there are.
    let e = data::range(10)
        .filter(col("nope").gt(1))
        .count()
        .unwrap_err();
    assert!(e.to_string().contains("no column \"nope\""), "{e}");
    // So does a sort by one, naming the sort.
    match data::range(10).sort(&["nope"], false).count().unwrap_err() {
        DataError::Operator {
            operator, reason, ..
        } => {
            assert_eq!(operator, "sort(nope)");
            assert!(reason.contains("no column \"nope\"") && reason.contains("\"id\""));
        }
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[mobula::actor]
struct Scaler {
    factor: i64,
    calls: u64,
}

#[mobula::actor]
impl Scaler {
    fn new(factor: i64) -> Self {
        Scaler { factor, calls: 0 }
    }

    fn scale(&mut self, batch: Batch) -> anyhow::Result<Batch> {
        self.calls += 1;
        let id = batch.column_by_name("id").unwrap();
        let id = arrow::compute::kernels::numeric::mul(id, &Int64Array::new_scalar(self.factor))?;
        Ok(Batch::new(RecordBatch::try_from_iter([("id", id)])?))
    }
}

#[test]
fn map_batches_on_an_actor_pool_keeps_state_and_cuts_batches() {
    let _turn = turn();
    let _m = start();
    let ds = data::range(50_000).map_batches_on(
        ActorPoolStrategy::new(2).batch_size(4096),
        || Scaler::options().num_cpus(0.5).remote(3),
        |s, b| s.scale(b),
    );
    let b = ds.to_batch().unwrap();
    assert_eq!(
        ids(&b, "id"),
        (0..50_000).map(|i| i * 3).collect::<Vec<_>>()
    );
    let op = ds
        .stats()
        .operators
        .into_iter()
        .find(|o| o.name.contains("actor pool"))
        .unwrap();
    assert_eq!(op.rows, 50_000);
    // 50 blocks of 1000 rows? No: range makes blocks of 1000 ids at least; each block goes
    // whole (under 4096 rows) or cut.
    assert!(op.blocks >= 13, "{op:?}");
}

#[mobula::actor]
struct Tagger;

#[mobula::actor]
impl Tagger {
    fn new() -> Self {
        Tagger
    }

    fn tag(&mut self, batch: Batch) -> anyhow::Result<Batch> {
        with_node(batch)
    }
}

#[test]
fn an_actor_pool_replaces_an_actor_lost_with_its_node() {
    let _turn = turn();
    // Room on the node left for its actor, the lost one's replacement and the map tasks.
    let worker = || Config::default().num_cpus(3);
    let (mut cluster, workers, _driver) =
        common::local_cluster(Config::default().num_cpus(0), worker, 2, |c| c);
    // The pool's first two actors go one to each worker; later ones wherever there is room.
    let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (w0, w1) = (workers[0], workers[1]);
    let counter = made.clone();
    let n = 200_000i64;
    let ds = data::range(n as u64)
        .map_batches(double_id, MapOptions::new())
        .map_batches_on(
            ActorPoolStrategy::new(2).batch_size(2_000),
            move || {
                let node = match counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                    0 => w0,
                    _ => w1,
                };
                Tagger::options()
                    .num_cpus(1)
                    .scheduling_strategy(SchedulingStrategy::NodeAffinity { node, soft: true })
                    .remote()
            },
            |t, b| t.tag(b),
        );
    let mut got = Vec::with_capacity(n as usize);
    let mut made_by = Vec::new();
    for (i, b) in ds.iter_batches(None).unwrap().enumerate() {
        let b = b.unwrap();
        got.extend(ids(&b, "id"));
        let node = b.column_by_name("node").unwrap();
        let node = node.as_any().downcast_ref::<StringArray>().unwrap();
        made_by.push(node.value(0).to_string());
        if i == 10 {
            assert!(cluster.kill_node(w0));
        }
    }
    assert_eq!(got, (0..n).map(|i| i * 2).collect::<Vec<_>>());
    let (lost, kept) = (w0.to_string(), w1.to_string());
    assert!(
        made_by[..=10].contains(&lost),
        "the lost node's actor worked before: {made_by:?}"
    );
    // Past the calls in flight when it was killed (two per actor), every block comes from
    // the node that is left.
    assert!(
        made_by[20..].iter().all(|n| *n == kept),
        "the rest came from the other node: {made_by:?}"
    );
    assert!(
        made.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "a new actor took the lost one's place"
    );
}

#[test]
fn streaming_split_gives_disjoint_complete_shards() {
    let _turn = turn();
    let _m = start();
    let parts = data::range(100_000).streaming_split(2).unwrap();
    let handles: Vec<_> = parts
        .into_iter()
        .map(|it| {
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for b in it {
                    seen.extend(ids(&b.unwrap(), "id"));
                }
                seen
            })
        })
        .collect();
    let shards: Vec<Vec<i64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let a: HashSet<i64> = shards[0].iter().copied().collect();
    let b: HashSet<i64> = shards[1].iter().copied().collect();
    assert!(a.is_disjoint(&b));
    assert_eq!(a.len() + b.len(), 100_000);
    assert_eq!(a.union(&b).count(), 100_000);
}

#[test]
fn a_dataset_four_times_the_store_streams_with_bounded_memory() {
    let _turn = turn();
    let limit: u64 = 32 << 20;
    let _m = mobula::init(Config::default().num_cpus(2).object_store_memory(limit)).unwrap();
    // 16M ids of 8 bytes: 128 MiB through a 32 MiB store.
    let n: u64 = 16 << 20;
    let ds = data::range(n).map_batches(double_id, MapOptions::new());
    let mut peak = 0;
    let mut sum: i128 = 0;
    let mut rows = 0u64;
    for b in ds.iter_batches(Some(100_000)).unwrap() {
        let b = b.unwrap();
        rows += b.num_rows() as u64;
        sum += ids(&b, "id").iter().map(|v| *v as i128).sum::<i128>();
        peak = peak.max(mobula::state::object_store().unwrap().memory_used);
    }
    assert_eq!(rows, n);
    assert_eq!(sum, (n as i128 - 1) * n as i128);
    let store = mobula::state::object_store().unwrap();
    println!(
        "peak store use {peak} of {limit}; spilled {}",
        store.spilled_bytes
    );
    assert!(peak <= limit / 2, "the store held {peak} bytes at once");
    assert_eq!(store.spilled_bytes, 0, "nothing had to wait on disk");
}

#[test]
fn a_sort_four_times_the_store_spills_what_waits_and_is_exact() {
    let _turn = turn();
    let limit: u64 = 2 << 20;
    let _m = mobula::init(Config::default().num_cpus(2).object_store_memory(limit)).unwrap();
    // 1M ids of 8 bytes: 8 MiB through a 2 MiB store. A sort's parts all wait for the last
    // map task, so some must go to disk.
    let n: i64 = 1 << 20;
    let ds = data::range(n as u64)
        .map_batches(double_id, MapOptions::new())
        .sort(&["id"], true);
    let mut next = (n - 1) * 2;
    let mut rows = 0;
    for b in ds.iter_batches(None).unwrap() {
        for v in ids(&b.unwrap(), "id") {
            assert_eq!(v, next, "row {rows}");
            next -= 2;
            rows += 1;
        }
    }
    assert_eq!(rows, n);
    let store = mobula::state::object_store().unwrap();
    assert!(
        store.spilled_bytes > 0,
        "the parts that waited were spilled"
    );
    let op = ds
        .stats()
        .operators
        .into_iter()
        .find(|o| o.name.starts_with("sort"))
        .unwrap();
    assert_eq!(op.rows, n as u64);
}

#[test]
fn all_to_all_operators_run_on_the_workers_of_a_local_cluster() {
    let _turn = turn();
    let worker = || Config::default().num_cpus(2);
    let (_cluster, _workers, _driver) =
        common::local_cluster(Config::default().num_cpus(0), worker, 2, |c| c);
    let n = 50_000i64;
    // The driver has no CPUs: every map and reduce task runs on a worker.
    let ds = data::range(n as u64).map_batches(double_id, MapOptions::new());
    let sorted = ds
        .random_shuffle(3)
        .sort(&["id"], false)
        .to_batch()
        .unwrap();
    assert_eq!(
        ids(&sorted, "id"),
        (0..n).map(|i| i * 2).collect::<Vec<_>>()
    );
    let mut shuffled = ids(&ds.random_shuffle(3).to_batch().unwrap(), "id");
    assert_ne!(shuffled, (0..n).map(|i| i * 2).collect::<Vec<_>>());
    shuffled.sort();
    assert_eq!(shuffled, (0..n).map(|i| i * 2).collect::<Vec<_>>());
    let parts = ds.repartition(5).materialize().unwrap();
    assert_eq!(parts.count().unwrap(), n as u64);
    let sizes = parts
        .add_column("key", col("id").rem(3))
        .groupby(&["key"])
        .map_groups(group_size)
        .to_batch()
        .unwrap();
    let third = |k: i64| (0..n).filter(|i| (i * 2) % 3 == k).count() as i64;
    assert_eq!(ids(&sizes, "n"), vec![third(0), third(1), third(2)]);
}

#[test]
fn a_pipeline_on_a_local_cluster_survives_a_node_killed_mid_run() {
    let _turn = turn();
    let worker = || Config::default().num_cpus(2);
    let (mut cluster, workers, _driver) =
        common::local_cluster(Config::default().num_cpus(0), worker, 2, |c| c);
    let n = 300_000i64;
    let ds = data::range(n as u64)
        .map_batches(double_id, MapOptions::new())
        .map_batches(tag_node, MapOptions::new());
    let mut got = Vec::with_capacity(n as usize);
    let (mut before, mut after) = (HashSet::new(), HashSet::new());
    for (i, b) in ds.iter_batches(None).unwrap().enumerate() {
        let b = b.unwrap();
        got.extend(ids(&b, "id"));
        let node = b.column_by_name("node").unwrap();
        let node = node
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0)
            .to_string();
        if i <= 20 {
            before.insert(node);
        } else {
            after.insert(node);
        }
        if i == 20 {
            assert!(cluster.kill_node(workers[0]));
        }
    }
    assert_eq!(got, (0..n).map(|i| i * 2).collect::<Vec<_>>());
    let (dead, alive) = (workers[0].to_string(), workers[1].to_string());
    assert!(
        before.contains(&dead),
        "the killed node made blocks before: {before:?}"
    );
    assert!(
        after.contains(&alive),
        "the other node made the rest: {after:?}"
    );
    common::eventually("the killed node is declared dead", || {
        mobula::node::nodes()
            .iter()
            .any(|node| node.info.node_id == workers[0] && !node.alive)
    });
    // The cluster still runs a pipeline, on the node that is left.
    assert_eq!(
        data::range(10_000)
            .map_batches(double_id, MapOptions::new())
            .sum("id")
            .unwrap(),
        99_990_000.0
    );
}
