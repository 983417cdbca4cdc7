#!/usr/bin/env python3
"""Ray 2.60 and Mobula across two nodes on this machine, side by side, in one sitting.

Alternates Ray's ../shared/bench/ray/ray_multinode.py and Mobula's `cargo bench --bench
cluster` (one round each time, never at the same time), ROUNDS times, and prints the median
of each case for both and the ratio Mobula / Ray (for cluster up: Ray / Mobula, as lower is
better).

    python3 benches/compare_cluster.py                 # 3 rounds
    python3 benches/compare_cluster.py --rounds 5 --markdown

A Ray environment is needed (see ../shared/bench/ray/README.md):
    python3 -m venv /tmp/rayenv && /tmp/rayenv/bin/pip install -q "ray[default,tune]==2.60.0" numpy
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAY_SCRIPT = ROOT.parent / "shared" / "bench" / "ray" / "ray_multinode.py"
CASES = [
    ("cluster_up_s", "cluster up (head + 1 worker), s", True),
    ("xnode_tasks_sync_per_s", "cross-node tasks sync, /s", False),
    ("xnode_tasks_async_per_s", "cross-node tasks async, /s", False),
    ("xnode_actor_sync_per_s", "cross-node actor calls sync, /s", False),
    ("xnode_actor_async_per_s", "cross-node actor calls async, /s", False),
    ("xnode_object_256MB_GBps", "256 MB object across nodes, GB/s", False),
]


def last_json(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit("no JSON line in the output:\n" + text[-2000:])


def run(cmd, cwd):
    print("$", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return last_json(proc.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--python", default="/tmp/rayenv/bin/python")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    subprocess.run(["cargo", "bench", "--bench", "cluster", "--no-run"], cwd=ROOT, check=True)
    ray, mobula = {}, {}
    for _ in range(args.rounds):
        for k, v in run([args.python, str(RAY_SCRIPT)], RAY_SCRIPT.parent).items():
            ray.setdefault(k, []).append(v)
        subprocess.run([args.python.replace("python", "ray"), "stop", "--force"], capture_output=True)
        out = run(["cargo", "bench", "--bench", "cluster", "--", "--rounds", "1"], ROOT)
        for k, v in out.items():
            mobula.setdefault(k, []).append(v)

    rows = []
    for key, label, lower_better in CASES:
        r = statistics.median(ray[key])
        m = statistics.median(mobula[key])
        ratio = (r / m) if lower_better else (m / r)
        rows.append((label, r, m, ratio))
    if args.markdown:
        print("| case | Ray 2.60 | Mobula | Mobula vs Ray |")
        print("| --- | ---: | ---: | ---: |")
        for label, r, m, ratio in rows:
            print(f"| {label} | {r:,.3f} | {m:,.3f} | {ratio:.1f}x |")
    else:
        for label, r, m, ratio in rows:
            print(f"{label:40} Ray {r:12,.3f}  Mobula {m:12,.3f}  {ratio:6.1f}x")
    print(f"(medians of {args.rounds} alternating rounds)", file=sys.stderr)


if __name__ == "__main__":
    main()
