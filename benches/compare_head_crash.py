"""Ray's side of the head's crash (`cargo bench --bench cluster -- --filter head`, in
benches/cluster.rs): a head without CPUs and two worker nodes with 2 CPUs each, on one
machine, this process the driver.

Measures, as the Mobula side does:
- actors created and called once, per second, unnamed and named (a name is a GCS write;
  with --redis, GCS keeps its tables in Redis: Ray's GCS fault tolerance);
- with --redis only: the GCS server killed and started again (Ray's own tests do it the same
  way, `head_node.kill_gcs_server()` then `start_gcs_server()`), from the restart to the
  driver placing a first task on a worker node and getting its result, then to a read of
  the internal KV (which only GCS answers).

usage: python benches/compare_head_crash.py [--redis 127.0.0.1:6379] [--rounds 5]
(start Debian's redis-server first: `redis-server --port 6379 --save '' --appendonly yes
--appendfsync always --daemonize yes`, so that each write is durable, as Mobula's are.)
Prints one line per round, then the medians as JSON.
"""
import argparse
import json
import statistics
import time

import ray
from ray.cluster_utils import Cluster
from ray.experimental import internal_kv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--actors", type=int, default=200)
    a = ap.parse_args()

    head_args = {"num_cpus": 0}
    if a.redis:
        head_args["external_addresses"] = [a.redis]
    c = Cluster(initialize_head=True, head_node_args=head_args)
    c.add_node(num_cpus=2)
    c.add_node(num_cpus=2)
    ray.init(address=c.address, log_to_driver=False)
    c.wait_for_nodes()

    @ray.remote
    def noop():
        return 0

    @ray.remote(num_cpus=0)
    class A:
        def f(self):
            return 0

    ray.get([noop.remote() for _ in range(20)])
    samples = {}
    for r in range(a.rounds):
        for key, named in (("unnamed_actors_per_s", False), ("named_actors_per_s", True)):
            t = time.time()
            actors = [
                (A.options(name=f"bench-{r}-{i}") if named else A).remote()
                for i in range(a.actors)
            ]
            ray.get([x.f.remote() for x in actors])
            samples.setdefault(key, []).append(a.actors / (time.time() - t))
            for x in actors:
                ray.kill(x)
        if a.redis:
            internal_kv._internal_kv_put(b"bench-k", b"v", overwrite=True)
            c.head_node.kill_gcs_server()
            t = time.time()
            c.head_node.start_gcs_server()
            ray.get(noop.remote())
            samples.setdefault("head_restart_to_first_task_s", []).append(time.time() - t)
            # What needs the head: a read of the internal KV, answered from its tables.
            assert internal_kv._internal_kv_get(b"bench-k") == b"v"
            samples.setdefault("head_restart_to_head_answers_s", []).append(time.time() - t)
        print(json.dumps({k: round(v[-1], 3) for k, v in samples.items()}), flush=True)
    medians = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    print(json.dumps(medians))
    ray.shutdown()
    c.shutdown()


if __name__ == "__main__":
    main()
