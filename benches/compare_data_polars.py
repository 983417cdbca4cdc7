"""Polars' side of the Data side-by-side (benches/data.rs): the same four pipelines on the
same table, lazy, on one node (Polars uses every core).

usage: python benches/compare_data_polars.py [--rows 10000000] [--dir /tmp/mobula-data-bench]
The table is the one `../shared/bench/ray/data_pipelines.py` (or `cargo bench --bench data`)
made in DIR/table. Prints one line per pipeline in the Ray script's format.
"""
import argparse
import os
import shutil
import time

import numpy as np
import polars as pl


def timed(name, rows, fn):
    t = time.time()
    fn()
    dt = time.time() - t
    print(f"data {name} rows={rows} s={dt:.3f} rows_per_s={rows / dt:.0f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", default="/tmp/mobula-data-bench")
    a = ap.parse_args()
    files = os.path.join(a.dir, "table", "*.parquet")
    n = a.rows

    def range_map_sum():
        s = pl.LazyFrame().select(pl.int_range(0, n, dtype=pl.Int64).alias("id")).select(
            (pl.col("id") * 2).sum()).collect().item()
        assert s == n * (n - 1)

    def groupby():
        out = (pl.scan_parquet(files).filter(pl.col("x") > 0.5)
               .select(pl.col("key"), (pl.col("x") * 2.0).alias("y"))
               .group_by("key").agg(pl.col("y").mean()).sort("key").collect())
        assert out.height == 100

    def groupby_opaque():
        # As Ray's script writes it: the map is an opaque function of a batch, so every
        # column is read for it (map_batches' projection pushdown off, Polars' default).
        out = (pl.scan_parquet(files).filter(pl.col("x") > 0.5)
               .map_batches(lambda df: df.select(pl.col("key"), (pl.col("x") * 2.0).alias("y")),
                            schema={"key": pl.String, "y": pl.Float64}, streamable=True)
               .group_by("key").agg(pl.col("y").mean()).sort("key").collect())
        assert out.height == 100
    out_dir = os.path.join(a.dir, "out-polars")

    def write():
        shutil.rmtree(out_dir, ignore_errors=True)
        os.makedirs(out_dir)
        (pl.scan_parquet(files).select(pl.col("id"), (pl.col("x") * pl.col("x")).alias("x2"))
         .sink_parquet(os.path.join(out_dir, "part.parquet")))

    w = np.random.default_rng(1).random((16, 8), dtype=np.float32)
    feats = [f"f{j}" for j in range(16)]

    def inference():
        df = pl.scan_parquet(files).select(["id"] + feats).collect()
        count = 0
        for part in df.iter_slices(65536):
            labels = (part.select(feats).to_numpy() @ w).argmax(axis=1)
            count += len(labels)
        assert count == df.height

    timed("range_map_sum", n, range_map_sum)
    timed("parquet_filter_map_groupby", n, groupby)
    timed("parquet_filter_map_groupby_opaque", n, groupby_opaque)
    timed("parquet_map_write", n, write)
    timed("batch_inference_actor_pool", n, inference)


if __name__ == "__main__":
    main()
