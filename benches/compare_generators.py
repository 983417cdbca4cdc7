"""Ray's side of Mobula's generator cases: a streaming generator of small items consumed by
the driver, each item's ref got as it comes.

    /tmp/rayenv/bin/python benches/compare_generators.py            # one node, 2 CPUs
    /tmp/rayenv/bin/python benches/compare_generators.py --nodes 2  # head without CPUs + 1 worker

One node matches `cargo bench --bench microbenchmark -- --filter generator` (1,000 items of
b"ok" per generator); two nodes match `cargo bench --bench cluster -- --filter generator`
(5,000 one-byte items from the worker). Prints items per second, median of 5 rounds.
"""

import argparse
import json
import statistics
import time

import ray


@ray.remote
def small_items(n):
    for _ in range(n):
        yield b"ok"


@ray.remote
def items(n):
    for i in range(n):
        yield i % 256


def rate(gen_fn, n):
    t = time.perf_counter()
    for ref in gen_fn.remote(n):
        ray.get(ref)
    return n / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    cluster = None
    if args.nodes == 2:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        cluster.add_node(num_cpus=2)
        ray.init(address=cluster.address)
        fn, n, key = items, 5000, "xnode_generator_items_per_s"
    else:
        ray.init(num_cpus=2)
        fn, n, key = small_items, 1000, "single_client_generator_items_per_s"
    rate(fn, 100)  # warm up
    samples = [rate(fn, n) for _ in range(args.rounds)]
    print(json.dumps({key: statistics.median(samples), "samples": samples}))
    ray.shutdown()
    if cluster is not None:
        cluster.shutdown()


if __name__ == "__main__":
    main()
